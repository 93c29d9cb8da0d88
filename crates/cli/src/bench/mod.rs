//! `between bench ...`: measurements for BENCHMARKS.md. Each starts its own `between-server`
//! process (the binary next to this one, or `--server-bin`) on a free loopback port, so the
//! server's memory is its own and nothing else shares the room.

use anyhow::{Context, bail};
use between_engine::{Conference, ConferenceEvent, EngineConfig};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod app;
mod audio;
mod cpu;
mod devices;
mod media;
#[cfg(all(unix, not(target_os = "macos")))]
mod screen;
mod sfu;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Join latency and server memory per idle participant.
    Join(JoinBench),
    /// Audio and video latency through the SFU, and time to first media.
    Media(media::MediaBench),
    /// CPU of a publisher and two subscribers (separate processes), and codec cost per frame.
    Cpu(cpu::CpuBench),
    /// SFU forwarding rate and CPU at several room sizes.
    Sfu(sfu::SfuBench),
    /// CPU of one participant's whole audio path (processing, codec, jitter, mix) per frame.
    Audio(audio::AudioBench),
    /// Device-to-device latency through a call on PulseAudio virtual devices.
    Devices(devices::DevicesBench),
    /// The desktop app: start-up, memory, frames drawn per tile, installed size.
    App(app::AppBench),
    /// Screen sharing at 1080p on Xvfb: capture and encode cost, bitrate, latency.
    #[cfg(all(unix, not(target_os = "macos")))]
    Screen(screen::ScreenBench),
}

#[derive(Args, Debug)]
pub struct JoinBench {
    /// Participants joining one call, one after another.
    #[arg(long, default_value_t = 50)]
    peers: usize,
    /// The between-server binary (default: next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Join(args) => join(args).await,
        BenchCommand::Media(args) => media::run(args).await,
        BenchCommand::Cpu(args) => cpu::run(args).await,
        BenchCommand::Sfu(args) => sfu::run(args).await,
        BenchCommand::Audio(args) => audio::run(args),
        BenchCommand::Devices(args) => devices::run(args).await,
        BenchCommand::App(args) => app::run(args).await,
        #[cfg(all(unix, not(target_os = "macos")))]
        BenchCommand::Screen(args) => screen::run(args).await,
    }
}

/// A `between-server` child process, killed on drop.
pub(crate) struct ServerProcess {
    child: Child,
    pub url: String,
}

impl ServerProcess {
    pub fn spawn(bin: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::spawn_with(bin, &[])
    }

    /// Starts the server with `extra` arguments.
    pub fn spawn_with(bin: Option<PathBuf>, extra: &[String]) -> anyhow::Result<Self> {
        let bin = match bin {
            Some(b) => b,
            None => std::env::current_exe()
                .context("cannot find this executable")?
                .with_file_name(format!("between-server{}", std::env::consts::EXE_SUFFIX)),
        };
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--dev", "--log", "warn"])
            // Every bench participant connects from 127.0.0.1.
            .args(["--max-connections-per-ip", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the server's address")?;
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("ws://"))
            .with_context(|| format!("unexpected first line from the server: {line:?}"))?
            .to_string();
        Ok(Self { child, url })
    }

    /// Resident memory in KiB (Linux).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading /proc (this benchmark needs Linux)")?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc status")
    }
}

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The executable next to this one (`between-server`, `between`).
pub(crate) fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()
        .context("cannot find this executable")?
        .with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
}

/// CPU time (user + system) a process has used, in seconds (Linux).
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .context("reading /proc (this benchmark needs Linux)")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("odd /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted_ms.len() - 1) as f64).round() as usize;
    sorted_ms[rank.min(sorted_ms.len() - 1)]
}

pub(crate) fn summary(mut ms: Vec<f64>) -> (f64, f64, usize) {
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 50.0), percentile(&ms, 99.0), ms.len())
}

async fn join(args: JoinBench) -> anyhow::Result<()> {
    if args.peers < 2 {
        bail!("--peers must be at least 2");
    }
    let server = ServerProcess::spawn(args.server_bin)?;
    // One throwaway join and leave, so the baseline includes the server's warmed-up state.
    {
        let warm = Conference::new(
            EngineConfig::new(&server.url),
            between_dev_key(),
            "warmup",
            json!({}),
        )?;
        warm.start_call().await?;
        warm.end_call().await?;
    }
    let rss_before = server.rss_kib()?;

    // Every participant's PeerJoined events, stamped on arrival.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut conferences = Vec::with_capacity(args.peers);
    let mut join_ms = Vec::with_capacity(args.peers);
    let mut notify_ms = Vec::new();
    for i in 0..args.peers {
        let conf = bench_conference(&server.url, "bench-join", &format!("bot-{i}"))?;
        let mut events = conf.events();
        let tx = seen_tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let ConferenceEvent::PeerJoined(p) = ev {
                    let _ = tx.send((p.id().to_string(), Instant::now()));
                }
            }
        });
        let t0 = Instant::now();
        conf.start_call().await.context("join failed")?;
        join_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let newcomer = conf.peer_id().context("no peer id after join")?;
        // Wait until each earlier participant has heard of the newcomer.
        let mut heard = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while heard < i {
            let Ok(Some((id, at))) = tokio::time::timeout_at(deadline, seen_rx.recv()).await else {
                bail!("participant {i}: only {heard} of {i} others saw it join within 5 s");
            };
            if id == newcomer {
                heard += 1;
                notify_ms.push(at.duration_since(t0).as_secs_f64() * 1000.0);
            }
        }
        conferences.push(conf);
    }
    // Idle: let the server settle (heartbeats only) before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss_kib()?;
    for conf in &conferences {
        conf.end_call().await?;
    }

    let (join_p50, join_p99, _) = summary(join_ms);
    let (notify_p50, notify_p99, notify_n) = summary(notify_ms);
    let per_peer_kib = rss_after.saturating_sub(rss_before) as f64 / args.peers as f64;
    if args.json {
        println!(
            "{}",
            json!({
                "bench": "join",
                "peers": args.peers,
                "join_ms": {"p50": join_p50, "p99": join_p99},
                "peer_joined_ms": {"p50": notify_p50, "p99": notify_p99, "samples": notify_n},
                "server_rss_kib": {"before": rss_before, "after": rss_after},
                "server_kib_per_idle_peer": per_peer_kib,
            })
        );
    } else {
        println!(
            "between bench join: {} participants, one call, loopback",
            args.peers
        );
        println!("  start_call -> joined        median {join_p50:7.2} ms   p99 {join_p99:7.2} ms");
        println!(
            "  join -> peerJoined (others) median {notify_p50:7.2} ms   p99 {notify_p99:7.2} ms   ({notify_n} samples)"
        );
        println!(
            "  server RSS {rss_before} KiB -> {rss_after} KiB: {per_peer_kib:.1} KiB per idle participant"
        );
    }
    Ok(())
}

/// A conference of the bench's server, named `name` in `call`.
pub(crate) fn bench_conference(url: &str, call: &str, name: &str) -> anyhow::Result<Conference> {
    Ok(Conference::new(
        EngineConfig::new(url),
        between_dev_key(),
        call,
        json!({ "name": name }),
    )?)
}

pub(crate) fn between_dev_key() -> &'static str {
    // Kept in step with between_server::DEV_API_KEY; the CLI does not link the server.
    "between-dev-key"
}
