//! One WebSocket connection, from upgrade to close: reads client messages, applies them to the
//! hub, writes what the hub queued for it, and keeps the heartbeat. Every failure ends in a
//! typed error to this client and, at worst, this connection closed; nobody else notices.

use crate::hub::{Hub, Outgoing};
use crate::metrics::Metrics;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use between_protocol::{
    ClientMessage, ErrorCode, ProtocolError, ServerMessage, decode_client, encode,
    extra_data_to_string,
};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval, timeout};
use tracing::Instrument;

/// Why the loop ended, which decides the close frame.
enum End {
    /// The client closed or the socket broke: nothing more to send.
    Gone,
    /// We close, with this code and reason.
    Close(u16, &'static str),
}

struct Conn {
    hub: Arc<Hub>,
    conn: u64,
    peer: Option<String>,
    socket: WebSocket,
}

pub(crate) async fn run(hub: Arc<Hub>, socket: WebSocket, shutdown: watch::Receiver<bool>) {
    let (conn, outbox) = hub.register();
    let c = Conn {
        hub: hub.clone(),
        conn,
        peer: None,
        socket,
    };
    let span = tracing::info_span!("conn", conn);
    serve(c, outbox, shutdown).instrument(span).await;
}

async fn serve(
    mut c: Conn,
    mut outbox: tokio::sync::mpsc::Receiver<Outgoing>,
    mut shutdown: watch::Receiver<bool>,
) {
    let hub = c.hub.clone();
    let conn = c.conn;
    let started = Instant::now();
    let mut last_seen = Instant::now();
    let mut heartbeat = interval(hub.timing.ping_interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let end = loop {
        tokio::select! {
            frame = c.socket.recv() => {
                last_seen = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(end) = c.on_text(&text).await {
                            break end;
                        }
                        // Handling may have waited (media negotiation gathers candidates):
                        // that was us being busy, not the client being silent.
                        last_seen = Instant::now();
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let err = ProtocolError::new(
                            ErrorCode::InvalidMessage,
                            "Binary frames are not part of the protocol; send JSON text.",
                        );
                        if let Some(end) = c.reject(&err).await {
                            break end;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break End::Gone,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "socket error");
                        break End::Gone;
                    }
                }
            }
            out = outbox.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if !c.send_raw(Message::Text(text)).await {
                        break End::Gone;
                    }
                }
                Some(Outgoing::Replaced) => {
                    // Resumed elsewhere: this connection no longer speaks for the peer.
                    c.peer = None;
                    break End::Close(close_code::NORMAL, "resumed on another connection");
                }
                None => {
                    let err = ProtocolError::new(
                        ErrorCode::SlowConsumer,
                        "This client did not read its messages fast enough and was disconnected.",
                    );
                    c.send_error(&err, false).await;
                    break End::Close(close_code::AGAIN, "slow consumer");
                }
            },
            _ = heartbeat.tick() => {
                if c.peer.is_none() && started.elapsed() > hub.timing.join_timeout {
                    let err = ProtocolError::new(
                        ErrorCode::JoinRequired,
                        "No join message arrived in time; the first message must be join.",
                    );
                    hub.metrics.reject(err.code);
                    c.send_error(&err, true).await;
                    break End::Close(close_code::POLICY, "join timeout");
                }
                if last_seen.elapsed() > hub.timing.ping_timeout {
                    Metrics::inc(&hub.metrics.heartbeat_timeouts_total);
                    tracing::info!(peer = ?c.peer, "heartbeat timed out");
                    break End::Gone;
                }
                if !c.send_raw(Message::Ping(Default::default())).await {
                    break End::Gone;
                }
            }
            _ = shutdown.changed() => {
                let err = ProtocolError::new(
                    ErrorCode::ServerShuttingDown,
                    "The server is shutting down; the app reconnects when it is back.",
                );
                c.send_error(&err, false).await;
                break End::Close(close_code::AWAY, "server shutting down");
            }
        }
    };

    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = c.send_raw(Message::Close(Some(frame))).await;
    }
    tracing::debug!(peer = ?c.peer, "connection closed");
    // The resume grace counts from when the client was last heard, so a silent client is
    // declared gone within ping_timeout + ping_interval + a sweep, not that plus the grace.
    hub.unregister(conn, c.peer.as_deref(), last_seen);
}

