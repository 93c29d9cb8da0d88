//! A headless X display: Xvfb on the first free display number, gone when dropped. Used by
//! the app's desktop harness, the screen-sharing tests and `between bench screen` (tests
//! include this file by path).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Xvfb {
    child: Child,
    /// `:N`, for DISPLAY.
    pub display: String,
}

impl Xvfb {
    /// Starts a `width`x`height` 24-bit screen and waits for its socket.
    pub fn start(width: u32, height: u32) -> Result<Self, String> {
        let mut n = 90 + std::process::id() % 100;
        while Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            n += 1;
        }
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([
                &display,
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Xvfb ({e}); install the xvfb package"))?;
        let xvfb = Self { child, display };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            if Instant::now() >= deadline {
                return Err("Xvfb did not start within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(xvfb)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
