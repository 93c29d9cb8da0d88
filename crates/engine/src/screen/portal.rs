//! Wayland: the xdg-desktop-portal ScreenCast interface (the desktop shows its own chooser)
//! and PipeWire, through scap 0.0.8 (0.1.0-beta.1 does not compile on Linux; 0.0.8 does, and
//! its Linux backend is this portal path only).
//!
//! scap 0.0.8 panics where it should return errors (no D-Bus session, a cancelled chooser, a
//! portal that fails) and keeps its capture state in process globals, so it runs on a thread
//! of its own: a panic there becomes a `BAError` here, never a crash, and the share's
//! pictures cross to the engine through a channel. One portal share per process at a time.

use super::{SHARE_FPS, unsupported};
use crate::error::BAError;
use crate::media::sources::VideoSource;
use between_media::screen::{PixelLayout, ScreenPixels, to_i420};
use between_media::video::I420Frame;
use between_protocol::ErrorCode;
use scap::capturer::{Capturer, Options};
use scap::frame::{Frame, FrameType};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The thread of the last portal share: scap's globals allow one capture at a time, so a new
/// share waits for the previous one to have wound down.
static PREVIOUS: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// How long a share may take from asking the portal to its first picture.
const FIRST_PICTURE_WAIT: Duration = Duration::from_secs(150);

/// How long a new share waits for the previous one to finish closing.
const CLOSING_WAIT: Duration = Duration::from_secs(3);

/// Waits for the previous share's thread to end; false if it is still running.
fn previous_share_closed() -> bool {
    let mut previous = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(handle) = previous.take() else {
        return true;
    };
    let deadline = Instant::now() + CLOSING_WAIT;
    // The thread notices its stop flag at its stream's next picture.
    while !handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if handle.is_finished() {
        let _ = handle.join();
        true
    } else {
        *previous = Some(handle);
        false
    }
}

pub(super) struct PortalCapture {
    frames: Receiver<I420Frame>,
    /// A picture taken off the channel by `changed`, not read yet.
    pending: Option<I420Frame>,
    last: Option<I420Frame>,
    stop: Arc<AtomicBool>,
}

/// What a panic or error inside scap means for the person sharing.
fn portal_error(message: &str) -> BAError {
    if message.contains("cancelled") {
        BAError::new(
            ErrorCode::ScreenshareDenied,
            "Screen sharing was cancelled in the system's dialog.",
        )
    } else if message.contains("dbus") || message.contains("D-Bus") {
        unsupported(format!(
            "The desktop portal cannot be reached (no D-Bus session: {message}). Screen sharing on Wayland needs xdg-desktop-portal."
        ))
    } else {
        unsupported(format!(
            "The desktop's screen-sharing portal did not start a share ({message}). Check that xdg-desktop-portal and a backend for this desktop are installed."
        ))
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "unknown failure".to_string())
}

/// One scap picture as I420, or `None` for a format this build does not take.
fn convert(frame: &Frame) -> Option<I420Frame> {
    let (width, height, layout, data) = match frame {
        Frame::BGRx(f) => (f.width, f.height, PixelLayout::Bgrx, &f.data),
        Frame::BGRA(f) => (f.width, f.height, PixelLayout::Bgrx, &f.data),
        Frame::RGBx(f) => (f.width, f.height, PixelLayout::Rgbx, &f.data),
        Frame::XBGR(f) => (f.width, f.height, PixelLayout::Xbgr, &f.data),
        _ => return None,
    };
    let (width, height) = (u32::try_from(width).ok()?, u32::try_from(height).ok()?);
    to_i420(&ScreenPixels {
        width,
        height,
        stride: width as usize * 4,
        layout,
        data,
    })
    .ok()
}

impl PortalCapture {
    /// Asks the portal for a screen (its chooser may wait for the person) and starts the
    /// PipeWire stream; returns once the first picture arrived, or why not.
    pub fn open() -> Result<Self, BAError> {
        if !previous_share_closed() {
            return Err(BAError::new(
                ErrorCode::ScreenshareActive,
                "The previous screen share is still closing. Try again in a moment.",
            ));
        }
        let (frames_tx, frames) = sync_channel::<I420Frame>(2);
        let (ready_tx, ready) = sync_channel::<Result<(), BAError>>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("screen-portal".into())
            .spawn(move || {
                let built = std::panic::catch_unwind(|| {
                    Capturer::build(Options {
                        fps: SHARE_FPS as u32,
                        show_cursor: true,
                        output_type: FrameType::BGRAFrame,
                        ..Options::default()
                    })
                });
                let mut capturer = match built {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        let _ = ready_tx.send(Err(portal_error(&e.to_string())));
                        return;
                    }
                    Err(panic) => {
                        let _ = ready_tx.send(Err(portal_error(&panic_text(panic.as_ref()))));
                        return;
                    }
                };
                capturer.start_capture();
                let mut ready_tx = Some(ready_tx);
                while !stopping.load(Ordering::Relaxed) {
                    // Ends when the stream does (the person stopped sharing in the system's
                    // interface, or the portal went away).
                    let Ok(frame) = capturer.get_next_frame() else {
                        break;
                    };
                    let Some(picture) = convert(&frame) else {
                        continue;
                    };
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(Ok(()));
                    }
                    // A full queue means the engine has not taken the last two: drop this one.
                    if let Err(std::sync::mpsc::TrySendError::Disconnected(_)) =
                        frames_tx.try_send(picture)
                    {
                        break;
                    }
                }
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(Err(portal_error(
                        "the stream ended before its first picture",
                    )));
                }
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    capturer.stop_capture();
                }));
            });
        match spawned {
            Ok(handle) => {
                *PREVIOUS.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
            }
            Err(e) => {
                return Err(unsupported(format!(
                    "Cannot start the screen capture ({e})."
                )));
            }
        }
        // The chooser may wait for the person (scap gives it two minutes); then the first
        // picture comes at once, or something is wrong (a format scap cannot hand over).
        ready
            .recv_timeout(FIRST_PICTURE_WAIT)
            .unwrap_or_else(|_| Err(portal_error("no picture came from the screen stream")))?;
        Ok(Self {
            frames,
            pending: None,
            last: None,
            stop,
        })
    }
}

impl VideoSource for PortalCapture {
    fn read_frame(&mut self) -> Option<I420Frame> {
        // The newest picture; the last one again if nothing new came (a portal stream only
        // delivers when the screen changes).
        if let Some(frame) = self.pending.take() {
            self.last = Some(frame);
        }
        loop {
            match self.frames.try_recv() {
                Ok(frame) => self.last = Some(frame),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    tracing::info!("the portal's screen stream ended");
                    return None;
                }
            }
        }
        if self.last.is_none() {
            self.last = self.frames.recv().ok();
        }
        self.last.clone()
    }

    fn frame_rate(&self) -> f64 {
        SHARE_FPS
    }

    fn changed(&mut self) -> bool {
        if self.pending.is_none() {
            match self.frames.try_recv() {
                Ok(frame) => self.pending = Some(frame),
                // Ended: say so, and let read_frame report the end.
                Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => {}
            }
        }
        self.pending.is_some() || self.last.is_none()
    }
}

impl Drop for PortalCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
