//! Shared by the `between` binary tests: a real server on its own runtime thread, and a bot
//! process whose stdout JSON lines arrive on a channel.
#![allow(dead_code, clippy::unwrap_used)]

use between_server::{ApiKeys, DEV_API_KEY, ServerConfig, Timing};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_between");

/// A server on its own runtime thread, for tests that drive processes synchronously.
pub struct Server {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into(), None)
    }

    /// Listening and carrying media on `ip`; `udp_port` as `--udp-port`.
    pub fn start_on(ip: IpAddr, udp_port: Option<u16>) -> Self {
        let (url_tx, url_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let mut keys = ApiKeys::default();
                keys.add(DEV_API_KEY, None).unwrap();
                let server = between_server::start(ServerConfig {
                    listen: std::net::SocketAddr::new(ip, 0),
                    keys,
                    timing: Timing::default(),
                    media_ip: ip,
                    public_ip: None,
                    max_connections_per_ip: between_server::DEFAULT_MAX_CONNECTIONS_PER_IP,
                    udp_port,
                })
                .await
                .unwrap();
                url_tx.send(server.url()).unwrap();
                let _ = stop_rx.await;
                server.shutdown(Duration::from_secs(2)).await;
            });
        });
        let url = url_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running `between join`, its stdout lines parsed as JSON as they come.
pub struct Bot {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
}

/// A bot the test is done with goes with it (otherwise it would keep trying to reach the
/// test's server after the test ended).
impl Drop for Bot {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Bot {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with(Command::new(BIN).args(args))
    }

    /// A bot from a prepared command (environment, extra arguments); stdin is piped for
    /// `--commands`.
    pub fn spawn_with(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// The next line whose "event" is `name`, skipping others, within 5 s.
    pub fn expect(&self, name: &str) -> Value {
        self.expect_where(name, |_| true)
    }

    /// The next `name` event for which `matches` holds, skipping others, within 5 s.
    pub fn expect_where(&self, name: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.expect_within(name, Duration::from_secs(5), matches)
    }

    /// The next `name` event for which `matches` holds, skipping others, within `within`.
    pub fn expect_within(
        &self,
        name: &str,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no matching {name:?} event within {within:?}"));
            if line["event"] == name && matches(&line) {
                return line;
            }
        }
    }

    /// The next line whose "event" is any of `names`, within `within`.
    pub fn expect_within_any(&self, names: &[&str], within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {names:?} event within {within:?}"));
            if names.iter().any(|n| line["event"] == *n) {
                return line;
            }
        }
    }

    /// One event of each of `names`, in whatever order they come, for which `matches`
    /// holds; other lines are skipped. Within 5 s.
    pub fn expect_all(&self, names: &[&str], matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let within = Duration::from_secs(5);
        let deadline = Instant::now() + within;
        let mut found: Vec<Option<Value>> = vec![None; names.len()];
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                let missing: Vec<&&str> = names
                    .iter()
                    .zip(&found)
                    .filter(|(_, f)| f.is_none())
                    .map(|(n, _)| n)
                    .collect();
                panic!("no matching {missing:?} within {within:?}")
            });
            for (name, slot) in names.iter().zip(found.iter_mut()) {
                if slot.is_none() && line["event"] == *name && matches(&line) {
                    *slot = Some(line.clone());
                }
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Sends one `--commands` line.
    pub fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

impl Server {
    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        use std::io::Read;
        let addr = self.url.trim_start_matches("ws://");
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        write!(tcp, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).unwrap();
        text
    }
}

/// `between join` arguments for `call` on this server with the dev key.
pub fn join_args<'a>(url: &'a str, call: &'a str) -> Vec<&'a str> {
    vec!["join", call, "--server", url, "--api-key", DEV_API_KEY]
}

/// The frames of a Y4M file a bot is still writing (`--record`): all complete ones so far.
pub fn recorded_frames(path: &std::path::Path) -> Vec<between_media::video::I420Frame> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(mut reader) = between_media::y4m::Y4mReader::new(std::io::Cursor::new(bytes)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Ok(Some(frame)) = reader.next_frame() {
        out.push(frame);
    }
    out
}
