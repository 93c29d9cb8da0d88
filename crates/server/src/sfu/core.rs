//! The SFU's decisions, sans IO: which subscriber receives which track, when a receiving
//! connection is offered again, and which feedback goes back to a publisher. Inputs go in
//! with the time ([`Core::handle_input`], [`Core::handle_timeout`]), outputs are polled
//! ([`Core::poll_output`]), and [`Core::poll_timeout`] says when time must next be passed
//! in. Nothing here touches a socket, a task or a clock, so every path is tested with a fake
//! clock (`core_tests.rs`); the per-peer drivers (`driver.rs`) carry the outputs out.
//!
//! Membership comes only from the room registry's outputs (joined, resumed, removed): the
//! registry owns it, the core keeps the projection it needs. Routing is [`route::receives`],
//! asked in one place ([`Core::reconcile`]), which turns "what this subscriber should
//! receive" into subscribe/unsubscribe outputs and a renegotiation.
//!
//! `M` is the data plane's handle of a published track (its fan-out, in the server): the core
//! only hands it from the publish input to the subscribe outputs.

use super::allocate::{Choice, Paused};
use super::feedback::{KeyframeGate, LossRelay};
use super::io::{Input, Output};
use super::layers::LayerInfo;
use super::negotiation::Negotiation;
use super::probe::{Probe, Reallocate};
use between_protocol::{ErrorCode, ProtocolError, ServerMessage, TrackInfo, TrackKind};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A client's request for a new receiving connection within this of the last one is
/// ignored (the engine asks after 5 s without a connection; a loop of requests would rebuild
/// connections and ask every publisher for keyframes as fast as it can send them).
pub const RESUBSCRIBE_MIN: Duration = Duration::from_secs(2);
#[path = "core_layers.rs"]
mod choice;
#[path = "core_dynacast.rs"]
mod dynacast;
#[path = "core_reconcile.rs"]
mod reconcile;

#[derive(Debug)]
struct Published<M> {
    kind: TrackKind,
    media: M,
    loss: LossRelay,
    keyframe: KeyframeGate,
    /// The layer the held keyframe requests are for (`Some(None)`: several, so every one).
    held_layer: Option<Option<u8>>,
    /// The layers its reader last reported (empty: not measured yet).
    layers: Vec<LayerInfo>,
    /// What its publisher was last told to cover (`None`: nothing yet, so every layer).
    needed: Option<dynacast::Need>,
}

impl<M> Member<M> {
    /// When the start of its call, held to the estimate before any congestion, ends.
    fn startup_end(&self) -> Option<Instant> {
        self.estimated_since
            .filter(|_| !self.congested)
            .map(|t| t + choice::STARTUP)
    }
}

impl<M> Published<M> {
    /// `subscriber` no longer receives this track.
    fn forget(&mut self, subscriber: &str) {
        self.loss.forget(subscriber);
        self.keyframe.forget(subscriber);
    }
}

#[derive(Debug)]
struct Member<M> {
    room: String,
    /// What this participant publishes, by track ID.
    published: BTreeMap<String, Published<M>>,
    /// What it receives, by track ID.
    subscriptions: BTreeMap<String, TrackInfo>,
    /// The sizes it draws videos at, by track ID (only for what it receives).
    drawn: BTreeMap<String, (u32, u32)>,
    /// Its downlink's estimate, bits per second (`None`: not estimated yet, no limit).
    budget: Option<f64>,
    /// Whether its path has shown congestion, and when its first estimate came (the start
    /// of a call is held to the estimate for a while even before congestion).
    congested: bool,
    estimated_since: Option<Instant>,
    /// Whether the last allocation held a video back for the budget, and the probing that
    /// looks for more.
    held_back: bool,
    probe: Probe,
    /// The allocator's last choice per video, and the layer last selected for it.
    choices: BTreeMap<String, Choice>,
    selected: BTreeMap<String, Option<u8>>,
    /// The receiving connection's offer/answer exchange.
    negotiation: Negotiation,
    last_reset: Option<Instant>,
    /// When to bring the subscriptions back after a failed set-up.
    resync_at: Option<Instant>,
}

