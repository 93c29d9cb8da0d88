//! Cameras on Linux: V4L2 capture nodes, driven with the `v4l` crate.
//!
//! Not through nokhwa (the plan in DESIGN.md), whose V4L2 backend is a thin layer over the
//! same `v4l` crate: its `frame()` waits for a picture without a deadline (a stalled camera
//! held its thread and device forever), it keeps open devices in a process-wide table (so a
//! camera stuck that way could not be opened again: "busy"), it asserts (panics) on
//! conditions a driver can produce, and its "closest format" compares frame rates at the
//! requested size rather than the chosen one. Here every wait has a deadline, a stalled
//! camera is reported as failed, and the mode is chosen by `between_media::camera`.

use super::{Newest, Reader, classify, info};
use crate::devices::MediaDeviceInfo;
use crate::error::BAError;
use between_media::camera::{CameraMode, PixelFormat, choose_mode, to_i420};
use between_protocol::ErrorCode;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use v4l::FourCC;
use v4l::buffer::Type;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;

/// How long one wait for a picture may take before the capture looks again (at the stop
/// flag, and whether the camera stalled).
const PICTURE_WAIT: Duration = Duration::from_millis(500);
/// A camera that sends nothing for this long has failed (unplugged without telling, a
/// firmware hang): the device watcher moves the call on.
const STALLED: Duration = Duration::from_secs(3);
/// How long opening retries a camera that is busy (our own preview letting go of it).
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// A camera being captured. Dropping it stops the capture.
pub struct Camera {
    pub(super) id: String,
    pub(super) reader: Reader,
    mode: CameraMode,
    stop: Arc<AtomicBool>,
    /// Disconnects when the capture thread has released the device.
    released: std::sync::mpsc::Receiver<()>,
}

/// How long dropping a camera waits for its device to be released: one wait for a picture
/// and a little. Someone opening the same camera right after (the app's preview handing
/// over to the call, a switch back) then finds it free instead of busy.
const RELEASE: Duration = Duration::from_millis(700);

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.released.recv_timeout(RELEASE);
    }
}

/// The `/dev/videoN` nodes that capture pictures (a UVC camera also has a metadata node,
/// which is not a camera), with a stable ID each: the udev `by-id` name where there is one
/// (it survives re-plugging into another port order), else the node's path.
pub fn list() -> Vec<MediaDeviceInfo> {
    let mut nodes = video_nodes();
    nodes.sort_by_key(|(index, _)| *index);
    let by_id = by_id_names();
    let mut cameras = Vec::new();
    for (_, path) in nodes {
        let Some(label) = describe(&path) else {
            continue;
        };
        let stable = by_id
            .iter()
            .find(|(_, target)| *target == path)
            .map(|(link, _)| link.clone())
            .unwrap_or_else(|| path.clone());
        let is_default = cameras.is_empty();
        cameras.push(info(
            format!("{}{}", super::ID_PREFIX, stable.display()),
            label,
            is_default,
        ));
    }
    cameras
}

/// What a node is: `Some(label)` for a camera, `None` for another kind of node. Asked once
/// per node (the device watcher lists every 500 ms, and opening a USB camera each time would
/// keep it from suspending): a node that is re-created (re-plugged) is asked again.
fn describe(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    type Known = std::collections::HashMap<PathBuf, ((u64, u64, i64, i64), Option<String>)>;
    static KNOWN: std::sync::Mutex<Option<Known>> = std::sync::Mutex::new(None);
    let stamp = std::fs::metadata(path)
        .map(|m| (m.ino(), m.rdev(), m.ctime(), m.ctime_nsec()))
        .ok()?;
    if let Ok(known) = KNOWN.lock()
        && let Some((seen, label)) = known.as_ref().and_then(|k| k.get(path))
        && *seen == stamp
    {
        return label.clone();
    }
    // The v4l crate unwraps the driver's name as UTF-8 (a USB product name cut at 32 bytes
    // may not be): a panic here must not end the device watcher.
    let queried =
        std::panic::catch_unwind(|| v4l::Device::with_path(path).and_then(|d| d.query_caps()))
            .unwrap_or_else(|_| Err(std::io::Error::other("the driver's name is not UTF-8")));
    let label = match queried {
        Ok(caps)
            if caps
                .capabilities
                .contains(v4l::capability::Flags::VIDEO_CAPTURE) =>
        {
            Some(caps.card)
        }
        Ok(_) => None,
        // Listed anyway (by its sysfs name): opening it will say why it cannot be used
        // (most often: the user is not in the "video" group). Not remembered: the user may
        // be let in.
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "camera not queryable");
            return Some(sysfs_name(path).unwrap_or_else(|| path.display().to_string()));
        }
    };
    if let Ok(mut known) = KNOWN.lock() {
        known
            .get_or_insert_with(Default::default)
            .insert(path.to_path_buf(), (stamp, label.clone()));
    }
    label
}

