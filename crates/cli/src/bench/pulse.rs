//! A private PulseAudio daemon with virtual devices (null sinks, a source remapped from a
//! sink's monitor), for benchmarks that need sound devices on a machine without a sound card
//! (a desktop always has a sound server; without one cpal falls back to ALSA's null device,
//! which never blocks and spins a core).

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PulseDaemon {
    child: Child,
    dir: PathBuf,
}

impl PulseDaemon {
    /// Starts the daemon with `modules` (each a `-L` argument) and waits for its socket.
    pub fn start(modules: &[&str]) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("between-bench-pulse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("native");
        let mut cmd = Command::new("pulseaudio");
        cmd.args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--system=false",
        ])
        .args(["--use-pid-file=false", "--disable-shm=yes"])
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
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start pulseaudio (install the pulseaudio package)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("pulseaudio did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Module loading finishes after the socket appears (setup, not measured).
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self { child, dir })
    }

    /// `PULSE_SERVER` for clients of this daemon.
    pub fn server_env(&self) -> String {
        format!("unix:{}", self.dir.join("native").display())
    }
}

impl Drop for PulseDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
