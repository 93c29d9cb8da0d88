//! A network path, simulated, for estimator tests and benchmarks: packets cross a bottleneck of
//! a given capacity with a finite queue (what `tc tbf` makes of a link: a rate, a bucket, and
//! drops when the queue is full), then a one-way delay. A [`Path`] also plays the receiver's
//! part of transport-wide congestion control: it reports, at an interval, which packets
//! arrived when, and the report reaches the sender after the reverse delay. Pure: every instant
//! is passed in, so a trajectory is the same on every run.

use rtc::interceptor::{BandwidthEstimator, PacketReport};
use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The link's bottleneck: a rate and a queue in front of it.
#[derive(Debug, Clone)]
pub struct Bottleneck {
    capacity_bps: f64,
    queue_limit_bytes: usize,
    /// When each packet still in the queue leaves it, and its size.
    queued: VecDeque<(Instant, usize)>,
    busy_until: Option<Instant>,
}

impl Bottleneck {
    pub fn new(capacity_bps: f64, queue_limit_bytes: usize) -> Self {
        Self {
            capacity_bps,
            queue_limit_bytes,
            queued: VecDeque::new(),
            busy_until: None,
        }
    }

    /// A new capacity for packets that enter from now on.
    pub fn set_capacity(&mut self, capacity_bps: f64) {
        self.capacity_bps = capacity_bps;
    }

    pub fn capacity(&self) -> f64 {
        self.capacity_bps
    }

    /// Bytes waiting at `now`.
    pub fn queued_bytes(&mut self, now: Instant) -> usize {
        while self
            .queued
            .front()
            .is_some_and(|(leaves, _)| *leaves <= now)
        {
            self.queued.pop_front();
        }
        self.queued.iter().map(|(_, size)| size).sum()
    }

    /// A packet of `size` bytes enters at `now`: when it leaves the bottleneck, or `None` if
    /// the queue had no room for it (dropped).
    pub fn enter(&mut self, now: Instant, size: usize) -> Option<Instant> {
        if self.queued_bytes(now) + size > self.queue_limit_bytes {
            return None;
        }
        let start = self.busy_until.map_or(now, |b| b.max(now));
        let leaves = start + Duration::from_secs_f64(size as f64 * 8.0 / self.capacity_bps);
        self.busy_until = Some(leaves);
        self.queued.push_back((leaves, size));
        Some(leaves)
    }
}

struct InFlight {
    id: u64,
    size: usize,
    sent: Instant,
    arrives: Option<Instant>,
}

/// A sender's path to a receiver and the receiver's feedback back: packets in, transport-wide
/// reports out (as the congestion-control interceptor would have resolved them).
pub struct Path {
    pub bottleneck: Bottleneck,
    one_way: Duration,
    feedback_interval: Duration,
    next_feedback: Instant,
    /// Sent, not reported yet, in send order.
    in_flight: VecDeque<InFlight>,
    /// Reports made, with when they reach the sender.
    reports: VecDeque<(Instant, Vec<PacketReport>)>,
    next_id: u64,
    epoch: Instant,
    /// Packets the queue dropped so far.
    pub dropped: u64,
}

impl Path {
    pub fn new(now: Instant, bottleneck: Bottleneck, one_way: Duration) -> Self {
        Self {
            bottleneck,
            one_way,
            feedback_interval: Duration::from_millis(50),
            next_feedback: now,
            in_flight: VecDeque::new(),
            reports: VecDeque::new(),
            next_id: 0,
            epoch: now,
            dropped: 0,
        }
    }

    /// Sends a packet of `size` bytes at `now`.
    pub fn send(&mut self, now: Instant, size: usize) {
        let arrives = self.bottleneck.enter(now, size).map(|t| t + self.one_way);
        if arrives.is_none() {
            self.dropped += 1;
        }
        self.in_flight.push_back(InFlight {
            id: self.next_id,
            size,
            sent: now,
            arrives,
        });
        self.next_id += 1;
    }

    /// Moves the path on to `now`: the receiver reports what arrived since its last report
    /// (a packet missing while a later one arrived is reported lost), every feedback interval.
    /// Returns the reports that reached the sender by `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<PacketReport> {
        while self.next_feedback <= now {
            let at = self.next_feedback;
            self.report(at);
            self.next_feedback += self.feedback_interval;
        }
        let mut out = Vec::new();
        while self
            .reports
            .front()
            .is_some_and(|(reaches, _)| *reaches <= now)
        {
            if let Some((_, batch)) = self.reports.pop_front() {
                out.extend(batch);
            }
        }
        out
    }

    /// The receiver's report at `at`: every packet up to the last one that arrived by then.
    fn report(&mut self, at: Instant) {
        let Some(last) = self
            .in_flight
            .iter()
            .rposition(|p| p.arrives.is_some_and(|a| a <= at))
        else {
            return;
        };
        let batch: Vec<PacketReport> = self
            .in_flight
            .drain(..=last)
            .map(|p| {
                // Arrivals after the report's instant are not known yet: reordering aside
                // (there is none here), only drops are missing.
                let arrival = p.arrives.filter(|a| *a <= at);
                PacketReport {
                    ssrc: 1,
                    id: p.id,
                    rtp_sequence_number: p.id as u16,
                    is_twcc: true,
                    twcc_sequence_number: p.id as u16,
                    size: p.size,
                    arrived: arrival.is_some(),
                    departure: p.sent,
                    arrival: arrival.map(|a| a - self.epoch),
                    ecn: Ecn::NotEct,
                }
            })
            .collect();
        self.reports.push_back((at + self.one_way, batch));
    }
}

