//! The event stream. Every event the API names, with the API's spelling available through
//! [`ConferenceEvent::name`] and [`ConferenceEvent::to_json`] for the app and the CLI.
//! Subscribers get every event from the moment they subscribe, none dropped: events are few
//! and small, and losing a `peerLeft` would leave a ghost tile.

use crate::devices::{DeviceKind, MediaDeviceInfo};
use crate::error::BAError;
use crate::media::local::LocalParticipant;
use crate::media::video::RemoteVideo;
use crate::peer::Peer;
pub use crate::peer::PeerEvent;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConferenceEvent {
    /// Another participant is in the call (also fired for each one already there at join).
    PeerJoined(Peer),
    /// A participant left, or vanished and did not come back in time.
    PeerLeft(String),
    /// A `dataHandler` message (the page API delivers it as `dataHandler.on("data")`).
    Data { from: String, data: Value },
    /// The socket dropped, or a reconnect attempt failed; the engine keeps trying.
    SocketFailed,
    /// The engine gave up reconnecting; the call is over.
    SocketDisconnected,
    /// The socket was closed on purpose (`end_call`).
    SocketClose,
    /// *Ours*: the socket is back after `SocketFailed`. `resumed` says whether the peer kept
    /// its ID; if not, `peer_id` is the new one and the roster events show the difference.
    SocketReconnected { peer_id: String, resumed: bool },
    /// `end_call` finished cleaning up.
    SessionTerminated,
    /// *Ours*: the server refused something asynchronous (e.g. data to a peer that just left).
    Error(BAError),
    /// Something about one peer (the page API delivers it as `peer.on(name)`).
    Peer { peer_id: String, event: PeerEvent },
    /// This user's media is published.
    LocalParticipant(LocalParticipant),
    /// *Ours*: the local microphone's level, 0..1, every 100 ms (the page API's
    /// `localParticipant.on("audioLevel")`).
    LocalAudioLevel(f32),
    /// This user's screen share is published.
    LocalShareCreated,
    /// This user's share ended without `stop_screenshare` (the shared window closed, the
    /// display went away, the system stopped it).
    LocalShareClosed,
    /// Another participant started sharing: `video` is the share's picture (the page API
    /// hands it to the page as that peer's `videoCreated` on the share's Peer object).
    ScreenShareCreated { peer: Peer, video: RemoteVideo },
    /// Another participant's share ended (stopped, or the participant left).
    ScreenShareClosed(String),
    /// The whole device list, at the start of the call and whenever it changes.
    DevicesUpdated(Vec<MediaDeviceInfo>),
    /// *Ours*: the microphone or speaker in use went away (or failed); `to` is the system
    /// default now in use.
    DeviceFallback {
        kind: DeviceKind,
        lost: String,
        to: String,
    },
}

impl ConferenceEvent {
    /// The event's name in the page API.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PeerJoined(_) => "peerJoined",
            Self::PeerLeft(_) => "peerLeft",
            Self::Data { .. } => "data",
            Self::SocketFailed => "socketFailed",
            Self::SocketDisconnected => "socketDisconnected",
            Self::SocketClose => "socketClose",
            Self::SocketReconnected { .. } => "socketReconnected",
            Self::SessionTerminated => "sessionTerminated",
            Self::Error(_) => "error",
            Self::Peer { event, .. } => event.name(),
            Self::LocalParticipant(_) => "localParticipant",
            Self::DevicesUpdated(_) => "devicesUpdated",
            Self::LocalShareCreated => "localShareCreated",
            Self::LocalShareClosed => "localShareClosed",
            Self::ScreenShareCreated { .. } => "screenShareCreated",
            Self::ScreenShareClosed(_) => "screenShareClosed",
            Self::LocalAudioLevel(_) => "localAudioLevel",
            Self::DeviceFallback { .. } => "deviceFallback",
        }
    }

    /// One JSON object: `{"event": name, ...payload}`.
    pub fn to_json(&self) -> Value {
        let name = self.name();
        match self {
            Self::PeerJoined(p) => {
                json!({"event": name, "peerId": p.id(), "extraData": p.extra_data()})
            }
            Self::PeerLeft(id) | Self::ScreenShareClosed(id) => {
                json!({"event": name, "peerId": id})
            }
            Self::ScreenShareCreated { peer, .. } => {
                json!({"event": name, "peerId": peer.id(), "extraData": peer.extra_data()})
            }
            Self::Data { from, data } => json!({"event": name, "from": from, "data": data}),
            Self::SocketReconnected { peer_id, resumed } => {
                json!({"event": name, "peerId": peer_id, "resumed": resumed})
            }
            Self::Error(e) => json!({"event": name, "code": e.code, "message": e.message}),
            Self::Peer {
                peer_id,
                event: PeerEvent::AudioLevel(level),
            } => json!({"event": name, "peerId": peer_id, "level": level}),
            Self::Peer {
                peer_id,
                event: PeerEvent::Speaking(speaking),
            } => json!({"event": name, "peerId": peer_id, "speaking": speaking}),
            Self::Peer {
                peer_id,
                event: PeerEvent::PoorConnection(poor),
            } => json!({"event": name, "peerId": peer_id, "poor": poor}),
            Self::Peer { peer_id, .. } => json!({"event": name, "peerId": peer_id}),
            Self::LocalAudioLevel(level) => json!({"event": name, "level": level}),
            Self::LocalParticipant(local) => json!({"event": name, "peerId": local.id()}),
            Self::DevicesUpdated(devices) => json!({"event": name, "devices": devices}),
            Self::DeviceFallback { kind, lost, to } => {
                json!({"event": name, "kind": kind, "lostDeviceId": lost, "deviceId": to})
            }
            Self::SocketFailed
            | Self::SocketDisconnected
            | Self::SocketClose
            | Self::SessionTerminated
            | Self::LocalShareCreated
            | Self::LocalShareClosed => json!({"event": name}),
        }
    }
}

/// A subscription to a conference's events.
pub struct EventStream(mpsc::UnboundedReceiver<ConferenceEvent>);

impl EventStream {
    /// The next event; `None` once the conference is dropped.
    pub async fn recv(&mut self) -> Option<ConferenceEvent> {
        self.0.recv().await
    }

    /// An event already waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<ConferenceEvent> {
        self.0.try_recv().ok()
    }
}

/// The call's event fan-out; clones share the subscribers, so every part of the call emits
/// through its own clone.
#[derive(Default, Clone)]
pub(crate) struct EventHub {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<ConferenceEvent>>>>,
}

impl EventHub {
    pub fn subscribe(&self) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(tx);
        }
        EventStream(rx)
    }

    pub fn emit(&self, event: ConferenceEvent) {
        tracing::debug!(event = event.name(), "event");
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.retain(|tx| tx.send(event.clone()).is_ok());
        }
    }
}
