//! `between bench devices`: device-to-device latency through a call, on PulseAudio virtual
//! devices. A click is played into the sink the talker's virtual microphone hears; it goes
//! through capture, audio processing, Opus, the SFU, the listener's jitter buffer, mixing and
//! playback into another sink. Both sinks' monitors are captured the same way in this process,
//! so the latency is the difference of the click's onsets (their capture paths cancel out).
//!
//! It runs its own PulseAudio daemon (cpal reads the server address from the environment, so
//! the measuring part runs as a child process with it set). Needs `pulseaudio` (Linux).

use super::{ServerProcess, bench_conference};
use anyhow::bail;
use between_engine::devices::{Microphone, Speaker};
use between_engine::{AudioSink, MediaOptions};
use between_testbed::pulse::PulseDaemon;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DevicesBench {
    /// Clicks to measure (one a second).
    #[arg(long, default_value_t = 20)]
    clicks: usize,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

const INNER: &str = "BETWEEN_BENCH_DEVICES_INNER";

pub async fn run(args: DevicesBench) -> anyhow::Result<()> {
    if std::env::var_os(INNER).is_some() {
        return measure(args).await;
    }
    let daemon = PulseDaemon::start(&[
        "module-null-sink sink_name=speaker",
        "module-null-sink sink_name=mic_feed",
        "module-remap-source master=mic_feed.monitor source_name=virtual_mic",
    ])
    .map_err(anyhow::Error::msg)?;
    let status = Command::new(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .env(INNER, "1")
        .env("PULSE_SERVER", daemon.server_env())
        .env_remove("PULSE_RUNTIME_PATH")
        .status();
    drop(daemon);
    if !status?.success() {
        bail!("the measurement failed");
    }
    Ok(())
}

/// Onsets of clicks in a captured stream: the first loud sample after 300 ms of quiet.
struct Onsets {
    quiet_since: Option<Instant>,
    found: Vec<Instant>,
}

impl Onsets {
    fn new() -> Self {
        Self {
            quiet_since: None,
            found: Vec::new(),
        }
    }

    /// `samples` arrived at `at` (the last sample's time).
    fn feed(&mut self, samples: &[f32], at: Instant) {
        for (i, s) in samples.iter().enumerate() {
            let t = at - Duration::from_secs_f64((samples.len() - 1 - i) as f64 / 48_000.0);
            if s.abs() > 0.1 {
                if let Some(q) = self.quiet_since.take()
                    && t.duration_since(q) >= Duration::from_millis(300)
                {
                    self.found.push(t);
                }
            } else if self.quiet_since.is_none() {
                self.quiet_since = Some(t);
            }
        }
    }
}

async fn measure(args: DevicesBench) -> anyhow::Result<()> {
    let server = ServerProcess::spawn(args.server_bin.clone())?;
    let lo = std::net::IpAddr::from([127, 0, 0, 1]);
    let talker = bench_conference(&server.url, "bench-devices", "talker")?;
    let mic =
        tokio::task::spawn_blocking(|| Microphone::open(Some("pulseaudio:virtual_mic"))).await??;
    talker.set_media(MediaOptions {
        audio: Some(Box::new(mic)),
        audio_processing: true,
        media_ip: lo,
        ..MediaOptions::default()
    })?;
    talker.start_call().await?;
    let listener = bench_conference(&server.url, "bench-devices", "listener")?;
    let speaker =
        tokio::task::spawn_blocking(|| Speaker::open(Some("pulseaudio:speaker"))).await??;
    listener.set_media(MediaOptions {
        playback: Some(Box::new(speaker)),
        media_ip: lo,
        ..MediaOptions::default()
    })?;
    listener.start_call().await?;

    let mut clicker =
        tokio::task::spawn_blocking(|| Speaker::open(Some("pulseaudio:mic_feed"))).await??;
    let mut reference =
        tokio::task::spawn_blocking(|| Microphone::open(Some("pulseaudio:mic_feed.monitor")))
            .await??;
    let mut heard =
        tokio::task::spawn_blocking(|| Microphone::open(Some("pulseaudio:speaker.monitor")))
            .await??;
    let (mut sent, mut got) = (Onsets::new(), Onsets::new());

    // Frames of a quiet hum, a 20 ms 1 kHz click once a second (after 2 s of settling).
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let start = Instant::now();
    let mut frames_written = 0u64;
    let total = Duration::from_secs(3 + args.clicks as u64);
    while start.elapsed() < total {
        tick.tick().await;
        let due = (start.elapsed().as_millis() / 20) as u64 + 1;
        while frames_written < due {
            let n = frames_written;
            let click = n >= 100 && n.is_multiple_of(50);
            let frame: Vec<f32> = (0..960)
                .map(|i| {
                    let t = (n * 960 + i) as f64 / 48_000.0;
                    let hum = 0.01 * (std::f64::consts::TAU * 100.0 * t).sin();
                    let c = if click {
                        0.5 * (std::f64::consts::TAU * 1000.0 * t).sin()
                    } else {
                        0.0
                    };
                    (hum + c) as f32
                })
                .collect();
            clicker.write(&frame);
            frames_written += 1;
        }
        let now = Instant::now();
        let r = reference.drain_available();
        if !r.is_empty() {
            sent.feed(&r, now);
        }
        let h = heard.drain_available();
        if !h.is_empty() {
            got.feed(&h, now);
        }
    }
    let mut latencies: Vec<f64> = sent
        .found
        .iter()
        .filter_map(|s| {
            got.found
                .iter()
                .find(|g| **g > *s && g.duration_since(*s) < Duration::from_millis(800))
                .map(|g| g.duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    let _ = listener.end_call().await;
    let _ = talker.end_call().await;
    if latencies.is_empty() {
        bail!(
            "no click came through ({} sent, {} heard)",
            sent.found.len(),
            got.found.len()
        );
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let p99 = latencies[((latencies.len() - 1) as f64 * 0.99).round() as usize];
    if args.json {
        println!(
            "{}",
            json!({"clicks": latencies.len(), "sent": sent.found.len(),
                "device_to_device_ms_median": median, "device_to_device_ms_p99": p99})
        );
    } else {
        println!(
            "between bench devices: PulseAudio virtual devices, loopback SFU, echo cancellation on"
        );
        println!(
            "  device to device (virtual mic -> call -> virtual speaker)  median {median:6.1} ms  p99 {p99:6.1} ms  ({} of {} clicks)",
            latencies.len(),
            sent.found.len()
        );
    }
    Ok(())
}
