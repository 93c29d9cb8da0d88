//! Cameras, end to end: V4L2 capture, the mode choice, YUYV conversion,
//! encoding, the SFU and a participant's decoder. This machine and CI have no camera and
//! cannot load kernel modules (no vivid, no v4l2loopback), so the camera is made in user
//! space: `tests/fake_v4l2/fake_v4l2.c`, compiled here and loaded into `between` with
//! LD_PRELOAD, answers the V4L2 calls for one videoN node (a file in the test's folder). It offers what a USB 2
//! webcam offers raw (640x480 at 30 fps, 1280x720 at only 10) and streams colour bars above
//! a moving block in real time; it can also be busy or be unplugged mid-call.
//!
//! Needs a C compiler (`cc`) and the kernel's V4L2 header (`linux-libc-dev`).
#![allow(clippy::unwrap_used)]

mod common;

use between_media::video::I420Frame;
use between_testbed::sound::Pulse;
use common::{BIN, Bot, Server, join_args};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shim, built once per test run.
fn shim() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_v4l2/fake_v4l2.c");
        let lib = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libfake_v4l2.so");
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&lib)
            .arg(&source)
            .arg("-ldl")
            .output()
            .expect("a C compiler (cc) to build the fake camera");
        assert!(
            out.status.success(),
            "building the fake camera: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lib
    })
}

/// One fake camera: a node file named like /dev/videoN, reached through a by-id style link
/// (its ID), and the environment that makes `between` see a camera there.
struct FakeCamera {
    id: String,
    node: PathBuf,
}

impl FakeCamera {
    fn new(name: &str, index: u32) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("camera-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("video{index}")), b"").unwrap();
        let link = dir.join("usb-Between_Test_Camera-video-index0");
        std::os::unix::fs::symlink(format!("video{index}"), &link).unwrap();
        Self {
            id: format!("v4l2:{}", link.display()),
            node: dir.join(format!("video{index}")),
        }
    }

