//! Audio levels for meters and active-speaker detection: a 0..1 level every 100 ms (five
//! 20 ms frames) on a dB scale, and a speaking flag with hysteresis so it does not flicker
//! between words.

/// Frames per reported level: 100 ms, the API's ≥ 10 Hz.
const FRAMES_PER_LEVEL: u32 = 5;
/// -60 dBFS reads 0, 0 dBFS reads 1.
const FLOOR_DB: f64 = -60.0;
/// Speaking starts at this level (-30 dBFS, normal speech into a headset reads -25..-15)...
const START: f32 = 0.5;
/// ...and stops after this many quiet reports in a row below `STOP` (600 ms: a pause between
/// sentences, not between words).
const STOP: f32 = 0.35;
const QUIET_REPORTS: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelReport {
    pub level: f32,
    /// `Some` when the speaking state changed with this report.
    pub speaking_changed: Option<bool>,
}

#[derive(Debug, Default)]
pub struct LevelMeter {
    sum_squares: f64,
    samples: usize,
    frames: u32,
    speaking: bool,
    quiet: u32,
}

impl LevelMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one frame; every fifth returns the level of the last 100 ms.
    pub fn push(&mut self, frame: &[f32]) -> Option<LevelReport> {
        self.sum_squares += frame
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>();
        self.samples += frame.len();
        self.frames += 1;
        if self.frames < FRAMES_PER_LEVEL {
            return None;
        }
        let rms = (self.sum_squares / self.samples.max(1) as f64).sqrt();
        self.sum_squares = 0.0;
        self.samples = 0;
        self.frames = 0;
        let level = level_of(rms);
        let was = self.speaking;
        if level >= START {
            self.speaking = true;
            self.quiet = 0;
        } else if level < STOP {
            self.quiet += 1;
            if self.quiet >= QUIET_REPORTS {
                self.speaking = false;
            }
        }
        Some(LevelReport {
            level,
            speaking_changed: (self.speaking != was).then_some(self.speaking),
        })
    }

    pub fn is_speaking(&self) -> bool {
        self.speaking
    }
}

/// An RMS amplitude on the meter's 0..1 scale.
pub fn level_of(rms: f64) -> f32 {
    if rms <= 0.0 {
        return 0.0;
    }
    let db = 20.0 * rms.log10();
    ((db - FLOOR_DB) / -FLOOR_DB).clamp(0.0, 1.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(amplitude: f32) -> Vec<f32> {
        (0..960)
            .map(|i| amplitude * (i as f32 * 0.0576).sin())
            .collect()
    }

    #[test]
    fn reports_every_100_ms_on_a_db_scale() {
        let mut m = LevelMeter::new();
        for _ in 0..4 {
            assert!(m.push(&frame(0.3)).is_none());
        }
        let r = m.push(&frame(0.3)).expect("a report on the fifth frame");
        // 0.3 peak = 0.212 RMS = -13.5 dBFS → 0.775.
        assert!((r.level - 0.775).abs() < 0.01, "{}", r.level);
        assert_eq!(level_of(0.0), 0.0);
        assert_eq!(level_of(1.0), 1.0);
        assert_eq!(level_of(1e-6), 0.0);
    }

    #[test]
    fn speaking_starts_at_once_and_survives_short_pauses() {
        let mut m = LevelMeter::new();
        let mut changes = Vec::new();
        let mut feed = |m: &mut LevelMeter, amplitude: f32, reports: usize| {
            for _ in 0..reports * 5 {
                if let Some(r) = m.push(&frame(amplitude))
                    && let Some(c) = r.speaking_changed
                {
                    changes.push(c);
                }
            }
        };
        feed(&mut m, 0.0005, 3); // room noise
        feed(&mut m, 0.3, 2); // talking
        feed(&mut m, 0.0, 3); // a 300 ms pause between words
        feed(&mut m, 0.3, 2);
        feed(&mut m, 0.0, 8); // done
        assert_eq!(changes, vec![true, false]);
        assert!(!m.is_speaking());
    }
}
