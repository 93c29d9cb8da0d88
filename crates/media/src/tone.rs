//! A sine tone source: the synthetic microphone of tests and bots.

use crate::audio::AudioFrame;
use crate::{FRAME_SAMPLES, SAMPLE_RATE};

pub struct ToneSource {
    frequency: f64,
    amplitude: f32,
    next_sample: u64,
}

impl ToneSource {
    pub fn new(frequency: f64, amplitude: f32) -> Self {
        Self {
            frequency,
            amplitude,
            next_sample: 0,
        }
    }

    /// The next 20 ms. The phase is computed from the sample index, so it never drifts.
    pub fn next_frame(&mut self) -> AudioFrame {
        let pts = self.next_sample;
        let step = std::f64::consts::TAU * self.frequency / SAMPLE_RATE as f64;
        let samples = (0..FRAME_SAMPLES as u64)
            .map(|i| ((pts + i) as f64 * step).sin() as f32 * self.amplitude)
            .collect();
        self.next_sample += FRAME_SAMPLES as u64;
        AudioFrame { pts, samples }
    }
}
