//! The core's layer choice: for each subscriber, the allocator's decision over the videos it
//! receives (their layers as their publishers' readers measured them, the sizes it draws
//! them at), turned into [`Output::SelectLayer`] when a choice changes. A video whose layers
//! are not known yet keeps what its forwarder starts with (its first layer), so nothing
//! waits for the first measurement.

use super::Core;
use crate::sfu::allocate::{self, Choice, Layer, Paused, Priority, Video};
use crate::sfu::io::Output;
use crate::sfu::layers::LayerInfo;
use between_protocol::{ServerMessage, TrackKind};
use std::time::Instant;

/// Until a subscriber's downlink is estimated, its budget is unbounded: layers follow the
/// drawn sizes alone.
const UNBOUNDED: f64 = f64::INFINITY;
/// What of the estimate media may fill: the rest absorbs keyframes and the estimate's own
/// error, so a queue does not build at the bottleneck.
pub(super) const USABLE: f64 = 0.85;
/// How long the start of a call is held to the estimate before any congestion.
pub(super) const STARTUP: std::time::Duration = std::time::Duration::from_secs(4);
/// One audio track as the estimate counts it: Opus at 32 kbit/s and 50 packets a second of
/// RTP headers (measured: 87 kbit/s acknowledged for two; layer bitrates are measured as
/// payload, whose headers are a few percent).
const AUDIO_BPS: f64 = 46_000.0;
const VIDEO_OVERHEAD: f64 = 1.05;

impl<M: Clone> Core<M> {
    /// `peer` now sends `layers` of `track_id`: its subscribers' choices are made again.
    pub(super) fn layers_changed(&mut self, peer: &str, track_id: &str, layers: Vec<LayerInfo>) {
        let Some(p) = self
            .members
            .get_mut(peer)
            .and_then(|m| m.published.get_mut(track_id))
        else {
            return;
        };
        if p.kind == TrackKind::Audio || p.layers == layers {
            return;
        }
        p.layers = layers;
        let room = self.members.get(peer).map(|m| m.room.clone());
        let subscribers: Vec<String> = room
            .and_then(|r| self.rooms.get(&r))
            .into_iter()
            .flatten()
            .filter(|id| {
                self.members
                    .get(*id)
                    .is_some_and(|m| m.subscriptions.contains_key(track_id))
            })
            .cloned()
            .collect();
        for id in subscribers {
            self.allocate(&id);
        }
    }

    /// `subscriber` draws `track_id` at `size` (ignored for a track it does not receive).
    pub(super) fn drawn(&mut self, subscriber: &str, track_id: &str, size: (u32, u32)) {
        let Some(m) = self.members.get_mut(subscriber) else {
            return;
        };
        if !m.subscriptions.contains_key(track_id) {
            return;
        }
        if m.drawn.get(track_id) == Some(&size) {
            return;
        }
        m.drawn.insert(track_id.to_string(), size);
        let room = m.room.clone();
        self.allocate(subscriber);
        self.needs(&room);
    }

    /// `subscriber`'s downlink estimate moved: its layers are chosen again within it.
    pub(super) fn estimated(&mut self, now: Instant, subscriber: &str, bps: f64, congested: bool) {
        let Some(m) = self.members.get_mut(subscriber) else {
            return;
        };
        if !bps.is_finite() || bps <= 0.0 {
            return;
        }
        m.budget = Some(bps);
        m.congested |= congested;
        m.estimated_since.get_or_insert(now);
        m.probe.estimate(now, bps);
        tracing::debug!(subscriber = %subscriber, kbps = (bps / 1000.0) as u64, "downlink estimate");
        self.allocate(subscriber);
    }

