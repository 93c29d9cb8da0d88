//! `between bench screen`: screen sharing at 1080p on a private X display (Xvfb, 1920×1080).
//!
//! 1. Cost and bitrate: this process captures the whole screen through the engine's X11
//!    capture, passes it through the share's change gate and encoder, paced at
//!    the share's 15 fps, for a static page of text and then for the same page scrolling.
//! 2. Capture-to-display latency: a counter band at the top of the screen changes every 100 ms;
//!    a `between join --share` process shares the screen through a server; a participant in
//!    this process decodes the share and reads the counter off each new picture. The sharing
//!    process's CPU is measured over the same window (capture, encoder, transport).
//! 3. Portal capture: a stand-in Wayland desktop (`portal_desktop`) serves a 1080p picture
//!    that changes ten times a second as a PipeWire node; a child `between` captures it
//!    through the engine's portal path for the same time and reports its CPU per picture.

use super::{ServerProcess, bench_conference, between_dev_key, cpu_seconds, sibling, summary};
use anyhow::{Context, bail};
use between_engine::{ConferenceEvent, MediaOptions};
use between_media::h264::{H264Encoder, VideoEncoderSettings};
use between_media::pattern::{COUNTER_CELLS, counter_cells, read_counter};
use between_media::screen::{ChangeGate, text_page};
use between_testbed::portal_desktop::{DesktopPicture, PortalDesktop};
use between_testbed::x11_picture::PictureWindow;
use between_testbed::xvfb::Xvfb;
use clap::Args;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WIDTH: u16 = 1920;
const HEIGHT: u16 = 1080;
/// The share's capture rate (the engine's `SHARE_FPS`).
const FPS: u64 = 15;
/// Rows scrolled per captured frame: 120 px/s, a brisk reading scroll.
const SCROLL_PER_FRAME: usize = 8;

#[derive(Args, Debug)]
pub struct ScreenBench {
    /// Seconds per measurement (static, scrolling, latency).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The between-server binary (default: next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: be the portal-capture child (run in the stand-in desktop's session).
    #[arg(long, hide = true)]
    portal_child: bool,
}

/// Paints the counter band (what `read_counter` reads) over the top rows of a screen.
fn draw_counter(screen: &mut [u8], counter: u16) {
    let w = usize::from(WIDTH);
    let cell = (w / COUNTER_CELLS) & !1;
    for (i, white) in counter_cells(counter).iter().enumerate() {
        let value = if *white { 255 } else { 0 };
        for row in 0..cell {
            let start = (row * w + i * cell) * 4;
            screen[start..start + cell * 4].fill(value);
        }
    }
}

struct EncodePhase {
    capture_ms: f64,
    encode_ms: f64,
    sent_fps: f64,
    kbps: f64,
    cpu_percent_at_10fps: f64,
    this_process_cpu_percent: f64,
}

