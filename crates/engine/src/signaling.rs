//! The signaling session: the task that owns the WebSocket while in a call. It applies server
//! messages to the roster and turns them into events, writes data messages, watches liveness,
//! and on an unexpected drop runs the reconnect schedule, resuming the peer identity when the
//! server still holds it.

use crate::call::{Command, Inner, Phase};
use crate::config::EngineConfig;
use crate::error::BAError;
use crate::events::ConferenceEvent;
use crate::media::session::MediaInput;
use crate::peer::PeerEvent;
use crate::reconnect::Backoff;
use between_protocol::{
    ClientMessage, ErrorCode, PeerInfo, Resume, ServerMessage, TrackInfo, TrackKind, decode_server,
    encode,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{MissedTickBehavior, interval, sleep, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The server's answer to `join`.
pub(crate) struct JoinedInfo {
    pub peer_id: String,
    pub peers: Vec<PeerInfo>,
    pub resume_token: String,
    pub resumed: bool,
    pub acked_seq: u64,
}

/// Data messages written recently, kept to resend after a resume.
const RESEND_WINDOW: usize = 256;

/// Sequence numbers of data messages in both directions (see the protocol's module docs).
#[derive(Default)]
struct Sequencing {
    /// The last number given to a message we sent.
    sent_seq: u64,
    /// Messages written to the socket, by number, that the server may not have taken.
    sent: VecDeque<(u64, Value, Option<String>)>,
    /// The last number of a data message we received.
    received_seq: u64,
}

fn unreachable(url: &str, why: impl std::fmt::Display) -> BAError {
    BAError::new(
        ErrorCode::ServerUnreachable,
        format!(
            "Could not reach the Between server at {url}: {why}. Check the server address and that the server is running."
        ),
    )
}

/// A small read buffer (tungstenite's default is 128 KiB, zero-filled): signaling is light.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024)
}

/// Opens the socket and joins. Errors are the server's own (`invalid_api_key`, ...) or
/// `server_unreachable`.
pub(crate) async fn connect_and_join(
    config: &EngineConfig,
    join: &ClientMessage,
) -> Result<(Ws, JoinedInfo), BAError> {
    let url = config.server_url.as_str();
    if url.starts_with("wss://") {
        return Err(BAError::new(
            ErrorCode::InvalidArgument,
            format!(
                "{url}: secure WebSocket (wss://) is not supported by this build yet; use ws://."
            ),
        ));
    }
    if !url.starts_with("ws://") {
        return Err(BAError::new(
            ErrorCode::InvalidArgument,
            format!("{url:?} is not a server address; it should look like ws://host:7880."),
        ));
    }
    let (mut ws, _) = timeout(
        config.connect_timeout,
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true),
    )
    .await
    .map_err(|_| {
        unreachable(
            url,
            format!("no answer within {} s", config.connect_timeout.as_secs()),
        )
    })?
    .map_err(|e| unreachable(url, e))?;
    ws.send(Message::Text(encode(join).into()))
        .await
        .map_err(|e| unreachable(url, e))?;
    let deadline = tokio::time::Instant::now() + config.join_timeout;
    loop {
        let frame = timeout_at(deadline, ws.next())
            .await
            .map_err(|_| unreachable(url, "the server did not answer the join request in time"))?;
        match frame {
            Some(Ok(Message::Text(text))) => match decode_server(&text) {
                Ok(ServerMessage::Joined {
                    peer_id,
                    peers,
                    resume_token,
                    resumed,
                    acked_seq,
                    ..
                }) => {
                    return Ok((
                        ws,
                        JoinedInfo {
                            peer_id,
                            peers,
                            resume_token,
                            resumed,
                            acked_seq,
                        },
                    ));
                }
                Ok(ServerMessage::Error { code, message, .. }) => {
                    return Err(BAError::new(code, message));
                }
                Ok(other) => tracing::debug!(?other, "ignored before joined"),
                Err(e) => return Err(BAError::new(ErrorCode::Internal, e.message)),
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(unreachable(url, e)),
            None => return Err(unreachable(url, "the server closed the connection")),
        }
    }
}

/// How one connected stretch ended.
enum Ended {
    Dropped,
    /// The server refused us for good (e.g. our key was revoked).
    Refused(BAError),
    Left(oneshot::Sender<()>),
    /// The conference is gone.
    Orphaned,
}

/// How a reconnect ended.
enum Reconnect {
    Back(Box<Ws>, JoinedInfo),
    Left(oneshot::Sender<()>),
    GaveUp(Option<BAError>),
    Orphaned,
}

pub(crate) async fn run(
    inner: Arc<Inner>,
    mut ws: Ws,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut seqs = Sequencing::default();
    loop {
        let ended = connected(&inner, &mut ws, &mut commands, &mut seqs).await;
        let give_up_with = match ended {
            Ended::Left(done) => {
                let _ = done.send(());
                return;
            }
            Ended::Orphaned => return,
            Ended::Refused(e) => Some(e),
            Ended::Dropped => None,
        };
        if let Some(e) = give_up_with {
            give_up(&inner, Some(e));
            return;
        }
        enter_reconnecting(&inner, &mut commands);
        inner.events.emit(ConferenceEvent::SocketFailed);
        match reconnect(&inner, &mut commands, seqs.received_seq).await {
            Reconnect::Back(new_ws, joined) => {
                ws = *new_ws;
                if joined.resumed {
                    // The server took messages up to acked_seq; what followed goes again.
                    seqs.sent.retain(|(seq, _, _)| *seq > joined.acked_seq);
                    let mut resend = std::mem::take(&mut seqs.sent);
                    let mut state = inner.lock();
                    while let Some((_, data, to)) = resend.pop_back() {
                        state.pending.push_front((data, to));
                    }
                } else {
                    // A new identity: the server numbers from 1 again and has no record of
                    // what we sent, so nothing can be resent without risking doubles.
                    seqs.received_seq = 0;
                    seqs.sent.clear();
                }
                let resumed = joined.resumed;
                rejoined(&inner, joined);
                if !resumed {
                    inner.lock().pending_signals.clear();
                    // The server forgot our media too: start over with new connections.
                    inner.start_media();
                }
            }
            Reconnect::Left(done) => {
                let _ = done.send(());
                return;
            }
            Reconnect::GaveUp(e) => {
                give_up(&inner, e);
                return;
            }
            Reconnect::Orphaned => return,
        }
        if !flush_pending(&inner, &mut ws, &mut seqs).await {
            // Dropped again while flushing: what was not written is back in the queue.
            continue;
        }
    }
}

/// Reads and writes until the connection ends.
async fn connected(
    inner: &Inner,
    ws: &mut Ws,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    seqs: &mut Sequencing,
) -> Ended {
    let mut last_seen = Instant::now();
    let mut tick = interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            frame = ws.next() => {
                last_seen = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(ended) = on_server_text(inner, &text, seqs) {
                            return ended;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        tracing::info!(?frame, "server closed the socket");
                        return Ended::Dropped;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "socket error");
                        return Ended::Dropped;
                    }
                    None => return Ended::Dropped,
                }
            }
            cmd = commands.recv() => match cmd {
                None => {
                    let _ = ws.close(None).await;
                    return Ended::Orphaned;
                }
                Some(Command::Data { data, to }) => {
                    if !write_data(inner, ws, seqs, data, to).await {
                        return Ended::Dropped;
                    }
                }
                Some(Command::Leave(done)) => {
                    say_goodbye(ws).await;
                    return Ended::Left(done);
                }
                Some(Command::Signal(msg)) => {
                    if ws.send(Message::Text(encode(&msg).into())).await.is_err() {
                        return Ended::Dropped;
                    }
                }
            },
            _ = tick.tick() => {
                if last_seen.elapsed() > inner.config.liveness_timeout {
                    tracing::info!("no word from the server; reconnecting");
                    return Ended::Dropped;
                }
            }
        }
    }
}

