//! `between bench media`: latency through a real `between-server` on loopback, measured in one
//! process so sender and receiver share a clock.
//!
//! - mouth-to-ear: an audio source that clicks (20 ms of tone) once a second, stamped when the
//!   engine reads the click; the receiver stamps the frame where the click leaves its jitter
//!   buffer and decoder (the playout tap, right before mixing).
//! - glass-to-glass: the test pattern, each frame stamped when read; the receiver stamps each
//!   decoded frame and reads its counter.
//! - time to first media: a fresh receiver joins a call with a running publisher; from
//!   `start_call()` to its first non-silent audio frame and first decoded video frame.

use super::{ServerProcess, bench_conference, summary};
use anyhow::Context;
use between_engine::media::sources::PatternVideo;
use between_engine::{
    AudioSource, ConferenceEvent, EventStream, MediaOptions, PeerAudioTap, PeerEvent, RemoteVideo,
    VideoSource,
};
use between_media::h264::VideoEncoderSettings;
use between_media::pattern::read_counter;
use between_media::tone::ToneSource;
use between_media::video::I420Frame;
use clap::Args;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct MediaBench {
    /// Clicks (and seconds) to measure audio latency over.
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Video size.
    #[arg(long, default_value = "1280x720", value_parser = crate::join::parse_size)]
    video_size: (u32, u32),
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Receivers joining one after another for time to first media.
    #[arg(long, default_value_t = 10)]
    joins: usize,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Run the server with all media on one port (`--udp-port`; 0 picks one).
    #[arg(long)]
    udp_port: Option<u16>,
    #[arg(long)]
    json: bool,
}

type Stamps = Arc<Mutex<Vec<Instant>>>;

/// A quiet 1 kHz hum (so the stream never goes into DTX) with a loud 20 ms click every
/// second; each click stamped when read.
struct ClickSource {
    frame: u64,
    tone: ToneSource,
    clicks: Stamps,
}

impl AudioSource for ClickSource {
    fn read_frame(&mut self) -> Option<Vec<f32>> {
        self.frame += 1;
        let tone = self.tone.next_frame().samples;
        if self.frame.is_multiple_of(50) {
            if let Ok(mut c) = self.clicks.lock() {
                c.push(Instant::now());
            }
            return Some(tone);
        }
        Some(tone.iter().map(|s| s * 0.04).collect())
    }
}

/// The test pattern, each frame stamped by its counter when read.
struct StampedPattern {
    inner: PatternVideo,
    counter: u16,
    sent: Arc<Mutex<HashMap<u16, Instant>>>,
}

impl VideoSource for StampedPattern {
    fn read_frame(&mut self) -> Option<I420Frame> {
        let frame = self.inner.read_frame()?;
        if let Ok(mut s) = self.sent.lock() {
            s.insert(self.counter, Instant::now());
        }
        self.counter = self.counter.wrapping_add(1);
        Some(frame)
    }

    fn frame_rate(&self) -> f64 {
        self.inner.frame_rate()
    }
}

/// Stamps the frame where each click's sound starts.
#[derive(Default)]
struct OnsetTap {
    loud: Mutex<bool>,
    onsets: Stamps,
    first_sound: Mutex<Option<Instant>>,
    heard: tokio::sync::Notify,
}

impl PeerAudioTap for OnsetTap {
    fn write(&self, _peer: &str, samples: &[f32]) {
        let now = Instant::now();
        let rms = between_media::audio::rms(samples);
        let loud = rms > 0.05;
        if rms > 0.005 {
            if let Ok(mut f) = self.first_sound.lock() {
                f.get_or_insert(now);
            }
            self.heard.notify_waiters();
        }
        if let Ok(mut was) = self.loud.lock() {
            if loud
                && !*was
                && let Ok(mut o) = self.onsets.lock()
            {
                o.push(now);
            }
            *was = loud;
        }
    }
}

fn loopback() -> std::net::IpAddr {
    std::net::Ipv4Addr::LOCALHOST.into()
}

