//! The delay half of the estimate: is the path's queue growing? Packets are grouped by send
//! time (a burst of packets leaves within a few milliseconds and is one measurement), each
//! group's arrival spread is compared with its send spread, and the accumulated difference is
//! smoothed and fitted with a line over a window: its slope is how fast the queue grows. An
//! adaptive threshold turns the slope into overuse, underuse or normal (the detector of
//! Google congestion control, draft-ietf-rmcat-gcc, with its published constants).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Packets sent within this of a group's first are one group.
const BURST: Duration = Duration::from_millis(5);
/// Groups in the line fit.
const WINDOW: usize = 20;
/// Smoothing of the accumulated delay.
const SMOOTHING: f64 = 0.9;
/// Scales the slope to the threshold's units (as the reference detector does).
const GAIN: f64 = 4.0;
/// The threshold's bounds and how fast it follows the trend, down and up (per millisecond).
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const K_DOWN: f64 = 0.039;
const K_UP: f64 = 0.0087;
/// How long the trend must stay over the threshold to count as overuse.
const OVERUSE_TIME: Duration = Duration::from_millis(10);

/// What the path's queue is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Normal,
    /// Growing: the sender is above the capacity.
    Overusing,
    /// Draining.
    Underusing,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_sent: Instant,
    last_sent: Instant,
    last_arrival: Duration,
}

#[derive(Debug)]
pub struct DelayTrend {
    current: Option<Group>,
    previous: Option<Group>,
    /// The first group's arrival, where the fit's time axis starts.
    origin: Option<Duration>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    /// (arrival ms, smoothed accumulated delay ms) of the last groups.
    points: VecDeque<(f64, f64)>,
    deltas: usize,
    threshold: f64,
    last_threshold_update: Option<Duration>,
    over_since: Option<Duration>,
    previous_trend: f64,
    usage: Usage,
}

impl Default for DelayTrend {
    fn default() -> Self {
        Self {
            current: None,
            previous: None,
            origin: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            points: VecDeque::with_capacity(WINDOW + 1),
            deltas: 0,
            threshold: 12.5,
            last_threshold_update: None,
            over_since: None,
            previous_trend: 0.0,
            usage: Usage::Normal,
        }
    }
}

impl DelayTrend {
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// One packet that arrived: sent at `sent`, arrived at `arrival` on the receiver's clock.
    /// Packets come in send order.
    pub fn add(&mut self, sent: Instant, arrival: Duration) -> Usage {
        match &mut self.current {
            Some(g) if sent.saturating_duration_since(g.first_sent) <= BURST => {
                g.last_sent = g.last_sent.max(sent);
                g.last_arrival = g.last_arrival.max(arrival);
                return self.usage;
            }
            _ => {}
        }
        let finished = self.current.replace(Group {
            first_sent: sent,
            last_sent: sent,
            last_arrival: arrival,
        });
        if let Some(finished) = finished {
            if let Some(prev) = self.previous {
                self.compare(prev, finished);
            }
            self.previous = Some(finished);
        }
        self.usage
    }

    fn compare(&mut self, prev: Group, group: Group) {
        let send_delta = group.last_sent.saturating_duration_since(prev.last_sent);
        let arrival_delta_ms =
            group.last_arrival.as_secs_f64() * 1000.0 - prev.last_arrival.as_secs_f64() * 1000.0;
        let delta_ms = arrival_delta_ms - send_delta.as_secs_f64() * 1000.0;
        self.deltas += 1;
        self.accumulated_ms += delta_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        let origin = *self.origin.get_or_insert(group.last_arrival);
        let x = (group.last_arrival.saturating_sub(origin)).as_secs_f64() * 1000.0;
        self.points.push_back((x, self.smoothed_ms));
        if self.points.len() > WINDOW {
            self.points.pop_front();
        }
        if self.points.len() < WINDOW {
            return;
        }
        let slope = fit(&self.points).unwrap_or(0.0);
        let trend = self.deltas.min(60) as f64 * slope * GAIN;
        self.detect(trend, group.last_arrival, send_delta.as_secs_f64() * 1000.0);
        self.adapt_threshold(trend, group.last_arrival);
    }

    fn detect(&mut self, trend: f64, now: Duration, send_delta_ms: f64) {
        if trend > self.threshold {
            let since = *self
                .over_since
                .get_or_insert(now.saturating_sub(Duration::from_secs_f64(send_delta_ms / 2000.0)));
            if now.saturating_sub(since) >= OVERUSE_TIME && trend >= self.previous_trend {
                self.usage = Usage::Overusing;
            }
        } else {
            self.over_since = None;
            self.usage = if trend < -self.threshold {
                Usage::Underusing
            } else {
                Usage::Normal
            };
        }
        self.previous_trend = trend;
    }

    fn adapt_threshold(&mut self, trend: f64, now: Duration) {
        let last = self.last_threshold_update.replace(now).unwrap_or(now);
        // A spike far above the threshold (a route change) does not drag it up.
        if trend.abs() > self.threshold + 15.0 {
            return;
        }
        let k = if trend.abs() < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let dt_ms = (now.saturating_sub(last).as_secs_f64() * 1000.0).min(100.0);
        self.threshold += k * (trend.abs() - self.threshold) * dt_ms;
        self.threshold = self.threshold.clamp(THRESHOLD_MIN, THRESHOLD_MAX);
    }
}

/// Least-squares slope of the points.
fn fit(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets every `every` ms, arriving with `extra` ms more delay each (0: a steady path).
    fn feed(trend: &mut DelayTrend, n: usize, every: u64, extra: f64) -> Usage {
        let t0 = Instant::now();
        let mut usage = Usage::Normal;
        for i in 0..n {
            let sent = t0 + Duration::from_millis(i as u64 * every);
            let arrival =
                Duration::from_secs_f64((i as f64 * every as f64 + i as f64 * extra) / 1000.0);
            usage = trend.add(sent, arrival);
        }
        usage
    }

    #[test]
    fn a_steady_path_is_normal() {
        assert_eq!(
            feed(&mut DelayTrend::default(), 200, 10, 0.0),
            Usage::Normal
        );
    }

    #[test]
    fn a_growing_queue_is_overuse_and_a_draining_one_underuse() {
        assert_eq!(
            feed(&mut DelayTrend::default(), 200, 10, 1.0),
            Usage::Overusing
        );
        assert_eq!(
            feed(&mut DelayTrend::default(), 200, 10, -1.0),
            Usage::Underusing
        );
    }

    #[test]
    fn packets_of_one_burst_are_one_measurement() {
        let mut t = DelayTrend::default();
        let t0 = Instant::now();
        for i in 0..5 {
            t.add(
                t0 + Duration::from_millis(i),
                Duration::from_millis(50 + i * 10),
            );
        }
        assert_eq!(t.deltas, 0, "one group, nothing compared yet");
    }
}
