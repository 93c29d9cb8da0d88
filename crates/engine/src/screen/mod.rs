//! Screen capture for sharing: what can be shared ([`targets`]) and a [`VideoSource`] that
//! captures it ([`open`]). One backend per platform behind these two functions:
//!
//! - Wayland sessions (Linux): `portal` (xdg-desktop-portal ScreenCast over D-Bus,
//!   `portal_dbus`, and the PipeWire stream it hands out; the desktop's own chooser picks the
//!   screen or window).
//! - X11 (Linux and BSD desktops with an X server): `x11` (x11rb, GetImage of the root window,
//!   a monitor's region or one window, DAMAGE for changes).
//! - macOS, Windows: not built yet; [`open`] answers `screenshare_unsupported` with a sentence
//!   saying so, never a crash.
//!
//! Which one: a Wayland session (`WAYLAND_DISPLAY` or `XDG_SESSION_TYPE=wayland`) uses the
//! portal, because X11 capture through XWayland sees only X11 windows there; otherwise X11.
//! `BETWEEN_SCREEN_CAPTURE=x11|portal` overrides the choice.

#[cfg(target_os = "linux")]
mod portal;
#[cfg(target_os = "linux")]
mod portal_dbus;
#[cfg(all(unix, not(target_os = "macos")))]
mod x11;
#[cfg(target_os = "linux")]
mod x11_shm;

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

/// The portal's one target: what to share is chosen in the desktop's own dialog.
pub const PORTAL_TARGET: &str = "portal";

/// Whether this session captures through the desktop portal rather than X11.
fn uses_portal() -> bool {
    match std::env::var("BETWEEN_SCREEN_CAPTURE").as_deref() {
        Ok("portal") => return true,
        Ok("x11") => return false,
        _ => {}
    }
    let wayland_display = std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
    let wayland_session = std::env::var("XDG_SESSION_TYPE").is_ok_and(|t| t == "wayland");
    cfg!(target_os = "linux") && (wayland_display || wayland_session)
}

#[cfg(all(unix, not(target_os = "macos")))]
fn backend_targets() -> Result<Vec<ScreenTarget>, BAError> {
    if uses_portal() {
        return Ok(vec![ScreenTarget {
            id: PORTAL_TARGET.into(),
            kind: TargetKind::Screen,
            name: "Choose in the system's dialog".into(),
            width: 0,
            height: 0,
        }]);
    }
    x11::targets()
}

#[cfg(all(unix, not(target_os = "macos")))]
fn backend_open(target: Option<&str>) -> Result<Box<dyn VideoSource>, BAError> {
    #[cfg(target_os = "linux")]
    if uses_portal() {
        return Ok(Box::new(portal::PortalCapture::open()?));
    }
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
