//! The SFU core with a fake clock, for its tests: inputs in, outputs collected, time moved on
//! as a driver would.
#![allow(clippy::unwrap_used)]

use super::core::*;
use super::io::{Input, Output};
use between_protocol::{ServerMessage, TrackInfo, TrackKind};
use std::time::{Duration, Instant};

pub(super) type Out = Output<u32>;

pub(super) struct Sim {
    pub core: Core<u32>,
    pub now: Instant,
}

impl Sim {
    pub fn new() -> Self {
        Self {
            core: Core::new(),
            now: Instant::now(),
        }
    }

    /// A core where each of `peers` has joined room "t/r", their join outputs drained.
    pub fn room(peers: &[&str]) -> Self {
        let mut sim = Self::new();
        for p in peers {
            sim.join(p, "t/r");
        }
        sim
    }

    pub fn input(&mut self, input: Input<u32>) -> Vec<Out> {
        self.core.handle_input(self.now, input).unwrap();
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<Out> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    /// Moves the clock on, running the core's timeouts as a driver would.
    pub fn advance(&mut self, by: Duration) -> Vec<Out> {
        self.now += by;
        if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now);
        }
        self.drain()
    }

    pub fn join(&mut self, peer: &str, room: &str) -> Vec<Out> {
        self.input(Input::Joined {
            peer: peer.into(),
            room: room.into(),
        })
    }

    pub fn publish(&mut self, peer: &str, kind: TrackKind, track_id: &str, media: u32) -> Vec<Out> {
        self.input(Input::Published {
            peer: peer.into(),
            kind,
            track_id: track_id.into(),
            media,
        })
    }

    /// The driver made `offer` for `peer`: what the core sends.
    pub fn offer_ready(&mut self, peer: &str, offer: u64, sdp: &str) -> Vec<Out> {
        self.input(Input::OfferReady {
            peer: peer.into(),
            offer,
            sdp: sdp.into(),
        })
    }

    /// Completes the exchange of `offer` for `peer`: made, sent, answered, applied.
    pub fn settle(&mut self, peer: &str, offer: u64) -> Vec<Out> {
        let mut out = self.input(Input::OfferReady {
            peer: peer.into(),
            offer,
            sdp: format!("offer {offer}"),
        });
        out.extend(self.input(Input::Answered {
            peer: peer.into(),
            offer: Some(offer),
            sdp: format!("answer {offer}"),
        }));
        out.extend(self.input(Input::AnswerApplied {
            peer: peer.into(),
            offer,
            error: None,
        }));
        out
    }
}

pub(super) fn track(peer: &str, kind: TrackKind, id: &str) -> TrackInfo {
    TrackInfo {
        peer_id: peer.into(),
        kind,
        track_id: id.into(),
    }
}

pub(super) fn subscribe(subscriber: &str, info: TrackInfo, media: u32) -> Out {
    Output::Subscribe {
        subscriber: subscriber.into(),
        track: info,
        media,
    }
}

pub(super) fn make_offer(subscriber: &str, offer: u64) -> Out {
    Output::MakeOffer {
        subscriber: subscriber.into(),
        offer,
    }
}

/// Offer `offer` of connection 1 (the first receiving connection).
pub(super) fn offer_signal(peer: &str, sdp: &str, tracks: Vec<TrackInfo>, offer: u64) -> Out {
    Output::Signal {
        peer: peer.into(),
        msg: ServerMessage::SubscribeOffer {
            sdp: sdp.into(),
            tracks,
            offer,
            connection: 1,
        },
    }
}
