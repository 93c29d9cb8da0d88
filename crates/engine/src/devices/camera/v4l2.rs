//! Cameras on Linux: V4L2 capture nodes, opened through nokhwa.

use super::{Newest, Reader, classify, info};
use crate::devices::MediaDeviceInfo;
use crate::error::BAError;
use between_media::camera::{CameraMode, PixelFormat, choose_mode, to_i420};
use between_protocol::ErrorCode;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The formats `between_media::camera` converts.
const FORMATS: [FrameFormat; 3] = [FrameFormat::MJPEG, FrameFormat::YUYV, FrameFormat::NV12];

/// A camera being captured. Dropping it stops the capture (at the camera's next picture).
pub struct Camera {
    pub(super) id: String,
    pub(super) reader: Reader,
    mode: CameraMode,
    stop: Arc<AtomicBool>,
    /// Disconnects when the capture thread has released the device.
    released: std::sync::mpsc::Receiver<()>,
}

/// How long dropping a camera waits for its device to be released: a picture's time at
/// 5 fps. Someone opening the same camera right after (the app's preview handing over to
/// the call, a switch back) then finds it free instead of busy.
const RELEASE: Duration = Duration::from_millis(250);

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
        let label = match v4l::Device::with_path(&path).and_then(|d| d.query_caps()) {
            Ok(caps)
                if caps
                    .capabilities
                    .contains(v4l::capability::Flags::VIDEO_CAPTURE) =>
            {
                caps.card
            }
            Ok(_) => continue,
            // Listed anyway (by its sysfs name): opening it will say why it cannot be used
            // (most often: the user is not in the "video" group).
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "camera not queryable");
                sysfs_name(&path).unwrap_or_else(|| path.display().to_string())
            }
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

/// `v4l2:/dev/v4l/by-id/...` or `v4l2:/dev/video3` → 3.
fn node_index(id: &str) -> Result<u32, BAError> {
    let not_found = || BAError::new(ErrorCode::DeviceNotFound, super::NOT_FOUND);
    let path = id.strip_prefix(super::ID_PREFIX).ok_or_else(not_found)?;
    let real = std::fs::canonicalize(path).map_err(|_| not_found())?;
    real.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("video"))
        .and_then(|n| n.parse().ok())
        .ok_or_else(not_found)
}

fn to_mode(format: &CameraFormat) -> Option<CameraMode> {
    let pixel = match format.format() {
        FrameFormat::MJPEG => PixelFormat::Mjpeg,
        FrameFormat::YUYV => PixelFormat::Yuyv,
        FrameFormat::NV12 => PixelFormat::Nv12,
        _ => return None,
    };
    Some(CameraMode {
        width: format.width(),
        height: format.height(),
        fps: format.frame_rate(),
        format: pixel,
    })
}

fn to_nokhwa(mode: CameraMode) -> CameraFormat {
    let format = match mode.format {
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Nv12 => FrameFormat::NV12,
    };
    CameraFormat::new_from(mode.width, mode.height, format, mode.fps)
}

/// Opens the device, picks its mode and starts streaming.
fn start(index: u32) -> Result<(nokhwa::Camera, CameraMode), BAError> {
    let fail = |e: nokhwa::NokhwaError| classify(&e.to_string());
    // Opened in whatever mode it can do first; the real choice needs its list of modes,
    // which nokhwa only gives for an opened camera.
    let mut camera = nokhwa::Camera::with_backend(
        CameraIndex::Index(index),
        RequestedFormat::with_formats(RequestedFormatType::None, &FORMATS),
        ApiBackend::Video4Linux,
    )
    .map_err(fail)?;
    let modes: Vec<CameraMode> = camera
        .compatible_camera_formats()
        .map_err(fail)?
        .iter()
        .filter_map(to_mode)
        .collect();
    let mode = choose_mode(&modes).ok_or_else(|| {
        BAError::new(
            ErrorCode::DeviceUnavailable,
            "This camera offers no picture format Between can use (MJPEG, YUYV or NV12). Pick another camera.",
        )
    })?;
    camera
        .set_camera_requset(RequestedFormat::with_formats(
            RequestedFormatType::Exact(to_nokhwa(mode)),
            &FORMATS,
        ))
        .map_err(fail)?;
    camera.open_stream().map_err(fail)?;
    Ok((camera, mode))
}

impl Camera {
    pub(super) fn open(id: &str, first_picture: Duration) -> Result<Self, BAError> {
        let index = node_index(id)?;
        let newest = Arc::new(Newest::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let (released_tx, released) = std::sync::mpsc::sync_channel::<()>(0);
        let thread_newest = newest.clone();
        let thread_stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("camera {index}"))
            .spawn(move || {
                capture(index, thread_newest, thread_stop, started_tx);
                drop(released_tx);
            })
            .map_err(|e| BAError::new(ErrorCode::Internal, e.to_string()))?;
        let mode = match started_rx.recv_timeout(first_picture) {
            Ok(started) => started?,
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                return Err(BAError::new(
                    ErrorCode::DeviceUnavailable,
                    "The camera did not start. Unplug it and plug it in again, or pick another camera.",
                ));
            }
        };
        let Some((number, first)) = newest.take_after(0, first_picture) else {
            stop.store(true, Ordering::Relaxed);
            let why = newest
                .failure()
                .unwrap_or_else(|| "no picture in 5 s".into());
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

fn capture(
    index: u32,
    newest: Arc<Newest>,
    stop: Arc<AtomicBool>,
    started: std::sync::mpsc::SyncSender<Result<CameraMode, BAError>>,
) {
    let (mut camera, mode) = match start(index) {
        Ok(started_ok) => started_ok,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let _ = started.send(Ok(mode));
    let mut bad_pictures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let raw = match camera.frame_raw() {
            Ok(raw) => raw,
            Err(e) => {
                // Unplugged, or the driver gave up: the device watcher moves the call on.
                tracing::warn!(index, error = %e, "camera stopped");
                newest.fail(e.to_string());
                return;
            }
        };
        match to_i420(mode.format, mode.width, mode.height, &raw) {
            Ok(picture) => {
                bad_pictures = 0;
                newest.put(picture);
            }
            // A corrupt MJPEG picture now and then is normal on a busy USB bus.
            Err(e) => {
                bad_pictures += 1;
                if bad_pictures == 1 || bad_pictures % 100 == 0 {
                    tracing::debug!(index, error = %e, bad_pictures, "camera picture dropped");
                }
            }
        }
    }
    if let Err(e) = camera.stop_stream() {
        tracing::debug!(index, error = %e, "camera stop");
    }
}
