//! Sample-rate conversion (rubato's FFT resampler) between a device's rate and the engine's
//! 48 kHz. Takes any number of samples at a time and gives out what is ready.

use rubato::{FftFixedIn, Resampler as _};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("resampler: {0}")]
pub struct ResampleError(String);

pub struct Resampler {
    inner: Option<FftFixedIn<f32>>,
    pending: Vec<f32>,
    chunk: usize,
    out: Vec<Vec<f32>>,
}

impl Resampler {
    /// Mono, `from` Hz to `to` Hz. Equal rates pass through untouched.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        if from == 0 || to == 0 {
            return Err(ResampleError(format!(
                "cannot resample {from} Hz to {to} Hz"
            )));
        }
        // 10 ms chunks: small enough for low latency, large enough for the FFT.
        let chunk = (from as usize / 100).max(16);
        let inner = if from == to {
            None
        } else {
            let r = FftFixedIn::<f32>::new(from as usize, to as usize, chunk, 1, 1)
                .map_err(|e| ResampleError(e.to_string()))?;
            Some(r)
        };
        let out_len = inner.as_ref().map_or(0, |r| r.output_frames_max());
        Ok(Self {
            inner,
            pending: Vec::new(),
            chunk,
            out: vec![vec![0.0; out_len]],
        })
    }

    /// Equal rates: `process` would only copy.
    pub fn is_passthrough(&self) -> bool {
        self.inner.is_none()
    }

    /// The resampler's own delay, in output samples.
    pub fn delay(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Feeds samples; returns every output sample now complete.
    pub fn process(&mut self, input: &[f32]) -> Result<Vec<f32>, ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(input.to_vec());
        };
        self.pending.extend_from_slice(input);
        let mut result = Vec::new();
        let mut used = 0;
        while self.pending.len() - used >= self.chunk {
            let chunk = &self.pending[used..used + self.chunk];
            let (_, written) = inner
                .process_into_buffer(&[chunk], &mut self.out, None)
                .map_err(|e| ResampleError(e.to_string()))?;
            result.extend_from_slice(&self.out[0][..written]);
            used += self.chunk;
        }
        self.pending.drain(..used);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::dominant_frequency;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (std::f64::consts::TAU * freq * i as f64 / rate as f64).sin() as f32 * 0.5)
            .collect()
    }

    #[test]
    fn converts_common_device_rates_keeping_the_pitch() {
        for rate in [44_100u32, 16_000, 96_000] {
            let mut r = Resampler::new(rate, 48_000).expect("resampler");
            let input = sine(1000.0, rate, rate as usize); // one second
            let mut out = Vec::new();
            for piece in input.chunks(333) {
                out.extend(r.process(piece).expect("process"));
            }
            let expected = 48_000.0;
            assert!(
                (out.len() as f64 - expected).abs() < 1500.0,
                "{rate}: {} samples",
                out.len()
            );
            let f = dominant_frequency(&out[4800..], 48_000);
            assert!((f - 1000.0).abs() < 5.0, "{rate}: {f} Hz");
        }
    }

    #[test]
    fn equal_rates_pass_through() {
        let mut r = Resampler::new(48_000, 48_000).expect("resampler");
        assert_eq!(r.process(&[0.1, 0.2]).expect("process"), vec![0.1, 0.2]);
        assert!(Resampler::new(0, 48_000).is_err());
    }
}
