//! The Between Conference engine: the Rust form of the Between Conference API (`Conference`,
//! `Peer`, `DataHandler`, `BAError`, the event stream). It connects to `between-server`, joins a
//! call, keeps the roster of peers, relays data messages, and reconnects (resuming its identity)
//! when the socket drops.
//!
//! Media (WebRTC transport, tracks, `LocalParticipant`) and devices plug in beside the signaling
//! session without changing this surface: they add events to [`ConferenceEvent`] and methods to
//! [`Conference`].
//!
//! Depends on `between-protocol` (and later `between-media`); never on the server, on Tauri or
//! on the webview. The pure parts, [`reconnect`] and [`roster`], do no I/O and take no clock.

mod conference;
mod config;
mod data_handler;
mod error;
mod events;
mod peer;
pub mod reconnect;
pub mod roster;
mod signaling;

pub use between_protocol::{ErrorCode, PROTOCOL_VERSION, validate_call_id};
pub use conference::Conference;
pub use config::EngineConfig;
pub use data_handler::DataHandler;
pub use error::BAError;
pub use events::{ConferenceEvent, EventStream, PeerEvent};
pub use peer::Peer;
pub use reconnect::ReconnectPolicy;
