//! `BAError`, the error of every API call: a stable code and a sentence a person can act on.

use between_protocol::{ErrorCode, ProtocolError};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct BAError {
    pub code: ErrorCode,
    pub message: String,
}

impl BAError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn not_in_call() -> Self {
        Self::new(
            ErrorCode::NotInCall,
            "You are not in a call. Join the call first.",
        )
    }
}

impl From<ProtocolError> for BAError {
    fn from(e: ProtocolError) -> Self {
        Self::new(e.code, e.message)
    }
}