fn video_nodes() -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let index = name.to_str()?.strip_prefix("video")?.parse().ok()?;
            Some((index, entry.path()))
        })
        .collect()
}

/// `/dev/v4l/by-id/usb-Vendor_Camera-video-index0` → `/dev/video0`.
fn by_id_names() -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/dev/v4l/by-id") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| Some((e.path(), std::fs::canonicalize(e.path()).ok()?)))
        .collect()
}

fn sysfs_name(path: &Path) -> Option<String> {
    let node = path.file_name()?.to_str()?;
    let name = std::fs::read_to_string(format!("/sys/class/video4linux/{node}/name")).ok()?;
    Some(name.trim().to_string())
}

/// `v4l2:/dev/v4l/by-id/...` or `v4l2:/dev/video3` → `/dev/video3` (a `video*` node).
fn node_path(id: &str) -> Result<PathBuf, BAError> {
    let not_found = || BAError::new(ErrorCode::DeviceNotFound, super::NOT_FOUND);
    let path = id.strip_prefix(super::ID_PREFIX).ok_or_else(not_found)?;
    let real = std::fs::canonicalize(path).map_err(|_| not_found())?;
    let is_node = real
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("video"))
        .is_some_and(|n| n.parse::<u32>().is_ok());
    if is_node { Ok(real) } else { Err(not_found()) }
}

fn pixel_format(fourcc: FourCC) -> Option<PixelFormat> {
    match &fourcc.repr {
        b"MJPG" => Some(PixelFormat::Mjpeg),
        b"YUYV" => Some(PixelFormat::Yuyv),
        b"NV12" => Some(PixelFormat::Nv12),
        _ => None,
    }
}

fn fourcc(format: PixelFormat) -> FourCC {
    FourCC::new(match format {
        PixelFormat::Mjpeg => b"MJPG",
        PixelFormat::Yuyv => b"YUYV",
        PixelFormat::Nv12 => b"NV12",
    })
}

/// Sizes tried within a stepwise range (cameras that describe sizes as a range).
const COMMON_SIZES: [(u32, u32); 5] = [
    (640, 360),
    (640, 480),
    (1280, 720),
    (1920, 1080),
    (320, 240),
];
/// Rates tried within a stepwise range.
const COMMON_RATES: [u32; 4] = [30, 25, 24, 15];

/// Every mode the camera offers in a format we convert.
fn modes(device: &v4l::Device) -> Vec<CameraMode> {
    let mut modes = Vec::new();
    for description in device.enum_formats().unwrap_or_default() {
        let Some(format) = pixel_format(description.fourcc) else {
            continue;
        };
        let sizes: Vec<(u32, u32)> = device
            .enum_framesizes(description.fourcc)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|size| match size.size {
                FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                FrameSizeEnum::Stepwise(s) => COMMON_SIZES
                    .iter()
                    .copied()
                    .filter(|&(w, h)| {
                        (s.min_width..=s.max_width).contains(&w)
                            && (s.min_height..=s.max_height).contains(&h)
                            && (w - s.min_width) % s.step_width.max(1) == 0
                            && (h - s.min_height) % s.step_height.max(1) == 0
                    })
                    .collect(),
            })
            .collect();
        for (width, height) in sizes {
            let intervals = device
                .enum_frameintervals(description.fourcc, width, height)
                .unwrap_or_default();
            for interval in intervals {
                let rates: Vec<u32> = match interval.interval {
                    FrameIntervalEnum::Discrete(f) if f.numerator > 0 => {
                        vec![f.denominator / f.numerator]
                    }
                    FrameIntervalEnum::Discrete(_) => Vec::new(),
                    FrameIntervalEnum::Stepwise(s) => {
                        // Intervals are seconds per picture: the shortest is the fastest.
                        let fastest =
                            f64::from(s.min.denominator) / f64::from(s.min.numerator.max(1));
                        let slowest =
                            f64::from(s.max.denominator) / f64::from(s.max.numerator.max(1));
                        COMMON_RATES
                            .iter()
                            .copied()
                            .filter(|&r| (slowest..=fastest).contains(&f64::from(r)))
                            .collect()
                    }
                };
                modes.extend(
                    rates
                        .into_iter()
                        .filter(|&fps| fps > 0)
                        .map(|fps| CameraMode {
                            width,
                            height,
                            fps,
                            format,
                        }),
                );
            }
        }
    }
    modes
}

