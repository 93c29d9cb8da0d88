//! Stable error codes. They cross every boundary unchanged (server → engine → app → page), so
//! renaming one is a breaking change: add new codes instead.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable, machine-readable error code, spelled in `snake_case` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    InvalidApiKey,
    InvalidCallId,
    NotInCall,
    AlreadyInCall,
    ServerUnreachable,
    DeviceNotFound,
    /// The device exists but cannot be opened now (busy, unplugged mid-way, a sound server
    /// that stopped answering).
    DeviceUnavailable,
    PermissionDenied,
    ScreenshareDenied,
    ScreenshareUnsupported,
    ScreenshareActive,
    InvalidArgument,
    MessageTooLarge,
    Internal,
    /// The text was not valid JSON, or a known message had missing or mistyped fields.
    InvalidMessage,
    /// The message's `type` is not one this protocol version knows.
    UnknownMessageType,
    /// Something other than `join` arrived before the participant joined.
    JoinRequired,
    /// The client speaks a protocol version the server does not.
    UnsupportedVersion,
    /// A message named a peer that is not in the call.
    PeerNotFound,
    /// The server is shutting down; reconnecting later will work.
    ServerShuttingDown,
    /// The client did not read its messages fast enough and was disconnected.
    SlowConsumer,
    /// The server answered with a code this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire spelling, e.g. `invalid_api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidApiKey => "invalid_api_key",
            Self::InvalidCallId => "invalid_call_id",
            Self::NotInCall => "not_in_call",
            Self::AlreadyInCall => "already_in_call",
            Self::ServerUnreachable => "server_unreachable",
            Self::DeviceNotFound => "device_not_found",
            Self::DeviceUnavailable => "device_unavailable",
            Self::PermissionDenied => "permission_denied",
            Self::ScreenshareDenied => "screenshare_denied",
            Self::ScreenshareUnsupported => "screenshare_unsupported",
            Self::ScreenshareActive => "screenshare_active",
            Self::InvalidArgument => "invalid_argument",
            Self::MessageTooLarge => "message_too_large",
            Self::Internal => "internal",
            Self::InvalidMessage => "invalid_message",
            Self::UnknownMessageType => "unknown_message_type",
            Self::JoinRequired => "join_required",
            Self::UnsupportedVersion => "unsupported_version",
            Self::PeerNotFound => "peer_not_found",
            Self::ServerShuttingDown => "server_shutting_down",
            Self::SlowConsumer => "slow_consumer",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected message: a code and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spelling_matches_as_str() {
        for code in [
            ErrorCode::InvalidApiKey,
            ErrorCode::MessageTooLarge,
            ErrorCode::JoinRequired,
            ErrorCode::ScreenshareActive,
            ErrorCode::SlowConsumer,
        ] {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, code);
        }
    }

    #[test]
    fn unknown_codes_from_a_newer_server_decode_as_unknown() {
        let code: ErrorCode = serde_json::from_str("\"quota_exceeded\"").expect("deserialize");
        assert_eq!(code, ErrorCode::Unknown);
    }
}
