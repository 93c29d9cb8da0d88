//! Screen capture for sharing: what can be shared ([`targets`]) and a [`VideoSource`] that
//! captures it ([`open`]). One backend per platform behind these two functions:
//!
//! - X11 (Linux and BSD desktops with an X server, and XWayland): `x11` (x11rb, GetImage of
//!   the root window, a monitor's region or one window).
//! - Wayland without X11, macOS, Windows: not built yet; [`open`] answers
//!   `screenshare_unsupported` with a sentence saying so, never a crash.

#[cfg(all(unix, not(target_os = "macos")))]
mod x11;

use crate::error::BAError;
use crate::media::sources::VideoSource;
use between_protocol::ErrorCode;
use serde::Serialize;

/// Captures per second; the share drops to [`MIN_SHARE_FPS`] while nothing changes.
pub const SHARE_FPS: f64 = 15.0;
/// The share's floor rate for an unchanged screen.
pub const MIN_SHARE_FPS: f64 = 5.0;

/// Something that can be shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScreenTarget {
    /// Pass to [`open`] (and `Conference::start_screenshare`).
    pub id: String,
    pub kind: TargetKind,
    /// What a person sees in the picker ("Entire screen", a monitor's name, a window title).
    pub name: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetKind {
    Screen,
    Monitor,
    Window,
}

/// What this machine can share, the whole screen first.
pub fn targets() -> Result<Vec<ScreenTarget>, BAError> {
    backend_targets()
}

/// Opens a capture of `target` (an ID from [`targets`]; `None`: the whole screen).
pub fn open(target: Option<&str>) -> Result<Box<dyn VideoSource>, BAError> {
    backend_open(target)
}

#[cfg(all(unix, not(target_os = "macos")))]
fn backend_targets() -> Result<Vec<ScreenTarget>, BAError> {
    x11::targets()
}

#[cfg(all(unix, not(target_os = "macos")))]
fn backend_open(target: Option<&str>) -> Result<Box<dyn VideoSource>, BAError> {
    Ok(Box::new(x11::X11Capture::open(None, target)?))
}

/// Opens a capture on a given X11 display (`:N`), whatever DISPLAY says: for tools that
/// run their own display (`between bench screen`).
#[cfg(all(unix, not(target_os = "macos")))]
pub fn open_x11(display: &str, target: Option<&str>) -> Result<Box<dyn VideoSource>, BAError> {
    Ok(Box::new(x11::X11Capture::open(Some(display), target)?))
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn backend_targets() -> Result<Vec<ScreenTarget>, BAError> {
    Err(unsupported_platform())
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn backend_open(_target: Option<&str>) -> Result<Box<dyn VideoSource>, BAError> {
    Err(unsupported_platform())
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn unsupported_platform() -> BAError {
    BAError::new(
        ErrorCode::ScreenshareUnsupported,
        "Screen sharing is not available in this build for this operating system yet.",
    )
}

pub(crate) fn unsupported(message: impl Into<String>) -> BAError {
    BAError::new(ErrorCode::ScreenshareUnsupported, message)
}

pub(crate) fn no_such_target(id: &str) -> BAError {
    BAError::new(
        ErrorCode::InvalidArgument,
        format!(
            "There is no screen or window {id:?} to share (it may have closed). Pick one from the list again."
        ),
    )
}