/// Captures, gates and encodes at 15 fps for `seconds`; scrolling moves the page each frame.
fn encode_phase(
    display: &str,
    window: &PictureWindow,
    page: &[u8],
    seconds: u64,
    scroll: bool,
) -> anyhow::Result<EncodePhase> {
    let row = usize::from(WIDTH) * 4;
    let screen_bytes = row * usize::from(HEIGHT);
    window
        .show(&page[..screen_bytes])
        .map_err(anyhow::Error::msg)?;
    let mut capture = between_engine::screen::open_x11(display, None)
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    let mut encoder = H264Encoder::new(VideoEncoderSettings::screen())?;
    let mut gate = ChangeGate::new(1000 / between_engine::screen::MIN_SHARE_FPS as u64);
    let frames = seconds * FPS;
    let (mut capture_ms, mut encode_ms) = (Vec::new(), Vec::new());
    let mut bytes = 0usize;
    let pid = std::process::id();
    let mut busy = 0.0;
    let start = Instant::now();
    for i in 0..frames {
        if scroll {
            let offset = (i as usize * SCROLL_PER_FRAME) % (page.len() / row - usize::from(HEIGHT));
            window
                .show(&page[offset * row..offset * row + screen_bytes])
                .map_err(anyhow::Error::msg)?;
        }
        let cpu_before = cpu_seconds(pid)?;
        let t = Instant::now();
        let frame = capture.read_frame().context("the capture ended")?;
        capture_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if gate.should_send(&frame, i * 1000 / FPS, i == 0) {
            let t = Instant::now();
            if let Some(encoded) = encoder.encode(&frame)? {
                bytes += encoded.data.len();
            }
            encode_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        busy += cpu_seconds(pid)? - cpu_before;
        let due = start + Duration::from_millis((i + 1) * 1000 / FPS);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (capture_median, _, _) = summary(capture_ms);
    let sent = encode_ms.len();
    let (encode_median, _, _) = summary(encode_ms);
    Ok(EncodePhase {
        capture_ms: capture_median,
        encode_ms: encode_median,
        sent_fps: sent as f64 / elapsed,
        kbps: bytes as f64 * 8.0 / elapsed / 1000.0,
        // 1080p10 with every picture changed: ten captures and ten encodes per second.
        cpu_percent_at_10fps: (capture_median + encode_median) * 10.0 / 1000.0 * 100.0,
        this_process_cpu_percent: busy / elapsed * 100.0,
    })
}

pub async fn run(args: ScreenBench) -> anyhow::Result<()> {
    if args.seconds < 2 {
        bail!("--seconds must be at least 2");
    }
    if args.portal_child {
        return tokio::task::spawn_blocking(move || portal_child(args.seconds)).await?;
    }
    let xvfb = Xvfb::start(WIDTH.into(), HEIGHT.into()).map_err(anyhow::Error::msg)?;
    let display = xvfb.display.clone();
    let seconds = args.seconds;
    let (still, scrolling, window, page) = {
        let display = display.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let window = PictureWindow::open(&display, (0, 0), (WIDTH, HEIGHT), "Between bench")
                .map_err(anyhow::Error::msg)?;
            let page = text_page(usize::from(WIDTH), usize::from(HEIGHT) * 3);
            let still = encode_phase(&display, &window, &page, seconds, false)?;
            let scrolling = encode_phase(&display, &window, &page, seconds, true)?;
            Ok((still, scrolling, window, page))
        })
        .await??
    };
    let latency = latency_phase(&args, &display, window, page).await?;
    let portal = {
        let seconds = args.seconds;
        tokio::task::spawn_blocking(move || portal_phase(seconds)).await?
    };

    if args.json {
        let phase = |p: &EncodePhase| {
            json!({"captureMs": p.capture_ms, "encodeMs": p.encode_ms, "sentFps": p.sent_fps,
                   "kbps": p.kbps, "processCpuPercent": p.this_process_cpu_percent})
        };
        println!(
            "{}",
            json!({
                "static": phase(&still),
                "scrolling": phase(&scrolling),
                "captureEncodeCpuPercentAt1080p10": scrolling.cpu_percent_at_10fps,
                "latencyMedianMs": latency.median_ms,
                "latencyP99Ms": latency.p99_ms,
                "latencySamples": latency.samples,
                "sharerCpuPercent": latency.sharer_cpu_percent,
                "portal": match &portal {
                    Ok(p) => json!({"cpuMsPerPicture": p.cpu_ms_per_picture,
                                    "picturesPerSecond": p.pictures_per_second,
                                    "cpuPercent": p.cpu_percent}),
                    Err(e) => json!({"skipped": e.to_string()}),
                },
            })
        );
        return Ok(());
    }
    println!("screen sharing at 1920x1080 on Xvfb ({seconds} s per measurement)");
    for (name, p) in [("static text", &still), ("scrolling text", &scrolling)] {
        println!(
            "  {name:<15} capture {:.1} ms, encode {:.1} ms per frame (medians); {:.1} pictures/s sent; {:.0} kbit/s; this process {:.1} % of a core",
            p.capture_ms, p.encode_ms, p.sent_fps, p.kbps, p.this_process_cpu_percent
        );
    }
    println!(
        "  capture + encode at 1080p10, every picture changed: {:.1} % of one core",
        scrolling.cpu_percent_at_10fps
    );
    println!(
        "  capture to decoded picture: median {:.1} ms, p99 {:.1} ms ({} pictures); sharing process {:.1} % of a core",
        latency.median_ms, latency.p99_ms, latency.samples, latency.sharer_cpu_percent
    );
    match portal {
        Ok(p) => println!(
            "  portal capture (PipeWire, 1920x1080, a new picture 10 times a second): {:.1} ms of CPU per picture; {:.1} pictures/s; {:.1} % of a core",
            p.cpu_ms_per_picture, p.pictures_per_second, p.cpu_percent
        ),
        Err(e) => println!("  portal capture: skipped ({e:#})"),
    }
    Ok(())
}

struct PortalCost {
    cpu_ms_per_picture: f64,
    pictures_per_second: f64,
    cpu_percent: f64,
}

