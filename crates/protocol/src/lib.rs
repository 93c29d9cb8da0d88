//! The Between signaling protocol: the messages a client and `between-server` exchange over the
//! WebSocket, the limits every message is checked against, and the stable error codes that both
//! sides (and the page, through the app) use.
//!
//! This crate holds data types and pure functions only: no I/O, no async, no dependency on the
//! engine, the server or any transport. Both ends decode with [`decode_client`] /
//! [`decode_server`], which validate as they parse, so a message that passed decoding is within
//! every limit.

mod call_id;
mod error;
mod limits;
mod message;

pub use call_id::{CALL_ID_ALPHABET, validate_call_id};
pub use error::{ErrorCode, ProtocolError};
pub use limits::{
    MAX_CALL_ID_CHARS, MAX_DATA_BYTES, MAX_EXTRA_DATA_BYTES, MAX_MESSAGE_BYTES, MAX_PEER_ID_CHARS,
};
pub use message::{
    ClientMessage, PROTOCOL_VERSION, PeerInfo, Resume, ServerMessage, TrackInfo, TrackKind,
    decode_client, decode_server, encode, extra_data_to_string,
};