/// Opens the device and sets it to the chosen mode. Returns the mode the driver agreed to
/// and the bytes per row it lays pictures out with.
fn start(path: &Path) -> Result<(v4l::Device, CameraMode, usize), BAError> {
    let fail = |e: std::io::Error| classify(&e.to_string());
    let device = v4l::Device::with_path(path).map_err(fail)?;
    let mode = choose_mode(&modes(&device)).ok_or_else(|| {
        BAError::new(
            ErrorCode::DeviceUnavailable,
            "This camera offers no picture format Between can use (MJPEG, YUYV or NV12). Pick another camera.",
        )
    })?;
    let set = device
        .set_format(&v4l::Format::new(
            mode.width,
            mode.height,
            fourcc(mode.format),
        ))
        .map_err(fail)?;
    let format = pixel_format(set.fourcc).ok_or_else(|| {
        BAError::new(
            ErrorCode::DeviceUnavailable,
            "The camera refused every picture format Between can use. Pick another camera.",
        )
    })?;
    // A driver may round the size; what it says is what it sends.
    let mut agreed = CameraMode {
        width: set.width,
        height: set.height,
        fps: mode.fps,
        format,
    };
    match device.set_params(&v4l::video::capture::Parameters::with_fps(mode.fps)) {
        Ok(params) if params.interval.numerator > 0 => {
            agreed.fps = (params.interval.denominator / params.interval.numerator).max(1);
        }
        Ok(_) => {}
        // Some cameras have a fixed rate; they still stream.
        Err(e) => tracing::debug!(error = %e, "camera frame rate not set"),
    }
    Ok((device, agreed, set.stride as usize))
}

/// `start` and the stream's buffers, retried while the camera is busy for a moment (our own
/// preview or the call we just switched away from releasing it).
fn start_when_free(
    path: &Path,
) -> Result<(v4l::Device, CameraMode, usize, MmapStream<'static>), BAError> {
    let deadline = Instant::now() + BUSY_RETRY;
    loop {
        let started = start(path).and_then(|(device, mode, stride)| {
            let stream = new_stream(&device).map_err(|e| classify(&e.to_string()))?;
            Ok((device, mode, stride, stream))
        });
        match started {
            Err(e) if e.message.starts_with(super::BUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

impl Camera {
    pub(super) fn open(id: &str, first_picture: Duration) -> Result<Self, BAError> {
        let path = node_path(id)?;
        let newest = Arc::new(Newest::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let (released_tx, released) = std::sync::mpsc::sync_channel::<()>(0);
        let thread_newest = newest.clone();
        let thread_stop = stop.clone();
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name(format!("camera {name}"))
            .spawn(move || {
                // A driver surprise must not take the call down: the camera fails instead.
                let failed = thread_newest.clone();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    capture(&path, thread_newest, thread_stop, started_tx)
                }));
                if run.is_err() {
                    failed.fail("the camera driver failed".into());
                }
                drop(released_tx);
            })
            .map_err(|e| BAError::new(ErrorCode::Internal, e.to_string()))?;
        let started = started_rx.recv_timeout(first_picture);
        let mode = match started {
            Ok(Ok(mode)) => mode,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                let why = newest
                    .failure()
                    .unwrap_or_else(|| format!("no answer in {} s", first_picture.as_secs()));
                return Err(BAError::new(
                    ErrorCode::DeviceUnavailable,
                    format!(
                        "The camera did not start ({why}). Unplug it and plug it in again, or pick another camera."
                    ),
                ));
            }
        };
        let Some((number, first)) = newest.take_after(0, first_picture) else {
            stop.store(true, Ordering::Relaxed);
            let why = newest
                .failure()
                .unwrap_or_else(|| format!("no picture in {} s", first_picture.as_secs()));
            return Err(BAError::new(
                ErrorCode::DeviceUnavailable,
                format!(
                    "The camera started but sent no picture ({why}). Pick another camera, or join without video."
                ),
            ));
        };
        tracing::info!(%id, %mode, "camera open");
        Ok(Self {
            id: id.to_string(),
            reader: Reader {
                newest,
                number,
                last: first,
                fps: f64::from(mode.fps),
            },
            mode,
            stop,
            released,
        })
    }

    /// The mode the camera runs in.
    pub fn mode(&self) -> CameraMode {
        self.mode
    }
}

fn new_stream(device: &v4l::Device) -> std::io::Result<MmapStream<'static>> {
    let mut stream = MmapStream::with_buffers(device, Type::VideoCapture, 4)?;
    // The first picture may take a while (USB cameras start in 0.5-1.5 s); later waits
    // are polled here first, so the stream's own wait never runs out (after which the v4l
    // crate cannot go on: it would queue a buffer that is still queued).
    stream.set_timeout(FIRST_PICTURE_WAIT);
    Ok(stream)
}