/// Captures a moving 1080p picture through the stand-in desktop's portal, in a child process
/// (the portal path is chosen and found through the environment).
fn portal_phase(seconds: u64) -> anyhow::Result<PortalCost> {
    let desktop = PortalDesktop::start(DesktopPicture::Moving(WIDTH, HEIGHT, 10), false)
        .map_err(anyhow::Error::msg)?;
    let bin = sibling("between")?;
    let output = desktop
        .sharing_command(bin.to_str().context("the between binary's path")?)
        .args(["bench", "screen", "--portal-child", "--seconds"])
        .arg(seconds.to_string())
        .env("BETWEEN_SCREEN_CAPTURE", "portal")
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start the portal capture child")?;
    if !output.status.success() {
        bail!("the portal capture child failed ({})", output.status);
    }
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("the portal capture child's report")?;
    let pictures = report["pictures"].as_f64().unwrap_or(0.0);
    let cpu = report["cpuSeconds"].as_f64().unwrap_or(0.0);
    let elapsed = report["seconds"].as_f64().unwrap_or(1.0);
    if pictures < 1.0 {
        bail!("no picture came through the portal");
    }
    Ok(PortalCost {
        cpu_ms_per_picture: cpu * 1000.0 / pictures,
        pictures_per_second: pictures / elapsed,
        cpu_percent: cpu / elapsed * 100.0,
    })
}

/// The child: reads every new picture of the portal's stream for `seconds`, as a share does
/// (it asks whether anything changed 60 times a second), and reports its own CPU.
fn portal_child(seconds: u64) -> anyhow::Result<()> {
    let mut capture = between_engine::screen::open(None)
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    let pid = std::process::id();
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    let mut pictures = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        if capture.changed() {
            capture.read_frame().context("the portal's stream ended")?;
            pictures += 1;
        }
        std::thread::sleep(Duration::from_millis(1000 / 60));
    }
    let cpu = cpu_seconds(pid)? - cpu_before;
    println!(
        "{}",
        json!({"pictures": pictures, "cpuSeconds": cpu, "seconds": start.elapsed().as_secs_f64()})
    );
    Ok(())
}

struct Latency {
    median_ms: f64,
    p99_ms: f64,
    samples: usize,
    sharer_cpu_percent: f64,
}

/// A counter on the screen, shared by a `between join --share` process, read back here.
async fn latency_phase(
    args: &ScreenBench,
    display: &str,
    window: PictureWindow,
    page: Vec<u8>,
) -> anyhow::Result<Latency> {
    let server = ServerProcess::spawn(args.server_bin.clone())?;
    let viewer = bench_conference(&server.url, "bench-screen", "viewer")?;
    viewer.set_media(MediaOptions {
        media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        ..MediaOptions::default()
    })?;
    let mut events = viewer.events();
    viewer.start_call().await?;
    let mut sharer = Command::new(sibling("between")?)
        .args(["join", "bench-screen", "--share", "--server", &server.url])
        .args(["--api-key", between_dev_key()])
        .env("DISPLAY", display)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the sharing `between join`")?;
    let mut video = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while video.is_none() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ConferenceEvent::ScreenShareCreated { video: v, .. })) => video = Some(v),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                let _ = sharer.kill();
                bail!("the share did not arrive within 20 s");
            }
        }
    }
    let Some(mut video) = video else {
        bail!("no share");
    };

    // The drawing thread: a new counter every 100 ms, stamped once the X server has it.
    let drawn: Arc<Mutex<HashMap<u16, Instant>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let painter = {
        let (drawn, stop) = (drawn.clone(), stop.clone());
        let screen_bytes = usize::from(WIDTH) * usize::from(HEIGHT) * 4;
        std::thread::spawn(move || -> Result<(), String> {
            let mut screen = page[..screen_bytes].to_vec();
            let mut counter = 1u16;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                draw_counter(&mut screen, counter);
                window.show(&screen)?;
                if let Ok(mut d) = drawn.lock() {
                    d.insert(counter, Instant::now());
                }
                counter = counter.wrapping_add(1).max(1);
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        })
    };
    // Let the share settle on the moving counter before timing it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_before = cpu_seconds(sharer.id())?;
    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut latencies = Vec::new();
    let mut decoded = 0usize;
    let window_end = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
    while let Ok(Some(frame)) = tokio::time::timeout_at(window_end, video.next()).await {
        decoded += 1;
        let Some(counter) = read_counter(&frame.frame) else {
            tracing::debug!(
                w = frame.frame.width(),
                h = frame.frame.height(),
                "no counter"
            );
            continue;
        };
        if !seen.insert(counter) {
            continue;
        }
        let drawn_at = drawn.lock().ok().and_then(|d| d.get(&counter).copied());
        if let Some(at) = drawn_at {
            latencies.push(frame.at.saturating_duration_since(at).as_secs_f64() * 1000.0);
        }
    }
    let sharer_cpu = (cpu_seconds(sharer.id())? - cpu_before) / started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = painter.join();
    let _ = sharer.kill();
    let _ = sharer.wait();
    let _ = viewer.end_call().await;
    let (median_ms, p99_ms, samples) = summary(latencies);
    if samples == 0 {
        bail!("no counter was read off the shared screen ({decoded} pictures decoded)");
    }
    Ok(Latency {
        median_ms,
        p99_ms,
        samples,
        sharer_cpu_percent: sharer_cpu * 100.0,
    })
}
