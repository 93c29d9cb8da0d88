//! The narrow handle the call's parts hold instead of the call itself. Media, the device
//! watcher, `LocalParticipant` and `DataHandler` send signaling, data and look up peers through
//! a [`Link`]; they emit events through their own clone of the call's `EventHub`. The call
//! (`call::Inner`) implements [`Signals`]; nothing here knows it, so the call's state has one
//! owner and its parts do not import it. The link is weak: a part that outlives the call (a
//! `LocalParticipant` the app kept) finds it gone instead of keeping it alive.

use crate::error::BAError;
use crate::media::shared::MediaShared;
use crate::peer::Peer;
use between_protocol::ClientMessage;
use serde_json::Value;
use std::sync::{Arc, Weak};

/// What the call's parts may ask of the call.
pub(crate) trait Signals: Send + Sync {
    /// Sends a signaling message, as the call's phase allows (kept for a reconnect, dropped
    /// when not in the call).
    fn send_signal(&self, msg: ClientMessage);
    /// Sends a data message (see `DataHandler::send`).
    fn send_data(&self, data: Value, to: Option<&str>) -> Result<(), BAError>;
    /// This participant's peer ID, once joined.
    fn peer_id(&self) -> Option<String>;
    /// The participant with this ID, if in the call.
    fn peer(&self, id: &str) -> Option<Peer>;
    /// The call's media, while it has some.
    fn media(&self) -> Option<Arc<MediaShared>>;
}

#[derive(Clone)]
pub(crate) struct Link(Weak<dyn Signals>);

impl Link {
    pub fn new(call: Weak<dyn Signals>) -> Self {
        Self(call)
    }

    pub fn send_signal(&self, msg: ClientMessage) {
        if let Some(call) = self.0.upgrade() {
            call.send_signal(msg);
        }
    }

    pub fn send_data(&self, data: Value, to: Option<&str>) -> Result<(), BAError> {
        self.0
            .upgrade()
            .ok_or_else(BAError::not_in_call)?
            .send_data(data, to)
    }

    pub fn peer_id(&self) -> Option<String> {
        self.0.upgrade()?.peer_id()
    }

    pub fn peer(&self, id: &str) -> Option<Peer> {
        self.0.upgrade()?.peer(id)
    }

    pub fn media(&self) -> Option<Arc<MediaShared>> {
        self.0.upgrade()?.media()
    }

    /// Whether the call is still there.
    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}
