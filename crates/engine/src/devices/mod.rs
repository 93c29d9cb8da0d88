//! The machine's media devices as the API names them (`devicesUpdated`: `{deviceId, kind,
//! label}` like the DOM's MediaDeviceInfo), and lookups by ID for the device layer.
//!
//! Audio comes from cpal ([`audio`]); on Linux its PulseAudio host is preferred, so the list
//! shows the sinks and sources a person sees in their sound settings (PipeWire desktops serve
//! the same protocol), with ALSA as the fallback when no sound server runs. Cameras come
//! from [`camera`] (V4L2 on Linux).

mod audio;
pub mod camera;
mod stream;
pub(crate) mod watch;

pub use stream::{Microphone, Speaker};

use serde::Serialize;

/// What a device is for, spelled as the DOM spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    AudioInput,
    AudioOutput,
    VideoInput,
}

/// One device, as `devicesUpdated` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaDeviceInfo {
    /// Stable across runs and restarts of the sound server (e.g. `pulseaudio:alsa_output.pci...`).
    pub device_id: String,
    pub kind: DeviceKind,
    /// The human name (the sound server's description).
    pub label: String,
    /// The system default for its kind right now.
    pub is_default: bool,
}

/// Every device, and which audio host listed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSnapshot {
    /// `PulseAudio`, `ALSA`, `CoreAudio`, `WASAPI`...
    pub audio_host: String,
    pub devices: Vec<MediaDeviceInfo>,
}

/// Lists the devices now. Never fails: a host that cannot be asked yields an empty list (and
/// a log line), so the app still works without sound hardware.
pub fn snapshot() -> DeviceSnapshot {
    let host = audio::host();
    let mut devices = audio::list(&host);
    devices.extend(camera::list());
    DeviceSnapshot {
        audio_host: host.id().name().to_string(),
        devices,
    }
}

/// `getPermissionState()`'s answer: `{state, error: {reason, rawStr}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionState {
    /// `success`, `failed` or `denied`.
    pub state: &'static str,
    pub error: PermissionError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionError {
    /// Technical and platform-specific (empty on success).
    pub reason: String,
    /// A sentence to show the user (empty on success).
    pub raw_str: String,
}

/// Which camera `permission_state` tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraCheck {
    /// None: the call sends no camera.
    Skip,
    /// The system's first camera, if there is one (no camera is not a failure: calls work
    /// without video).
    Default,
    /// This one, which must work.
    Chosen(String),
}

/// Tries the microphone with this ID (the system default with `None`) and the camera: can
/// they be opened and do they deliver? Blocks up to a few seconds. The microphone is asked
/// first; its failure is the answer. (macOS and Windows will answer from their privacy
/// settings when their device layers are built.)
pub fn permission_state(mic: Option<&str>, camera: CameraCheck) -> PermissionState {
    let tried = Microphone::open(mic).map(drop).and_then(|()| match camera {
        CameraCheck::Skip => Ok(()),
        CameraCheck::Default => match camera::default_id() {
            Some(id) => camera::open(Some(&id)).map(drop),
            None => Ok(()),
        },
        CameraCheck::Chosen(id) => camera::open(Some(&id)).map(drop),
    });
    match tried {
        Ok(()) => PermissionState {
            state: "success",
            error: PermissionError {
                reason: String::new(),
                raw_str: String::new(),
            },
        },
        Err(e) => {
            let denied = e.code == between_protocol::ErrorCode::PermissionDenied;
            PermissionState {
                state: if denied { "denied" } else { "failed" },
                error: PermissionError {
                    reason: e.code.as_str().to_string(),
                    raw_str: e.message,
                },
            }
        }
    }
}

/// Closes a device without holding up an async worker: a camera waits for its capture
/// thread to let go (up to most of a second when the camera is stuck). Inline when there is
/// no runtime to hand it to.
pub(crate) fn close_later<T: Send + 'static>(device: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(device));
        }
        Err(_) => drop(device),
    }
}

/// Opens a device off the async runtime (cpal blocks while it talks to the sound server).
pub async fn open_blocking<T: Send + 'static>(
    open: impl FnOnce() -> Result<T, crate::error::BAError> + Send + 'static,
) -> Result<T, crate::error::BAError> {
    tokio::task::spawn_blocking(open).await.map_err(|e| {
        crate::error::BAError::new(between_protocol::ErrorCode::Internal, e.to_string())
    })?
}
