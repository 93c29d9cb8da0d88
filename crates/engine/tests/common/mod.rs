//! Shared test helpers: a real `between-server` on a free loopback port, engine participants,
//! waiting for events with a deadline, and a TCP proxy that can cut or black-hole a link.
#![allow(dead_code, clippy::unwrap_used)]

use between_engine::{Conference, ConferenceEvent, EngineConfig, EventStream, ReconnectPolicy};
use between_server::{ApiKeys, RunningServer, ServerConfig, Timing};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub const KEY: &str = "test-key-alpha";
pub const OTHER_KEY: &str = "test-key-beta";

pub async fn server_on(listen: SocketAddr) -> RunningServer {
    let mut keys = ApiKeys::default();
    keys.add(KEY, Some("alpha")).unwrap();
    keys.add(OTHER_KEY, Some("beta")).unwrap();
    between_server::start(ServerConfig {
        listen,
        keys,
        timing: Timing::default(),
        media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        public_ip: None,
        max_connections_per_ip: between_server::DEFAULT_MAX_CONNECTIONS_PER_IP,
        udp_port: None,
    })
    .await
    .expect("server starts")
}

/// A server that also advertises `public_ip` for its media, as behind 1:1 NAT.
pub async fn server_with_public_ip(public_ip: std::net::IpAddr) -> RunningServer {
    let mut keys = ApiKeys::default();
    keys.add(KEY, Some("alpha")).unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), keys);
    config.public_ip = Some(public_ip);
    between_server::start(config).await.expect("server starts")
}

pub async fn server() -> RunningServer {
    server_on("127.0.0.1:0".parse().unwrap()).await
}

/// A reconnect schedule short enough for tests (about 10 s in all).
pub fn quick_config(url: &str) -> EngineConfig {
    let mut config = EngineConfig::new(url);
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        max_attempts: 30,
    };
    config
}

pub struct Participant {
    pub conf: Conference,
    pub events: EventStream,
}

impl Participant {
    pub fn new(url: &str, key: &str, call: &str, name: &str) -> Self {
        Self::with_config(quick_config(url), key, call, name)
    }

    pub fn with_config(config: EngineConfig, key: &str, call: &str, name: &str) -> Self {
        let conf = Conference::new(config, key, call, json!({ "name": name })).unwrap();
        let events = conf.events();
        Self { conf, events }
    }

    /// Joins with media, on loopback.
    pub async fn with_media(
        url: &str,
        call: &str,
        name: &str,
        media: between_engine::MediaOptions,
    ) -> Self {
        let p = Self::new(url, KEY, call, name);
        p.conf
            .set_media(between_engine::MediaOptions {
                media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                ..media
            })
            .unwrap();
        p.conf.start_call().await.expect("start_call");
        p
    }

    /// Waits for this participant's own media to be published.
    pub async fn local_participant(&mut self) -> between_engine::LocalParticipant {
        self.wait_for(Duration::from_secs(5), "localParticipant", |e| match e {
            ConferenceEvent::LocalParticipant(l) => Some(l.clone()),
            _ => None,
        })
        .await
    }

    pub async fn joined(url: &str, key: &str, call: &str, name: &str) -> Self {
        let p = Self::new(url, key, call, name);
        p.conf.start_call().await.expect("start_call");
        p
    }

    pub fn id(&self) -> String {
        self.conf.peer_id().expect("joined")
    }

    /// The next event that `pick` accepts, skipping others; panics after `within`.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut pick: impl FnMut(&ConferenceEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => {
                    if let Some(v) = pick(&ev) {
                        return v;
                    }
                }
                Ok(None) => panic!("event stream ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {within:?}"),
            }
        }
    }

    pub async fn peer_joined(&mut self, within: Duration) -> (String, String) {
        self.wait_for(within, "peerJoined", |e| match e {
            ConferenceEvent::PeerJoined(p) => {
                Some((p.id().to_string(), p.extra_data().to_string()))
            }
            _ => None,
        })
        .await
    }

    /// The next remote camera this participant receives.
    pub async fn video_created(&mut self, within: Duration) -> between_engine::RemoteVideo {
        self.wait_for(within, "videoCreated", |e| match e {
            ConferenceEvent::Peer {
                event: between_engine::PeerEvent::VideoCreated(v),
                ..
            } => Some(v.clone()),
            _ => None,
        })
        .await
    }

    pub async fn peer_left(&mut self, within: Duration) -> String {
        self.wait_for(within, "peerLeft", |e| match e {
            ConferenceEvent::PeerLeft(id) => Some(id.clone()),
            _ => None,
        })
        .await
    }

    pub async fn data(&mut self, within: Duration) -> (String, Value) {
        self.wait_for(within, "data", |e| match e {
            ConferenceEvent::Data { from, data } => Some((from.clone(), data.clone())),
            _ => None,
        })
        .await
    }

    /// Every event already delivered, without waiting.
    pub fn drain(&mut self) -> Vec<ConferenceEvent> {
        std::iter::from_fn(|| self.events.try_recv()).collect()
    }
}

