//! A private PulseAudio daemon with virtual devices (null sinks, sources remapped from a
//! sink's monitor), for what needs sound devices on a machine without a sound card: the
//! benchmarks, and the device and app tests (`sound` wraps it for them). A desktop
//! always has a sound server; without one cpal falls back to ALSA.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PulseDaemon {
    child: Child,
    dir: PathBuf,
}

impl PulseDaemon {
    /// Starts a daemon with `modules` (each a `-L` argument) on a socket and folder of its
    /// own, and waits until it says it is ready (its socket appears before its modules are
    /// loaded).
    pub fn start(modules: &[&str]) -> Result<Self, String> {
        // One daemon per caller: tests run in parallel.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("between-pulse-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
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
        .arg("--log-level=info")
        .arg("-L")
        .arg(format!(
            "module-native-protocol-unix auth-anonymous=1 socket={}",
            dir.join("native").display()
        ));
        for m in modules {
            cmd.arg("-L").arg(m);
        }
        let mut child = cmd
            .env("HOME", &dir)
            .env("XDG_RUNTIME_DIR", &dir)
            .env("XDG_CONFIG_HOME", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("cannot start pulseaudio ({e}); install the pulseaudio package")
            })?;
        let Some(stderr) = child.stderr.take() else {
            return Err("no stderr from pulseaudio".into());
        };
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
        let daemon = Self { child, dir };
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => Ok(daemon),
            Ok(Err(log)) => Err(format!("pulseaudio exited:\n{log}")),
            Err(_) => Err("pulseaudio not ready within 20 s".into()),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("native")
    }

    /// `PULSE_SERVER` for clients of this daemon.
    pub fn server_env(&self) -> String {
        format!("unix:{}", self.socket().display())
    }
}

impl Drop for PulseDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
