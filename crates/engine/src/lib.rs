//! The Between Conference engine: the Rust form of the Between Conference API (`Conference`,
//! `Peer`, `DataHandler`, `BAError`, the event stream). It connects to `between-server`, joins a
//! call, keeps the roster of peers, relays data messages, and reconnects (resuming its identity)
//! when the socket drops.
//!
//! Media ([`media`]: WebRTC to the SFU, local tracks from pluggable sources, remote audio
//! played out through a jitter buffer and mixer, remote video decoded to frames) runs beside
//! the signaling session; devices plug in as sources and sinks.
//!
//! Depends on `between-protocol` (and later `between-media`); never on the server, on Tauri or
//! on the webview. The pure parts, [`reconnect`] and [`roster`], do no I/O and take no clock.

mod call;
mod conference;
mod config;
mod data_handler;
pub mod devices;
mod error;
mod events;
mod link;
pub mod media;
mod peer;
pub mod reconnect;
pub mod roster;
pub mod screen;
mod signaling;

pub use between_protocol::{ErrorCode, PROTOCOL_VERSION, validate_call_id};
pub use conference::Conference;
pub use config::EngineConfig;
pub use data_handler::DataHandler;
pub use error::BAError;
pub use events::{ConferenceEvent, EventStream, PeerEvent};
pub use media::sources::{AudioSink, AudioSource, PeerAudioTap, VideoSource};
pub use media::{DrawnTile, LocalParticipant, MediaOptions, RemoteVideo, VideoFrame};
pub use peer::Peer;
pub use reconnect::ReconnectPolicy;
