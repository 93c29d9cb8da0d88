//! A `between join` bot in the app's call: its stdout JSON events on a channel.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Bot {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Bot {
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next `name` event for which `matches` holds, skipping others, within `secs`.
    pub fn expect(&self, name: &str, secs: u64, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v["event"] == name && matches(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("the bot saw no matching {name} within {secs} s"),
            }
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        // SIGTERM: the bot leaves the call cleanly.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `between` CLI (the bots), built beside this test by `cargo test --workspace`.
pub fn between_cli() -> PathBuf {
    built_beside("between")
}

/// The AppImage packer and runtime (crates/appimage).
pub fn between_appimage() -> PathBuf {
    built_beside("between-appimage")
}

/// A program of the workspace, built beside this test by `cargo test --workspace`.
fn built_beside(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (scripts/test.sh)",
        bin.display()
    );
    bin
}