impl Conn {
    /// Handles one text frame; `Some` ends the connection.
    async fn on_text(&mut self, text: &str) -> Option<End> {
        Metrics::inc(&self.hub.metrics.messages_in_total);
        let msg = match decode_client(text) {
            Ok(msg) => msg,
            Err(err) => return self.reject(&err).await,
        };
        match (msg, self.peer.clone()) {
            (
                ClientMessage::Join {
                    api_key,
                    call_id,
                    extra_data,
                    resume,
                    ..
                },
                None,
            ) => {
                let Some(tenant) = self.hub.keys.verify(&api_key) else {
                    let err = ProtocolError::new(
                        ErrorCode::InvalidApiKey,
                        "The API key was not accepted. Check the key in the settings.",
                    );
                    return self.reject(&err).await;
                };
                let extra = extra_data_to_string(&extra_data);
                match self
                    .hub
                    .join(self.conn, tenant, &call_id, extra, resume.as_ref())
                {
                    Ok(joined) => {
                        tracing::info!(
                            peer = %joined.peer_id,
                            tenant = self.hub.keys.tenant_name(tenant),
                            call = %call_id,
                            resumed = joined.resumed,
                            "joined"
                        );
                        self.peer = Some(joined.peer_id);
                        None
                    }
                    Err(err) => self.reject(&err).await,
                }
            }
            (ClientMessage::Join { .. }, Some(_)) => {
                let err = ProtocolError::new(
                    ErrorCode::AlreadyInCall,
                    "This connection has already joined a call.",
                );
                self.reject(&err).await
            }
            (_, None) => {
                let err =
                    ProtocolError::new(ErrorCode::JoinRequired, "The first message must be join.");
                self.reject(&err).await
            }
            (ClientMessage::Data { data, to, seq }, Some(peer)) => {
                match self.hub.data(&peer, data, to.as_deref(), seq) {
                    Ok(()) => None,
                    Err(err) => self.reject(&err).await,
                }
            }
            (
                ClientMessage::MediaState {
                    audio_muted,
                    video_muted,
                },
                Some(peer),
            ) => {
                self.hub.media_state(&peer, audio_muted, video_muted);
                None
            }
            (ClientMessage::Resubscribe, Some(peer)) => {
                self.hub.sfu.resubscribe(&peer);
                None
            }
            (
                ClientMessage::VideoSize {
                    track_id,
                    width,
                    height,
                },
                Some(peer),
            ) => {
                self.hub.sfu.drawn(&peer, track_id, (width, height));
                None
            }
            (ClientMessage::Unpublish { kind }, Some(peer)) => {
                self.hub.sfu.stop_publishing(&peer, kind);
                None
            }
            (ClientMessage::Publish { sdp }, Some(peer)) => {
                match self.hub.sfu.publish(&peer, sdp).await {
                    Ok(answer) => {
                        let msg = encode(&ServerMessage::PublishAnswer { sdp: answer });
                        if self.send_raw(Message::Text(msg.into())).await {
                            None
                        } else {
                            Some(End::Gone)
                        }
                    }
                    Err(err) => self.reject(&err).await,
                }
            }
            (ClientMessage::SubscribeAnswer { sdp, offer }, Some(peer)) => {
                match self.hub.sfu.subscribe_answer(&peer, offer, sdp).await {
                    Ok(()) => None,
                    Err(err) => self.reject(&err).await,
                }
            }
            (ClientMessage::Leave, Some(peer)) => {
                self.hub.leave(&peer);
                tracing::info!(peer = %peer, "left");
                self.peer = None;
                Some(End::Close(close_code::NORMAL, "left the call"))
            }
        }
    }

    /// Answers a bad message with its typed error. Before joining every error is fatal: the
    /// connection has shown it is not a Between client, or not an admitted one.
    async fn reject(&mut self, err: &ProtocolError) -> Option<End> {
        self.hub.metrics.reject(err.code);
        let fatal = self.peer.is_none();
        tracing::info!(code = %err.code, fatal, "rejected: {}", err.message);
        self.send_error(err, fatal).await;
        fatal.then_some(End::Close(close_code::POLICY, "rejected"))
    }

    async fn send_error(&mut self, err: &ProtocolError, fatal: bool) {
        let text = encode(&ServerMessage::error(err, fatal));
        let _ = self.send_raw(Message::Text(text.into())).await;
    }

    /// Sends with a deadline, so a client that stopped reading cannot hold this task forever.
    async fn send_raw(&mut self, msg: Message) -> bool {
        matches!(
            timeout(self.hub.timing.ping_timeout, self.socket.send(msg)).await,
            Ok(Ok(()))
        )
    }
}
