//! Cameras: listing them and capturing from one, as a [`VideoSource`].
//!
//! Linux: V4L2 with the `v4l` crate (`camera/v4l2.rs` says why not nokhwa). The mode is
//! chosen by `between_media::camera::choose_mode` and pictures are converted by
//! `between_media::camera::to_i420`. Capture runs on its own thread, which keeps only the
//! newest picture: a call never sends a stale one, and a slow encoder never makes the
//! camera queue up. Every wait has a deadline: a camera that stops sending is reported as
//! failed. macOS and Windows list no cameras yet and answer opening one with a readable
//! error (see the README's platform table; nokhwa's AVFoundation and Media Foundation
//! backends are the candidates there).

// The capture helpers below serve the Linux backend; elsewhere only `Stopped` is used.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use super::{DeviceKind, MediaDeviceInfo};
use crate::error::BAError;
use crate::media::sources::VideoSource;
use between_media::video::I420Frame;
use between_protocol::ErrorCode;

/// IDs of cameras start with this (so the device menus and `setVideoInput` can tell them
/// from other video sources, such as the app's test pattern).
pub const ID_PREFIX: &str = "v4l2:";

/// How long a camera may take to deliver its first picture before opening it fails (USB
/// cameras take up to a second or two to start streaming).
const FIRST_PICTURE: std::time::Duration = std::time::Duration::from_secs(5);

/// The camera sentences a person reads.
pub(crate) const NOT_FOUND: &str =
    "That camera was not found. Plug it in or pick another in the device menu.";
pub(crate) const NONE_FOUND: &str = "No camera was found. Plug one in, or join without video.";
pub(crate) const BUSY: &str =
    "The camera is in use by another app. Close it there, or pick another camera.";
pub(crate) const DENIED: &str = "Between may not use the camera. On Linux, add your user to the \"video\" group (then log in again).";

/// Sorts a camera failure into what the user can do about it, by the operating system's
/// error number (`... (os error N)` in an I/O error's text).
pub(crate) fn classify(detail: &str) -> BAError {
    let errno = detail
        .rsplit_once("(os error ")
        .and_then(|(_, rest)| rest.split(')').next())
        .and_then(|n| n.parse::<i32>().ok());
    let (code, sentence) = match errno {
        // EBUSY
        Some(16) => (ErrorCode::DeviceUnavailable, BUSY),
        // EACCES, EPERM
        Some(13 | 1) => (ErrorCode::PermissionDenied, DENIED),
        // ENOENT, ENXIO, ENODEV
        Some(2 | 6 | 19) => (ErrorCode::DeviceNotFound, NOT_FOUND),
        _ => {
            return BAError::new(
                ErrorCode::DeviceUnavailable,
                format!(
                    "The camera could not be started ({detail}). Try again, or pick another camera."
                ),
            );
        }
    };
    BAError::new(code, format!("{sentence} ({detail})"))
}

#[cfg(target_os = "linux")]
mod v4l2;
#[cfg(target_os = "linux")]
pub use v4l2::{Camera, list};

#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(not(target_os = "linux"))]
pub use unsupported::{Camera, list};

/// The camera a call uses when none was chosen: the system's first one.
pub fn default_id() -> Option<String> {
    let cameras = list();
    cameras
        .iter()
        .find(|c| c.is_default)
        .or(cameras.first())
        .map(|c| c.device_id.clone())
}

/// Opens the camera with this ID (the default with `None`) and waits for its first picture.
pub fn open(id: Option<&str>) -> Result<Camera, BAError> {
    let id = match id {
        Some(id) => id.to_string(),
        None => default_id().ok_or_else(|| BAError::new(ErrorCode::DeviceNotFound, NONE_FOUND))?,
    };
    Camera::open(&id, FIRST_PICTURE)
}

/// Only cameras, for the device list.
pub(crate) fn info(device_id: String, label: String, is_default: bool) -> MediaDeviceInfo {
    MediaDeviceInfo {
        device_id,
        kind: DeviceKind::VideoInput,
        label,
        is_default,
    }
}

/// A picture slot the capture thread fills and the call empties: the newest picture wins.
#[derive(Default)]
pub(crate) struct Newest {
    state: std::sync::Mutex<Slot>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct Slot {
    picture: Option<I420Frame>,
    /// Counts pictures put, so a reader can tell a new one from the one it has.
    number: u64,
    failed: Option<String>,
}

impl Newest {
    pub(crate) fn put(&self, picture: I420Frame) {
        if let Ok(mut slot) = self.state.lock() {
            slot.picture = Some(picture);
            slot.number += 1;
        }
        self.changed.notify_all();
    }

