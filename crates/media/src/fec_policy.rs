//! How much in-band FEC the Opus encoder spends, from the loss the receiver reports.
//!
//! Opus's FEC (LBRR) encodes each frame a second time at a lower rate; the encoder does that
//! work only when told to expect loss, and on a clean network it buys nothing (measured:
//! 15 % expected loss against 0 % costs 40-90 µs per 20 ms frame, `cargo run --release -p
//! between-media --example opus_settings`). So, as WebRTC does, the expected loss follows
//! the fraction lost in the RTCP receiver reports about our audio: smoothed, then rounded to
//! a few levels with hysteresis so one lossy second does not flip the encoder back and forth.
//! No I/O: reports go in, the level to set comes out.

/// Levels the encoder is told (percent), and where each starts (loss in percent, smoothed).
/// A level is left downwards only when the loss falls below this share of where it starts:
/// random loss measured over a second scatters widely (a 10 % link reports 7-13 %), and
/// each change of level costs the encoder a transition.
const LEVELS: [(f64, i32); 4] = [(1.0, 5), (5.0, 10), (10.0, 15), (20.0, 25)];
const LEAVE_BELOW: f64 = 0.7;

/// Weight of a new report in the smoothed loss (reports come every second or so: a burst
/// counts at once, a clean second only slowly brings FEC back down).
const NEW_REPORT_UP: f64 = 0.6;
const NEW_REPORT_DOWN: f64 = 0.15;

#[derive(Debug, Clone)]
pub struct FecPolicy {
    smoothed: f64,
    level: i32,
}

impl Default for FecPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl FecPolicy {
    /// Before any report: no loss expected (the first report comes within a few seconds).
    pub fn new() -> Self {
        Self {
            smoothed: 0.0,
            level: 0,
        }
    }

    /// The expected loss to give the encoder now, percent.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// One receiver report's `fraction_lost` (0-255 of 256). Returns the new level when it
    /// changed.
    pub fn report(&mut self, fraction_lost: u8) -> Option<i32> {
        let loss = f64::from(fraction_lost) * 100.0 / 256.0;
        let weight = if loss > self.smoothed {
            NEW_REPORT_UP
        } else {
            NEW_REPORT_DOWN
        };
        self.smoothed += weight * (loss - self.smoothed);
        let current_start = LEVELS
            .iter()
            .find(|(_, level)| *level == self.level)
            .map_or(0.0, |(start, _)| *start);
        let next = LEVELS
            .iter()
            .rev()
            .find(|(start, _)| self.smoothed >= *start)
            .map_or(0, |(_, level)| *level);
        let next = if next < self.level && self.smoothed >= current_start * LEAVE_BELOW {
            // Not far enough below this level's start to leave it.
            self.level
        } else {
            next
        };
        (next != self.level).then(|| {
            self.level = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fraction(percent: f64) -> u8 {
        (percent * 256.0 / 100.0).round() as u8
    }

    #[test]
    fn a_clean_network_sends_no_fec() {
        let mut p = FecPolicy::new();
        for _ in 0..30 {
            assert_eq!(p.report(0), None);
        }
        assert_eq!(p.level(), 0);
    }

    #[test]
    fn steady_loss_gets_fec_at_the_first_report() {
        let mut p = FecPolicy::new();
        assert_eq!(p.report(fraction(10.0)), Some(10));
        let mut p = FecPolicy::new();
        assert_eq!(p.report(fraction(30.0)), Some(15));
        assert_eq!(p.report(fraction(30.0)), Some(25));
    }

    #[test]
    fn fec_goes_away_slowly_after_loss_stops_and_does_not_flap() {
        let mut p = FecPolicy::new();
        for _ in 0..5 {
            p.report(fraction(12.0));
        }
        assert_eq!(p.level(), 15);
        // Loss near a boundary, above and below by a little: no change.
        for loss in [9.8, 10.2, 7.5, 13.0, 8.0, 12.5, 7.2] {
            assert_eq!(p.report(fraction(loss)), None, "flapped at {loss}");
        }
        // Clean from here on: down, level by level, within a minute of reports.
        let mut seen = vec![p.level()];
        for _ in 0..60 {
            if let Some(level) = p.report(0) {
                seen.push(level);
            }
        }
        assert_eq!(seen.last(), Some(&0), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[1] < w[0]), "{seen:?}");
        // One clean report after a lossy one does not drop FEC at once.
        let mut p = FecPolicy::new();
        p.report(fraction(12.0));
        assert_eq!(p.report(0), None);
    }
}
