//! The one-port media edge: every participant's media enters and leaves through one UDP port
//! (and ICE-TCP on the same port number, for networks that block UDP), demultiplexed by ICE
//! ufrag.
//!
//! Why a relay and not a shared socket inside the connections: the async webrtc layer binds
//! its own socket per connection and names its candidates after it, so no connection can sit
//! on a shared port. Instead each connection keeps a private socket on loopback, and the edge
//! routes: the first packet from a new client address must be a STUN binding request; its
//! username names the connection (its ufrag), and from then on that client address has a relay
//! socket of its own towards that connection, so the connection sees one ordinary (if
//! peer-reflexive) remote address per client path. ICE-TCP frames (RFC 4571) are unwrapped
//! into datagrams the same way, so the connections never know TCP was involved.
//!
//! Cost: one extra loopback hop each way (measured in BENCHMARKS.md, `between bench sfu
//! --udp-port`).

pub mod sdp;
pub mod stun;

use rtc::shared::tcp_framing::TcpFrameDecoder;
use sdp::EdgeCandidate;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{AbortHandle, JoinHandle};

/// Where connections behind the edge bind their private sockets.
pub const INTERNAL_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A client path with no packet for this long is forgotten (ICE consent checks arrive every
/// few seconds on a live path).
const IDLE: Duration = Duration::from_secs(30);
/// Paths per connection: a client has a few candidates; more is someone replaying a ufrag.
const PATHS_PER_UFRAG: usize = 8;
/// A TCP connection must send its binding request within this long.
const TCP_HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// TCP connections open at once (identified or not).
const MAX_TCP_PATHS: usize = 4096;
/// Largest datagram relayed (RFC 4571 frames cannot be larger either).
const MAX_DATAGRAM: usize = 65_535;

/// Counters for `/metrics`.
#[derive(Default)]
pub struct EdgeCounters {
    /// Datagrams and frames that matched no connection (garbage, stale paths, unknown ufrags).
    pub unroutable: AtomicU64,
    pub udp_paths_opened: AtomicU64,
    pub tcp_paths_opened: AtomicU64,
}

struct UdpPath {
    relay: Arc<UdpSocket>,
    ufrag: String,
    last_seen: Mutex<Instant>,
    task: AbortHandle,
}

impl Drop for UdpPath {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct TcpPath {
    ufrag: String,
    task: AbortHandle,
}

#[derive(Default)]
struct Routes {
    /// ufrag → the connection's private socket.
    connections: HashMap<String, SocketAddr>,
    udp: HashMap<SocketAddr, Arc<UdpPath>>,
    tcp: HashMap<u64, TcpPath>,
    next_tcp: u64,
}

impl Routes {
    fn paths_of(&self, ufrag: &str) -> usize {
        self.udp.values().filter(|p| p.ufrag == ufrag).count()
            + self.tcp.values().filter(|p| p.ufrag == ufrag).count()
    }
}

struct Shared {
    udp: Arc<UdpSocket>,
    routes: Mutex<Routes>,
    counters: EdgeCounters,
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running edge; dropping it stops it.
pub struct Edge {
    shared: Arc<Shared>,
    local: SocketAddr,
    candidates: Vec<EdgeCandidate>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let mut routes = self.shared.routes();
        routes.udp.clear();
        for (_, p) in routes.tcp.drain() {
            p.task.abort();
        }
    }
}

impl Edge {
    /// Binds UDP on `bind` (port 0: any free port) and TCP on the same address and port, and
    /// advertises them on each of `advertise` (the addresses clients can reach).
    pub async fn start(bind: SocketAddr, advertise: &[IpAddr]) -> io::Result<Edge> {
        let (udp, tcp) = bind_pair(bind).await?;
        let local = udp.local_addr()?;
        let udp = Arc::new(udp);
        let shared = Arc::new(Shared {
            udp: udp.clone(),
            routes: Mutex::default(),
            counters: EdgeCounters::default(),
        });
        let mut candidates: Vec<EdgeCandidate> = advertise
            .iter()
            .map(|ip| EdgeCandidate::Udp(SocketAddr::new(*ip, local.port())))
            .collect();
        candidates.extend(
            advertise
                .iter()
                .map(|ip| EdgeCandidate::Tcp(SocketAddr::new(*ip, local.port()))),
        );
        let tasks = vec![
            tokio::spawn(udp_loop(shared.clone())),
            tokio::spawn(tcp_accept_loop(shared.clone(), tcp)),
            tokio::spawn(sweep_loop(Arc::downgrade(&shared))),
        ];
        tracing::info!(%local, ?advertise, "media edge listening (UDP and ICE-TCP)");
        Ok(Edge {
            shared,
            local,
            candidates,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn counters(&self) -> &EdgeCounters {
        &self.shared.counters
    }

    /// Open client paths (UDP, TCP).
    pub fn paths(&self) -> (usize, usize) {
        let routes = self.shared.routes();
        (routes.udp.len(), routes.tcp.len())
    }

    /// Routes checks for `ufrag` to the connection whose local SDP this is, and returns that
    /// SDP as clients must see it (the edge's candidates instead of the private socket's).
    pub fn expose(&self, local_sdp: &str) -> Result<String, String> {
        let ufrag = stun::sdp_ufrag(local_sdp).ok_or("the local description has no ICE ufrag")?;
        let internal = sdp::internal_address(local_sdp, INTERNAL_IP)
            .ok_or("the local description has no candidate on the internal address")?;
        self.shared
            .routes()
            .connections
            .insert(ufrag.to_string(), internal);
        Ok(sdp::with_edge_candidates(local_sdp, &self.candidates))
    }

    /// The connection with this local SDP is gone: forget its route and close its paths.
    pub fn forget(&self, local_sdp: &str) {
        let Some(ufrag) = stun::sdp_ufrag(local_sdp) else {
            return;
        };
        let mut routes = self.shared.routes();
        routes.connections.remove(ufrag);
        routes.udp.retain(|_, p| p.ufrag != ufrag);
        routes.tcp.retain(|_, p| {
            let keep = p.ufrag != ufrag;
            if !keep {
                p.task.abort();
            }
            keep
        });
    }
}

/// UDP and TCP on the same port; with port 0, a port free for both.
async fn bind_pair(bind: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(bind).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(bind.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if bind.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

/// A relay socket towards one connection's private socket; it only hears that socket.
async fn relay_to(internal: SocketAddr) -> io::Result<UdpSocket> {
    let relay = UdpSocket::bind(SocketAddr::new(INTERNAL_IP, 0)).await?;
    relay.connect(internal).await?;
    Ok(relay)
}

async fn udp_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match shared.udp.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors from earlier sends surface here on some systems; the socket is fine.
            Err(e) => {
                tracing::debug!(error = %e, "edge receive");
                continue;
            }
        };
        let packet = &buf[..n];
        let known = shared.routes().udp.get(&from).cloned();
        let path = match known {
            Some(p) => p,
            None => match open_udp_path(&shared, from, packet).await {
                Some(p) => p,
                None => {
                    shared.counters.unroutable.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        *path.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        // A full relay buffer drops the datagram, as the network would.
        if let Err(e) = path.relay.try_send(packet) {
            tracing::trace!(error = %e, "edge relay send");
        }
    }
}

async fn open_udp_path(
    shared: &Arc<Shared>,
    from: SocketAddr,
    packet: &[u8],
) -> Option<Arc<UdpPath>> {
    let ufrag = stun::binding_request_ufrag(packet)?;
    let internal = {
        let routes = shared.routes();
        let internal = *routes.connections.get(ufrag)?;
        if routes.paths_of(ufrag) >= PATHS_PER_UFRAG {
            return None;
        }
        internal
    };
    let relay = match relay_to(internal).await {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open a relay socket");
            return None;
        }
    };
    let task = tokio::spawn(udp_return(relay.clone(), shared.udp.clone(), from)).abort_handle();
    let path = Arc::new(UdpPath {
        relay,
        ufrag: ufrag.to_string(),
        last_seen: Mutex::new(Instant::now()),
        task,
    });
    shared.routes().udp.insert(from, path.clone());
    shared
        .counters
        .udp_paths_opened
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%from, ufrag, "edge: new UDP path");
    Some(path)
}

/// The connection's replies to one client path.
async fn udp_return(relay: Arc<UdpSocket>, edge: Arc<UdpSocket>, client: SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match relay.recv(&mut buf).await {
            Ok(n) => {
                if let Err(e) = edge.send_to(&buf[..n], client).await {
                    tracing::trace!(error = %e, "edge send");
                }
            }
            // The connection closed its socket (ICMP port unreachable): the path waits for
            // the sweep or for `forget`.
            Err(e) => tracing::trace!(error = %e, "edge relay receive"),
        }
    }
}

async fn sweep_loop(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        shared.routes().udp.retain(|_, p| {
            let seen = *p.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            now.duration_since(seen) < IDLE
        });
    }
}

async fn tcp_accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "edge TCP accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The path is registered (without a ufrag yet) under the lock it needs to remove
        // itself, so it cannot finish before it is registered.
        let mut routes = shared.routes();
        if routes.tcp.len() >= MAX_TCP_PATHS {
            shared.counters.unroutable.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        routes.next_tcp += 1;
        let id = routes.next_tcp;
        let task = tokio::spawn(tcp_path(shared.clone(), id, stream, from));
        routes.tcp.insert(
            id,
            TcpPath {
                ufrag: String::new(),
                task: task.abort_handle(),
            },
        );
    }
}

async fn tcp_path(shared: Arc<Shared>, id: u64, stream: TcpStream, from: SocketAddr) {
    relay_tcp(&shared, id, stream, from).await;
    shared.routes().tcp.remove(&id);
}

async fn relay_tcp(shared: &Shared, id: u64, stream: TcpStream, from: SocketAddr) {
    let (mut reader, mut writer) = stream.into_split();
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    // The first frame must be a binding request for a connection we have.
    let hello = tokio::time::timeout(TCP_HELLO_DEADLINE, async {
        loop {
            if let Some(frame) = decoder.next_packet() {
                return Some(frame);
            }
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => decoder.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let ufrag = match &hello {
        Ok(Some(hello)) => stun::binding_request_ufrag(hello).map(str::to_string),
        _ => None,
    };
    let (Ok(Some(hello)), Some(ufrag)) = (hello, ufrag) else {
        shared.counters.unroutable.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let internal = {
        let mut routes = shared.routes();
        let internal = match routes.connections.get(&ufrag) {
            Some(a) if routes.paths_of(&ufrag) < PATHS_PER_UFRAG => *a,
            _ => {
                shared.counters.unroutable.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if let Some(path) = routes.tcp.get_mut(&id) {
            path.ufrag = ufrag.clone();
        }
        internal
    };
    let relay = match relay_to(internal).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open a relay socket");
            return;
        }
    };
    shared
        .counters
        .tcp_paths_opened
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%from, ufrag, "edge: new ICE-TCP path");
    let _ = relay.send(&hello).await;
    // Replies are received after a 2-byte gap that then takes the RFC 4571 length: framing
    // without a copy.
    let mut back = vec![0u8; 2 + MAX_DATAGRAM];
    loop {
        while let Some(frame) = decoder.next_packet() {
            let _ = relay.send(&frame).await;
        }
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => decoder.extend_from_slice(&buf[..n]),
            },
            got = relay.recv(&mut back[2..]) => match got {
                Ok(n) => {
                    // n fits: the receive slice is MAX_DATAGRAM (65 535) bytes.
                    back[..2].copy_from_slice(&(n as u16).to_be_bytes());
                    if writer.write_all(&back[..2 + n]).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::trace!(error = %e, "edge relay receive"),
            },
        }
    }
}
