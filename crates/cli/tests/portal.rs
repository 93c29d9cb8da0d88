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
#[path = "../src/bench/x11_picture.rs"]
mod x11_picture;

use between_media::analysis::frame_psnr;
use between_media::video::I420Frame;
use between_media::y4m::Y4mReader;
use common::{BIN, Bot, Server, join_args};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use x11_picture::{test_picture, test_picture_i420};

const PICTURE: (u16, u16) = (640, 360);

/// A desktop's screen-sharing plumbing on a private runtime directory.
struct PortalDesktop {
    dir: PathBuf,
    bus: String,
    processes: Vec<Child>,
    /// The GStreamer pipeline serving the picture (its node is the shared screen).
    source: usize,
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl PortalDesktop {
    fn start(cancel: bool) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "between-portal-{}-{}",
            std::process::id(),
            u8::from(cancel)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bus = format!("unix:path={}/bus", dir.display());
        let mut desktop = Self {
            dir,
            bus,
            processes: Vec::new(),
            source: 0,
        };
        let dbus = desktop.spawn(Command::new("dbus-daemon").args([
            "--session",
            "--nofork",
            &format!("--address={}", desktop.bus),
        ]));
        desktop.processes.push(dbus);
        let socket = desktop.dir.join("bus");
        wait_until("the D-Bus session bus", 10, || socket.exists());
        let pipewire = desktop.spawn(&mut Command::new("pipewire"));
        desktop.processes.push(pipewire);
        let pw_socket = desktop.dir.join("pipewire-0");
        wait_until("PipeWire", 10, || pw_socket.exists());
        let wireplumber = desktop.spawn(&mut Command::new("wireplumber"));
        desktop.processes.push(wireplumber);
        wait_until("WirePlumber", 20, || {
            desktop.pw_dump().contains("\"WirePlumber\"")
        });

        let (w, h) = PICTURE;
        let raw = desktop.dir.join("picture.bgrx");
        std::fs::write(&raw, test_picture(w, h)).unwrap();
        let source = desktop.spawn(Command::new("gst-launch-1.0").args([
            "-q",
            "filesrc",
            &format!("location={}", raw.display()),
            "!",
            "rawvideoparse",
            &format!("width={w}"),
            &format!("height={h}"),
            "format=bgrx",
            "framerate=15/1",
            "!",
            "imagefreeze",
            "is-live=true",
            "!",
            "pipewiresink",
            "mode=provide",
            "stream-properties=p,media.class=Video/Source,node.name=between-test-screen",
        ]));
        desktop.source = desktop.processes.len();
        desktop.processes.push(source);
        let mut node = None;
        wait_until("the picture's PipeWire node", 20, || {
            node = node_id(&desktop.pw_dump(), "between-test-screen");
            node.is_some()
        });
        let node = node.unwrap().to_string();

        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/portal/fake_portal.py");
        let mut args = vec![script.to_str().unwrap(), "--node", &node];
        if cancel {
            args.push("--cancel");
        }
        let mut portal = desktop
            .command("/usr/bin/python3")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(portal.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "the fake portal did not start");
        desktop.processes.push(portal);
        desktop
    }

    /// What the desktop's "Stop sharing" does: the portal closes its sessions.
    fn stop_sharing_from_the_desktop(&self) {
        let status = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.portal.Desktop",
                "/org/freedesktop/portal/desktop",
                "org.between.Test.CloseSessions",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "dbus-send CloseSessions: {status}");
    }

    /// The shared screen's PipeWire node goes away (the compositor ended the stream).
    fn remove_the_screen_node(&mut self) {
        let source = &mut self.processes[self.source];
        let _ = source.kill();
        let _ = source.wait();
    }

    /// A command in this desktop's session (runtime dir, bus), without any display.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("XDG_RUNTIME_DIR", &self.dir)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env_remove("DISPLAY")
            .env_remove("PIPEWIRE_REMOTE");
        command
    }

    fn spawn(&self, command: &mut Command) -> Child {
        let program = command.get_program().to_string_lossy().to_string();
        let mut prepared = self.command(&program);
        prepared.args(command.get_args());
        prepared
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} ({e}); scripts/test.sh installs it"))
    }

    fn pw_dump(&self) -> String {
        self.command("pw-dump")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// A `between join --commands` sharing through this desktop's portal.
    fn sharer(&self, server: &Server, call: &str) -> (Bot, String) {
        let mut command = self.command(BIN);
        command
            .args(join_args(&server.url, call))
            .args(["--commands", "--data", r#"{"name":"Wayland"}"#])
            .env("WAYLAND_DISPLAY", "wayland-between-test");
        let bot = Bot::spawn_with(&mut command);
        let id = bot.expect("joined")["peerId"].as_str().unwrap().to_string();
        (bot, id)
    }
}

impl Drop for PortalDesktop {
    fn drop(&mut self) {
        for p in self.processes.iter_mut().rev() {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The id of the PipeWire node named `name` in `pw-dump`'s JSON.
fn node_id(dump: &str, name: &str) -> Option<u64> {
    let objects: Value = serde_json::from_str(dump).ok()?;
    objects.as_array()?.iter().find_map(|o| {
        (o["info"]["props"]["node.name"] == name)
            .then(|| o["id"].as_u64())
            .flatten()
    })
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
    let bytes = std::fs::read(path).ok()?;
    let mut reader = Y4mReader::new(std::io::Cursor::new(bytes)).ok()?;
    let mut last = None;
    while let Ok(Some(frame)) = reader.next_frame() {
        last = Some(frame);
    }
    last
}

#[test]
fn a_screen_chosen_in_the_portal_arrives_as_its_picture_and_ends_when_the_desktop_ends_it() {
    let mut desktop = PortalDesktop::start(false);
    let server = Server::start();
    let dir = std::env::temp_dir().join(format!("between-portal-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = join_args(&server.url, "portal");
    args.extend(["--record", dir.to_str().unwrap(), "--record-fps", "5"]);
    let viewer = Bot::spawn_with(Command::new(BIN).args(&args).env_remove("DISPLAY"));
    viewer.expect("joined");
    let (mut sharer, sharer_id) = desktop.sharer(&server, "portal");

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
    desktop.stop_sharing_from_the_desktop();
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
    let desktop = PortalDesktop::start(true);
    let server = Server::start();
    let (mut sharer, _) = desktop.sharer(&server, "portal-cancel");
    let denied = run(&mut sharer, "startScreenshare");
    assert_eq!(denied["event"], "commandFailed", "{denied}");
    assert_eq!(denied["code"], "screenshare_denied", "{denied}");

    // A Wayland session whose D-Bus cannot be reached: a readable error, and the bot lives on.
    let mut lost = desktop.command(BIN);
    lost.args(join_args(&server.url, "portal-cancel"))
        .args(["--commands"])
        .env("WAYLAND_DISPLAY", "wayland-between-test")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let mut lost = Bot::spawn_with(&mut lost);
    lost.expect("joined");
    let failed = run(&mut lost, "startScreenshare");
    assert_eq!(failed["event"], "commandFailed", "{failed}");
    assert_eq!(failed["code"], "screenshare_unsupported", "{failed}");
    let stop = run(&mut lost, "stopScreenshare");
    assert_eq!(stop["event"], "commandDone", "{stop}");
}
