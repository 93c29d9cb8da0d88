//! Bandwidth estimation for one sending connection, sans IO: what the receiver's
//! transport-wide feedback says about each packet (sent when, arrived when or lost) goes in,
//! a target bitrate comes out. The shape is Google congestion control's (a delay-based half,
//! [`trend`], that backs off when the path's queue grows, before loss; a loss-based half for
//! shallow queues; the lower wins), with two changes measured on [`crate::netsim`]: a start
//! that doubles about every half second until the first sign of congestion (the reference
//! probes; plain AIMD takes 20 s to climb from 300 kbit/s to 1.5 Mbit/s), and the same fast
//! climb again after a stable stretch, so capacity that comes back is found within seconds.
//!
//! It implements rtc's `BandwidthEstimator`, so the congestion-control interceptor can drive
//! it on a real connection. rtc-interceptor's own `Gcc` was measured first on the same path
//! and did not hold: it climbed ~4 %/s, let its loss half grow to 10 Mbit/s while nothing was
//! lost, and kept raising its target over a full queue (BENCHMARKS.md).

pub mod trend;

use rtc::interceptor::{BandwidthEstimator, PacketReport};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use trend::{DelayTrend, Usage};

/// How far back the acknowledged rate looks: when the queue grows, what arrived over this
/// long is the path's capacity (a longer window, after a fast climb, would average in the
/// slower rates before it and back off too far).
const ACKED_WINDOW: Duration = Duration::from_millis(250);
/// Backing off sets the target to this fraction of what got through.
const DECREASE: f64 = 0.85;
/// Time for a change to show in the feedback (a round trip and the feedback interval, on
/// the paths a call crosses); one decrease per this.
const RESPONSE: Duration = Duration::from_millis(300);
/// A queue still growing this long after a decrease calls for another.
const DRAIN: Duration = Duration::from_secs(1);
/// Growth while far from the last congestion point, per second.
const MULTIPLICATIVE: f64 = 1.08;
/// Growth in the fast climb, per second (about ×2 every half second).
const FAST: f64 = 4.0;
/// Within this fraction of the rate that last caused congestion, growth is additive (a
/// packet per response time, or this much of the target per second if more).
const NEAR: f64 = 0.2;
const NEAR_GROWTH: f64 = 0.04;
/// A stable stretch this long (no congestion, the target in use) climbs fast again.
const PROBE_AFTER: Duration = Duration::from_secs(4);
/// Loss above this cuts the target; below the low mark it does not restrain it.
const LOSS_HIGH: f64 = 0.10;
const LOSS_LOW: f64 = 0.02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Climbing fast: the start, or a probe after a stable stretch.
    Fast,
    Increase,
    /// Waiting for a draining queue, or for the effect of a decrease.
    Hold,
}

/// How far back the rate that bounds growth looks: long enough that a burst a token bucket
/// let through at once (tens of kilobytes on an access link) does not read as capacity.
const GROWTH_WINDOW: Duration = Duration::from_secs(1);

/// The rate that got through, by arrival time, over a window ([`ACKED_WINDOW`] unless said).
#[derive(Debug)]
struct AckedRate {
    arrivals: VecDeque<(Duration, usize)>,
    window: Duration,
}

impl Default for AckedRate {
    fn default() -> Self {
        Self::over(ACKED_WINDOW)
    }
}

impl AckedRate {
    fn over(window: Duration) -> Self {
        Self {
            arrivals: VecDeque::new(),
            window,
        }
    }

    fn add(&mut self, arrival: Duration, size: usize) {
        self.arrivals.push_back((arrival, size));
        let newest = self.arrivals.back().map_or(arrival, |(a, _)| *a);
        while self
            .arrivals
            .front()
            .is_some_and(|(a, _)| newest.saturating_sub(*a) > self.window)
        {
            self.arrivals.pop_front();
        }
    }

    fn bits_per_second(&self) -> Option<f64> {
        let (first, _) = self.arrivals.front()?;
        let (last, _) = self.arrivals.back()?;
        // A window barely started says little: count at least 100 ms of it.
        let span = last.saturating_sub(*first).max(Duration::from_millis(100));
        let bytes: usize = self.arrivals.iter().map(|(_, s)| s).sum();
        Some(bytes as f64 * 8.0 / span.as_secs_f64())
    }
}

