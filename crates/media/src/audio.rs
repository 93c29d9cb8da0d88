//! Audio frames: 48 kHz mono `f32` samples in [-1, 1].

use crate::FRAME_SAMPLES;

/// One frame of audio, normally [`FRAME_SAMPLES`] long.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    /// Index of the first sample since the stream began (48 kHz units).
    pub pts: u64,
    pub samples: Vec<f32>,
}

impl AudioFrame {
    pub fn silence(pts: u64) -> Self {
        Self {
            pts,
            samples: vec![0.0; FRAME_SAMPLES],
        }
    }

    /// Root-mean-square level, 0 to 1.
    pub fn rms(&self) -> f32 {
        rms(&self.samples)
    }
}

pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f32 = samples.iter().map(|s| s * s).sum();
    (sum / samples.len() as f32).sqrt()
}

/// `f32` to 16-bit PCM, clamped.
pub fn to_i16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16
}

pub fn from_i16(sample: i16) -> f32 {
    sample as f32 / i16::MAX as f32
}
