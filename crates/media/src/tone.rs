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

/// Frame number `frame` (20 ms at 48 kHz) of a speech-like signal for benchmarks: a voice at
/// `voice` Hz with two harmonics under a 4 Hz syllable envelope, plus a little noise. Not
/// `talking`: the noise alone (a quiet room, which an encoder sends as DTX).
pub fn speechlike(frame: u64, voice: f64, talking: bool) -> Vec<f32> {
    let voice_gain = if talking { 0.15 } else { 0.0 };
    let mut noise = frame.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..FRAME_SAMPLES)
        .map(|i| {
            let t = (frame as f64 * FRAME_SAMPLES as f64 + i as f64) / f64::from(SAMPLE_RATE);
            let envelope = (0.5 + 0.5 * (std::f64::consts::TAU * 4.0 * t).sin()).powi(2);
            let v = (std::f64::consts::TAU * voice * t).sin()
                + 0.5 * (std::f64::consts::TAU * 2.0 * voice * t).sin()
                + 0.25 * (std::f64::consts::TAU * 3.0 * voice * t).sin();
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let n = (noise as f64 / u64::MAX as f64 - 0.5) * 0.01;
            (voice_gain * envelope * v + n) as f32
        })
        .collect()
}
