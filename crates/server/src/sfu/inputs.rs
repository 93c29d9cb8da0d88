//! How everything reaches the SFU's core: events on the channel of the one task that owns it
//! (`run.rs`). Drivers and forwarding tasks hold [`Inputs`]; nothing holds the core.

use super::io::Input;
use super::media::Media;
use between_protocol::{ProtocolError, TrackKind};
use tokio::sync::{mpsc, oneshot};

pub(crate) enum Event {
    Input(Input<Media>),
    /// An input from a participant's signaling whose refusal goes back to it (an answer
    /// nobody asked for).
    Checked(Input<Media>, oneshot::Sender<Result<(), ProtocolError>>),
    /// A participant's publishing offer, for its driver; the answer goes back on `reply`.
    Publish {
        peer: String,
        sdp: String,
        reply: oneshot::Sender<Result<String, ProtocolError>>,
    },
    /// The participant stopped sending this kind (a share ended).
    StopPublishing {
        peer: String,
        kind: TrackKind,
    },
    /// The SFU is gone: every driver closes its connections.
    Shutdown,
}

#[derive(Clone)]
pub(crate) struct Inputs(pub(crate) mpsc::UnboundedSender<Event>);

impl Inputs {
    pub fn send(&self, input: Input<Media>) {
        let _ = self.0.send(Event::Input(input));
    }

    pub fn event(&self, event: Event) {
        let _ = self.0.send(event);
    }
}
