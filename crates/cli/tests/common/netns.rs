//! A network namespace joined to this one by a veth pair, for tests of paths that are not
//! clean: nftables drops (the kernel here has no netem), `tc tbf` caps. Needs root, `ip`,
//! `nft` and `tc`; scripts/test.sh installs them. Removed on drop.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::Command;

/// The in-process server's logs on stderr (shown when a test fails): the SFU's view of the
/// connections, estimates and layers.
pub fn server_logs() {
    use tracing_subscriber::prelude::*;
    let targets: tracing_subscriber::filter::Targets =
        "between_server=debug,webrtc=warn,rtc=warn,rtc_ice=warn"
            .parse()
            .unwrap_or_default();
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(targets),
        )
        .try_init();
}

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {args:?}: {e} (this test needs iproute2 and nftables, as root)")
        });
    assert!(
        out.status.success(),
        "{args:?} failed: {} (this test needs root for network namespaces)",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Namespace {
    pub name: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
    /// The veth ends: this namespace's, and the one inside.
    pub veth_host: String,
    pub veth_ns: String,
}

impl Namespace {
    pub fn create() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id();
        let name = format!("btwns{id}n{n}");
        let net = (id % 250) as u8;
        let host_ip = Ipv4Addr::new(10, 231 + n as u8, net, 1);
        let ns_ip = Ipv4Addr::new(10, 231 + n as u8, net, 2);
        let (veth_host, veth_ns) = (format!("bn{id}n{n}a"), format!("bn{id}n{n}b"));
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Self {
            name,
            host_ip,
            ns_ip,
            veth_host,
            veth_ns,
        };
        sh(&[
            "ip",
            "link",
            "add",
            &ns.veth_host,
            "type",
            "veth",
            "peer",
            "name",
            &ns.veth_ns,
        ]);
        sh(&["ip", "link", "set", &ns.veth_ns, "netns", &ns.name]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &ns.veth_host,
        ]);
        sh(&["ip", "link", "set", &ns.veth_host, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns.veth_ns,
        ]);
        ns.exec(&["ip", "link", "set", &ns.veth_ns, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `args` inside the namespace, asserting success.
    pub fn exec(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full);
    }

    /// Drops what `rule` (an nftables match and verdict) says, both directions.
    pub fn nft_rule(&self, rule: &[&str]) {
        self.exec(&["nft", "add", "table", "inet", "loss"]);
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            self.exec(&[
                "nft",
                "add",
                "chain",
                "inet",
                "loss",
                chain,
                &format!("{{ type filter hook {hook} priority 0; }}"),
            ]);
            let mut full = vec!["nft", "add", "rule", "inet", "loss", chain];
            full.extend_from_slice(rule);
            self.exec(&full);
        }
    }

    /// Caps what reaches the namespace (its downlink) at `rate` (tc syntax, e.g. "1mbit"),
    /// through a token bucket with a 100 ms queue, as a thin access link has; `change`:
    /// replace an earlier cap.
    pub fn cap_downlink(&self, rate: &str) {
        sh(&tbf("replace", &self.veth_host, rate));
    }

    /// Caps what leaves the namespace (its uplink).
    pub fn cap_uplink(&self, rate: &str) {
        let args = tbf("replace", &self.veth_ns, rate);
        self.exec(&args);
    }

    pub fn uncap_downlink(&self) {
        sh(&["tc", "qdisc", "del", "dev", &self.veth_host, "root"]);
    }
}

fn tbf<'a>(verb: &'a str, dev: &'a str, rate: &'a str) -> Vec<&'a str> {
    vec![
        "tc", "qdisc", verb, "dev", dev, "root", "tbf", "rate", rate, "burst", "20kb", "latency",
        "100ms",
    ]
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, which deletes the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
