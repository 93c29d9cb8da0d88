//! `between bench cpu`: what a call costs each process. A publisher bot (tone + pattern) and two
//! subscriber bots run as separate `between join` processes against a `between-server`
//! process; after a warm-up, each one's CPU time over the window is read from /proc. Then the
//! codecs' cost per frame, measured in this process.

use super::{ServerProcess, between_dev_key, cpu_seconds, sibling};
use anyhow::Context;
use between_media::h264::{H264Decoder, H264Encoder, VideoEncoderSettings};
use between_media::opus_codec::{OpusDecoder, OpusEncoder};
use between_media::pattern::TestPattern;
use between_media::tone::ToneSource;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct CpuBench {
    /// Measuring window, after a 3 s warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value = "1280x720", value_parser = crate::join::parse_size)]
    video_size: (u32, u32),
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

struct Bot(Child);

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bot(url: &str, extra: &[&str]) -> anyhow::Result<Bot> {
    let mut args = vec![
        "join",
        "bench-cpu",
        "--server",
        url,
        "--api-key",
        between_dev_key(),
    ];
    args.extend_from_slice(extra);
    let child = Command::new(sibling("between")?)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start a bot")?;
    Ok(Bot(child))
}

pub async fn run(args: CpuBench) -> anyhow::Result<()> {
    let server = ServerProcess::spawn(args.server_bin.clone())?;
    let (w, h) = args.video_size;
    let size = format!("{w}x{h}");
    let fps = args.fps.to_string();
    let publisher = bot(
        &server.url,
        &[
            "--tone",
            "440",
            "--pattern",
            "--video-size",
            &size,
            "--fps",
            &fps,
            "--video-bitrate",
            "2500000",
        ],
    )?;
    // Subscribers decode everything and play it out (record to nowhere: the playout tap and
    // the video decoders run as in the app).
    let sub1 = bot(&server.url, &["--receive"])?;
    let sub2 = bot(&server.url, &["--receive"])?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pids = [
        ("server", server.pid()),
        ("publisher", publisher.0.id()),
        ("subscriber 1", sub1.0.id()),
        ("subscriber 2", sub2.0.id()),
    ];
    let before: Vec<f64> = pids
        .iter()
        .map(|(_, p)| cpu_seconds(*p))
        .collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let after: Vec<f64> = pids
        .iter()
        .map(|(_, p)| cpu_seconds(*p))
        .collect::<Result<_, _>>()?;
    let per_second: Vec<(&str, f64)> = pids
        .iter()
        .zip(before.iter().zip(&after))
        .map(|((name, _), (b, a))| (*name, (a - b) / wall))
        .collect();
    drop((publisher, sub1, sub2));

    // Codec cost per frame, in this process.
    let pattern = TestPattern::new(w, h).map_err(|e| anyhow::anyhow!(e))?;
    let mut enc = H264Encoder::new(VideoEncoderSettings {
        bitrate_bps: 2_500_000,
        max_fps: args.fps as f32,
        screen: false,
    })?;
    let mut dec = H264Decoder::new()?;
    let frames: Vec<_> = (0..60).map(|i| pattern.frame(i)).collect();
    let mut encoded = Vec::new();
    let t = Instant::now();
    for f in &frames {
        if let Some(e) = enc.encode(f)? {
            encoded.push(e.data);
        }
    }
    let encode_ms = t.elapsed().as_secs_f64() * 1000.0 / frames.len() as f64;
    let t = Instant::now();
    for e in &encoded {
        dec.decode(e)?;
    }
    let decode_ms = t.elapsed().as_secs_f64() * 1000.0 / encoded.len().max(1) as f64;
    let mut tone = ToneSource::new(440.0, 0.3);
    let mut oenc = OpusEncoder::new(32_000, 10)?;
    let mut odec = OpusDecoder::new()?;
    let t = Instant::now();
    let mut packets = Vec::new();
    for _ in 0..500 {
        if let Some(p) = oenc.encode(&tone.next_frame().samples)? {
            packets.push(p);
        }
    }
    let opus_enc_us = t.elapsed().as_secs_f64() * 1e6 / 500.0;
    let t = Instant::now();
    for p in &packets {
        odec.decode(p)?;
    }
    let opus_dec_us = t.elapsed().as_secs_f64() * 1e6 / packets.len().max(1) as f64;

    if args.json {
        let procs: serde_json::Map<String, serde_json::Value> = per_second
            .iter()
            .map(|(n, v)| (n.to_string(), json!(v)))
            .collect();
        println!(
            "{}",
            json!({"bench": "cpu", "video": format!("{size}@{fps}"), "cpu_seconds_per_second": procs,
                "h264_encode_ms_per_frame": encode_ms, "h264_decode_ms_per_frame": decode_ms,
                "opus_encode_us_per_frame": opus_enc_us, "opus_decode_us_per_frame": opus_dec_us})
        );
    } else {
        println!(
            "between bench cpu: 1 publisher ({size}@{fps} + Opus), 2 subscribers, {:.0} s window",
            wall
        );
        for (name, v) in &per_second {
            println!(
                "  {name:<13} {v:5.3} CPU s per s ({:.1} % of one core)",
                v * 100.0
            );
        }
        println!("  H.264 {size}: encode {encode_ms:.2} ms/frame, decode {decode_ms:.2} ms/frame");
        println!(
            "  Opus 20 ms: encode {opus_enc_us:.0} us/frame, decode {opus_dec_us:.0} us/frame"
        );
    }
    Ok(())
}