    fn command(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env("LD_PRELOAD", shim())
            .env("FAKE_V4L2_PATH", &self.node);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// Waits (deadline 30 s) until `count` pictures were recorded.
fn wait_for_frames(path: &Path, count: usize) -> Vec<I420Frame> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let frames = common::recorded_frames(path);
        if frames.len() >= count {
            return frames;
        }
        assert!(
            Instant::now() < deadline,
            "only {} pictures recorded in 30 s",
            frames.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where the moving block's left edge is, in the bottom quarter of the picture.
fn block_x(frame: &I420Frame) -> Option<usize> {
    let w = frame.width() as usize;
    let row = frame.height() as usize * 7 / 8;
    frame.y()[row * w..(row + 1) * w]
        .iter()
        .position(|&luma| luma > 128)
}

#[test]
fn a_camera_is_captured_and_reaches_the_other_participant() {
    let camera = FakeCamera::new("captured", 57);
    let server = Server::start();
    // Its first picture comes 1.2 s after streaming starts, as a USB camera's may.
    let record = Path::new(env!("CARGO_TARGET_TMPDIR")).join("camera-captured-record");
    let _ = std::fs::remove_dir_all(&record);
    let viewer = Bot::spawn(
        &[
            join_args(&server.url, "camera"),
            vec!["--receive", "--record", record.to_str().unwrap()],
        ]
        .concat(),
    );
    viewer.expect("joined");
    let mut sender = Bot::spawn_with(
        camera
            .command(&[("FAKE_V4L2_WARMUP_MS", "1200")])
            .args(join_args(&server.url, "camera"))
            .args(["--camera", &camera.id]),
    );
    let joined = sender.expect("joined");
    let sender_id = joined["peerId"].as_str().unwrap().to_string();
    viewer.expect_within("videoCreated", Duration::from_secs(10), |e| {
        e["peerId"] == sender_id.as_str()
    });
    let frames = wait_for_frames(&record.join(format!("{sender_id}.y4m")), 45);

    // The smooth mode, not 1280x720 at 10 fps.
    let last = frames.last().unwrap();
    assert_eq!((last.width(), last.height()), (640, 480));

    // The bars arrive with their colours (through YUYV → I420, H.264 and back).
    let (w, h) = (640usize, 480usize);
    let row = h / 4;
    let c_row = row / 2;
    for bar in 0..8usize {
        let x = (2 * bar + 1) * w / 16;
        let near = |got: u8, want: usize| (got as i32 - want as i32).abs() <= 6;
        let luma = last.y()[row * w + x];
        let u = last.u()[c_row * (w / 2) + x / 2];
        let v = last.v()[c_row * (w / 2) + x / 2];
        assert!(
            near(luma, 16 + bar * 28) && near(u, 64 + bar * 16) && near(v, 192 - bar * 16),
            "bar {bar}: Y {luma} U {u} V {v}"
        );
    }

    // Live capture, not one picture repeated: the block is seen in many places.
    let mut places: Vec<usize> = frames.iter().filter_map(block_x).collect();
    places.sort_unstable();
    places.dedup();
    assert!(places.len() >= 10, "the block stood still: {places:?}");

    let _ = sender.terminate();
    let mut viewer = viewer;
    let _ = viewer.terminate();
}

#[test]
fn a_busy_camera_is_refused_and_an_unplugged_or_stalled_one_turns_video_off() {
    // Another app streams from it.
    let busy = FakeCamera::new("busy", 58);
    let server = Server::start();
    let out = busy
        .command(&[("FAKE_V4L2_BUSY", "1")])
        .args(join_args(&server.url, "busy"))
        .args(["--camera", &busy.id, "--duration", "5s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "joined with a busy camera");
    assert!(
        stderr.contains("The camera is in use by another app"),
        "{stderr}"
    );

    // On a machine with a real camera the engine would rightly fall back to it.
    if has_real_camera() {
        eprintln!("skipping the unplug and stall cases: this machine has a camera");
        return;
    }
    // Unplugged (the driver says ENODEV) or silent (no picture any more, no error) after 2 s
    // of pictures: the call goes on without video, and says so.
    for (name, index, fault) in [
        ("unplugged", 59, "FAKE_V4L2_UNPLUG"),
        ("stalled", 62, "FAKE_V4L2_STALL"),
    ] {
        let camera = FakeCamera::new(name, index);
        let viewer = Bot::spawn(&[join_args(&server.url, name), vec!["--receive"]].concat());
        viewer.expect("joined");
        let mut sender = Bot::spawn_with(
            camera
                .command(&[(fault, "60")])
                .args(join_args(&server.url, name))
                .args(["--camera", &camera.id, "--tone", "440"]),
        );
        let joined = sender.expect("joined");
        let sender_id = joined["peerId"].as_str().unwrap().to_string();
        viewer.expect_within("videoCreated", Duration::from_secs(10), |e| {
            e["peerId"] == sender_id.as_str()
        });
        let error = sender.expect_within("error", Duration::from_secs(15), |_| true);
        assert_eq!(error["code"], "device_unavailable", "{name}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("camera was disconnected") && message.contains("video is off"),
            "{name}: {message}"
        );
        viewer.expect_within("videoPaused", Duration::from_secs(5), |e| {
            e["peerId"] == sender_id.as_str()
        });
        assert!(
            sender.child.try_wait().unwrap().is_none(),
            "{name}: the call ended with the camera"
        );
        let _ = sender.terminate();
        let mut viewer = viewer;
        let _ = viewer.terminate();
    }
}

fn has_real_camera() -> bool {
    std::fs::read_dir("/dev").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("video"))
    })
}

#[test]
fn the_camera_is_switched_mid_call_on_the_same_track() {
    let camera = FakeCamera::new("switched", 61);
    let server = Server::start();
    let record = Path::new(env!("CARGO_TARGET_TMPDIR")).join("camera-switched-record");
    let _ = std::fs::remove_dir_all(&record);
    let viewer = Bot::spawn(
        &[
            join_args(&server.url, "switch"),
            vec!["--receive", "--record", record.to_str().unwrap()],
        ]
        .concat(),
    );
    viewer.expect("joined");
    // Starts on the test pattern (at the camera's size), then switches to the camera.
    let mut sender = Bot::spawn_with(
        camera
            .command(&[])
            .args(join_args(&server.url, "switch"))
            .args(["--pattern", "--video-size", "640x480", "--commands"]),
    );
    let sender_id = sender.expect("joined")["peerId"]
        .as_str()
        .unwrap()
        .to_string();
    viewer.expect_within("videoCreated", Duration::from_secs(10), |e| {
        e["peerId"] == sender_id.as_str()
    });
    let path = record.join(format!("{sender_id}.y4m"));
    let before = wait_for_frames(&path, 15).len();

    // An unknown camera changes nothing.
    sender.command(r#"{"cmd":"setVideoInput","deviceId":"v4l2:/dev/video-nowhere"}"#);
    let failed = sender.expect("commandFailed");
    assert_eq!(failed["code"], "device_not_found", "{failed}");

    sender.command(&format!(
        r#"{{"cmd":"setVideoInput","deviceId":"{}"}}"#,
        camera.id
    ));
    sender.expect_within("commandDone", Duration::from_secs(10), |e| {
        e["cmd"] == "setVideoInput"
    });
    // The same track (no new videoCreated), now carrying the camera's bars.
    let frames = wait_for_frames(&path, before + 45);
    let last = frames.last().unwrap();
    let w = 640usize;
    let row = 480 / 4;
    let bars: Vec<u8> = (0..8)
        .map(|b| last.y()[row * w + (2 * b + 1) * w / 16])
        .collect();
    for (bar, luma) in bars.iter().enumerate() {
        assert!(
            (i32::from(*luma) - (16 + bar as i32 * 28)).abs() <= 6,
            "not the camera's bars after the switch: {bars:?}"
        );
    }
    let _ = sender.terminate();
    let mut viewer = viewer;
    let _ = viewer.terminate();
}

fn permissions(camera: &FakeCamera, pulse: &Pulse, env: &[(&str, &str)]) -> Value {
    let out = camera
        .command(env)
        .args([
            "permissions",
            "--mic",
            "pulseaudio:virtual_mic",
            "--camera",
            &camera.id,
        ])
        .env("PULSE_SERVER", pulse.server_env())
        .env_remove("PULSE_RUNTIME_PATH")
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn permission_state_tries_the_camera() {
    let pulse = Pulse::start(&[
        "module-null-sink sink_name=mic_feed",
        "module-remap-source master=mic_feed.monitor source_name=virtual_mic",
    ]);
    let camera = FakeCamera::new("permissions", 60);
    let ok = permissions(&camera, &pulse, &[]);
    assert_eq!(ok["state"], "success", "{ok}");
    let busy = permissions(&camera, &pulse, &[("FAKE_V4L2_BUSY", "1")]);
    assert_eq!(busy["state"], "failed", "{busy}");
    assert_eq!(busy["error"]["reason"], "device_unavailable", "{busy}");
    let raw = busy["error"]["rawStr"].as_str().unwrap();
    assert!(
        raw.starts_with("The camera is in use by another app."),
        "{raw}"
    );
}

/// Plugging a camera in and out while a call runs: `devicesUpdated` lists it (by its
/// driver's name) and then drops it. The bot runs in a mount namespace whose /dev is a
/// folder of this test (`fake_v4l2/with_dev.sh`: every real node is still there), so the
/// test can make `/dev/video77` appear and go; the user-space camera answers for it. Needs
/// root for the mount namespace, as CI is (like the loss tests' network namespaces).
#[test]
fn a_camera_plugged_in_and_out_shows_in_devices_updated() {
    // A real camera would come first in the list; a machine that cannot make mount
    // namespaces (not root) cannot run this.
    if has_real_camera() {
        eprintln!("skipped: this machine has a camera");
        return;
    }
    let can_unshare = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can_unshare {
        eprintln!("skipped: no mount namespaces here (needs root, as CI has)");
        return;
    }
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("camera-hotplug");
    let _ = std::fs::remove_dir_all(&base);
    let (dev, saved) = (base.join("dev"), base.join("saved-dev"));
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::create_dir_all(&saved).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_v4l2/with_dev.sh");
    let server = Server::start();
    let mut bot = Bot::spawn_with(
        Command::new("sh")
            .arg(&script)
            .args([&dev, &saved])
            .arg(BIN)
            .args(join_args(&server.url, "hotplug"))
            .args(["--receive", "--watch-devices"])
            .env("LD_PRELOAD", shim())
            .env("FAKE_V4L2_PATH", "/dev/video77")
            .env_remove("PULSE_SERVER"),
    );
    bot.expect_within("joined", Duration::from_secs(10), |_| true);
    let is_camera = |d: &Value| d["deviceId"] == "v4l2:/dev/video77";
    let first = bot.expect_within("devicesUpdated", Duration::from_secs(5), |_| true);
    assert!(
        !first["devices"].as_array().unwrap().iter().any(is_camera),
        "{first}"
    );

    std::fs::write(dev.join("video77"), b"").unwrap();
    let plugged = bot.expect_within("devicesUpdated", Duration::from_secs(2), |e| {
        e["devices"].as_array().unwrap().iter().any(is_camera)
    });
    let camera = plugged["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| is_camera(d))
        .unwrap();
    assert_eq!(camera["kind"], "videoinput", "{camera}");
    assert_eq!(camera["label"], "Between Test Camera", "{camera}");
    assert_eq!(camera["isDefault"], true, "{camera}");

    std::fs::remove_file(dev.join("video77")).unwrap();
    bot.expect_within("devicesUpdated", Duration::from_secs(2), |e| {
        !e["devices"].as_array().unwrap().iter().any(is_camera)
    });
    let _ = bot.terminate();
}
