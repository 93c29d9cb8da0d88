//! The join screen's checks: a live level meter for the chosen microphone (before any call)
//! and a short test tone on the chosen speaker.

use crate::state::{AppState, lock};
use between_engine::devices::{Microphone, Speaker, open_blocking};
use between_engine::{AudioSink, BAError, ErrorCode};
use between_media::level::level_of;
use between_media::tone::ToneSource;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tauri::State;
use tauri::ipc::Channel;

/// A running meter; dropping it stops the thread and closes the microphone.
pub struct MicTest {
    stop: Arc<AtomicBool>,
}

impl Drop for MicTest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens the microphone (the default when `device_id` is null) and sends `{level}` (0..1)
/// every 100 ms until `app_mic_test_stop` or another start.
#[tauri::command]
pub async fn app_mic_test_start(
    state: State<'_, AppState>,
    device_id: Option<String>,
    levels: Channel<serde_json::Value>,
) -> Result<(), BAError> {
    lock(&state.mic_test).take();
    let id = device_id.filter(|s| !s.is_empty());
    let mut mic = open_blocking(move || Microphone::open(id.as_deref())).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            let samples = mic.drain_available();
            let rms = if samples.is_empty() {
                0.0
            } else {
                (samples
                    .iter()
                    .map(|&s| f64::from(s) * f64::from(s))
                    .sum::<f64>()
                    / samples.len() as f64)
                    .sqrt()
            };
            if levels.send(json!({"level": level_of(rms)})).is_err() {
                break;
            }
        }
        // The microphone closes here, on this thread (a PulseAudio stream can take a while).
        drop(mic);
    });
    *lock(&state.mic_test) = Some(MicTest { stop });
    Ok(())
}

#[tauri::command]
pub fn app_mic_test_stop(state: State<'_, AppState>) {
    lock(&state.mic_test).take();
}

/// About a second of a gentle 660 Hz tone on the speaker (the default when null).
#[tauri::command]
pub async fn app_play_test_sound(device_id: Option<String>) -> Result<(), BAError> {
    let id = device_id.filter(|s| !s.is_empty());
    let mut speaker = open_blocking(move || Speaker::open(id.as_deref())).await?;
    tauri::async_runtime::spawn_blocking(move || {
        let mut tone = ToneSource::new(660.0, 0.2);
        let start = std::time::Instant::now();
        for n in 0..50u32 {
            let mut frame = tone.next_frame().samples;
            // Fade in and out over 100 ms so the tone does not click.
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (n as usize * frame_len() + i) as f32 / 48_000.0;
                *s *= (t / 0.1).min((1.0 - t) / 0.1).clamp(0.0, 1.0);
            }
            speaker.write(&frame);
            // The speaker plays in real time; write at its pace.
            let due = start + Duration::from_millis(20 * u64::from(n + 1));
            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(100));
    })
    .await
    .map_err(|e| BAError::new(ErrorCode::Internal, format!("The test sound stopped: {e}.")))
}

fn frame_len() -> usize {
    between_media::FRAME_SAMPLES
}