/// The SFU's decision state for every participant of every room.
#[derive(Debug)]
pub struct Core<M> {
    members: HashMap<String, Member<M>>,
    /// Members of each room, in join order.
    rooms: HashMap<String, Vec<String>>,
    out: VecDeque<Output<M>>,
    /// The latest time an input or timeout brought.
    now: Option<Instant>,
}

impl<M> Default for Core<M> {
    fn default() -> Self {
        Self {
            members: HashMap::new(),
            rooms: HashMap::new(),
            out: VecDeque::new(),
            now: None,
        }
    }
}

impl<M: Clone> Core<M> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Participants the core knows.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The tracks `peer` receives, for tests and metrics.
    pub fn subscriptions(&self, peer: &str) -> Vec<TrackInfo> {
        self.members
            .get(peer)
            .map(|m| m.subscriptions.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn poll_output(&mut self) -> Option<Output<M>> {
        self.out.pop_front()
    }

    /// Takes one input. An error is the client's mistake (an answer nobody asked for), for
    /// the signaling layer to report; nothing changed.
    pub fn handle_input(&mut self, now: Instant, input: Input<M>) -> Result<(), ProtocolError> {
        self.now = Some(now);
        match input {
            Input::Joined { peer, room } => self.joined(peer, room),
            Input::Resumed { peer } => {
                if let Some(msg) = self
                    .members
                    .get(&peer)
                    .and_then(|m| m.negotiation.waiting_offer())
                {
                    let msg = msg.clone();
                    self.out.push_back(Output::Signal { peer, msg });
                }
            }
            Input::Left { peer } => self.left(&peer),
            Input::Published {
                peer,
                kind,
                track_id,
                media,
            } => self.published(now, &peer, kind, track_id, media),
            Input::Unpublished { peer, track_id } => self.unpublished(&peer, &track_id),
            Input::OfferReady { peer, offer, sdp } => self.offer_ready(now, &peer, offer, sdp),
            Input::OfferFailed { peer, offer } => {
                if let Some(m) = self.members.get_mut(&peer) {
                    m.negotiation.offer_failed(now, offer);
                }
            }
            Input::SubscribeFailed { peer } => {
                if let Some(m) = self.members.get_mut(&peer) {
                    m.resync_at = Some(m.negotiation.failed(now));
                    self.reset_subscriber(now, &peer);
                }
            }
            Input::Answered { peer, offer, sdp } => return self.answered(&peer, offer, sdp),
            Input::AnswerApplied { peer, offer, error } => self.answer_applied(&peer, offer, error),
            Input::Resubscribe { peer } => self.resubscribe(now, &peer),
            Input::ReceiverReport {
                subscriber,
                publisher,
                track_id,
                fraction_lost,
            } => self.receiver_report(now, subscriber, &publisher, track_id, fraction_lost),
            Input::KeyframeWanted {
                publisher,
                track_id,
                subscriber,
                fresh,
                layer,
            } => {
                if let Some(p) = self
                    .members
                    .get_mut(&publisher)
                    .and_then(|m| m.published.get_mut(&track_id))
                    && p.kind != TrackKind::Audio
                {
                    if p.keyframe.ask(now, Some((&subscriber, fresh))) {
                        // Only the layer asked for: a keyframe of every layer is a burst on
                        // every subscriber's link for one subscriber's switch.
                        let layer = match p.held_layer.take() {
                            Some(held) if held != layer => None,
                            _ => layer,
                        };
                        self.out.push_back(Output::RequestKeyframe {
                            publisher,
                            track_id,
                            layer,
                        });
                    } else {
                        p.held_layer = Some(match p.held_layer {
                            Some(held) if held != layer => None,
                            _ => layer,
                        });
                    }
                }
            }
            Input::Layers {
                peer,
                track_id,
                layers,
            } => self.layers_changed(&peer, &track_id, layers),
            Input::Drawn {
                subscriber,
                track_id,
                size,
            } => self.drawn(&subscriber, &track_id, size),
            Input::Estimate {
                subscriber,
                bps,
                congested,
            } => self.estimated(now, &subscriber, bps, congested),
        }
        Ok(())
    }

    /// The next time [`Core::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| {
                m.negotiation
                    .deadline()
                    .into_iter()
                    .chain(m.resync_at)
                    .chain(m.published.values().filter_map(|p| p.keyframe.due()))
                    .chain(m.probe.deadline())
                    .chain(m.startup_end().filter(|t| self.now.is_none_or(|n| n < *t)))
            })
            .min()
    }

    /// Does what is due at `now`: offers nobody answered are made again, failed offers
    /// retried, held keyframe requests sent.
    pub fn handle_timeout(&mut self, now: Instant) {
        let prev = self.now.replace(now);
        let mut due = Vec::new();
        let mut resync = Vec::new();
        let mut probe = Vec::new();
        for (id, m) in &mut self.members {
            // The start of a call held to the estimate ends now: choose again, unbounded.
            if m.startup_end()
                .is_some_and(|t| t <= now && prev.is_some_and(|p| p < t))
            {
                probe.push(id.clone());
            }
            let usable = m.budget.map(|b| b * choice::USABLE);
            let paused = m
                .choices
                .values()
                .any(|c| *c == Choice::Paused(Paused::Bandwidth));
            if m.probe.tick(now, m.held_back, paused, usable) == Reallocate::Yes {
                probe.push(id.clone());
            }
            if m.resync_at.is_some_and(|t| t <= now) {
                m.resync_at = None;
                resync.push(id.clone());
            }
            if m.negotiation.timed_out(now) {
                tracing::debug!(peer = %id, "no answer to a subscribe offer, or a retry due: offering again");
                due.push(id.clone());
            }
            for (track_id, p) in &mut m.published {
                if p.keyframe.due().is_some_and(|t| t <= now) {
                    p.keyframe.pending = false;
                    p.keyframe.last = Some(now);
                    self.out.push_back(Output::RequestKeyframe {
                        publisher: id.clone(),
                        track_id: track_id.clone(),
                        layer: p.held_layer.take().flatten(),
                    });
                }
            }
        }
        due.sort();
        for id in due {
            self.renegotiate(&id);
        }
        resync.sort();
        for id in resync {
            self.reconcile(&id);
        }
        probe.sort();
        probe.dedup();
        for id in probe {
            self.allocate(&id);
        }
    }

    fn joined(&mut self, peer: String, room: String) {
        if self.members.contains_key(&peer) {
            return;
        }
        self.rooms
            .entry(room.clone())
            .or_default()
            .push(peer.clone());
        self.members.insert(
            peer.clone(),
            Member {
                room,
                published: BTreeMap::new(),
                subscriptions: BTreeMap::new(),
                drawn: BTreeMap::new(),
                budget: None,
                congested: false,
                estimated_since: None,
                held_back: false,
                probe: Probe::default(),
                choices: BTreeMap::new(),
                selected: BTreeMap::new(),
                negotiation: Negotiation::default(),
                last_reset: None,
                resync_at: None,
            },
        );
        self.reconcile(&peer);
    }

    fn left(&mut self, peer: &str) {
        let Some(gone) = self.members.remove(peer) else {
            return;
        };
        for p in self
            .members
            .values_mut()
            .flat_map(|m| m.published.values_mut())
        {
            p.forget(peer);
        }
        self.out.push_back(Output::Close {
            peer: peer.to_string(),
        });
        let members = match self.rooms.get_mut(&gone.room) {
            Some(members) => {
                members.retain(|id| id != peer);
                members.clone()
            }
            None => Vec::new(),
        };
        if members.is_empty() {
            self.rooms.remove(&gone.room);
        }
        for id in members {
            self.reconcile(&id);
        }
        // The sizes it drew others' cameras at count no more.
        self.needs(&gone.room);
    }

    fn published(&mut self, now: Instant, peer: &str, kind: TrackKind, id: String, media: M) {
        let Some(m) = self.members.get_mut(peer) else {
            return;
        };
        if let Some(p) = m.published.get_mut(&id) {
            // A restarted track under the same ID: its subscribers keep it and need a
            // picture to start from.
            if kind != TrackKind::Audio && p.keyframe.ask(now, None) {
                p.held_layer = None;
                self.out.push_back(Output::RequestKeyframe {
                    publisher: peer.to_string(),
                    track_id: id,
                    layer: None,
                });
            }
            return;
        }
        // Each share is a track of its own: one still listed (its end never announced) goes,
        // so nobody keeps a dead share.
        if kind == TrackKind::Screen {
            m.published.retain(|_, p| p.kind != TrackKind::Screen);
        }
        m.published.insert(
            id,
            Published {
                kind,
                media,
                loss: LossRelay::default(),
                keyframe: KeyframeGate::default(),
                held_layer: None,
                layers: Vec::new(),
                needed: None,
            },
        );
        let room = m.room.clone();
        self.reconcile_room(&room);
    }

    fn unpublished(&mut self, peer: &str, track_id: &str) {
        let Some(m) = self.members.get_mut(peer) else {
            return;
        };
        if m.published.remove(track_id).is_some() {
            let room = m.room.clone();
            self.reconcile_room(&room);
        }
    }

    fn resubscribe(&mut self, now: Instant, peer: &str) {
        let Some(m) = self.members.get_mut(peer) else {
            return;
        };
        if m.last_reset
            .is_some_and(|t| now.duration_since(t) < RESUBSCRIBE_MIN)
        {
            tracing::debug!(peer = %peer, "resubscribe too soon after the last; ignored");
            return;
        }
        tracing::info!(peer = %peer, "receiving connection restarted at the client's request");
        self.reset_subscriber(now, peer);
        self.reconcile(peer);
    }

    /// `peer`'s receiving connection goes; a new one (with a new number) comes with the next
    /// subscription. An offer in the making or waiting belonged to the old one.
    fn reset_subscriber(&mut self, now: Instant, peer: &str) {
        let Some(m) = self.members.get_mut(peer) else {
            return;
        };
        m.subscriptions.clear();
        // New senders start from their first layer: every choice is made again.
        m.choices.clear();
        m.selected.clear();
        m.negotiation.reset();
        m.last_reset = Some(now);
        self.out.push_back(Output::ResetSubscriber {
            subscriber: peer.to_string(),
        });
    }

    fn offer_ready(&mut self, now: Instant, peer: &str, offer: u64, sdp: String) {
        if let Some(msg) = self
            .members
            .get_mut(peer)
            .and_then(|m| m.negotiation.offer_ready(now, offer, sdp))
        {
            self.out.push_back(Output::Signal {
                peer: peer.to_string(),
                msg,
            });
        }
    }

    fn answered(
        &mut self,
        peer: &str,
        answers: Option<u64>,
        sdp: String,
    ) -> Result<(), ProtocolError> {
        let m = self.members.get_mut(peer).ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::InvalidMessage,
                "No subscribe offer is waiting for an answer.",
            )
        })?;
        let offer = m.negotiation.answered(answers)?;
        self.out.push_back(Output::ApplyAnswer {
            subscriber: peer.to_string(),
            offer,
            sdp,
        });
        Ok(())
    }

    fn answer_applied(&mut self, peer: &str, offer: u64, error: Option<String>) {
        let Some(again) = self
            .members
            .get_mut(peer)
            .and_then(|m| m.negotiation.answer_applied(offer, error.is_none()))
        else {
            return;
        };
        if let Some(e) = &error {
            let err = ProtocolError::new(
                ErrorCode::InvalidMessage,
                format!("The media answer could not be applied: {e}."),
            );
            self.out.push_back(Output::Signal {
                peer: peer.to_string(),
                msg: ServerMessage::error(&err, false),
            });
        }
        if again {
            self.renegotiate(peer);
        }
    }

    fn receiver_report(
        &mut self,
        now: Instant,
        subscriber: String,
        publisher: &str,
        track_id: String,
        fraction_lost: u8,
    ) {
        let Some(p) = self
            .members
            .get_mut(publisher)
            .and_then(|m| m.published.get_mut(&track_id))
        else {
            return;
        };
        // Audio FEC follows the loss; video has NACK and keyframes.
        if p.kind != TrackKind::Audio {
            return;
        }
        if let Some(worst) = p.loss.report(now, subscriber, fraction_lost) {
            self.out.push_back(Output::RelayLoss {
                publisher: publisher.to_string(),
                track_id,
                fraction_lost: worst,
            });
        }
    }
}