/// Sends `leave` and waits briefly for the server to close, so `peerLeft` goes out before
/// `end_call` returns.
async fn say_goodbye(ws: &mut Ws) {
    let leave = encode(&ClientMessage::Leave);
    if ws.send(Message::Text(leave.into())).await.is_ok() {
        let _ = timeout(Duration::from_secs(1), async {
            while let Some(Ok(frame)) = ws.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    let _ = ws.close(None).await;
}

/// Numbers and writes one data message. On failure it goes back to the front of the pending
/// queue, so it is sent after the reconnect, in its place.
async fn write_data(
    inner: &Inner,
    ws: &mut Ws,
    seqs: &mut Sequencing,
    data: Value,
    to: Option<String>,
) -> bool {
    let seq = seqs.sent_seq + 1;
    let text = encode(&ClientMessage::Data {
        data: data.clone(),
        to: to.clone(),
        seq: Some(seq),
    });
    if ws.send(Message::Text(text.into())).await.is_err() {
        inner.lock().pending.push_front((data, to));
        return false;
    }
    seqs.sent_seq = seq;
    if seqs.sent.len() >= RESEND_WINDOW {
        seqs.sent.pop_front();
    }
    seqs.sent.push_back((seq, data, to));
    true
}

fn on_server_text(inner: &Inner, text: &str, seqs: &mut Sequencing) -> Option<Ended> {
    let msg = match decode_server(text) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed server message");
            return None;
        }
    };
    match msg {
        ServerMessage::PeerJoined { peer } => {
            let added = inner.lock().roster.add(peer);
            if let Some(peer) = added {
                inner.events.emit(ConferenceEvent::PeerJoined(peer));
            }
        }
        ServerMessage::PeerLeft { peer_id } => {
            let removed = inner.lock().roster.remove(&peer_id);
            if removed {
                inner.events.emit(ConferenceEvent::PeerLeft(peer_id));
            }
        }
        ServerMessage::Data { from, data, seq } => {
            if seq <= seqs.received_seq {
                tracing::debug!(seq, "dropping a replayed message we already have");
                return None;
            }
            seqs.received_seq = seq;
            inner.events.emit(ConferenceEvent::Data { from, data });
        }
        ServerMessage::Error {
            code,
            message,
            fatal,
        } => {
            let err = BAError::new(code, message);
            if fatal {
                return Some(Ended::Refused(err));
            }
            if code != ErrorCode::ServerShuttingDown && code != ErrorCode::SlowConsumer {
                inner.events.emit(ConferenceEvent::Error(err));
            }
        }
        ServerMessage::PeerMedia {
            peer_id,
            audio_muted,
            video_muted,
        } => {
            let peer = inner.lock().roster.get(&peer_id).cloned();
            if let Some(peer) = peer {
                for event in peer.set_media_state(audio_muted, video_muted) {
                    inner.events.emit(ConferenceEvent::Peer {
                        peer_id: peer_id.clone(),
                        event,
                    });
                }
            }
        }
        ServerMessage::PublishAnswer { sdp } => inner.media_input(MediaInput::PublishAnswer(sdp)),
        ServerMessage::SubscribeOffer {
            sdp,
            tracks,
            offer,
            connection,
        } => {
            inner.media_input(MediaInput::SubscribeOffer {
                sdp,
                tracks,
                offer,
                connection,
            });
        }
        ServerMessage::BandwidthPause { track_id, paused } => {
            if let Some((peer, TrackKind::Video)) = TrackInfo::parse_subscription_id(&track_id) {
                inner.events.emit(ConferenceEvent::Peer {
                    peer_id: peer.to_string(),
                    event: PeerEvent::PoorConnection(paused),
                });
            }
        }
        ServerMessage::VideoNeeded { kind, max } => {
            inner.media_input(MediaInput::VideoNeeded {
                kind,
                max: max.map(|[w, h]| (w, h)),
            });
        }
        ServerMessage::Joined { .. } => tracing::warn!("unexpected joined message"),
    }
    None
}

/// Marks the call as reconnecting. Commands already queued to the task are moved into the
/// pending queue first, under the same lock, so data keeps its order.
fn enter_reconnecting(inner: &Inner, commands: &mut mpsc::UnboundedReceiver<Command>) {
    let mut state = inner.lock();
    let mut leave = None;
    while let Ok(cmd) = commands.try_recv() {
        match cmd {
            Command::Data { data, to } => state.pending.push_back((data, to)),
            Command::Leave(done) => leave = Some(done),
            Command::Signal(_) => {}
        }
    }
    state.phase = Phase::Reconnecting;
    drop(state);
    // A leave cannot be queued here (end_call takes the sender first); answer it anyway.
    if let Some(done) = leave {
        let _ = done.send(());
    }
}

async fn reconnect(
    inner: &Inner,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    received_seq: u64,
) -> Reconnect {
    let mut backoff = Backoff::new(inner.config.reconnect, random_seed());
    loop {
        let Some(delay) = backoff.next_delay() else {
            return Reconnect::GaveUp(None);
        };
        let wait = sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                cmd = commands.recv() => match cmd {
                    None => return Reconnect::Orphaned,
                    Some(Command::Leave(done)) => return Reconnect::Left(done),
                    Some(Command::Data { data, to }) => inner.lock().pending.push_back((data, to)),
                    Some(Command::Signal(_)) => {}
                }
            }
        }
        let resume = inner.lock().resume.clone().map(|r| Resume {
            last_seq: received_seq,
            ..r
        });
        let join = inner.join_message(resume);
        tracing::info!(attempt = backoff.attempts(), "reconnecting");
        match connect_and_join(&inner.config, &join).await {
            Ok((ws, joined)) => return Reconnect::Back(Box::new(ws), joined),
            Err(e) if retryable(e.code) => {
                tracing::info!(error = %e, "reconnect attempt failed");
                inner.events.emit(ConferenceEvent::SocketFailed);
            }
            Err(e) => return Reconnect::GaveUp(Some(e)),
        }
    }
}

