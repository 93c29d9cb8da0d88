//! HTTP routes: the WebSocket endpoint (at `/` and `/ws`), `/healthz` and `/metrics`.

use crate::connection;
use crate::hub::Hub;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use between_protocol::MAX_MESSAGE_BYTES;
use std::sync::Arc;
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
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(websocket))
        .route("/ws", get(websocket))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn websocket(State(state): State<AppState>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(TRANSPORT_MAX_MESSAGE * 2)
        .max_message_size(TRANSPORT_MAX_MESSAGE)
        .max_frame_size(TRANSPORT_MAX_MESSAGE)
        .on_upgrade(move |socket| connection::run(state.hub, socket, state.shutdown))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.hub.metrics_text(),
    )
}
