//! Wayland: the xdg-desktop-portal ScreenCast interface (the desktop shows its own chooser,
//! `portal_dbus`) and the PipeWire stream it hands out, read here with the `pipewire` crate.
//!
//! Why not scap, which the issue suggested: scap 0.0.8 (the newest that compiles on Linux)
//! panics instead of returning errors, keeps its capture in process globals (one share per
//! process, and a stop that only finished at the stream's next picture), never noticed the
//! desktop ending the share, and copied every picture twice. Here the portal conversation and
//! the stream are ours: every failure is a `BAError`, each share has its own thread and
//! PipeWire connection, a picture is converted straight out of PipeWire's buffer, and the share
//! ends when the desktop closes the session (its "Stop sharing") or the stream's node goes.

use super::portal_dbus::ScreenCast;
use super::{SHARE_FPS, unsupported};
use crate::error::BAError;
use crate::media::sources::VideoSource;
use between_media::screen::{PixelLayout, ScreenPixels, to_i420};
use between_media::video::I420Frame;
use pipewire as pw;
use pw::spa::param::ParamType;
use pw::spa::param::format::{FormatProperties, MediaSubtype, MediaType};
use pw::spa::param::video::{VideoFormat, VideoInfoRaw};
use pw::spa::pod::{Pod, Value, serialize::PodSerializer};
use pw::spa::utils::{Direction, Fraction, Rectangle, SpaTypes};
use pw::stream::{StreamFlags, StreamState};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How often the capture thread looks at its stop flag and the session bus.
const POLL: Duration = Duration::from_millis(50);

pub(super) struct PortalCapture {
    newest: Arc<Newest>,
    last: Option<I420Frame>,
    stop: Arc<AtomicBool>,
}

/// The stream's newest picture, not read yet: a newer one replaces it (a queue that dropped
/// the newest when full could leave the share showing a stale screen after the last change).
#[derive(Default)]
struct Newest {
    slot: Mutex<Slot>,
    arrived: Condvar,
}

#[derive(Default)]
struct Slot {
    picture: Option<I420Frame>,
    ended: bool,
}

impl Newest {
    fn put(&self, picture: I420Frame) {
        if let Ok(mut slot) = self.slot.lock() {
            slot.picture = Some(picture);
        }
        self.arrived.notify_all();
    }

    fn end(&self) {
        if let Ok(mut slot) = self.slot.lock() {
            slot.ended = true;
        }
        self.arrived.notify_all();
    }

    /// (the newest picture if one came, whether the stream ended)
    fn take(&self) -> (Option<I420Frame>, bool) {
        match self.slot.lock() {
            Ok(mut slot) => (slot.picture.take(), slot.ended),
            Err(_) => (None, true),
        }
    }

    fn has_news(&self) -> bool {
        self.slot
            .lock()
            .map_or(true, |slot| slot.picture.is_some() || slot.ended)
    }

    /// Waits up to `timeout` for a first picture.
    fn first(&self, timeout: Duration) -> Option<I420Frame> {
        let slot = self.slot.lock().ok()?;
        let (mut slot, _) = self
            .arrived
            .wait_timeout_while(slot, timeout, |s| s.picture.is_none() && !s.ended)
            .ok()?;
        slot.picture.take()
    }
}

/// What the stream's callbacks share with the capture loop.
struct Reading {
    format: Option<(VideoFormat, u32, u32)>,
    newest: Arc<Newest>,
    ended: Rc<Cell<bool>>,
}

fn layout(format: VideoFormat) -> Option<PixelLayout> {
    match format {
        VideoFormat::BGRx | VideoFormat::BGRA => Some(PixelLayout::Bgrx),
        VideoFormat::RGBx | VideoFormat::RGBA => Some(PixelLayout::Rgbx),
        VideoFormat::xBGR | VideoFormat::ABGR => Some(PixelLayout::Xbgr),
        VideoFormat::xRGB | VideoFormat::ARGB => Some(PixelLayout::Xrgb),
        _ => None,
    }
}

