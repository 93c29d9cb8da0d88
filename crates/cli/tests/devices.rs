//! `between devices` against a private PulseAudio daemon holding named virtual devices (this
//! machine has no sound card): the PulseAudio host is chosen and lists them by their
//! descriptions, the default marked, sink monitors left out of the microphones. Without a
//! sound server it falls back to ALSA. Needs the `pulseaudio` package (scripts/test.sh
//! installs it).
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_between");

/// A PulseAudio daemon on a socket of its own, stopped on drop.
struct Pulse {
    child: Child,
    dir: PathBuf,
}

impl Pulse {
    fn start(modules: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("between-pulse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("native");
        let mut cmd = Command::new("pulseaudio");
        cmd.args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--system=false",
        ])
        .args([
            "--use-pid-file=false",
            "--disable-shm=yes",
            "--log-target=stderr",
        ])
        .arg("-L")
        .arg(format!(
            "module-native-protocol-unix auth-anonymous=1 socket={}",
            socket.display()
        ));
        for m in modules {
            cmd.arg("-L").arg(m);
        }
        let mut child = cmd
            .env("HOME", &dir)
            .env("XDG_RUNTIME_DIR", &dir)
            .env("XDG_CONFIG_HOME", &dir)
            .arg("--log-level=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start pulseaudio ({e}); install the pulseaudio package")
            });
        // Ready when it says so: its socket appears before its modules are loaded, and a cold
        // start can take longer than a client waits.
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut said = Vec::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("Daemon startup complete") {
                    let _ = ready_tx.send(Ok(()));
                }
                said.push(line);
            }
            let _ = ready_tx.send(Err(said.join("\n")));
        });
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => panic!("pulseaudio exited:\n{log}"),
            Err(_) => panic!("pulseaudio not ready within 20 s"),
        }
        Self { child, dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("native")
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn devices(pulse_socket: Option<&Path>) -> Value {
    let mut cmd = Command::new(BIN);
    cmd.arg("devices").env_remove("PULSE_RUNTIME_PATH");
    match pulse_socket {
        Some(s) => cmd.env("PULSE_SERVER", format!("unix:{}", s.display())),
        None => cmd
            .env_remove("PULSE_SERVER")
            .env("XDG_RUNTIME_DIR", "/nonexistent"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn pulseaudio_devices_are_listed_by_their_names() {
    let pulse = Pulse::start(&[
        "module-null-sink sink_name=meeting_speaker sink_properties=device.description=Meeting-Speaker",
        "module-null-sink sink_name=headset sink_properties=device.description=Headset",
        "module-null-sink sink_name=mic_feed sink_properties=device.description=Mic-Feed",
        "module-remap-source master=mic_feed.monitor source_name=virtual_mic source_properties=device.description=Virtual-Mic",
    ]);
    let list = devices(Some(&pulse.socket()));
    assert_eq!(list["audioHost"], "PulseAudio", "{list:#}");
    let devices = list["devices"].as_array().unwrap();
    let find = |kind: &str, label: &str| {
        devices
            .iter()
            .find(|d| d["kind"] == kind && d["label"] == label)
            .unwrap_or_else(|| panic!("no {kind} {label:?} in {list:#}"))
    };
    let speaker = find("audiooutput", "Meeting-Speaker");
    assert_eq!(speaker["deviceId"], "pulseaudio:meeting_speaker");
    find("audiooutput", "Headset");
    let mic = find("audioinput", "Virtual-Mic");
    assert_eq!(mic["deviceId"], "pulseaudio:virtual_mic");
    // Monitors are not microphones.
    assert!(
        !devices
            .iter()
            .any(|d| d["deviceId"].as_str().unwrap().ends_with(".monitor")),
        "{list:#}"
    );
    // The first sink loaded is PulseAudio's default output.
    let defaults: Vec<&Value> = devices
        .iter()
        .filter(|d| d["kind"] == "audiooutput" && d["isDefault"] == true)
        .collect();
    assert_eq!(defaults.len(), 1, "{list:#}");
}

#[test]
fn without_a_sound_server_alsa_is_used() {
    let list = devices(None);
    assert_eq!(list["audioHost"], "ALSA", "{list:#}");
}
