//! `between bench sfu`: forwarding cost. N participants join one call in this process, each
//! publishing (Opus tone, optionally a small video) and receiving everyone else's tracks without
//! decoding them (nobody listens, so the engine only drains its buffers). The `between-server`
//! process's CPU time comes from /proc and its packet counts from /metrics, over a window after
//! everyone is connected.

use super::{ServerProcess, bench_conference, cpu_seconds};
use anyhow::Context;
use between_engine::MediaOptions;
use between_engine::media::sources::{PatternVideo, ToneAudio};
use between_media::h264::VideoEncoderSettings;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Args, Debug)]
pub struct SfuBench {
    /// Room sizes to measure, comma-separated.
    #[arg(long, default_value = "4,16,50", value_delimiter = ',')]
    peers: Vec<usize>,
    /// Also publish 320x240@15 video from every participant.
    #[arg(long)]
    video: bool,
    /// Measuring window per room size.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Run the server with all media on one port (`--udp-port`; 0 picks one), to measure the
    /// edge's cost against per-connection ports.
    #[arg(long)]
    udp_port: Option<u16>,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

async fn counters(server: &ServerProcess) -> anyhow::Result<(u64, u64)> {
    let addr = server.url.trim_start_matches("ws://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).await?;
    let value = |name: &str| -> anyhow::Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .with_context(|| format!("no {name} in /metrics"))
    };
    Ok((
        value("between_rtp_received_total ")?,
        value("between_rtp_forwarded_total ")?,
    ))
}

pub async fn run(args: SfuBench) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for &n in &args.peers {
        let extra: Vec<String> = match args.udp_port {
            Some(port) => vec!["--udp-port".into(), port.to_string()],
            None => Vec::new(),
        };
        let server = ServerProcess::spawn_with(args.server_bin.clone(), &extra)?;
        let mut people = Vec::with_capacity(n);
        for i in 0..n {
            let conf = bench_conference(&server.url, "bench-sfu", &format!("bot-{i}"))?;
            let video = if args.video {
                Some(
                    Box::new(PatternVideo::new(320, 240, 15.0).map_err(|e| anyhow::anyhow!(e))?)
                        as Box<dyn between_engine::VideoSource>,
                )
            } else {
                None
            };
            conf.set_media(MediaOptions {
                audio: Some(Box::new(ToneAudio::new(300.0 + i as f64))),
                video,
                video_encoder: VideoEncoderSettings {
                    bitrate_bps: 300_000,
                    max_fps: 15.0,
                    screen: false,
                },
                media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                ..MediaOptions::default()
            })?;
            conf.start_call().await?;
            people.push(conf);
        }
        // Everyone subscribed to everyone: the forwarded rate stops growing.
        let expected_tracks = (n * (n - 1)) as f64 * if args.video { 2.0 } else { 1.0 };
        let mut last = counters(&server).await?;
        let settle_deadline = Instant::now() + Duration::from_secs(60);
        let mut previous_rate = 0.0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = counters(&server).await?;
            let rate = (now.1 - last.1) as f64;
            last = now;
            if (rate > 0.0 && (rate - previous_rate).abs() / rate < 0.05)
                || Instant::now() > settle_deadline
            {
                break;
            }
            previous_rate = rate;
        }
        let cpu0 = cpu_seconds(server.pid())?;
        let c0 = counters(&server).await?;
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let wall = t0.elapsed().as_secs_f64();
        let c1 = counters(&server).await?;
        let cpu = (cpu_seconds(server.pid())? - cpu0) / wall;
        let received = (c1.0 - c0.0) as f64 / wall;
        let forwarded = (c1.1 - c0.1) as f64 / wall;
        let per_core = if cpu > 0.0 { forwarded / cpu } else { f64::NAN };
        rows.push(json!({
            "participants": n, "video": args.video, "one_port": args.udp_port.is_some(), "tracks_forwarded": expected_tracks,
            "received_pps": received, "forwarded_pps": forwarded,
            "server_cpu": cpu, "forwarded_pps_per_core": per_core,
        }));
        if !args.json {
            println!(
                "  {n:>3} participants{}: in {received:8.0} pkt/s, out {forwarded:8.0} pkt/s, server CPU {:5.1} % of a core -> {per_core:8.0} pkt/s per core",
                if args.video {
                    " (audio+video)"
                } else {
                    " (audio)"
                },
                cpu * 100.0
            );
        }
        for conf in &people {
            let _ = conf.end_call().await;
        }
    }
    if args.json {
        println!("{}", json!({"bench": "sfu", "rows": rows}));
    }
    Ok(())
}