pub async fn run(args: MediaBench) -> anyhow::Result<()> {
    let extra: Vec<String> = match args.udp_port {
        Some(port) => vec!["--udp-port".into(), port.to_string()],
        None => Vec::new(),
    };
    let server = ServerProcess::spawn_with(args.server_bin.clone(), &extra)?;
    let (w, h) = args.video_size;
    let clicks: Stamps = Arc::default();
    let sent: Arc<Mutex<HashMap<u16, Instant>>> = Arc::default();
    let publisher = bench_conference(&server.url, "bench-media", "publisher")?;
    publisher.set_media(MediaOptions {
        audio: Some(Box::new(ClickSource {
            frame: 0,
            tone: ToneSource::new(1000.0, 0.5),
            clicks: clicks.clone(),
        })),
        video: Some(Box::new(StampedPattern {
            inner: PatternVideo::new(w, h, args.fps).map_err(|e| anyhow::anyhow!(e))?,
            counter: 0,
            sent: sent.clone(),
        })),
        video_encoder: VideoEncoderSettings {
            bitrate_bps: 2_500_000,
            max_fps: args.fps as f32,
            screen: false,
        },
        media_ip: loopback(),
        ..MediaOptions::default()
    })?;
    publisher.start_call().await?;

    // Latency: one receiver for the whole run.
    let tap = Arc::new(OnsetTap::default());
    let receiver = bench_conference(&server.url, "bench-media", "receiver")?;
    receiver.set_media(MediaOptions {
        peer_audio: Some(tap.clone()),
        media_ip: loopback(),
        ..MediaOptions::default()
    })?;
    let mut events = receiver.events();
    receiver.start_call().await?;
    let mut video = wait_for_video(&mut events).await?;
    // Skip the start-up second, then measure.
    let clicks_before = clicks.lock().map(|c| c.len()).unwrap_or(0);
    let onsets_before = tap.onsets.lock().map(|o| o.len()).unwrap_or(0);
    let mut video_ms = Vec::new();
    let until = Instant::now() + Duration::from_secs(args.seconds as u64);
    while Instant::now() < until {
        let Ok(Some(f)) = tokio::time::timeout(Duration::from_secs(2), video.next()).await else {
            anyhow::bail!("video stopped");
        };
        if let Some(counter) = read_counter(&f.frame)
            && let Some(t) = sent.lock().ok().and_then(|s| s.get(&counter).copied())
        {
            video_ms.push(f.at.duration_since(t).as_secs_f64() * 1000.0);
        }
    }
    // Pair each click with the first onset after it.
    let click_times: Vec<Instant> = clicks
        .lock()
        .map(|c| c[clicks_before..].to_vec())
        .unwrap_or_default();
    let onset_times: Vec<Instant> = tap
        .onsets
        .lock()
        .map(|o| o[onsets_before..].to_vec())
        .unwrap_or_default();
    let mut audio_ms = Vec::new();
    for c in &click_times {
        if let Some(o) = onset_times
            .iter()
            .find(|o| **o > *c && o.duration_since(*c) < Duration::from_millis(500))
        {
            audio_ms.push(o.duration_since(*c).as_secs_f64() * 1000.0);
        }
    }
    receiver.end_call().await?;

    // Time to first media: fresh receivers.
    let mut first_audio = Vec::new();
    let mut first_video = Vec::new();
    for i in 0..args.joins {
        let tap = Arc::new(OnsetTap::default());
        let conf = bench_conference(&server.url, "bench-media", &format!("joiner-{i}"))?;
        conf.set_media(MediaOptions {
            peer_audio: Some(tap.clone()),
            media_ip: loopback(),
            ..MediaOptions::default()
        })?;
        let mut events = conf.events();
        let t0 = Instant::now();
        conf.start_call().await?;
        let mut video = wait_for_video(&mut events).await?;
        tokio::time::timeout(Duration::from_secs(5), video.next())
            .await
            .context("no first frame within 5 s")?;
        first_video.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Audio: the first frame with the publisher's hum out of the jitter buffer.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while first_decoded(&tap).is_none() {
            let heard = tap.heard.notified();
            if tokio::time::timeout_at(deadline, heard).await.is_err() {
                break;
            }
        }
        if let Some(t) = first_decoded(&tap) {
            first_audio.push(t.duration_since(t0).as_secs_f64() * 1000.0);
        }
        conf.end_call().await?;
    }
    publisher.end_call().await?;

    let (a50, a99, an) = summary(audio_ms);
    let (v50, v99, vn) = summary(video_ms);
    let (fa50, _, fan) = summary(first_audio);
    let (fv50, _, fvn) = summary(first_video);
    if args.json {
        println!(
            "{}",
            json!({
                "bench": "media", "video": format!("{w}x{h}@{}", args.fps),
                "mouth_to_ear_ms": {"p50": a50, "p99": a99, "samples": an},
                "glass_to_glass_ms": {"p50": v50, "p99": v99, "samples": vn},
                "first_audio_ms": {"p50": fa50, "samples": fan},
                "first_video_ms": {"p50": fv50, "samples": fvn},
            })
        );
    } else {
        println!(
            "between bench media: loopback SFU, video {w}x{h}@{}",
            args.fps
        );
        println!(
            "  mouth-to-ear (click read -> out of jitter buffer)  median {a50:6.1} ms  p99 {a99:6.1} ms  ({an} clicks)"
        );
        println!(
            "  glass-to-glass (frame read -> decoded)             median {v50:6.1} ms  p99 {v99:6.1} ms  ({vn} frames)"
        );
        println!(
            "  start_call -> first remote audio frame             median {fa50:6.1} ms  ({fan} joins)"
        );
        println!(
            "  start_call -> first decoded video frame            median {fv50:6.1} ms  ({fvn} joins)"
        );
    }
    Ok(())
}

/// When the tap first got a frame from the publisher (any frame out of the jitter buffer).
fn first_decoded(tap: &OnsetTap) -> Option<Instant> {
    tap.first_sound.lock().ok().and_then(|f| *f)
}

/// The first remote video that shows up, within 10 s.
async fn wait_for_video(events: &mut EventStream) -> anyhow::Result<RemoteVideo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ConferenceEvent::Peer {
                event: PeerEvent::VideoCreated(v),
                ..
            })) => return Ok(v),
            Ok(Some(_)) => {}
            _ => anyhow::bail!("no remote video within 10 s"),
        }
    }
}
