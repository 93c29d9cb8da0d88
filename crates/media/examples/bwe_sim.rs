//! The bandwidth estimator (`between_media::bwe`) and rtc-interceptor's `Gcc` on simulated
//! paths (`between_media::netsim`): time to 85 % of the capacity from a 300 kbit/s start,
//! steady-state use of the link, the back-off after the capacity falls to a third (and
//! whether anything was lost first), and the time to 85 % again after it returns.
//! Deterministic: `cargo run --release -p between-media --example bwe_sim`.

use between_media::bwe::Estimator;
use between_media::netsim::{self, Trace};
use rtc::interceptor::{BandwidthEstimator, Gcc};
use std::time::Duration;

fn estimator(name: &str) -> Box<dyn BandwidthEstimator> {
    match name {
        "between bwe" => Box::new(Estimator::new(300_000.0, 50_000.0, 10_000_000.0)),
        _ => Box::new(Gcc::new(300_000.0, 50_000.0, 10_000_000.0)),
    }
}

fn secs(t: Option<f64>, from: f64) -> String {
    t.map_or("never".to_string(), |t| format!("{:.1} s", t - from))
}

fn main() {
    println!(
        "| estimator | capacity | one way | queue | to 85 % | used 10-30 s | after a drop to 1/3 at 30 s: below 1.2x | lost first | back to 85 % after 45 s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for name in ["between bwe", "rtc Gcc"] {
        for (cap, one_way, queue) in [
            (600_000.0, 25, 60_000),
            (1_500_000.0, 25, 60_000),
            (3_000_000.0, 25, 60_000),
            (1_500_000.0, 10, 60_000),
            (1_500_000.0, 100, 120_000),
            (1_000_000.0, 25, 8_000),
        ] {
            let mut est = estimator(name);
            let trace: Trace = netsim::run(
                est.as_mut(),
                60.0,
                queue,
                Duration::from_millis(one_way),
                |t| {
                    if (30.0..45.0).contains(&t) {
                        cap / 3.0
                    } else {
                        cap
                    }
                },
            );
            let reach = trace.first(0.0, |x| x >= 0.85 * cap);
            let used = trace.utilisation(10.0, 30.0);
            let back_off = trace.first(30.0, |x| x < 1.2 * cap / 3.0);
            let lost_first = back_off.is_some_and(|b| trace.drops_at(b) > trace.drops_at(30.0));
            let recovered = trace.first(45.0, |x| x >= 0.85 * cap);
            println!(
                "| {name} | {:.1} Mbit/s | {one_way} ms | {} KB | {} | {:.0} % | {} | {} | {} |",
                cap / 1e6,
                queue / 1000,
                secs(reach, 0.0),
                used * 100.0,
                secs(back_off, 30.0),
                if lost_first { "yes" } else { "no" },
                secs(recovered, 45.0),
            );
        }
    }
}