/// Ends a stream without letting the v4l crate panic (its drop panics when STREAMOFF or
/// freeing the buffers fails, and a second panic while unwinding would abort the app): a
/// stream that will not stop is leaked instead.
fn close_stream(mut stream: MmapStream<'static>) {
    use v4l::io::traits::Stream as _;
    match stream.stop() {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(19) => {}
        Err(e) => {
            tracing::warn!(error = %e, "camera stream would not stop; left as it is");
            std::mem::forget(stream);
            return;
        }
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(stream)));
}

/// How long a new stream may take to deliver its first picture.
const FIRST_PICTURE_WAIT: Duration = Duration::from_secs(5);

/// What one turn of the capture loop got.
enum Turn {
    Picture,
    /// Nothing yet (a wait ran out, or a signal interrupted it).
    Nothing,
    /// The stream's own wait ran out: it has to be started again.
    Restart,
    Failed(String),
}

fn capture(
    path: &Path,
    newest: Arc<Newest>,
    stop: Arc<AtomicBool>,
    started: std::sync::mpsc::SyncSender<Result<CameraMode, BAError>>,
) {
    // Busy is retried as a whole: the buffers (REQBUFS) are where a camera another stream
    // still holds says so.
    let opened = start_when_free(path);
    let (device, mode, stride, stream) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let _ = started.send(Ok(mode));
    let name = path.display().to_string();
    let mut stream = Some(stream);
    // Whether the stream has delivered since it started (before that, its own long wait
    // applies; after, each wait is polled first).
    let mut delivering = false;
    let mut last_good = Instant::now();
    let mut bad_pictures = 0u32;
    let failure = loop {
        if stop.load(Ordering::Relaxed) {
            break None;
        }
        let Some(live) = stream.as_mut() else {
            break Some("the camera stream could not be started again".to_string());
        };
        let turn = if delivering {
            match live.handle().poll(POLL_IN, PICTURE_WAIT.as_millis() as i32) {
                Ok(0) => Turn::Nothing,
                Ok(_) => read_picture(live, mode, stride, &newest, &mut bad_pictures),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Turn::Nothing,
                Err(e) => Turn::Failed(e.to_string()),
            }
        } else {
            read_picture(live, mode, stride, &newest, &mut bad_pictures)
        };
        match turn {
            Turn::Picture => {
                delivering = true;
                if bad_pictures == 0 {
                    last_good = Instant::now();
                }
            }
            Turn::Nothing => {}
            Turn::Restart if !delivering => {
                break Some(format!("no picture in {} s", FIRST_PICTURE_WAIT.as_secs()));
            }
            Turn::Restart => {
                if let Some(old) = stream.take() {
                    close_stream(old);
                }
                stream = new_stream(&device).ok();
                delivering = false;
                continue;
            }
            Turn::Failed(why) => break Some(why),
        }
        // Silent, or nothing but pictures that cannot be decoded, for too long.
        if last_good.elapsed() >= STALLED {
            break Some(format!("no usable picture for {} s", STALLED.as_secs()));
        }
    };
    if let Some(why) = failure {
        // Unplugged (ENODEV), stalled, or the driver gave up: the device watcher moves the
        // call on.
        tracing::warn!(camera = %name, error = %why, "camera stopped");
        newest.fail(why);
    }
    if let Some(stream) = stream {
        close_stream(stream);
    }
}

/// `POLLIN` (poll(2)): a picture is ready to be taken.
const POLL_IN: i16 = 0x001;

/// Takes the next picture from the stream and hands it to the call.
fn read_picture(
    stream: &mut MmapStream<'static>,
    mode: CameraMode,
    stride: usize,
    newest: &Newest,
    bad_pictures: &mut u32,
) -> Turn {
    let converted = match stream.next() {
        Ok((data, meta)) => {
            // The buffer is as large as the biggest picture; the driver says how much of it
            // this one filled.
            let used = match meta.bytesused as usize {
                0 => data.len(),
                n => n.min(data.len()),
            };
            to_i420(mode.format, mode.width, mode.height, stride, &data[..used])
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Turn::Restart,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
            ) =>
        {
            return Turn::Nothing;
        }
        Err(e) => return Turn::Failed(e.to_string()),
    };
    match converted {
        Ok(picture) => {
            *bad_pictures = 0;
            newest.put(picture);
        }
        // A corrupt MJPEG picture now and then is normal on a busy USB bus.
        Err(e) => {
            *bad_pictures += 1;
            if *bad_pictures == 1 || (*bad_pictures).is_multiple_of(100) {
                tracing::debug!(error = %e, bad_pictures = *bad_pictures, "camera picture dropped");
            }
        }
    }
    Turn::Picture
}
