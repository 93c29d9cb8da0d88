//! The estimator on a simulated path (`netsim::run`), with a fake clock: a sender paced at
//! the target, a bottleneck whose capacity the test changes, 25 ms each way, the receiver's
//! feedback every 50 ms.

use super::*;
use crate::netsim::{self, Trace};

fn simulate(secs: f64, queue: usize, capacity: impl Fn(f64) -> f64) -> Trace {
    let mut estimator = Estimator::new(300_000.0, 50_000.0, 5_000_000.0);
    netsim::run(
        &mut estimator,
        secs,
        queue,
        Duration::from_millis(25),
        capacity,
    )
}

#[test]
fn converges_to_most_of_a_fixed_capacity_within_five_seconds() {
    for capacity in [600_000.0, 1_500_000.0, 3_000_000.0] {
        let trace = simulate(20.0, 60_000, |_| capacity);
        let at5 = trace.target_at(5.0);
        assert!(
            at5 >= 0.85 * capacity,
            "{capacity}: {at5:.0} bit/s after 5 s"
        );
        let used = trace.utilisation(5.0, 20.0);
        assert!(
            used >= 0.85,
            "{capacity}: {:.0} % used at steady state",
            used * 100.0
        );
    }
}

#[test]
fn backs_off_when_the_queue_grows_before_anything_is_lost() {
    let trace = simulate(14.0, 120_000, |t| {
        if t < 10.0 { 1_500_000.0 } else { 500_000.0 }
    });
    let drops_before = trace.drops_at(10.0);
    let backed_off = trace
        .first(10.0, |target| target < 600_000.0)
        .expect("backs off");
    assert!(
        trace.drops_at(backed_off) == drops_before,
        "a packet was lost before the back-off at {backed_off:.1} s"
    );
    assert!(backed_off < 11.5, "backed off only at {backed_off:.1} s");
}

#[test]
fn recovers_within_ten_seconds_after_capacity_returns() {
    let trace = simulate(32.0, 60_000, |t| {
        if (10.0..20.0).contains(&t) {
            500_000.0
        } else {
            1_500_000.0
        }
    });
    assert!(trace.target_at(19.5) < 600_000.0, "followed the drop");
    let back = trace
        .first(20.0, |target| target >= 0.85 * 1_500_000.0)
        .expect("recovers");
    assert!(back <= 30.0, "back at {back:.1} s");
}

#[test]
fn a_shallow_queue_is_held_by_loss() {
    // 8 KB of queue at 1 Mbit/s is 64 ms: the delay half sees little, loss must hold it.
    let trace = simulate(20.0, 8_000, |_| 1_000_000.0);
    let used = trace.utilisation(5.0, 20.0);
    assert!(used >= 0.6, "{:.0} % used", used * 100.0);
    assert!(
        trace
            .0
            .iter()
            .filter(|s| s.0 >= 5.0)
            .all(|s| s.1 <= 2_500_000.0),
        "the target stays near the capacity"
    );
}

/// Reports of packets sent every `gap` from `from`, each `size` bytes, each arriving
/// `delay(i)` after it was sent.
fn reports(
    epoch: Instant,
    from: Duration,
    n: usize,
    gap: Duration,
    size: usize,
    delay: impl Fn(usize) -> Duration,
) -> Vec<PacketReport> {
    (0..n)
        .map(|i| {
            let sent = from + gap * i as u32;
            PacketReport {
                ssrc: 1,
                id: i as u64,
                rtp_sequence_number: i as u16,
                is_twcc: true,
                twcc_sequence_number: i as u16,
                size,
                arrived: true,
                departure: epoch + sent,
                arrival: Some(sent + delay(i)),
                ecn: rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn::NotEct,
            }
        })
        .collect()
}

#[test]
fn a_sender_that_cut_its_rate_is_not_followed_down_while_the_queue_drains() {
    let epoch = Instant::now();
    let mut e = Estimator::new(1_000_000.0, 60_000.0, 5_000_000.0);
    // 1 Mbit/s (1000-byte packets every 8 ms) into a queue that grows 4 ms a packet.
    let mut t = Duration::ZERO;
    for _ in 0..5 {
        let batch = reports(epoch, t, 12, Duration::from_millis(8), 1000, |i| {
            Duration::from_millis(20 + 4 * i as u64) + t / 2
        });
        t += Duration::from_millis(100);
        e.on_reports(epoch + t, &batch);
    }
    assert!(e.congested(), "the growing queue was seen");
    let first = e.target_bitrate();
    assert!(first < 1_000_000.0, "{first}");
    // The sender cuts to a tenth; the queue still reads as growing for 600 ms.
    for _ in 0..6 {
        let batch = reports(epoch, t, 2, Duration::from_millis(40), 1000, |i| {
            Duration::from_millis(300 + 30 * i as u64) + t / 2
        });
        t += Duration::from_millis(100);
        e.on_reports(epoch + t, &batch);
    }
    let after = e.target_bitrate();
    assert!(
        after >= 0.8 * first,
        "followed the sender's cut down: {first:.0} then {after:.0}"
    );
}
