//! Screen sharing end to end on a real X display (Xvfb) through the real server: a window
//! shows a known picture, a `between` participant shares it (the engine's X11 capture), another
//! records the share, and the recording matches the picture. Plus stop and start again, two
//! sharers at once, a sharer leaving, the shared window closing, and the errors.
#![allow(clippy::unwrap_used)]

mod common;

use between_media::analysis::frame_psnr;
use between_media::video::I420Frame;
use between_testbed::x11_picture::{PictureWindow, test_picture, test_picture_i420};
use between_testbed::xvfb::Xvfb;
use common::{BIN, Bot, Server, join_args};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PICTURE: (u16, u16) = (640, 360);

/// A bot on `display` (none: no X display at all).
fn bot_on(display: Option<&str>, args: &[&str]) -> Bot {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("WAYLAND_DISPLAY");
    match display {
        Some(d) => command.env("DISPLAY", d),
        None => command.env_remove("DISPLAY"),
    };
    Bot::spawn_with(&mut command)
}

fn record_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("between-screen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A recorder bot: every share lands in DIR/PEER-screen.y4m, 5 frames a second.
fn recorder(server: &Server, call: &str, dir: &Path) -> Bot {
    let mut args = join_args(&server.url, call);
    let dir = dir.to_str().unwrap();
    args.extend(["--record", dir, "--record-fps", "5"]);
    let bot = bot_on(None, &args);
    bot.expect("joined");
    bot
}

/// A sharer bot taking `--commands`; returns it with its peer ID.
fn sharer(server: &Server, call: &str, display: Option<&str>, name: &str) -> (Bot, String) {
    let data = format!(r#"{{"name":"{name}"}}"#);
    let mut args = join_args(&server.url, call);
    args.extend(["--commands", "--data", &data]);
    let bot = bot_on(display, &args);
    let joined = bot.expect("joined");
    let id = joined["peerId"].as_str().unwrap().to_string();
    (bot, id)
}

/// The frames of a Y4M file being written: all complete ones so far.
fn frames(path: &Path) -> Vec<I420Frame> {
    common::recorded_frames(path)
}

/// Waits (deadline 20 s) until the newest recorded frame matches `expected` by at least
/// `min_db`; returns the PSNR reached.
fn wait_for_match(path: &Path, expected: &I420Frame, min_db: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut best = f64::NEG_INFINITY;
    loop {
        if let Some(last) = frames(path).last() {
            assert_eq!(
                (last.width(), last.height()),
                (expected.width(), expected.height()),
                "the share keeps the window's size"
            );
            let db = frame_psnr(last, expected);
            best = best.max(db);
            if db >= min_db {
                return db;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no recorded frame of {} reached {min_db} dB within 20 s (best {best:.1} dB)",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (deadline 20 s) for at least one recorded frame; returns its size.
fn wait_for_frames(path: &Path) -> (u32, u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(f) = frames(path).last() {
            return (f.width(), f.height());
        }
        assert!(
            Instant::now() < deadline,
            "nothing recorded into {} within 20 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn expected_picture() -> I420Frame {
    test_picture_i420(PICTURE.0, PICTURE.1)
}

fn picture_window(xvfb: &Xvfb) -> PictureWindow {
    let window =
        PictureWindow::open(&xvfb.display, (100, 80), PICTURE, "Between test picture").unwrap();
    window.show(&test_picture(PICTURE.0, PICTURE.1)).unwrap();
    window
}

fn command_line(cmd: &str, target: Option<&str>) -> String {
    match target {
        Some(t) => format!(r#"{{"cmd":"{cmd}","target":"{t}"}}"#),
        None => format!(r#"{{"cmd":"{cmd}"}}"#),
    }
}

/// Sends a command and returns its result line (`commandDone` or `commandFailed`).
fn run(bot: &mut Bot, cmd: &str, target: Option<&str>) -> Value {
    bot.command(&command_line(cmd, target));
    let names = ["commandDone", "commandFailed"];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{cmd}: no result within 15 s");
        let line = bot.expect_within_any(&names, left);
        if line["cmd"] == cmd {
            return line;
        }
    }
}

#[test]
fn a_shared_window_arrives_as_its_picture_and_the_share_stops_and_starts_again() {
    let xvfb = Xvfb::start(1280, 720).unwrap();
    let window = picture_window(&xvfb);
    let server = Server::start();
    let dir = record_dir("window");
    let viewer = recorder(&server, "share-window", &dir);
    let (mut ada, ada_id) = sharer(&server, "share-window", Some(&xvfb.display), "Ada");
    let target = format!("window:{}", window.id());

    let done = run(&mut ada, "startScreenshare", Some(&target));
    assert_eq!(done["event"], "commandDone", "{done}");
    ada.expect("localShareCreated");
    let created = viewer.expect_where("screenShareCreated", |e| e["peerId"] == ada_id.as_str());
    assert!(
        created["extraData"].as_str().unwrap().contains("Ada"),
        "{created}"
    );
    let recording = dir.join(format!("{ada_id}-screen.y4m"));
    let db = wait_for_match(&recording, &expected_picture(), 30.0);
    eprintln!("shared window matches its picture at {db:.1} dB");

    // Sharing twice is refused and changes nothing.
    let twice = run(&mut ada, "startScreenshare", Some(&target));
    assert_eq!(twice["event"], "commandFailed", "{twice}");
    assert_eq!(twice["code"], "screenshare_active", "{twice}");

    let stopped = run(&mut ada, "stopScreenshare", None);
    assert_eq!(stopped["event"], "commandDone", "{stopped}");
    viewer.expect_where("screenShareClosed", |e| e["peerId"] == ada_id.as_str());

    let again = run(&mut ada, "startScreenshare", Some(&target));
    assert_eq!(again["event"], "commandDone", "{again}");
    viewer.expect_where("screenShareCreated", |e| e["peerId"] == ada_id.as_str());
    // The second share is recorded apart from the first.
    let recording = dir.join(format!("{ada_id}-screen-2.y4m"));
    let db = wait_for_match(&recording, &expected_picture(), 30.0);
    eprintln!("after a restart the share matches at {db:.1} dB");

    // Leaving while sharing: the others lose the share and the participant.
    ada.terminate();
    viewer.expect_all(&["screenShareClosed", "peerLeft"], |e| {
        e["peerId"] == ada_id.as_str()
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn closing_the_shared_window_ends_the_share_for_everyone() {
    let xvfb = Xvfb::start(1280, 720).unwrap();
    let window = picture_window(&xvfb);
    let server = Server::start();
    let dir = record_dir("close");
    let viewer = recorder(&server, "share-close", &dir);
    let (mut ada, ada_id) = sharer(&server, "share-close", Some(&xvfb.display), "Ada");
    let done = run(
        &mut ada,
        "startScreenshare",
        Some(&format!("window:{}", window.id())),
    );
    assert_eq!(done["event"], "commandDone", "{done}");
    viewer.expect_where("screenShareCreated", |e| e["peerId"] == ada_id.as_str());

    window.destroy().unwrap();
    ada.expect("localShareClosed");
    viewer.expect_where("screenShareClosed", |e| e["peerId"] == ada_id.as_str());
    // The call goes on, and sharing works again.
    let again = run(&mut ada, "startScreenshare", None);
    assert_eq!(again["event"], "commandDone", "{again}");
    viewer.expect_where("screenShareCreated", |e| e["peerId"] == ada_id.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_participants_share_at_once_and_both_shares_arrive() {
    let xvfb = Xvfb::start(1280, 720).unwrap();
    let window = picture_window(&xvfb);
    let server = Server::start();
    let dir = record_dir("two");
    let viewer = recorder(&server, "share-two", &dir);
    let (mut ada, ada_id) = sharer(&server, "share-two", Some(&xvfb.display), "Ada");
    let (mut bo, bo_id) = sharer(&server, "share-two", Some(&xvfb.display), "Bo");

    let a = run(
        &mut ada,
        "startScreenshare",
        Some(&format!("window:{}", window.id())),
    );
    assert_eq!(a["event"], "commandDone", "{a}");
    let b = run(&mut bo, "startScreenshare", Some("screen"));
    assert_eq!(b["event"], "commandDone", "{b}");
    viewer.expect_all(&["screenShareCreated", "screenShareCreated"], |_| true);
    // Each sharer also sees the other's share.
    ada.expect_where("screenShareCreated", |e| e["peerId"] == bo_id.as_str());
    bo.expect_where("screenShareCreated", |e| e["peerId"] == ada_id.as_str());

    wait_for_match(
        &dir.join(format!("{ada_id}-screen.y4m")),
        &expected_picture(),
        30.0,
    );
    assert_eq!(
        wait_for_frames(&dir.join(format!("{bo_id}-screen.y4m"))),
        (1280, 720),
        "the whole screen at its native size"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sharing_without_a_display_or_a_window_is_a_readable_error() {
    let server = Server::start();
    let (mut ada, _) = sharer(&server, "share-errors", None, "Ada");
    let failed = run(&mut ada, "startScreenshare", None);
    assert_eq!(failed["event"], "commandFailed", "{failed}");
    assert_eq!(failed["code"], "screenshare_unsupported", "{failed}");
    assert!(
        failed["message"].as_str().unwrap().contains("DISPLAY"),
        "{failed}"
    );
    // The call is unharmed: stopping a share that never started is not an error.
    let stop = run(&mut ada, "stopScreenshare", None);
    assert_eq!(stop["event"], "commandDone", "{stop}");

    let xvfb = Xvfb::start(640, 480).unwrap();
    let (mut bo, _) = sharer(&server, "share-errors", Some(&xvfb.display), "Bo");
    let gone = run(&mut bo, "startScreenshare", Some("window:4242"));
    assert_eq!(gone["event"], "commandFailed", "{gone}");
    assert_eq!(gone["code"], "invalid_argument", "{gone}");

    let listed = Command::new(BIN)
        .arg("screens")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(!listed.status.success());
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(stderr.contains("no display to share"), "{stderr}");
}