fn retryable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ServerUnreachable
            | ErrorCode::ServerShuttingDown
            | ErrorCode::SlowConsumer
            | ErrorCode::Internal
    )
}

/// Applies a successful rejoin: identity, then the roster difference.
fn rejoined(inner: &Inner, joined: JoinedInfo) {
    let changes = {
        let mut state = inner.lock();
        state.peer_id = Some(joined.peer_id.clone());
        state.resume = Some(Resume {
            peer_id: joined.peer_id.clone(),
            token: joined.resume_token,
            last_seq: 0,
        });
        state.roster.replace(joined.peers)
    };
    tracing::info!(peer = %joined.peer_id, resumed = joined.resumed, "reconnected");
    inner.events.emit(ConferenceEvent::SocketReconnected {
        peer_id: joined.peer_id,
        resumed: joined.resumed,
    });
    for id in changes.left {
        inner.events.emit(ConferenceEvent::PeerLeft(id));
    }
    for peer in changes.joined {
        inner.events.emit(ConferenceEvent::PeerJoined(peer));
    }
}

/// Sends what waited during the outage, then lets new sends go straight to the task. Returns
/// false if the socket dropped again (the rest stays queued).
async fn flush_pending(inner: &Inner, ws: &mut Ws, seqs: &mut Sequencing) -> bool {
    loop {
        let (signal, next) = {
            let mut state = inner.lock();
            match state.pending_signals.pop_front() {
                Some(signal) => (Some(signal), None),
                None => {
                    let next = state.pending.pop_front();
                    if next.is_none() {
                        state.phase = Phase::Connected;
                    }
                    (None, next)
                }
            }
        };
        if let Some(signal) = signal {
            if ws
                .send(Message::Text(encode(&signal).into()))
                .await
                .is_err()
            {
                inner.lock().pending_signals.push_front(signal);
                return false;
            }
            continue;
        }
        let Some((data, to)) = next else {
            return true;
        };
        // A peer that left during the outage cannot receive its message; drop it quietly
        // rather than get an error from the server for each.
        if let Some(id) = &to
            && inner.lock().roster.get(id).is_none()
        {
            continue;
        }
        if !write_data(inner, ws, seqs, data, to).await {
            return false;
        }
    }
}

/// The engine stopped trying: the call is over for this conference.
fn give_up(inner: &Inner, error: Option<BAError>) {
    // The handle is this very task's, which ends now: let go of it, do not abort it.
    drop(inner.lock().reset());
    inner.stop_media();
    if let Some(e) = error {
        tracing::warn!(error = %e, "the server refused to rejoin");
        inner.events.emit(ConferenceEvent::Error(e));
    }
    inner.events.emit(ConferenceEvent::SocketDisconnected);
}

fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Jitter only spreads reconnects out; the clock is random enough for that.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        return u64::from(nanos);
    }
    u64::from_le_bytes(bytes)
}