/// The formats this capture takes (32-bit RGB in any byte order), any size, any rate.
fn format_offer() -> Result<Vec<u8>, BAError> {
    let object = pw::spa::pod::object!(
        SpaTypes::ObjectParamFormat,
        ParamType::EnumFormat,
        pw::spa::pod::property!(FormatProperties::MediaType, Id, MediaType::Video),
        pw::spa::pod::property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
        pw::spa::pod::property!(
            FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            VideoFormat::BGRx,
            VideoFormat::BGRx,
            VideoFormat::BGRA,
            VideoFormat::RGBx,
            VideoFormat::RGBA,
            VideoFormat::xBGR,
            VideoFormat::xRGB
        ),
        pw::spa::pod::property!(
            FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            Rectangle {
                width: 1920,
                height: 1080
            },
            Rectangle {
                width: 2,
                height: 2
            },
            Rectangle {
                width: 8192,
                height: 8192
            }
        ),
        pw::spa::pod::property!(
            FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            Fraction {
                num: SHARE_FPS as u32,
                denom: 1
            },
            Fraction { num: 0, denom: 1 },
            // Twice what a share sends, not the compositor's refresh rate: each picture is
            // converted on arrival. (Exactly the share's rate failed to negotiate with a
            // 15 fps source in the test.)
            Fraction {
                num: 2 * SHARE_FPS as u32,
                denom: 1
            }
        ),
    );
    PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &Value::Object(object))
        .map(|(cursor, _)| cursor.into_inner())
        .map_err(|e| unsupported(format!("Cannot describe the screen formats ({e:?}).")))
}

fn pipewire_error(e: impl std::fmt::Display) -> BAError {
    unsupported(format!(
        "The screen stream could not be read from PipeWire ({e}). Check that PipeWire is running."
    ))
}

/// Reads the portal's stream until `stop`, the session closes, or the node goes away.
fn run_stream(
    cast: &ScreenCast,
    remote: std::os::fd::OwnedFd,
    newest: Arc<Newest>,
    ready: &SyncSender<Result<(), BAError>>,
    stop: &AtomicBool,
) -> Result<(), BAError> {
    pw::init();
    let mainloop = pw::main_loop::MainLoop::new(None).map_err(pipewire_error)?;
    let context = pw::context::Context::new(&mainloop).map_err(pipewire_error)?;
    let core = context.connect_fd(remote, None).map_err(pipewire_error)?;
    let ended = Rc::new(Cell::new(false));

    // The node going away (the desktop stopped the cast) ends the share too.
    let registry = core.get_registry().map_err(pipewire_error)?;
    let node = cast.node;
    let gone = ended.clone();
    let _registry_listener = registry
        .add_listener_local()
        .global_remove(move |id| {
            if id == node {
                gone.set(true);
            }
        })
        .register();

    let stream = pw::stream::Stream::new(
        &core,
        "between-screen-share",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )
    .map_err(pipewire_error)?;
    let state = Reading {
        format: None,
        newest,
        ended: ended.clone(),
    };
    let _listener = stream
        .add_local_listener_with_user_data(state)
        .state_changed(|_, state, _, new| {
            if let StreamState::Error(e) = &new {
                tracing::info!(error = %e, "the screen stream failed");
            }
            if matches!(new, StreamState::Error(_) | StreamState::Unconnected) {
                state.ended.set(true);
            }
        })
        .param_changed(|_, state, id, param| {
            let Some(param) = param else {
                return;
            };
            if id != ParamType::Format.as_raw() {
                return;
            }
            let mut info = VideoInfoRaw::new();
            if info.parse(param).is_ok() {
                let size = info.size();
                state.format = Some((info.format(), size.width, size.height));
                tracing::debug!(format = ?info.format(), size.width, size.height, "screen stream format");
            }
        })
        .process(|stream, state| {
            let Some(mut buffer) = stream.dequeue_buffer() else {
                return;
            };
            let Some((format, width, height)) = state.format else {
                return;
            };
            let Some(layout) = layout(format) else {
                return;
            };
            let Some(data) = buffer.datas_mut().first_mut() else {
                return;
            };
            let chunk = data.chunk();
            let (offset, size) = (chunk.offset() as usize, chunk.size() as usize);
            let stride = usize::try_from(chunk.stride())
                .ok()
                .filter(|&s| s >= width as usize * 4)
                .unwrap_or(width as usize * 4);
            let Some(bytes) = data.data() else {
                return;
            };
            let end = offset.saturating_add(size).min(bytes.len());
            let Some(pixels) = bytes.get(offset..end) else {
                return;
            };
            match to_i420(&ScreenPixels {
                width,
                height,
                stride,
                layout,
                data: pixels,
            }) {
                Ok(picture) => state.newest.put(picture),
                Err(e) => tracing::debug!(error = %e, "an unreadable screen picture"),
            }
        })
        .register()
        .map_err(pipewire_error)?;

    let offer = format_offer()?;
    let offer = Pod::from_bytes(&offer).ok_or_else(|| pipewire_error("bad format offer"))?;
    stream
        .connect(
            Direction::Input,
            Some(cast.node),
            StreamFlags::AUTOCONNECT | StreamFlags::MAP_BUFFERS,
            &mut [offer],
        )
        .map_err(pipewire_error)?;
    let _ = ready.send(Ok(()));

    while !stop.load(Ordering::Relaxed) && !ended.get() {
        mainloop.loop_().iterate(POLL);
        if cast.poll_closed() {
            tracing::info!("the desktop ended the screen share");
            break;
        }
    }
    let _ = stream.disconnect();
    Ok(())
}

