//! The `between` binary against a real server: two bots meet, chat and leave, with every event
//! as a JSON line; mistakes exit non-zero with one readable line.
#![allow(clippy::unwrap_used)]

mod common;

use between_server::DEV_API_KEY;
use common::{BIN, Bot, Server};
use serde_json::{Value, json};
use std::process::Command;

fn join_args<'a>(url: &'a str, call: &'a str, data: &'a str) -> Vec<&'a str> {
    vec![
        "join",
        call,
        "--server",
        url,
        "--api-key",
        DEV_API_KEY,
        "--data",
        data,
    ]
}

#[test]
fn two_bots_meet_chat_and_leave() {
    let server = Server::start();
    let mut args = join_args(&server.url, "cli-talk", r#"{"name":"ann"}"#);
    args.extend(["--say", "hello from ann"]);
    let mut ann = Bot::spawn(&args);
    let joined = ann.expect("joined");
    let ann_id = joined["peerId"].as_str().unwrap().to_string();
    assert_eq!(joined["callId"], "cli-talk");

    let mut args = join_args(&server.url, "cli-talk", r#"{"name":"bob"}"#);
    args.extend(["--say", "hi from bob"]);
    let mut bob = Bot::spawn(&args);
    let bob_id = bob.expect("joined")["peerId"].as_str().unwrap().to_string();

    let seen = ann.expect("peerJoined");
    assert_eq!(seen["peerId"], bob_id.as_str());
    assert_eq!(seen["extraData"], r#"{"name":"bob"}"#);
    let seen = bob.expect("peerJoined");
    assert_eq!(seen["peerId"], ann_id.as_str());
    assert_eq!(
        ann.expect("data"),
        json!({"event":"data","from":bob_id,"data":{"text":"hi from bob"}})
    );
    assert_eq!(
        bob.expect("data"),
        json!({"event":"data","from":ann_id,"data":{"text":"hello from ann"}})
    );

    assert!(bob.terminate().success(), "SIGTERM is a clean exit");
    bob.expect("socketClose");
    bob.expect("sessionTerminated");
    assert_eq!(ann.expect("peerLeft")["peerId"], bob_id.as_str());
    assert!(ann.terminate().success());
}

#[test]
fn duration_ends_the_call_cleanly() {
    let server = Server::start();
    let mut args = join_args(&server.url, "cli-solo", "plain text is sent as a string");
    args.extend(["--duration", "300ms"]);
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(events, vec!["joined", "socketClose", "sessionTerminated"]);
}

fn fails_with(args: &[&str], code_in_message: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(code_in_message), "{stderr}");
    assert!(out.stdout.is_empty(), "no events printed");
}

#[test]
fn mistakes_exit_non_zero_with_one_readable_line() {
    let server = Server::start();
    let url = server.url.as_str();
    fails_with(
        &["join", "x", "--server", url, "--api-key", "nope"],
        "invalid_api_key",
    );
    fails_with(
        &[
            "join",
            "x",
            "--server",
            "ws://127.0.0.1:9",
            "--api-key",
            "k",
        ],
        "server_unreachable",
    );
    fails_with(
        &["join", "bad id", "--server", url, "--api-key", DEV_API_KEY],
        "invalid_call_id",
    );
    let out = Command::new(BIN)
        .args(["join", "x", "--api-key", "k", "--duration", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors are clap's exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
}

#[test]
fn a_recording_holds_the_peers_tone_and_pattern() {
    use between_media::analysis::{frame_psnr, tone_snr_db};
    use between_media::pattern::{TestPattern, read_counter};

    let server = Server::start();
    let mut args = join_args(&server.url, "cli-media", r#"{"name":"source"}"#);
    args.extend([
        "--tone",
        "660",
        "--pattern",
        "--video-size",
        "320x240",
        "--fps",
        "15",
    ]);
    let mut source = Bot::spawn(&args);
    let source_id = source.expect("joined")["peerId"]
        .as_str()
        .unwrap()
        .to_string();

    let dir = std::env::temp_dir().join(format!("between-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut args = join_args(&server.url, "cli-media", r#"{"name":"recorder"}"#);
    let dir_arg = dir.to_str().unwrap().to_string();
    args.extend([
        "--record",
        &dir_arg,
        "--record-fps",
        "15",
        "--duration",
        "4s",
    ]);
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = String::from_utf8(out.stdout).unwrap();
    assert!(events.contains(r#""event":"videoCreated""#), "{events}");
    assert!(source.terminate().success());

    let wav = between_media::wav::read(
        std::fs::File::open(dir.join(format!("{source_id}.wav"))).unwrap(),
    )
    .unwrap();
    assert!(
        wav.samples.len() >= 2 * 48_000,
        "{} samples",
        wav.samples.len()
    );
    let tail = &wav.samples[wav.samples.len() - 48_000..];
    let snr = tone_snr_db(tail, 48_000, 660.0);
    assert!(snr >= 30.0, "660 Hz at {snr:.1} dB");

    let file =
        std::io::BufReader::new(std::fs::File::open(dir.join(format!("{source_id}.y4m"))).unwrap());
    let mut y4m = between_media::y4m::Y4mReader::new(file).unwrap();
    let pattern = TestPattern::new(320, 240).unwrap();
    let mut counters = Vec::new();
    while let Some(frame) = y4m.next_frame().unwrap() {
        let c = read_counter(&frame).expect("every recorded frame shows the pattern");
        let psnr = frame_psnr(&frame, &pattern.frame(c as u32));
        assert!(psnr >= 32.0, "frame {c}: {psnr:.1} dB");
        counters.push(c);
    }
    assert!(counters.len() >= 20, "{} frames", counters.len());
    assert!(
        counters.windows(2).all(|w| w[0] <= w[1]),
        "time order: {counters:?}"
    );
    assert!(
        counters[counters.len() - 1] > counters[0] + 10,
        "the picture moves: {counters:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
