//! Cameras where capture is not built yet (macOS, Windows): none listed, and opening one
//! is a readable error instead of a crash.

use super::Reader;
use crate::devices::MediaDeviceInfo;
use crate::error::BAError;
use between_protocol::ErrorCode;
use std::time::Duration;

pub struct Camera {
    pub(super) id: String,
    pub(super) reader: Reader,
}

pub fn list() -> Vec<MediaDeviceInfo> {
    Vec::new()
}

impl Camera {
    pub(super) fn open(_id: &str, _first_picture: Duration) -> Result<Self, BAError> {
        Err(BAError::new(
            ErrorCode::DeviceUnavailable,
            "Cameras are not supported on this system yet. You can still talk, chat and share your screen.",
        ))
    }
}