    pub(crate) fn fail(&self, why: String) {
        if let Ok(mut slot) = self.state.lock() {
            slot.failed = Some(why);
        }
        self.changed.notify_all();
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.failed.clone())
    }

    /// Waits until a picture newer than `after` is there (or the capture failed, or the
    /// time is up), and takes it.
    pub(crate) fn take_after(
        &self,
        after: u64,
        wait: std::time::Duration,
    ) -> Option<(u64, I420Frame)> {
        let guard = self.state.lock().ok()?;
        let (mut slot, _) = self
            .changed
            .wait_timeout_while(guard, wait, |s| s.number <= after && s.failed.is_none())
            .ok()?;
        if slot.number <= after {
            return None;
        }
        let number = slot.number;
        slot.picture.take().map(|p| (number, p))
    }
}

/// What the call reads: the newest picture, or the last one again while the camera is slow
/// (a track whose source answers `None` ends, and a camera pausing for a moment must not
/// end the call's video).
pub(crate) struct Reader {
    pub(crate) newest: std::sync::Arc<Newest>,
    pub(crate) number: u64,
    pub(crate) last: I420Frame,
    pub(crate) fps: f64,
}

impl Reader {
    pub(crate) fn read(&mut self) -> I420Frame {
        // Half a picture's time: a camera on time is caught, a stalled one costs the call
        // no more than a repeated picture.
        let wait = std::time::Duration::from_secs_f64(0.5 / self.fps.max(1.0));
        if let Some((number, picture)) = self.newest.take_after(self.number, wait) {
            self.number = number;
            self.last = picture;
        }
        self.last.clone()
    }
}

impl Camera {
    /// The ID it was opened by.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl VideoSource for Camera {
    fn read_frame(&mut self) -> Option<I420Frame> {
        Some(self.reader.read())
    }

    fn frame_rate(&self) -> f64 {
        self.reader.fps
    }

    fn device_id(&self) -> Option<&str> {
        Some(&self.id)
    }

    fn device_failed(&self) -> bool {
        self.reader.newest.failure().is_some()
    }
}

/// Stands in for a camera that went away with none to take over: black pictures, sent only
/// if the user turns video on again without choosing a camera.
pub struct Stopped(Option<I420Frame>);

impl Stopped {
    pub fn new() -> Self {
        Self(I420Frame::black(640, 360).ok())
    }
}

impl Default for Stopped {
    fn default() -> Self {
        Self::new()
    }
}

impl VideoSource for Stopped {
    fn read_frame(&mut self) -> Option<I420Frame> {
        self.0.clone()
    }

    fn frame_rate(&self) -> f64 {
        30.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_become_sentences_with_the_right_code() {
        let busy = classify("V4L2 Error: Device or resource busy (os error 16)");
        assert_eq!(busy.code, ErrorCode::DeviceUnavailable);
        assert!(busy.message.starts_with(BUSY), "{}", busy.message);
        let denied = classify("Permission denied (os error 13)");
        assert_eq!(denied.code, ErrorCode::PermissionDenied);
        let gone = classify("No such file or directory (os error 2)");
        assert_eq!(gone.code, ErrorCode::DeviceNotFound);
        // EINVAL (22) is not "not found" though its number starts with 2.
        let invalid = classify("Invalid argument (os error 22)");
        assert_eq!(invalid.code, ErrorCode::DeviceUnavailable);
        assert!(
            invalid.message.contains("could not be started"),
            "{}",
            invalid.message
        );
        let other = classify("something else");
        assert_eq!(other.code, ErrorCode::DeviceUnavailable);
        assert!(other.message.contains("something else"));
    }

    #[test]
    fn the_newest_picture_wins_and_a_slow_camera_repeats_the_last() {
        let newest = std::sync::Arc::new(Newest::default());
        let frame = |luma: u8| {
            let mut f = I420Frame::black(4, 4).expect("size");
            f.planes_mut().0.fill(luma);
            f
        };
        newest.put(frame(50));
        newest.put(frame(60));
        let mut reader = Reader {
            newest: newest.clone(),
            number: 0,
            last: frame(16),
            fps: 1000.0,
        };
        assert_eq!(reader.read().y()[0], 60, "the older picture was skipped");
        // Nothing new: the same picture again, after a bounded wait.
        assert_eq!(reader.read().y()[0], 60);
        let putter = {
            let newest = newest.clone();
            std::thread::spawn(move || newest.put(frame(70)))
        };
        putter.join().expect("thread");
        assert_eq!(reader.read().y()[0], 70);
        newest.fail("unplugged".into());
        assert_eq!(reader.read().y()[0], 70, "a failed camera still answers");
        assert_eq!(newest.failure().as_deref(), Some("unplugged"));
    }
}
