//! HTTP routes: the WebSocket endpoint (at `/` and `/ws`), `/healthz` and `/metrics`.

use crate::connection;
use crate::hub::Hub;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use between_protocol::MAX_MESSAGE_BYTES;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Frames up to this size reach the protocol decoder, which answers an oversized message with
/// a typed `message_too_large`; only far larger ones are cut off by the WebSocket layer.
const TRANSPORT_MAX_MESSAGE: usize = 16 * MAX_MESSAGE_BYTES;

/// Signaling is a trickle of small messages: a 4 KiB read buffer (tungstenite's default is a
/// zero-filled 128 KiB per connection) and eager writes keep an idle participant cheap.
const READ_BUFFER: usize = 4 * 1024;

#[derive(Clone)]
pub(crate) struct AppState {
    pub hub: Arc<Hub>,
    pub shutdown: watch::Receiver<bool>,
    pub per_ip: Arc<PerIp>,
}

/// Open connections per client address.
pub(crate) struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a place for `ip`; `None` when it holds the maximum already.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Place> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_default();
        if self.max != 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Place {
            per_ip: self.clone(),
            ip,
        })
    }
}

/// A connection's place in its address's count, given back when dropped.
pub(crate) struct Place {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(websocket))
        .route("/ws", get(websocket))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    let Some(place) = state.per_ip.admit(client.ip()) else {
        crate::metrics::Metrics::inc(&state.hub.metrics.connections_refused_total);
        tracing::warn!(ip = %client.ip(), "too many connections from one address");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many connections from this address.\n",
        )
            .into_response();
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(TRANSPORT_MAX_MESSAGE * 2)
        .max_message_size(TRANSPORT_MAX_MESSAGE)
        .max_frame_size(TRANSPORT_MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            connection::run(state.hub, socket, state.shutdown).await;
            drop(place);
        })
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.hub.metrics_text(),
    )
}
