//! Call-grade audio processing: echo cancellation (AEC3), noise suppression and automatic gain,
//! through `sonora`, a pure-Rust port of WebRTC's audio processing module. Chosen over the
//! `webrtc-audio-processing` bindings because those need the C++ library at version ≥ 2.1
//! (Debian 12 ships 0.3) or a bundled build that fetches sources at build time; sonora builds
//! everywhere cargo does, with nothing else to install.
//!
//! The far end (what the speaker plays, i.e. the mix of everyone) goes in with
//! [`AudioProcessor::render`], the microphone with [`AudioProcessor::capture`]; both in the
//! engine's 20 ms frames at 48 kHz mono, processed as the two 10 ms halves APM works in.

use crate::FRAME_SAMPLES;
use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, NoiseSuppression,
    NoiseSuppressionLevel,
};
use sonora::{AudioProcessing, Config, StreamConfig};
use thiserror::Error;

const RATE: u32 = 48_000;
const HALF: usize = FRAME_SAMPLES / 2;

#[derive(Debug, Error)]
#[error("audio processing: {0}")]
pub struct ApmError(String);

/// Which stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApmSettings {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
}

impl ApmSettings {
    /// Everything on: what a call with a real microphone and speaker wants.
    pub fn call() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
        }
    }
}

pub struct AudioProcessor {
    apm: AudioProcessing,
    scratch: Vec<f32>,
}

impl AudioProcessor {
    pub fn new(settings: ApmSettings) -> Self {
        let config = Config {
            high_pass_filter: Some(HighPassFilter::default()),
            echo_canceller: settings.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: settings.noise_suppression.then(|| NoiseSuppression {
                level: NoiseSuppressionLevel::High,
                ..Default::default()
            }),
            gain_controller2: settings.gain_control.then(|| GainController2 {
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let stream = StreamConfig::new(RATE, 1);
        let apm = AudioProcessing::builder()
            .config(config)
            .capture_config(stream)
            .render_config(stream)
            .build();
        Self {
            apm,
            scratch: vec![0.0; HALF],
        }
    }

    /// How late the far end reaches the microphone beyond what the two calls' order implies
    /// (device buffers); AEC3 estimates the rest itself.
    pub fn set_delay_ms(&mut self, ms: i32) {
        // A clamped value is still applied; nothing to report.
        let _ = self.apm.set_stream_delay_ms(ms);
    }

    /// 20 ms of what the speaker is about to play.
    pub fn render(&mut self, frame: &[f32]) -> Result<(), ApmError> {
        check(frame)?;
        for half in frame.chunks_exact(HALF) {
            self.apm
                .process_render_f32(&[half], &mut [&mut self.scratch[..]])
                .map_err(|e| ApmError(e.to_string()))?;
        }
        Ok(())
    }

    /// 20 ms of microphone, processed in place.
    pub fn capture(&mut self, frame: &mut [f32]) -> Result<(), ApmError> {
        check(frame)?;
        for half in frame.chunks_exact_mut(HALF) {
            self.scratch.copy_from_slice(half);
            self.apm
                .process_capture_f32(&[&self.scratch[..]], &mut [half])
                .map_err(|e| ApmError(e.to_string()))?;
        }
        Ok(())
    }
}

fn check(frame: &[f32]) -> Result<(), ApmError> {
    if frame.len() == FRAME_SAMPLES {
        Ok(())
    } else {
        Err(ApmError(format!(
            "a frame must be {FRAME_SAMPLES} samples, not {}",
            frame.len()
        )))
    }
}
