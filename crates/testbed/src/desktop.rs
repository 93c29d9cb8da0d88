//! A desktop for the app on a machine without one: an X display (Xvfb), a home folder of its
//! own (so settings start empty and survive a restart of the app), and tauri-driver in front
//! of WebKitWebDriver to drive the app. Used by `between bench app` and the app's end-to-end
//! tests.

use crate::webdriver::{Driver, Result};
use crate::xvfb::Xvfb;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Desktop {
    /// Held: the display lives as long as the desktop.
    _xvfb: Xvfb,
    driver: Option<Child>,
    pub display: String,
    pub home: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
    app: PathBuf,
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free local port: {e}"))
}

fn wait_for_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            return Err(format!("{what} did not listen within 20 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn tauri_driver() -> Result<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let bin = home.join("bin").join("tauri-driver");
    if bin.exists() {
        Ok(bin)
    } else {
        Err("tauri-driver is missing: cargo install tauri-driver --version '^2' --locked (scripts/test.sh does)".into())
    }
}

impl Desktop {
    /// A new display and home for the app at `app`; `env` is added to the app's environment
    /// (e.g. PULSE_SERVER).
    pub fn start(app: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let xvfb = Xvfb::start(1280, 800)?;
        let display = xvfb.display.clone();
        let home = std::env::temp_dir().join(format!(
            "between-app-home-{}-{}",
            std::process::id(),
            display.trim_start_matches(':')
        ));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home)
            .map_err(|e| format!("cannot make {}: {e}", home.display()))?;
        let mut all = vec![
            ("DISPLAY".to_string(), display.clone()),
            ("HOME".to_string(), home.display().to_string()),
            (
                "XDG_DATA_HOME".to_string(),
                home.join("data").display().to_string(),
            ),
            (
                "XDG_CONFIG_HOME".to_string(),
                home.join("config").display().to_string(),
            ),
            (
                "XDG_CACHE_HOME".to_string(),
                home.join("cache").display().to_string(),
            ),
            // WebKit's GPU process and sandbox need what a sandboxed CI does not have.
            (
                "WEBKIT_DISABLE_COMPOSITING_MODE".to_string(),
                "1".to_string(),
            ),
            (
                "WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS".to_string(),
                "1".to_string(),
            ),
            ("LIBGL_ALWAYS_SOFTWARE".to_string(), "1".to_string()),
            // The app decides how to draw from the machine (src-tauri/graphics.rs), not from
            // a developer's shell; a caller may still pass its own.
            ("BETWEEN_VIDEO_RENDERER".to_string(), String::new()),
            ("NO_AT_BRIDGE".to_string(), "1".to_string()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut desktop = Self {
            _xvfb: xvfb,
            driver: None,
            display,
            home,
            port: 0,
            env: all,
            app: app.to_path_buf(),
        };
        desktop.start_driver()?;
        Ok(desktop)
    }

    fn start_driver(&mut self) -> Result<()> {
        let port = free_port()?;
        let native = free_port()?;
        let mut cmd = Command::new(tauri_driver()?);
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .env_remove("PULSE_RUNTIME_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.driver = Some(
            cmd.spawn()
                .map_err(|e| format!("cannot start tauri-driver: {e}"))?,
        );
        wait_for_port(port, "tauri-driver")?;
        self.port = port;
        Ok(())
    }

    /// Starts the app and a WebDriver session on it.
    pub fn open_app(&self) -> Result<Driver> {
        Driver::start(self.port, &self.app.display().to_string())
    }

    /// The process IDs of the app and everything it started (WebKit's web and network
    /// processes), for memory figures.
    pub fn app_processes(&self) -> Vec<u32> {
        let name = self
            .app
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let procs = process_table();
        let mut found: Vec<u32> = procs
            .iter()
            // The kernel keeps 15 bytes of a command name.
            .filter(|(_, _, comm)| {
                !comm.is_empty() && name.get(..name.len().min(15)) == Some(comm.as_str())
            })
            .map(|(pid, _, _)| *pid)
            .collect();
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            for (pid, ppid, _) in &procs {
                if *ppid == parent && !found.contains(pid) {
                    found.push(*pid);
                }
            }
            i += 1;
        }
        found
    }
}

/// (pid, parent pid, command name) of every process.
fn process_table() -> Vec<(u32, u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let comm = stat[open + 1..close].to_string();
            let ppid = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid, comm))
        })
        .collect()
}

/// Resident memory of these processes together, in bytes (proportional shares where the
/// kernel offers them, so libraries shared between them count once).
pub fn memory_of(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .or_else(|_| std::fs::read_to_string(format!("/proc/{pid}/status")))
                .ok()?;
            let line = text
                .lines()
                .find(|l| l.starts_with("Pss:"))
                .or_else(|| text.lines().find(|l| l.starts_with("VmRSS:")))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .sum()
}

impl Drop for Desktop {
    fn drop(&mut self) {
        if let Some(mut d) = self.driver.take() {
            // tauri-driver's WebKitWebDriver (and an app it still runs) would outlive it.
            let table = process_table();
            for (pid, ppid, _) in &table {
                if *ppid == d.id() {
                    let _ = Command::new("kill").arg(pid.to_string()).status();
                }
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