#[derive(Debug)]
pub struct Estimator {
    trend: DelayTrend,
    acked: AckedRate,
    /// The same over [`GROWTH_WINDOW`]: what growth is bounded by.
    sustained: AckedRate,
    phase: Phase,
    /// The delay half's target.
    delay_target: f64,
    /// The loss half's ceiling (`INFINITY`: loss restrains nothing now).
    loss_target: f64,
    loss: f64,
    min: f64,
    max: f64,
    /// The acknowledged rate at the last congestion.
    ceiling: Option<f64>,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    /// The queue that caused the last decrease has drained since (the trend left overuse).
    drained: bool,
    stable_since: Option<Instant>,
}

impl Estimator {
    /// Starting at `initial` bits per second, kept within `min..=max`.
    pub fn new(initial: f64, min: f64, max: f64) -> Self {
        Self {
            trend: DelayTrend::default(),
            acked: AckedRate::default(),
            sustained: AckedRate::over(GROWTH_WINDOW),
            phase: Phase::Fast,
            delay_target: initial.clamp(min, max),
            loss_target: f64::INFINITY,
            loss: 0.0,
            min,
            max,
            ceiling: None,
            last_update: None,
            last_decrease: None,
            drained: true,
            stable_since: None,
        }
    }

    /// The delay half's target, the loss half's ceiling (if loss restrains it now), and the
    /// smoothed loss fraction.
    pub fn halves(&self) -> (f64, Option<f64>, f64) {
        (
            self.delay_target,
            self.loss_target.is_finite().then_some(self.loss_target),
            self.loss,
        )
    }

    /// Whether the path has shown congestion (a growing queue or loss) since the start: until
    /// then the target only follows what is sent and says nothing about the path's capacity.
    pub fn congested(&self) -> bool {
        self.last_decrease.is_some()
    }

    /// The rate that got through recently, if anything did.
    pub fn acknowledged(&self) -> Option<f64> {
        self.acked.bits_per_second()
    }

    fn decrease(&mut self, now: Instant, acked: f64) {
        // One decrease per queue: while the queue that caused the last one drains, the
        // trend still reads overuse, and what got through falls with the sender's cut; a
        // decrease on each reading took a 1 Mbit/s link's estimate to 140 kbit/s. A queue
        // that has not drained in a second is a new one.
        let since = self.last_decrease.map(|t| now.duration_since(t));
        if since.is_some_and(|s| s < RESPONSE || (!self.drained && s < DRAIN)) {
            return;
        }
        self.drained = false;
        // A sender sending far below the target (it just cut what it sends: the queue that
        // made this overuse was filled before) says little about the path with what got
        // through: back off from the target instead, or every cut would read as capacity
        // and the estimate would follow the sender down to its floor.
        let basis = if acked < 0.5 * self.delay_target {
            self.delay_target
        } else {
            acked
        };
        self.delay_target = (basis * DECREASE).min(self.delay_target);
        self.ceiling = Some(basis);
        self.last_decrease = Some(now);
        self.phase = Phase::Hold;
        self.stable_since = None;
    }

    fn increase(&mut self, now: Instant, dt: f64, acked: f64) {
        let target = self.delay_target;
        let near_ceiling = self.ceiling.is_some_and(|c| (target - c).abs() <= NEAR * c);
        let grown = match self.phase {
            Phase::Fast => target * FAST.powf(dt),
            _ if near_ceiling => {
                let packet_per_response = 1200.0 * 8.0 / RESPONSE.as_secs_f64();
                target + packet_per_response.max(NEAR_GROWTH * target) * dt
            }
            _ => target * MULTIPLICATIVE.powf(dt),
        };
        // Never far above what actually gets through: a target the sender does not fill
        // says nothing about the path.
        let limit = match self.phase {
            // The fast start may double what gets through; once the path showed congestion,
            // no growth runs that far ahead of it (a link at its capacity queues slowly, and
            // the estimate had doubled past it before the queue showed).
            Phase::Fast if self.ceiling.is_none() => 2.0 * acked + 20_000.0,
            _ => 1.5 * acked + 10_000.0,
        };
        // The limit stops growth; it does not lower the target: a sender that cut what it
        // sends (layers dropped) would otherwise pull the target down after it.
        self.delay_target = grown.min(limit).max(target);
        // A stable stretch with the target in use: look for more capacity quickly.
        let stable = *self.stable_since.get_or_insert(now);
        if self.phase == Phase::Increase
            && now.duration_since(stable) >= PROBE_AFTER
            && acked >= 0.8 * self.delay_target
            && self.delay_target < self.max
        {
            self.phase = Phase::Fast;
        }
    }

