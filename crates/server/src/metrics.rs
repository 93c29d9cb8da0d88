//! Counters for `/metrics`, in the Prometheus text format. Written by hand: a handful of
//! atomics does not justify a metrics framework.

use between_protocol::ErrorCode;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub connections_total: AtomicU64,
    pub connections_refused_total: AtomicU64,
    pub messages_in_total: AtomicU64,
    pub messages_out_total: AtomicU64,
    pub joins_total: AtomicU64,
    pub resumes_total: AtomicU64,
    pub heartbeat_timeouts_total: AtomicU64,
    pub slow_consumers_total: AtomicU64,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
}

/// Gauges read from the live state at scrape time.
pub struct Gauges {
    pub rooms: usize,
    pub peers: usize,
    pub connections: usize,
    pub media_connections: usize,
    pub rtp: RtpGauges,
    pub replay_misses: u64,
    /// The one-port edge, when configured.
    pub edge: Option<EdgeGauges>,
}

/// The SFU's packet counters.
#[derive(Default)]
pub struct RtpGauges {
    pub received: u64,
    pub forwarded: u64,
    pub refused: u64,
    pub dropped: u64,
}

pub struct EdgeGauges {
    pub udp_paths: usize,
    pub tcp_paths: usize,
    pub udp_paths_opened: u64,
    pub tcp_paths_opened: u64,
    pub unroutable: u64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reject(&self, code: ErrorCode) {
        if let Ok(mut map) = self.rejections.lock() {
            *map.entry(code.as_str()).or_default() += 1;
        }
    }

    #[cfg(test)]
    pub fn rejections(&self, code: ErrorCode) -> u64 {
        self.rejections
            .lock()
            .map(|m| m.get(code.as_str()).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut s = String::with_capacity(2048);
        let gauge = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |s: &mut String, name: &str, help: &str, c: &AtomicU64| {
            let v = c.load(Ordering::Relaxed);
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        gauge(
            &mut s,
            "between_rooms",
            "Rooms with at least one participant.",
            g.rooms as u64,
        );
        gauge(
            &mut s,
            "between_peers",
            "Participants, attached or waiting to resume.",
            g.peers as u64,
        );
        gauge(
            &mut s,
            "between_connections",
            "Open WebSocket connections.",
            g.connections as u64,
        );
        gauge(
            &mut s,
            "between_media_connections",
            "Open WebRTC connections of the SFU.",
            g.media_connections as u64,
        );
        counter(
            &mut s,
            "between_connections_total",
            "WebSocket connections accepted.",
            &self.connections_total,
        );
        counter(
            &mut s,
            "between_connections_refused_total",
            "Connections refused: too many from one address.",
            &self.connections_refused_total,
        );
        counter(
            &mut s,
            "between_messages_in_total",
            "Signaling messages received.",
            &self.messages_in_total,
        );
        counter(
            &mut s,
            "between_messages_out_total",
            "Signaling messages sent (one per recipient).",
            &self.messages_out_total,
        );
        counter(
            &mut s,
            "between_joins_total",
            "Successful joins, resumes included.",
            &self.joins_total,
        );
        counter(
            &mut s,
            "between_resumes_total",
            "Joins that resumed a detached participant.",
            &self.resumes_total,
        );
        counter(
            &mut s,
            "between_heartbeat_timeouts_total",
            "Connections closed for missing pongs.",
            &self.heartbeat_timeouts_total,
        );
        counter(
            &mut s,
            "between_slow_consumers_total",
            "Connections closed for not reading.",
            &self.slow_consumers_total,
        );
        let _ = writeln!(
            s,
            "# HELP between_replay_misses_total Data messages a resuming client missed (outside the replay window).\n# TYPE between_replay_misses_total counter\nbetween_replay_misses_total {}",
            g.replay_misses
        );
        for (name, help, v) in [
            (
                "between_rtp_received_total",
                "RTP packets the SFU received from publishers.",
                g.rtp.received,
            ),
            (
                "between_rtp_forwarded_total",
                "RTP packets the SFU wrote to subscribers' connections.",
                g.rtp.forwarded,
            ),
            (
                "between_rtp_refused_total",
                "RTP packets a subscriber's connection cannot carry (no matching codec); each such stream is logged once.",
                g.rtp.refused,
            ),
            (
                "between_rtp_dropped_total",
                "RTP packets not sent for a passing reason: the subscriber's connection not negotiated yet or closing, the subscriber behind.",
                g.rtp.dropped,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        if let Some(e) = &g.edge {
            let _ = writeln!(
                s,
                "# HELP between_edge_paths Client paths open through the media port, by transport.\n# TYPE between_edge_paths gauge\nbetween_edge_paths{{transport=\"udp\"}} {}\nbetween_edge_paths{{transport=\"tcp\"}} {}\n# HELP between_edge_paths_opened_total Client paths opened through the media port, by transport.\n# TYPE between_edge_paths_opened_total counter\nbetween_edge_paths_opened_total{{transport=\"udp\"}} {}\nbetween_edge_paths_opened_total{{transport=\"tcp\"}} {}\n# HELP between_edge_unroutable_total Packets at the media port that matched no connection (dropped).\n# TYPE between_edge_unroutable_total counter\nbetween_edge_unroutable_total {}",
                e.udp_paths, e.tcp_paths, e.udp_paths_opened, e.tcp_paths_opened, e.unroutable
            );
        }
        let _ = writeln!(
            s,
            "# HELP between_rejections_total Messages rejected, by error code.\n# TYPE between_rejections_total counter"
        );
        if let Ok(map) = self.rejections.lock() {
            for (code, n) in map.iter() {
                let _ = writeln!(s, "between_rejections_total{{code=\"{code}\"}} {n}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_labelled_rejections() {
        let m = Metrics::default();
        Metrics::inc(&m.joins_total);
        m.reject(ErrorCode::InvalidApiKey);
        m.reject(ErrorCode::InvalidApiKey);
        let text = m.render(&Gauges {
            rooms: 2,
            peers: 5,
            connections: 4,
            media_connections: 6,
            rtp: RtpGauges::default(),
            replay_misses: 0,
            edge: None,
        });
        assert!(text.contains("\nbetween_rooms 2\n"), "{text}");
        assert!(text.contains("\nbetween_peers 5\n"), "{text}");
        assert!(text.contains("\nbetween_media_connections 6\n"), "{text}");
        assert!(text.contains("\nbetween_joins_total 1\n"), "{text}");
        assert!(
            text.contains("between_rejections_total{code=\"invalid_api_key\"} 2"),
            "{text}"
        );
        assert_eq!(m.rejections(ErrorCode::InvalidApiKey), 2);
    }
}
