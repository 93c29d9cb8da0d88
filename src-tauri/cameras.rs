//! Cameras the app offers: the machine's cameras (the engine's device layer, V4L2 on Linux),
//! plus a synthetic test pattern, clearly labelled and never the default, so video can be
//! tried (and tested) on a machine without a camera.

use between_engine::devices::camera;
use between_engine::devices::{DeviceKind, MediaDeviceInfo};
use between_engine::media::sources::PatternVideo;
use between_engine::{BAError, ErrorCode, VideoSource};
use serde_json::{Value, json};

/// The synthetic camera's ID.
pub const TEST_PATTERN: &str = "between:test-pattern";

pub fn test_pattern() -> MediaDeviceInfo {
    MediaDeviceInfo {
        device_id: TEST_PATTERN.to_string(),
        kind: DeviceKind::VideoInput,
        label: "Test pattern (synthetic camera)".to_string(),
        // A person without a camera should not send a test pattern without choosing it.
        is_default: false,
    }
}

/// The camera a call starts with when the user has not chosen: the system's first camera.
pub fn default_id() -> Option<String> {
    camera::default_id()
}

/// Opens a camera at 1280x720@30 (or the closest it offers).
pub fn open(id: &str) -> Result<Box<dyn VideoSource>, BAError> {
    if id == TEST_PATTERN {
        return PatternVideo::new(1280, 720, 30.0)
            .map(|p| Box::new(p) as Box<dyn VideoSource>)
            .map_err(|e| BAError::new(ErrorCode::Internal, e));
    }
    camera::open(Some(id)).map(|c| Box::new(c) as Box<dyn VideoSource>)
}

/// Every device for the menus: the engine lists microphones, speakers and cameras; the
/// test pattern is the app's own.
pub fn all_devices() -> Value {
    let snapshot = between_engine::devices::snapshot();
    let mut devices = snapshot.devices;
    devices.push(test_pattern());
    json!({"audioHost": snapshot.audio_host, "devices": devices})
}

#[tauri::command]
pub async fn app_devices() -> Result<Value, BAError> {
    // Asking the sound server can take a moment; keep it off the IPC thread.
    tauri::async_runtime::spawn_blocking(all_devices)
        .await
        .map_err(|e| BAError::new(ErrorCode::Internal, format!("Listing devices failed: {e}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_pattern_opens_and_unknown_ids_do_not() {
        let mut cam = open(TEST_PATTERN).expect("pattern");
        let frame = cam.read_frame().expect("frame");
        assert_eq!((frame.width(), frame.height()), (1280, 720));
        let e = open("v4l2:/dev/video9").err().expect("unknown");
        assert_eq!(e.code, ErrorCode::DeviceNotFound);
        assert_eq!(default_id(), None);
    }
}