impl PortalCapture {
    /// Asks the portal for a screen (its chooser may wait for the person) and starts reading
    /// its PipeWire stream; returns once the first picture arrived, or why not.
    pub fn open() -> Result<Self, BAError> {
        let newest = Arc::new(Newest::default());
        let (ready_tx, ready) = sync_channel::<Result<(), BAError>>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let producer = newest.clone();
        std::thread::Builder::new()
            .name("screen-portal".into())
            .spawn(move || {
                // However the thread ends, the share sees the stream end.
                struct EndOnExit(Arc<Newest>);
                impl Drop for EndOnExit {
                    fn drop(&mut self) {
                        self.0.end();
                    }
                }
                let _end = EndOnExit(producer.clone());
                let mut cast = match ScreenCast::start() {
                    Ok(cast) => cast,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let remote = cast.take_remote();
                let result = match remote {
                    Some(remote) => run_stream(&cast, remote, producer, &ready_tx, &stopping),
                    None => Err(pipewire_error("no PipeWire connection")),
                };
                if let Err(e) = result {
                    let _ = ready_tx.send(Err(e));
                }
                cast.close();
            })
            .map_err(|e| unsupported(format!("Cannot start the screen capture ({e}).")))?;
        let answered = ready
            .recv_timeout(super::portal_dbus::CHOOSER_WAIT + Duration::from_secs(10))
            .unwrap_or_else(|_| {
                Err(unsupported(
                    "The desktop's screen-sharing portal did not answer.",
                ))
            });
        if let Err(e) = answered {
            // A chooser answered after this gave up must not start a share nobody reads.
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
        // The stream is connected; the first picture follows at once unless something is wrong
        // (a format that cannot be converted).
        let Some(first) = newest.first(Duration::from_secs(10)) else {
            stop.store(true, Ordering::Relaxed);
            return Err(unsupported(
                "The desktop's screen stream sent no picture. Try sharing again, or another screen.",
            ));
        };
        Ok(Self {
            newest,
            last: Some(first),
            stop,
        })
    }
}

impl VideoSource for PortalCapture {
    fn read_frame(&mut self) -> Option<I420Frame> {
        // The newest picture; the last one again if nothing new came (a portal stream only
        // delivers when the screen changes).
        let (picture, ended) = self.newest.take();
        if ended && picture.is_none() {
            tracing::info!("the portal's screen stream ended");
            return None;
        }
        if let Some(picture) = picture {
            self.last = Some(picture);
        }
        self.last.clone()
    }

    fn frame_rate(&self) -> f64 {
        SHARE_FPS
    }

    fn changed(&mut self) -> bool {
        // An end counts: read_frame then reports it.
        self.newest.has_news()
    }
}

impl Drop for PortalCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
