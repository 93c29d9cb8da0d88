//! What stands in for a Wayland desktop's screen-sharing plumbing, on a private runtime
//! directory: a D-Bus session bus, a PipeWire daemon with WirePlumber, a GStreamer pipeline
//! serving a picture as a PipeWire video node, and `portal/fake_portal.py`, which answers
//! xdg-desktop-portal's ScreenCast calls as the real portal does once a person picked a screen
//! (it hands out that node). Used by the portal tests and `between bench screen`. Needs the
//! packages `scripts/test.sh` installs.

use crate::x11_picture::test_picture;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the shared screen shows.
#[derive(Debug, Clone, Copy)]
pub enum DesktopPicture {
    /// `test_picture(w, h)`, still.
    Known(u16, u16),
    /// GStreamer's moving ball at `w`×`h`, a new picture at `fps`: every picture changed.
    Moving(u16, u16, u32),
}

pub struct PortalDesktop {
    pub dir: PathBuf,
    pub bus: String,
    processes: Vec<Child>,
    /// The GStreamer pipeline serving the picture (its node is the shared screen).
    source: usize,
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {secs} s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The id of the PipeWire node named `name` in `pw-dump`'s JSON.
fn node_id(dump: &str, name: &str) -> Option<u64> {
    let objects: serde_json::Value = serde_json::from_str(dump).ok()?;
    objects.as_array()?.iter().find_map(|o| {
        (o["info"]["props"]["node.name"] == name)
            .then(|| o["id"].as_u64())
            .flatten()
    })
}

impl PortalDesktop {
    /// Starts everything; with `cancel` the portal answers as a person pressing Cancel.
    pub fn start(picture: DesktopPicture, cancel: bool) -> Result<Self, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "between-portal-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let bus = format!("unix:path={}/bus", dir.display());
        let mut desktop = Self {
            dir,
            bus,
            processes: Vec::new(),
            source: 0,
        };
        let bus_address = format!("--address={}", desktop.bus);
        desktop.spawn("dbus-daemon", &["--session", "--nofork", &bus_address])?;
        let socket = desktop.dir.join("bus");
        wait_until("the D-Bus session bus", 10, || socket.exists())?;
        desktop.spawn("pipewire", &[])?;
        let pw_socket = desktop.dir.join("pipewire-0");
        wait_until("PipeWire", 10, || pw_socket.exists())?;
        desktop.spawn("wireplumber", &[])?;
        wait_until("WirePlumber", 20, || {
            desktop.pw_dump().contains("\"WirePlumber\"")
        })?;

        let sink = [
            "pipewiresink",
            "mode=provide",
            "stream-properties=p,media.class=Video/Source,node.name=between-test-screen",
        ];
        let mut args: Vec<String> = vec!["-q".into()];
        match picture {
            DesktopPicture::Known(w, h) => {
                let raw = desktop.dir.join("picture.bgrx");
                std::fs::write(&raw, test_picture(w, h)).map_err(|e| e.to_string())?;
                args.extend([
                    "filesrc".into(),
                    format!("location={}", raw.display()),
                    "!".into(),
                    "rawvideoparse".into(),
                    format!("width={w}"),
                    format!("height={h}"),
                    "format=bgrx".into(),
                    "framerate=15/1".into(),
                    "!".into(),
                    "imagefreeze".into(),
                    "is-live=true".into(),
                    "!".into(),
                ]);
            }
            DesktopPicture::Moving(w, h, fps) => {
                args.extend([
                    "videotestsrc".into(),
                    "pattern=ball".into(),
                    "is-live=true".into(),
                    "!".into(),
                    format!("video/x-raw,format=BGRx,width={w},height={h},framerate={fps}/1"),
                    "!".into(),
                ]);
            }
        }
        args.extend(sink.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        desktop.source = desktop.processes.len();
        desktop.spawn("gst-launch-1.0", &args)?;
        let mut node = None;
        wait_until("the picture's PipeWire node", 20, || {
            node = node_id(&desktop.pw_dump(), "between-test-screen");
            node.is_some()
        })?;
        let node = node.map(|n| n.to_string()).unwrap_or_default();

        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("portal/fake_portal.py");
        let script = script.to_str().ok_or("the stand-in portal's path")?;
        let mut args = vec![script, "--node", &node];
        if cancel {
            args.push("--cancel");
        }
        let mut portal = desktop
            .command("/usr/bin/python3")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the stand-in portal ({e})"))?;
        let stdout = portal
            .stdout
            .take()
            .ok_or("the stand-in portal has no stdout")?;
        desktop.processes.push(portal);
        let mut ready = String::new();
        BufReader::new(stdout)
            .read_line(&mut ready)
            .map_err(|e| e.to_string())?;
        if ready.trim() != "ready" {
            return Err("the stand-in portal did not start (python3-dbus, python3-gi?)".into());
        }
        Ok(desktop)
    }

    /// A command in this desktop's session (runtime dir, bus), without any display.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("XDG_RUNTIME_DIR", &self.dir)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env_remove("DISPLAY")
            .env_remove("PIPEWIRE_REMOTE");
        command
    }

    /// A command that shares this desktop's screen through the portal.
    pub fn sharing_command(&self, program: &str) -> Command {
        let mut command = self.command(program);
        command.env("WAYLAND_DISPLAY", "wayland-between-test");
        command
    }

    fn spawn(&mut self, program: &str, args: &[&str]) -> Result<(), String> {
        let child = self
            .command(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {program} ({e}); scripts/test.sh installs it"))?;
        self.processes.push(child);
        Ok(())
    }

    fn pw_dump(&self) -> String {
        self.command("pw-dump")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// What the desktop's "Stop sharing" does: the portal closes its sessions.
    pub fn stop_sharing_from_the_desktop(&self) -> Result<(), String> {
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
            .map_err(|e| format!("dbus-send: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("dbus-send CloseSessions: {status}"))
    }

    /// The shared screen's PipeWire node goes away (the compositor ended the stream).
    pub fn remove_the_screen_node(&mut self) {
        if let Some(source) = self.processes.get_mut(self.source) {
            let _ = source.kill();
            let _ = source.wait();
        }
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
