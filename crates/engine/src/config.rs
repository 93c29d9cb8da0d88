//! How the engine reaches the server and how patient it is.

use crate::reconnect::ReconnectPolicy;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `ws://host:port` of a `between-server`.
    pub server_url: String,
    /// Time allowed for the TCP + WebSocket handshake.
    pub connect_timeout: Duration,
    /// Time allowed from sending `join` to receiving `joined`.
    pub join_timeout: Duration,
    /// The server pings every second; silence this long means the connection is dead.
    pub liveness_timeout: Duration,
    pub reconnect: ReconnectPolicy,
    /// Watch the devices during the call (`devicesUpdated`, fallback when the device in use
    /// goes away). The app wants it; bots and benchmarks without devices do not need the
    /// polling.
    pub watch_devices: bool,
}

impl EngineConfig {
    pub fn new(server_url: impl Into<String>) -> Self {
        Self {
            server_url: server_url.into(),
            connect_timeout: Duration::from_secs(5),
            join_timeout: Duration::from_secs(5),
            liveness_timeout: Duration::from_secs(4),
            reconnect: ReconnectPolicy::default(),
            watch_devices: false,
        }
    }
}