    /// Chooses a layer of every video `subscriber` receives and says what changed.
    pub(super) fn allocate(&mut self, subscriber: &str) {
        let Some(me) = self.members.get(subscriber) else {
            return;
        };
        // Each video with known layers: its layers lowest first, with their ids.
        let mut ids: Vec<(String, Vec<u8>)> = Vec::new();
        let mut videos: Vec<Video> = Vec::new();
        let mut previous: Vec<Choice> = Vec::new();
        for (track_id, info) in &me.subscriptions {
            if info.kind == TrackKind::Audio {
                continue;
            }
            let Some(p) = self
                .members
                .get(&info.peer_id)
                .and_then(|m| m.published.get(track_id))
            else {
                continue;
            };
            if p.layers.is_empty() {
                continue;
            }
            let mut layers = p.layers.clone();
            layers.sort_by_key(|l| (u64::from(l.width) * u64::from(l.height), l.bitrate));
            videos.push(Video {
                priority: match info.kind {
                    TrackKind::Screen => Priority::Screen,
                    _ => Priority::Other,
                },
                layers: layers
                    .iter()
                    .map(|l| Layer {
                        width: l.width,
                        height: l.height,
                        bitrate: (f64::from(l.bitrate) * VIDEO_OVERHEAD) as u32,
                    })
                    .collect(),
                drawn: me.drawn.get(track_id).copied(),
            });
            previous.push(
                me.choices
                    .get(track_id)
                    .copied()
                    .unwrap_or(Choice::Layer(0)),
            );
            ids.push((track_id.clone(), layers.iter().map(|l| l.id).collect()));
        }
        let audio = me
            .subscriptions
            .values()
            .filter(|t| t.kind == TrackKind::Audio)
            .count() as f64
            * AUDIO_BPS;
        // Held to the estimate once the path showed congestion, and at the start of a call
        // (so a thin link is not flooded with every top layer first); otherwise unbounded,
        // as the estimate only follows what is sent. Before congestion a video without
        // layers is never held back: it has nothing smaller to give.
        let startup = me
            .startup_end()
            .zip(self.now)
            .is_some_and(|(end, now)| now < end);
        let budget = match me.budget {
            Some(b) if me.congested => me.probe.budget(b * USABLE),
            Some(b) if startup => {
                let single: f64 = videos
                    .iter()
                    .filter(|v| v.layers.len() == 1)
                    .map(|v| f64::from(v.layers[0].bitrate))
                    .sum();
                me.probe.budget(b * USABLE) + single
            }
            _ => UNBOUNDED,
        };
        let choices = allocate::allocate(budget, audio, &videos, &previous);
        // Held back: with room to spare it would get more (the probe looks for that room).
        let held_back = budget.is_finite()
            && allocate::allocate(UNBOUNDED, audio, &videos, &previous) != choices;
        let now = self.now;
        let Some(me) = self.members.get_mut(subscriber) else {
            return;
        };
        me.held_back = held_back;
        if let Some(now) = now {
            me.probe.arm(now, held_back);
        }
        for ((track_id, layer_ids), choice) in ids.into_iter().zip(choices) {
            let layer = match choice {
                Choice::Layer(i) => layer_ids.get(i).copied(),
                Choice::Paused(_) => None,
            };
            let before = me.choices.insert(track_id.clone(), choice);
            let starved = |c: Option<Choice>| c == Some(Choice::Paused(Paused::Bandwidth));
            if starved(before) != starved(Some(choice)) {
                self.out.push_back(Output::Signal {
                    peer: subscriber.to_string(),
                    msg: ServerMessage::BandwidthPause {
                        track_id: track_id.clone(),
                        paused: starved(Some(choice)),
                    },
                });
            }
            if me.selected.get(&track_id) == Some(&layer) {
                continue;
            }
            // Down for the budget: the higher layer stops now, not at the lower one's
            // keyframe (a keyframe of it, sent meanwhile, would flood the link).
            let urgent = budget.is_finite()
                && matches!((before, choice), (Some(Choice::Layer(a)), Choice::Layer(b)) if b < a);
            me.selected.insert(track_id.clone(), layer);
            tracing::debug!(subscriber = %subscriber, track = %track_id, ?choice, "layer chosen");
            self.out.push_back(Output::SelectLayer {
                subscriber: subscriber.to_string(),
                track_id,
                layer,
                urgent,
            });
        }
    }
}
