//! The SFU: forwards every participant's published RTP to everyone else in its room, without
//! decoding. Each participant has up to two WebRTC connections here: a *publishing* one (it
//! offers, we answer) whose tracks we read, and a *receiving* one (we offer, it answers) with
//! a sender per track it receives, renegotiated as tracks come and go.
//!
//! It is built in three parts, str0m's shape:
//! - [`core`]: every decision, sans IO (membership as the room registry reports it, the one
//!   routing rule in [`route`], negotiation per receiving connection as a state enum,
//!   feedback to publishers), inputs in and outputs polled, time passed in;
//! - [`driver`]: one task per participant that owns its connections and carries out the
//!   core's outputs for it, one at a time; its connections' callbacks become inputs;
//! - [`forward`]: per packet, what a publisher's packet becomes on a subscriber's leg (its
//!   own SSRC, sequence, timestamps, payload type and header-extension IDs, and whether its
//!   simulcast layer is the one chosen: [`switch`]), pure, applied by the forwarding tasks
//!   of [`receiving`]; [`layers`] tells a publisher's layers apart (RID, size from the SPS,
//!   measured bitrate) for the core's [`allocate`].
//!
//! One task owns the core ([`run`]): every input reaches it as an event on its channel
//! ([`inputs`]), in order, and it hands each output to its driver in the core's order. No
//! lock is shared between them. [`Sfu`] is the handle the signaling side holds.
//!
//! Without `--udp-port`, connections use one ephemeral UDP port each; with it, all media goes
//! through one port (UDP and ICE-TCP), demultiplexed by ICE ufrag ([`edge`]). DTLS and SRTP
//! are always on.

pub mod allocate;
pub mod core;
mod driver;
pub mod edge;
mod env;
pub mod feedback;
pub mod forward;
mod inputs;
pub mod io;
pub mod layers;
mod media;
pub mod negotiation;
pub mod probe;
mod receiving;
pub mod rewrite;
pub mod route;
mod run;
pub mod switch;

#[cfg(test)]
mod core_dynacast_tests;
#[cfg(test)]
mod core_feedback_tests;
#[cfg(test)]
mod core_layers_tests;
#[cfg(test)]
mod core_sim;
#[cfg(test)]
mod core_tests;

use between_protocol::{ProtocolError, TrackKind};
use between_transport::MediaAddress;
use env::Env;
pub(crate) use env::RtpCounters;
use inputs::{Event, Inputs};
use io::Input;
pub(crate) use run::Signal;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub(crate) struct Sfu {
    env: Arc<Env>,
    inputs: Inputs,
}

impl Sfu {
    /// Starts the SFU's task (within a tokio runtime).
    pub fn new(
        media: MediaAddress,
        edge: Option<edge::Edge>,
        signal: mpsc::UnboundedSender<Signal>,
    ) -> Self {
        let env = Arc::new(Env::new(media, edge));
        let (tx, rx) = mpsc::unbounded_channel();
        let inputs = Inputs(tx);
        tokio::spawn(run::run(env.clone(), inputs.clone(), signal, rx));
        Self { env, inputs }
    }

    pub fn edge(&self) -> Option<&edge::Edge> {
        self.env.edge.as_ref()
    }

    pub fn counters(&self) -> &RtpCounters {
        &self.env.counters
    }

    /// Open media connections, for metrics.
    pub fn connection_count(&self) -> usize {
        self.env.open_connections()
    }

    /// The registry admitted a participant to `room`: it gets everything published there.
    pub fn joined(&self, peer: &str, room: &str) {
        self.inputs.send(Input::Joined {
            peer: peer.into(),
            room: room.into(),
        });
    }

    /// The participant resumed on a new socket.
    pub fn resumed(&self, peer: &str) {
        self.inputs.send(Input::Resumed { peer: peer.into() });
    }

    /// The registry removed a participant: its connections close and everyone stops
    /// receiving its tracks.
    pub fn left(&self, peer: &str) {
        self.inputs.send(Input::Left { peer: peer.into() });
    }

    /// Applies a participant's publishing offer; returns our answer.
    pub async fn publish(&self, peer: &str, sdp: String) -> Result<String, ProtocolError> {
        let (reply, answer) = oneshot::channel();
        self.inputs.event(Event::Publish {
            peer: peer.into(),
            sdp,
            reply,
        });
        answer.await.map_err(|_| run::not_in_call())?
    }

    /// A participant's answer to offer `offer` (or to whichever waits, if it does not say).
    pub async fn subscribe_answer(
        &self,
        peer: &str,
        offer: Option<u64>,
        sdp: String,
    ) -> Result<(), ProtocolError> {
        let (reply, checked) = oneshot::channel();
        let input = Input::Answered {
            peer: peer.into(),
            offer,
            sdp,
        };
        self.inputs.event(Event::Checked(input, reply));
        checked.await.map_err(|_| run::not_in_call())?
    }

    /// The participant's receiving connection never came up: a new one with everything.
    pub fn resubscribe(&self, peer: &str) {
        self.inputs.send(Input::Resubscribe { peer: peer.into() });
    }

    /// The participant draws `track_id` at `size` (`(0, 0)`: hidden).
    pub fn drawn(&self, peer: &str, track_id: String, size: (u32, u32)) {
        self.inputs.send(Input::Drawn {
            subscriber: peer.into(),
            track_id,
            size,
        });
    }

    /// The participant stopped sending `kind` (a share ended): its subscribers lose it now.
    pub fn stop_publishing(&self, peer: &str, kind: TrackKind) {
        self.inputs.event(Event::StopPublishing {
            peer: peer.into(),
            kind,
        });
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        // Drivers and forwarding tasks hold inputs too: the task ends when told.
        self.inputs.event(Event::Shutdown);
    }
}