/// What a run of [`run`] saw every 100 ms: (seconds, target, capacity, packets dropped so far).
pub struct Trace(pub Vec<(f64, f64, f64, u64)>);

impl Trace {
    /// The target at `secs`.
    pub fn target_at(&self, secs: f64) -> f64 {
        self.0
            .iter()
            .find(|(t, ..)| *t >= secs)
            .map_or(0.0, |s| s.1)
    }

    /// The first time at or after `from` the target satisfies `ok`.
    pub fn first(&self, from: f64, ok: impl Fn(f64) -> bool) -> Option<f64> {
        self.0
            .iter()
            .find(|(t, target, ..)| *t >= from && ok(*target))
            .map(|s| s.0)
    }

    /// Packets dropped by `secs`.
    pub fn drops_at(&self, secs: f64) -> u64 {
        self.0.iter().find(|(t, ..)| *t >= secs).map_or(0, |s| s.3)
    }

    /// The mean of min(target, capacity) over `from..to`, as a fraction of the capacity.
    pub fn utilisation(&self, from: f64, to: f64) -> f64 {
        let window: Vec<_> = self
            .0
            .iter()
            .filter(|(t, ..)| *t >= from && *t < to)
            .collect();
        let sum: f64 = window
            .iter()
            .map(|(_, target, cap, _)| target.min(*cap) / cap)
            .sum();
        sum / window.len().max(1) as f64
    }
}

/// `secs` seconds of a sender that sends 1200-byte packets at whatever `estimator` says, on a
/// path whose bottleneck holds `queue` bytes and has the capacity `capacity(t)` gives, `one_way`
/// each way, the receiver reporting every 50 ms. A millisecond a step.
pub fn run(
    estimator: &mut dyn BandwidthEstimator,
    secs: f64,
    queue: usize,
    one_way: Duration,
    capacity: impl Fn(f64) -> f64,
) -> Trace {
    const PACKET: usize = 1200;
    let t0 = Instant::now();
    let mut path = Path::new(t0, Bottleneck::new(capacity(0.0), queue), one_way);
    let mut trace = Vec::new();
    let (mut now, mut next_send, mut next_sample) = (t0, t0, t0);
    while now < t0 + Duration::from_secs_f64(secs) {
        let t = (now - t0).as_secs_f64();
        path.bottleneck.set_capacity(capacity(t));
        while next_send <= now {
            path.send(next_send, PACKET);
            let target = estimator.target_bitrate().max(1.0);
            next_send += Duration::from_secs_f64(PACKET as f64 * 8.0 / target);
        }
        let reports = path.poll(now);
        estimator.on_reports(now, &reports);
        if now >= next_sample {
            trace.push((t, estimator.target_bitrate(), capacity(t), path.dropped));
            next_sample += Duration::from_millis(100);
        }
        now += Duration::from_millis(1);
    }
    Trace(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bottleneck_spaces_packets_at_its_rate_and_drops_when_full() {
        let t0 = Instant::now();
        let mut b = Bottleneck::new(1_000_000.0, 3_000);
        // 1000 bytes at 1 Mbit/s: 8 ms each.
        assert_eq!(b.enter(t0, 1000), Some(t0 + Duration::from_millis(8)));
        assert_eq!(b.enter(t0, 1000), Some(t0 + Duration::from_millis(16)));
        assert_eq!(b.enter(t0, 1000), Some(t0 + Duration::from_millis(24)));
        assert_eq!(b.enter(t0, 1000), None, "the queue is full");
        let later = t0 + Duration::from_millis(8);
        assert_eq!(b.queued_bytes(later), 2000);
        assert_eq!(b.enter(later, 1000), Some(t0 + Duration::from_millis(32)));
    }

    #[test]
    fn the_receiver_reports_arrivals_and_drops_after_the_reverse_delay() {
        let t0 = Instant::now();
        let mut path = Path::new(
            t0,
            Bottleneck::new(1_000_000.0, 1_500),
            Duration::from_millis(20),
        );
        path.send(t0, 1000);
        path.send(t0, 1000); // no room: dropped
        path.send(t0 + Duration::from_millis(8), 1000);
        assert!(path.poll(t0 + Duration::from_millis(60)).is_empty());
        // The report at 50 ms (both kept packets arrived by 36 ms) reaches the sender at 70.
        let got = path.poll(t0 + Duration::from_millis(70));
        assert_eq!(got.len(), 3);
        assert_eq!(
            got.iter().map(|r| r.arrived).collect::<Vec<_>>(),
            vec![true, false, true]
        );
        assert_eq!(got[0].arrival, Some(Duration::from_millis(28)));
        assert_eq!(path.dropped, 1);
    }
}