pub fn name_of(extra: &str) -> String {
    serde_json::from_str::<Value>(extra).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string()
}

pub const SHORT: Duration = Duration::from_secs(3);

/// A TCP proxy in front of the server. `cut` closes every current connection (a network
/// blip); `freeze` silently discards everything in both directions (a pulled cable).
pub struct Proxy {
    pub url: String,
    frozen: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let frozen = Arc::new(AtomicBool::new(false));
        let (cut, cut_rx) = watch::channel(0u64);
        let f = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, f.clone(), cut_rx.clone()));
            }
        });
        Self { url, frozen, cut }
    }

    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Lets traffic through again after `freeze`.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }

    pub fn cut(&self) {
        self.cut.send_modify(|g| *g += 1);
    }
}

async fn pipe(a: TcpStream, b: TcpStream, frozen: Arc<AtomicBool>, mut cut: watch::Receiver<u64>) {
    cut.mark_unchanged();
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::select! {
        _ = async { tokio::join!(copy(ar, bw, frozen.clone()), copy(br, aw, frozen)) } => {}
        _ = cut.changed() => {}
    }
}

/// Copies one direction; while frozen, what arrives is dropped on the floor.
async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if !frozen.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// Each remote peer's audio as a participant played it out.
#[derive(Default)]
pub struct AudioRecorder {
    pub by_peer: std::sync::Mutex<std::collections::HashMap<String, Vec<f32>>>,
    pub wrote: tokio::sync::Notify,
}

impl between_engine::PeerAudioTap for AudioRecorder {
    fn write(&self, peer_id: &str, samples: &[f32]) {
        self.by_peer
            .lock()
            .unwrap()
            .entry(peer_id.to_string())
            .or_default()
            .extend_from_slice(samples);
        self.wrote.notify_waiters();
    }
}

impl AudioRecorder {
    pub fn len(&self, peer: &str) -> usize {
        self.by_peer.lock().unwrap().get(peer).map_or(0, Vec::len)
    }

    /// The last `n` samples recorded from `peer`.
    pub fn tail(&self, peer: &str, n: usize) -> Vec<f32> {
        let m = self.by_peer.lock().unwrap();
        let s = &m[peer];
        s[s.len().saturating_sub(n)..].to_vec()
    }

    /// Waits (10 s at most) until `done` holds, re-checking whenever audio is written.
    pub async fn until(&self, mut done: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(self) {
            let notified = self.wrote.notified();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                assert!(done(self), "recorded audio did not get there within 10 s");
                return;
            }
        }
    }
}

/// Counters and PSNR of every frame a participant decoded, by publisher.
#[derive(Default)]
pub struct VideoLog {
    pub by_peer: std::sync::Mutex<std::collections::HashMap<String, Vec<(u16, f64)>>>,
    pub got: tokio::sync::Notify,
}

/// Reads every frame of `video` into `log`: its test-pattern counter and its PSNR against the
/// pattern picture with that counter.
pub fn watch_video(peer: String, mut video: between_engine::RemoteVideo, log: Arc<VideoLog>) {
    use between_media::analysis::frame_psnr;
    use between_media::pattern::{TestPattern, read_counter};
    tokio::spawn(async move {
        let mut pattern: Option<((u32, u32), TestPattern)> = None;
        while let Some(f) = video.next().await {
            let size = (f.frame.width(), f.frame.height());
            if pattern.as_ref().is_none_or(|(s, _)| *s != size) {
                pattern = TestPattern::new(size.0, size.1).ok().map(|p| (size, p));
            }
            let entry = match (read_counter(&f.frame), &pattern) {
                (Some(c), Some((_, p))) => (c, frame_psnr(&f.frame, &p.frame(c as u32))),
                _ => (u16::MAX, 0.0),
            };
            log.by_peer
                .lock()
                .unwrap()
                .entry(peer.clone())
                .or_default()
                .push(entry);
            log.got.notify_waiters();
        }
    });
}

/// Waits until `done` holds, re-checking whenever `notify` fires; fails after `within`.
pub async fn until(within: Duration, notify: &tokio::sync::Notify, done: impl FnMut() -> bool) {
    until_else(within, notify, done, String::new).await
}

/// [`until`], saying what `state` says when it fails.
pub async fn until_else(
    within: Duration,
    notify: &tokio::sync::Notify,
    mut done: impl FnMut() -> bool,
    state: impl Fn() -> String,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        let waiting = notify.notified();
        if tokio::time::timeout_at(deadline, waiting).await.is_err() {
            assert!(
                done(),
                "condition not reached within {within:?}: {}",
                state()
            );
            return;
        }
    }
}