    fn update_loss(&mut self, now: Instant, lost: usize, total: usize, acked: f64) {
        if total == 0 {
            return;
        }
        let batch = lost as f64 / total as f64;
        self.loss = 0.7 * self.loss + 0.3 * batch;
        // Cut on loss in this batch too, not on the smoothed figure alone: after a cut the
        // smoothed loss stays high for a while, and cutting again on it (from what got
        // through, which the sender's own cut lowered) took the estimate to its floor.
        if self.loss > LOSS_HIGH && batch > LOSS_HIGH {
            if self
                .last_decrease
                .is_none_or(|t| now.duration_since(t) >= RESPONSE)
            {
                let target = self.delay_target.min(self.loss_target);
                let basis = if acked < 0.5 * target { target } else { acked };
                let from = self.loss_target.min(basis.max(self.min));
                self.loss_target = from * (1.0 - 0.5 * self.loss);
                // The delay half climbs back from here, not from where it stood: once the
                // loss clears, a stale delay target would send the old overload again.
                self.delay_target = self.delay_target.min(self.loss_target.max(self.min));
                self.last_decrease = Some(now);
                self.phase = Phase::Hold;
                self.stable_since = None;
            }
        } else if self.loss < LOSS_LOW {
            self.loss_target = f64::INFINITY;
        }
    }
}

impl BandwidthEstimator for Estimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let mut lost = 0;
        for r in reports {
            match r.arrival.filter(|_| r.arrived) {
                Some(arrival) => {
                    self.acked.add(arrival, r.size);
                    self.sustained.add(arrival, r.size);
                    self.trend.add(r.departure, arrival);
                }
                None => lost += 1,
            }
        }
        let dt = self
            .last_update
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64().min(1.0));
        self.last_update = Some(now);
        let acked = self.acked.bits_per_second().unwrap_or(self.min);
        let usage = self.trend.usage();
        if usage != Usage::Overusing {
            self.drained = true;
        }
        match usage {
            Usage::Overusing => self.decrease(now, acked),
            Usage::Underusing => {
                self.phase = Phase::Hold;
                self.stable_since = None;
            }
            Usage::Normal => {
                if self.phase == Phase::Hold
                    && self
                        .last_decrease
                        .is_none_or(|t| now.duration_since(t) >= RESPONSE)
                {
                    self.phase = Phase::Increase;
                }
                if self.phase != Phase::Hold {
                    let sustained = self.sustained.bits_per_second().unwrap_or(acked);
                    self.increase(now, dt, acked.min(sustained));
                }
            }
        }
        self.update_loss(now, lost, reports.len(), acked);
    }

    fn target_bitrate(&self) -> f64 {
        self.delay_target
            .min(self.loss_target)
            .clamp(self.min, self.max)
    }
}

/// Where a connection's estimate can be read: the congestion-control interceptor owns the
/// estimator, so [`Reporting`] publishes each new target here.
#[derive(Debug, Clone, Default)]
pub struct EstimateHandle(Arc<(AtomicU64, AtomicBool)>);

/// A connection's estimate as last published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub bps: f64,
    /// The path has shown congestion. Before, the target is capped by what is sent (the
    /// estimator never believes much more than what got through), so a sender that obeyed
    /// it strictly could never grow: a second camera of 1 Mbit/s would wait forever behind
    /// an estimate of 2.
    pub congested: bool,
}

impl EstimateHandle {
    /// The latest estimate (`None` before the first feedback).
    pub fn get(&self) -> Option<Estimate> {
        match self.0.0.load(Ordering::Relaxed) {
            0 => None,
            bits => Some(Estimate {
                bps: f64::from_bits(bits),
                congested: self.0.1.load(Ordering::Relaxed),
            }),
        }
    }

    fn set(&self, bps: f64, congested: bool) {
        self.0.1.store(congested, Ordering::Relaxed);
        self.0.0.store(bps.to_bits(), Ordering::Relaxed);
    }
}

/// An [`Estimator`] that publishes its target to an [`EstimateHandle`] after each feedback.
pub struct Reporting {
    inner: Estimator,
    out: EstimateHandle,
}

impl Reporting {
    pub fn new(inner: Estimator, out: EstimateHandle) -> Self {
        Self { inner, out }
    }
}

impl BandwidthEstimator for Reporting {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        if !reports.is_empty() {
            self.out
                .set(self.inner.target_bitrate(), self.inner.congested());
        }
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }
}

#[cfg(test)]
mod sim_tests;
