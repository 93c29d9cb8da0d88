//! Screen sharing the Wayland way: through xdg-desktop-portal's ScreenCast interface and
//! PipeWire, with the engine's real D-Bus client and PipeWire consumer.
//!
//! What stands in for a desktop: a private D-Bus session bus, a PipeWire daemon with
//! WirePlumber, a GStreamer pipeline that serves a known picture as a PipeWire video source,
//! and `portal/fake_portal.py`, which answers the portal's ScreenCast calls as the real one
//! does after a person picked a screen (it hands out that PipeWire node). A real compositor
//! portal was tried (sway + xdg-desktop-portal-wlr 0.7, headless: "unable to receive a valid
//! format from wlr_screencopy"), so the portal process itself is the one part not exercised.
#![allow(clippy::unwrap_used)]

mod common;

use between_media::analysis::frame_psnr;
use between_media::video::I420Frame;
use between_testbed::portal_desktop::{DesktopPicture, PortalDesktop};
use between_testbed::x11_picture::test_picture_i420;
use common::{BIN, Bot, Server, join_args};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PICTURE: (u16, u16) = (640, 360);

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn desktop(cancel: bool) -> PortalDesktop {
    let (w, h) = PICTURE;
    PortalDesktop::start(DesktopPicture::Known(w, h), cancel).unwrap()
}

/// A `between join --commands` sharing through this desktop's portal.
fn sharer(desktop: &PortalDesktop, server: &Server, call: &str) -> (Bot, String) {
    let mut command = desktop.sharing_command(BIN);
    command.args(join_args(&server.url, call)).args([
        "--commands",
        "--data",
        r#"{"name":"Wayland"}"#,
    ]);
    let bot = Bot::spawn_with(&mut command);
    let id = bot.expect("joined")["peerId"].as_str().unwrap().to_string();
    (bot, id)
}

fn run(bot: &mut Bot, cmd: &str) -> Value {
    bot.command(&format!(r#"{{"cmd":"{cmd}"}}"#));
    loop {
        let line =
            bot.expect_within_any(&["commandDone", "commandFailed"], Duration::from_secs(30));
        if line["cmd"] == cmd {
            return line;
        }
    }
}

fn expected_picture() -> I420Frame {
    test_picture_i420(PICTURE.0, PICTURE.1)
}

/// The newest complete frame of a Y4M being written.
fn last_frame(path: &Path) -> Option<I420Frame> {
    common::recorded_frames(path).pop()
}

#[test]
fn a_screen_chosen_in_the_portal_arrives_as_its_picture_and_ends_when_the_desktop_ends_it() {
    let mut desktop = desktop(false);
    let server = Server::start();
    let dir = std::env::temp_dir().join(format!("between-portal-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = join_args(&server.url, "portal");
    args.extend(["--record", dir.to_str().unwrap(), "--record-fps", "5"]);
    let viewer = Bot::spawn_with(Command::new(BIN).args(&args).env_remove("DISPLAY"));
    viewer.expect("joined");
    let (mut sharer, sharer_id) = sharer(&desktop, &server, "portal");

    let started = run(&mut sharer, "startScreenshare");
    assert_eq!(started["event"], "commandDone", "{started}");
    sharer.expect("localShareCreated");
    viewer.expect_where("screenShareCreated", |e| e["peerId"] == sharer_id.as_str());
    let recording = dir.join(format!("{sharer_id}-screen.y4m"));
    let expected = expected_picture();
    let mut best = f64::NEG_INFINITY;
    wait_until("the portal's picture recorded at 30 dB", 20, || {
        if let Some(frame) = last_frame(&recording) {
            assert_eq!((frame.width(), frame.height()), (640, 360));
            best = best.max(frame_psnr(&frame, &expected));
        }
        best >= 30.0
    });
    eprintln!("the portal share matches its picture at {best:.1} dB");

    let stopped = run(&mut sharer, "stopScreenshare");
    assert_eq!(stopped["event"], "commandDone", "{stopped}");
    viewer.expect_where("screenShareClosed", |e| e["peerId"] == sharer_id.as_str());
    let again = run(&mut sharer, "startScreenshare");
    assert_eq!(again["event"], "commandDone", "{again}");
    viewer.expect_where("screenShareCreated", |e| e["peerId"] == sharer_id.as_str());

    // The person clicks the desktop's "Stop sharing": the portal closes the session.
    desktop.stop_sharing_from_the_desktop().unwrap();
    sharer.expect("localShareClosed");
    viewer.expect_where("screenShareClosed", |e| e["peerId"] == sharer_id.as_str());

    // Sharing again right away works, and so does the stream's node going away.
    let third = run(&mut sharer, "startScreenshare");
    assert_eq!(third["event"], "commandDone", "{third}");
    viewer.expect_where("screenShareCreated", |e| e["peerId"] == sharer_id.as_str());
    desktop.remove_the_screen_node();
    sharer.expect("localShareClosed");
    viewer.expect_where("screenShareClosed", |e| e["peerId"] == sharer_id.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cancelling_the_portal_chooser_is_screenshare_denied_and_no_bus_is_unsupported() {
    let desktop = desktop(true);
    let server = Server::start();
    let (mut sharer, _) = sharer(&desktop, &server, "portal-cancel");
    let denied = run(&mut sharer, "startScreenshare");
    assert_eq!(denied["event"], "commandFailed", "{denied}");
    assert_eq!(denied["code"], "screenshare_denied", "{denied}");

    // A Wayland session whose D-Bus cannot be reached: a readable error, and the bot lives on.
    let mut lost = desktop.sharing_command(BIN);
    lost.args(join_args(&server.url, "portal-cancel"))
        .args(["--commands"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let mut lost = Bot::spawn_with(&mut lost);
    lost.expect("joined");
    let failed = run(&mut lost, "startScreenshare");
    assert_eq!(failed["event"], "commandFailed", "{failed}");
    assert_eq!(failed["code"], "screenshare_unsupported", "{failed}");
    let stop = run(&mut lost, "stopScreenshare");
    assert_eq!(stop["event"], "commandDone", "{stop}");
}
