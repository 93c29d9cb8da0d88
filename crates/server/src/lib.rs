//! `between-server`: admits clients by API key, keeps rooms by call ID (one namespace per
//! tenant), relays signaling and data messages, and tells everyone who joins and leaves.
//! The SFU that forwards media joins this crate with the media work.
//!
//! It reads top-down: [`start`] binds and serves ([`http`]); each WebSocket runs in
//! [`connection`]; connections share a [`hub::Hub`] that wraps the sans-IO room
//! [`rooms::Registry`]. The crate depends on `between-protocol` only: never on the engine, on
//! device crates or on Tauri. It is a library too, so the desktop app can embed it.

mod connection;
mod http;
mod hub;
pub mod keys;
mod metrics;
pub mod rooms;
pub mod sfu;

use hub::Hub;
pub use keys::{ApiKeys, DEV_API_KEY, KeysError};
use rooms::RegistryLimits;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Heartbeat and resume timing. The grace counts from when a client was last heard, so the
/// defaults declare a participant gone 5 s after its socket closed, and a silently vanished
/// one (no FIN: a pulled cable) within `ping_timeout + ping_interval` = 5 s, at most 5.1 s
/// with the sweep. A client whose link comes back within that time keeps its identity.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ping_interval: Duration,
    /// A connection with no frame from the client for this long is dead.
    pub ping_timeout: Duration,
    /// How long a participant whose connection died may come back as itself.
    pub resume_grace: Duration,
    /// How long a new connection may take to send `join`.
    pub join_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(4),
            resume_grace: Duration::from_secs(5),
            join_timeout: Duration::from_secs(10),
        }
    }
}

impl Timing {
    fn registry_limits(&self) -> RegistryLimits {
        RegistryLimits {
            resume_grace: self.resume_grace,
            ..RegistryLimits::default()
        }
    }
}

#[derive(Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub keys: ApiKeys,
    pub timing: Timing,
    /// The address media (WebRTC UDP) sockets bind to; `127.0.0.1` keeps calls on this machine.
    pub media_ip: std::net::IpAddr,
    /// The public address of a server behind 1:1 NAT, advertised to clients as well.
    pub public_ip: Option<std::net::IpAddr>,
    /// Open WebSocket connections one client address may hold (0: no limit), so one host
    /// cannot exhaust the server for everyone else.
    pub max_connections_per_ip: usize,
    /// One port for all media (UDP and ICE-TCP, muxed by ICE ufrag); `Some(0)` picks a free
    /// one. `None`: an ephemeral UDP port per connection.
    pub udp_port: Option<u16>,
}

/// The default for [`ServerConfig::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

impl ServerConfig {
    /// Listening on `listen`, media on the same address (or all interfaces if `listen` is
    /// the unspecified address), default timing.
    pub fn new(listen: SocketAddr, keys: ApiKeys) -> Self {
        Self {
            listen,
            keys,
            timing: Timing::default(),
            media_ip: listen.ip(),
            public_ip: None,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            udp_port: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "no API keys configured: pass --api-keys-file FILE, set BETWEEN_API_KEYS=key1,key2, or use --dev for local development"
    )]
    NoKeys,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "with --udp-port on all interfaces ({0}), clients need an address to reach: pass --media-ip or --public-ip"
    )]
    NoMediaAddress(std::net::IpAddr),
}

/// A server that is accepting connections. Dropping it without [`RunningServer::shutdown`]
/// leaves it running until the runtime ends.
pub struct RunningServer {
    addr: SocketAddr,
    hub: Arc<Hub>,
    shutdown: watch::Sender<bool>,
    serve: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

/// Binds and starts serving.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    if config.keys.is_empty() {
        return Err(ServerError::NoKeys);
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let (signal_tx, mut signal_rx) = tokio::sync::mpsc::unbounded_channel();
    let media = between_transport::MediaAddress {
        bind: config.media_ip,
        public: config.public_ip,
        tcp: false,
        peer_reflexive_only: false,
    };
    let edge = match config.udp_port {
        None => None,
        Some(port) => {
            let mut advertise = Vec::new();
            if !config.media_ip.is_unspecified() {
                advertise.push(config.media_ip);
            }
            advertise.extend(config.public_ip);
            if advertise.is_empty() {
                return Err(ServerError::NoMediaAddress(config.media_ip));
            }
            let bind = SocketAddr::new(config.media_ip, port);
            Some(
                sfu::edge::Edge::start(bind, &advertise)
                    .await
                    .map_err(|source| ServerError::Bind { addr: bind, source })?,
            )
        }
    };
    let sfu = sfu::Sfu::new(media, edge, signal_tx);
    let hub = Arc::new(Hub::new(config.keys, config.timing, sfu));
    // The SFU's own messages (offers) reach participants through their signaling connection.
    let pump_hub = Arc::downgrade(&hub);
    tokio::spawn(async move {
        while let Some((peer, msg)) = signal_rx.recv().await {
            let Some(hub) = pump_hub.upgrade() else {
                return;
            };
            hub.send_to(&peer, msg);
        }
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let app = http::router(http::AppState {
        hub: hub.clone(),
        shutdown: shutdown_rx.clone(),
        per_ip: Arc::new(http::PerIp::new(config.max_connections_per_ip)),
    });
    let mut serve_shutdown = shutdown_rx.clone();
    // Signaling is small messages that must go out now: no Nagle delay (it showed up as a
    // 40 ms p99 in `between bench join`).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let serve = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = serve_shutdown.changed().await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "server stopped");
        }
    });
    let sweeper = tokio::spawn(sweep(hub.clone(), shutdown_rx));
    tracing::info!(%addr, keys = hub.keys.len(), "between-server listening");
    Ok(RunningServer {
        addr,
        hub,
        shutdown,
        serve,
        sweeper,
    })
}

/// Expires detached participants whose resume grace ran out.
async fn sweep(hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => hub.expire(std::time::Instant::now()),
            _ = shutdown.changed() => return,
        }
    }
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The media port (UDP and ICE-TCP) when the server runs with one.
    pub fn media_port(&self) -> Option<u16> {
        self.hub.sfu.edge().map(|e| e.local_addr().port())
    }

    /// The URL clients connect to, e.g. `ws://127.0.0.1:7880`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The `/metrics` text, for embedding hosts and tests.
    pub fn metrics_text(&self) -> String {
        self.hub.metrics_text()
    }

    /// Open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.hub.connection_count()
    }

    /// Tells every client the server is going away (close code 1001, so they reconnect), waits
    /// up to `grace` for the connections to close, and stops listening.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let hub = self.hub.clone();
        let drained = tokio::time::timeout(grace, async move {
            loop {
                let gone = hub.conn_gone.notified();
                if hub.connection_count() == 0 {
                    return;
                }
                gone.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                open = self.hub.connection_count(),
                "connections still open after the shutdown grace"
            );
        }
        let _ = self.serve.await;
        let _ = self.sweeper.await;
        tracing::info!("between-server stopped");
    }
}
