//! A headless X display: Xvfb on the first free display number, gone when dropped. Used by
//! the app's desktop harness, the screen-sharing tests and `between bench screen`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Xvfb {
    child: Child,
    /// `:N`, for DISPLAY.
    pub display: String,
}

impl Xvfb {
    /// Starts a `width`x`height` 24-bit screen on a display number Xvfb picks itself
    /// (`-displayfd`: race-free when several tests start displays at once) and returns once
    /// it accepts clients.
    pub fn start(width: u32, height: u32) -> Result<Self, String> {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Xvfb ({e}); install the xvfb package"))?;
        let stdout = child.stdout.take().ok_or("Xvfb has no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let number = rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .and_then(|line| line.trim().parse::<u32>().ok());
        let Some(number) = number else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("Xvfb did not start within 20 s".into());
        };
        Ok(Self {
            child,
            display: format!(":{number}"),
        })
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
