//! Cameras the app offers. Real cameras (nokhwa) are not wired yet (issue 4); until then the
//! menu offers a synthetic test pattern, clearly labelled, so video works end to end on any
//! machine (and in the tests). Everything goes through `list`/`open`, so real cameras slot in
//! here without touching the commands.

use between_engine::devices::{DeviceKind, MediaDeviceInfo};
use between_engine::media::sources::PatternVideo;
use between_engine::{BAError, ErrorCode, VideoSource};
use serde_json::{Value, json};

/// The synthetic camera's ID.
pub const TEST_PATTERN: &str = "between:test-pattern";

/// The cameras there are now.
pub fn list() -> Vec<MediaDeviceInfo> {
    vec![MediaDeviceInfo {
        device_id: TEST_PATTERN.to_string(),
        kind: DeviceKind::VideoInput,
        label: "Test pattern (synthetic camera)".to_string(),
        // Never the default: a person without a camera should not send a test pattern
        // without choosing it.
        is_default: false,
    }]
}

/// The camera a call starts with when the user has not chosen: the system's default real
/// camera (none yet).
pub fn default_id() -> Option<String> {
    list()
        .into_iter()
        .find(|c| c.is_default)
        .map(|c| c.device_id)
}

/// Opens a camera at 1280x720@30 (or the closest it offers).
pub fn open(id: &str) -> Result<Box<dyn VideoSource>, BAError> {
    match id {
        TEST_PATTERN => PatternVideo::new(1280, 720, 30.0)
            .map(|p| Box::new(p) as Box<dyn VideoSource>)
            .map_err(|e| BAError::new(ErrorCode::Internal, e)),
        _ => Err(BAError::new(
            ErrorCode::DeviceNotFound,
            "That camera was not found. Plug it in or pick another in the device menu.",
        )),
    }
}

/// Every device for the menus: microphones and speakers from the engine, then cameras.
pub fn all_devices() -> Value {
    let snapshot = between_engine::devices::snapshot();
    let mut devices = snapshot.devices;
    devices.extend(list());
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
