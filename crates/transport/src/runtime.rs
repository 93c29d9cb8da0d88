//! The async runtime the connections run on: webrtc's tokio runtime, except that every UDP
//! socket gets large kernel buffers. A screen share's keyframe at 1080p is a burst of a few
//! hundred packets; with Linux's default 208 KiB receive buffer a loopback burst overflowed
//! (`UdpRcvbufErrors` grew by ~800 in a 3 s `between bench screen`) and the picture never
//! decoded. The kernel caps the request at `net.core.rmem_max`/`wmem_max` (4 MiB here).

use socket2::SockRef;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// Requested per socket and direction.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct BufferedRuntime(TokioRuntime);

impl BufferedRuntime {
    pub fn new() -> Self {
        Self(TokioRuntime)
    }
}

impl Runtime for BufferedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let sock = SockRef::from(&socket);
        // Best effort: a smaller buffer than asked for still works, as before.
        if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
            tracing::debug!(error = %e, "cannot enlarge a UDP receive buffer");
        }
        if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
            tracing::debug!(error = %e, "cannot enlarge a UDP send buffer");
        }
        self.0.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.0.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.0.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio (large UDP buffers)"
    }
}
