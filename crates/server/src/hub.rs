//! The shared state behind every connection: the room registry, the outbox of each connection,
//! and the counters. One lock guards the registry and the outboxes together, so the messages a
//! registry operation produces are queued to every recipient in the same order everywhere.

use crate::Timing;
use crate::keys::ApiKeys;
use crate::metrics::{Gauges, Metrics};
use crate::rooms::{ConnId, JoinRequest, Joined, Output, Registry};
use crate::sfu::{RtpCounters, Sfu};
use axum::extract::ws::Utf8Bytes;
use between_protocol::{ErrorCode, ProtocolError, Resume, ServerMessage, encode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{Notify, mpsc};

/// Messages a connection's outbox holds before it counts as a slow consumer.
pub(crate) const OUTBOX_CAPACITY: usize = 1024;

pub(crate) enum Outgoing {
    Text(Utf8Bytes),
    /// The participant resumed on another connection: close this one quietly.
    Replaced,
}

struct State {
    registry: Registry,
    outboxes: HashMap<ConnId, mpsc::Sender<Outgoing>>,
}

pub(crate) struct Hub {
    state: Mutex<State>,
    pub keys: ApiKeys,
    pub timing: Timing,
    pub metrics: Metrics,
    pub sfu: Sfu,
    next_conn: AtomicU64,
    /// Signalled whenever a connection unregisters, for shutdown to wait on.
    pub conn_gone: Notify,
}

impl Hub {
    pub fn new(keys: ApiKeys, timing: Timing, sfu: Sfu) -> Self {
        Self {
            state: Mutex::new(State {
                registry: Registry::new(timing.registry_limits()),
                outboxes: HashMap::new(),
            }),
            keys,
            timing,
            metrics: Metrics::default(),
            sfu,
            next_conn: AtomicU64::new(1),
            conn_gone: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the registry half-updated in a way that
        // matters more than refusing all service would, so keep going with the data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn register(&self) -> (ConnId, mpsc::Receiver<Outgoing>) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        self.lock().outboxes.insert(conn, tx);
        Metrics::inc(&self.metrics.connections_total);
        (conn, rx)
    }

    pub fn unregister(&self, conn: ConnId, peer: Option<&str>, last_heard: Instant) {
        {
            let mut state = self.lock();
            state.outboxes.remove(&conn);
            if let Some(peer) = peer {
                let out = state.registry.detach(peer, conn, last_heard);
                self.deliver(&mut state, out);
            }
        }
        self.conn_gone.notify_waiters();
    }

    pub fn connection_count(&self) -> usize {
        self.lock().outboxes.len()
    }

    pub fn join(
        &self,
        conn: ConnId,
        tenant: u32,
        call_id: &str,
        extra_data: String,
        resume: Option<&Resume>,
    ) -> Result<Joined, ProtocolError> {
        let fresh_peer_id = random_id()?;
        let fresh_token = random_id()?;
        let mut state = self.lock();
        let (joined, out) = state.registry.join(JoinRequest {
            conn,
            tenant,
            call_id,
            extra_data,
            resume,
            fresh_peer_id,
            fresh_token,
        });
        self.deliver(&mut state, out);
        Metrics::inc(&self.metrics.joins_total);
        if joined.resumed {
            Metrics::inc(&self.metrics.resumes_total);
        }
        Ok(joined)
    }

    pub fn data(
        &self,
        from: &str,
        data: serde_json::Value,
        to: Option<&str>,
        seq: Option<u64>,
    ) -> Result<(), ProtocolError> {
        let mut state = self.lock();
        let out = state.registry.data(from, data, to, seq)?;
        self.deliver(&mut state, out);
        Ok(())
    }

    pub fn media_state(&self, peer: &str, audio_muted: bool, video_muted: bool) {
        let mut state = self.lock();
        let out = state.registry.media_state(peer, audio_muted, video_muted);
        self.deliver(&mut state, out);
    }

    pub fn leave(&self, peer: &str) {
        let mut state = self.lock();
        let out = state.registry.leave(peer);
        self.deliver(&mut state, out);
    }

    /// A message for one participant from outside the registry (the SFU's offers).
    pub fn send_to(&self, peer: &str, msg: ServerMessage) {
        let mut state = self.lock();
        let out = state.registry.send_to(peer, msg);
        self.deliver(&mut state, out);
    }

    pub fn expire(&self, now: Instant) {
        let mut state = self.lock();
        let out = state.registry.expire(now);
        self.deliver(&mut state, out);
    }

    pub fn metrics_text(&self) -> String {
        let gauges = {
            let state = self.lock();
            Gauges {
                rooms: state.registry.room_count(),
                peers: state.registry.peer_count(),
                connections: state.outboxes.len(),
                media_connections: self.sfu.connection_count(),
                rtp: {
                    let c = self.sfu.counters();
                    crate::metrics::RtpGauges {
                        received: RtpCounters::get(&c.received),
                        forwarded: RtpCounters::get(&c.forwarded),
                        refused: RtpCounters::get(&c.refused),
                        dropped: RtpCounters::get(&c.dropped),
                    }
                },
                replay_misses: state.registry.replay_misses(),
                edge: self.sfu.edge().map(|edge| {
                    let (udp_paths, tcp_paths) = edge.paths();
                    let c = edge.counters();
                    crate::metrics::EdgeGauges {
                        udp_paths,
                        tcp_paths,
                        udp_paths_opened: c
                            .udp_paths_opened
                            .load(std::sync::atomic::Ordering::Relaxed),
                        tcp_paths_opened: c
                            .tcp_paths_opened
                            .load(std::sync::atomic::Ordering::Relaxed),
                        unroutable: c.unroutable.load(std::sync::atomic::Ordering::Relaxed),
                    }
                }),
            }
        };
        self.metrics.render(&gauges)
    }

    /// Queues outputs. A connection whose outbox is full loses its outbox: its task sees the
    /// channel close, tells the client it was too slow, and the client resumes.
    fn deliver(&self, state: &mut State, out: Vec<Output>) {
        for output in out {
            match output {
                Output::Send { to, msg } => {
                    let text = Utf8Bytes::from(encode(&msg));
                    for conn in to {
                        let Some(tx) = state.outboxes.get(&conn) else {
                            continue;
                        };
                        if tx.try_send(Outgoing::Text(text.clone())).is_ok() {
                            Metrics::inc(&self.metrics.messages_out_total);
                        } else {
                            state.outboxes.remove(&conn);
                            Metrics::inc(&self.metrics.slow_consumers_total);
                            tracing::warn!(conn, "outbox full; disconnecting slow consumer");
                        }
                    }
                }
                Output::Close { conn } => {
                    if let Some(tx) = state.outboxes.remove(&conn) {
                        let _ = tx.try_send(Outgoing::Replaced);
                    }
                }
                // The registry is the one owner of membership; the SFU follows it.
                Output::Joined { peer_id, room } => self.sfu.joined(&peer_id, &room),
                Output::Resumed { peer_id } => self.sfu.resumed(&peer_id),
                Output::Removed { peer_id } => self.sfu.left(&peer_id),
            }
        }
    }
}

/// 128 random bits as 32 hex characters: unguessable peer IDs and resume tokens.
fn random_id() -> Result<String, ProtocolError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        ProtocolError::new(
            ErrorCode::Internal,
            format!("The server could not generate an ID ({e}). Try again."),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
