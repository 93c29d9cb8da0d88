//! The room registry: who is in which call, and who must be told what. Sans-IO: every
//! operation takes the current time and returns [`Output`]s for the connection layer to carry
//! out, so membership, resume and expiry are tested without sockets or clocks.
//!
//! A participant whose socket dies is *detached*, not removed: for `resume_grace` its slot,
//! peer ID and recent data wait for it to reconnect with its resume token. Only when the grace
//! runs out do the others get `peerLeft`. A `leave` removes it at once.
//!
//! Each participant's data messages are numbered, and the last `replay_window` of them are
//! kept, delivered or not: a socket can die with messages still in flight, so on resume the
//! client says what it has (`lastSeq`) and gets the rest again.

use crate::keys::TenantId;
use between_protocol::{ErrorCode, PROTOCOL_VERSION, PeerInfo, ProtocolError, ServerMessage};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Identifies one WebSocket connection (a participant may go through several).
pub type ConnId = u64;

/// Something the connection layer must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send one message to each of these connections, in order with earlier outputs.
    Send { to: Vec<ConnId>, msg: ServerMessage },
    /// This connection was replaced by a resumed one: close it without detaching anyone.
    Close { conn: ConnId },
    /// A participant was admitted to `room` (the room's key, unique across tenants): the
    /// SFU gives it what is published there.
    Joined { peer_id: String, room: String },
    /// A participant came back on a new connection: the SFU resends what it may have missed.
    Resumed { peer_id: String },
    /// The participant is gone for good: release its media.
    Removed { peer_id: String },
}

#[derive(Debug, Clone, Copy)]
pub struct RegistryLimits {
    /// How long a detached participant's slot is kept for it to resume.
    pub resume_grace: Duration,
    /// Data messages kept per participant for replay on resume; the oldest go first.
    pub replay_window: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        Self {
            resume_grace: Duration::from_secs(5),
            replay_window: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RoomKey {
    tenant: TenantId,
    call_id: String,
}

impl std::fmt::Display for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.call_id)
    }
}

struct Slot {
    room: RoomKey,
    extra_data: String,
    resume_token: String,
    conn: Option<ConnId>,
    detached_at: Option<Instant>,
    /// The `seq` of the last data message numbered for this participant.
    out_seq: u64,
    /// Recent data messages to this participant, by `seq`.
    recent: VecDeque<(u64, ServerMessage)>,
    /// The last client `seq` taken from this participant.
    in_seq: u64,
    audio_muted: bool,
    video_muted: bool,
}

/// A join request after the API key was checked.
pub struct JoinRequest<'a> {
    pub conn: ConnId,
    pub tenant: TenantId,
    pub call_id: &'a str,
    pub extra_data: String,
    pub resume: Option<&'a between_protocol::Resume>,
    /// A fresh random peer ID and resume token, used unless the join resumes.
    pub fresh_peer_id: String,
    pub fresh_token: String,
}

/// What a join became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub peer_id: String,
    pub resumed: bool,
}

#[derive(Default)]
pub struct Registry {
    limits: RegistryLimits,
    /// Members of each room in join order.
    rooms: HashMap<RoomKey, Vec<String>>,
    slots: HashMap<String, Slot>,
    /// Messages a resuming participant asked for that had left the replay window.
    replay_misses: u64,
}

impl Registry {
    pub fn new(limits: RegistryLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    pub fn peer_count(&self) -> usize {
        self.slots.len()
    }

    /// Data messages lost because a participant was away longer than the replay window.
    pub fn replay_misses(&self) -> u64 {
        self.replay_misses
    }

    pub fn join(&mut self, req: JoinRequest<'_>) -> (Joined, Vec<Output>) {
        let key = RoomKey {
            tenant: req.tenant,
            call_id: req.call_id.to_string(),
        };
        if let Some(resume) = req.resume
            && let Some(outcome) = self.try_resume(&key, resume, req.conn)
        {
            return outcome;
        }
        let peer_id = req.fresh_peer_id;
        let me = PeerInfo {
            id: peer_id.clone(),
            extra_data: req.extra_data.clone(),
        };
        let room_name = key.to_string();
        let members = self.rooms.entry(key.clone()).or_default();
        let others: Vec<String> = members.clone();
        members.push(peer_id.clone());
        self.slots.insert(
            peer_id.clone(),
            Slot {
                room: key,
                extra_data: req.extra_data,
                resume_token: req.fresh_token.clone(),
                conn: Some(req.conn),
                detached_at: None,
                out_seq: 0,
                recent: VecDeque::new(),
                in_seq: 0,
                audio_muted: false,
                video_muted: false,
            },
        );
        let mut out = vec![Output::Send {
            to: vec![req.conn],
            msg: ServerMessage::Joined {
                v: PROTOCOL_VERSION,
                peer_id: peer_id.clone(),
                peers: self.infos(&others),
                resume_token: req.fresh_token,
                resumed: false,
                acked_seq: 0,
            },
        }];
        self.media_states_to(req.conn, &others, &mut out);
        self.send_to_members(&others, ServerMessage::PeerJoined { peer: me }, &mut out);
        out.push(Output::Joined {
            peer_id: peer_id.clone(),
            room: room_name,
        });
        (
            Joined {
                peer_id,
                resumed: false,
            },
            out,
        )
    }

    fn try_resume(
        &mut self,
        key: &RoomKey,
        resume: &between_protocol::Resume,
        conn: ConnId,
    ) -> Option<(Joined, Vec<Output>)> {
        let slot = self.slots.get_mut(&resume.peer_id)?;
        let token_ok: bool = slot
            .resume_token
            .as_bytes()
            .ct_eq(resume.token.as_bytes())
            .into();
        if !token_ok || slot.room != *key {
            return None;
        }
        let mut out = Vec::new();
        if let Some(old) = slot.conn.replace(conn)
            && old != conn
        {
            out.push(Output::Close { conn: old });
        }
        slot.detached_at = None;
        let replay: Vec<ServerMessage> = slot
            .recent
            .iter()
            .filter(|(seq, _)| *seq > resume.last_seq)
            .map(|(_, msg)| msg.clone())
            .collect();
        let first_kept = slot
            .recent
            .front()
            .map_or(slot.out_seq + 1, |(seq, _)| *seq);
        self.replay_misses += first_kept.saturating_sub(resume.last_seq + 1);
        let token = slot.resume_token.clone();
        let acked_seq = slot.in_seq;
        let others: Vec<String> = self
            .rooms
            .get(key)
            .map(|m| {
                m.iter()
                    .filter(|id| **id != resume.peer_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.push(Output::Send {
            to: vec![conn],
            msg: ServerMessage::Joined {
                v: PROTOCOL_VERSION,
                peer_id: resume.peer_id.clone(),
                peers: self.infos(&others),
                resume_token: token,
                resumed: true,
                acked_seq,
            },
        });
        self.media_states_to(conn, &others, &mut out);
        out.extend(replay.into_iter().map(|msg| Output::Send {
            to: vec![conn],
            msg,
        }));
        out.push(Output::Resumed {
            peer_id: resume.peer_id.clone(),
        });
        Some((
            Joined {
                peer_id: resume.peer_id.clone(),
                resumed: true,
            },
            out,
        ))
    }

    /// Relays a data message from `from` to everyone else in its room, or to one of them.
    /// `seq` is the client's number for it; one already taken is a resend and is dropped.
    pub fn data(
        &mut self,
        from: &str,
        data: serde_json::Value,
        to: Option<&str>,
        seq: Option<u64>,
    ) -> Result<Vec<Output>, ProtocolError> {
        let Some(slot) = self.slots.get_mut(from) else {
            return Err(not_in_call());
        };
        if let Some(seq) = seq
            && seq <= slot.in_seq
        {
            return Ok(Vec::new());
        }
        let room = slot.room.clone();
        let recipients: Vec<String> = match to {
            Some(to) => {
                let same_room = self.slots.get(to).is_some_and(|s| s.room == room);
                if !same_room || to == from {
                    return Err(ProtocolError::new(
                        ErrorCode::PeerNotFound,
                        format!("No other participant with ID {to:?} is in this call."),
                    ));
                }
                vec![to.to_string()]
            }
            None => self
                .rooms
                .get(&room)
                .map(|m| m.iter().filter(|id| *id != from).cloned().collect())
                .unwrap_or_default(),
        };
        if let (Some(seq), Some(slot)) = (seq, self.slots.get_mut(from)) {
            slot.in_seq = seq;
        }
        let window = self.limits.replay_window;
        let mut out = Vec::with_capacity(recipients.len());
        for id in &recipients {
            let Some(slot) = self.slots.get_mut(id) else {
                continue;
            };
            slot.out_seq += 1;
            let msg = ServerMessage::Data {
                from: from.to_string(),
                data: data.clone(),
                seq: slot.out_seq,
            };
            if slot.recent.len() >= window {
                slot.recent.pop_front();
            }
            slot.recent.push_back((slot.out_seq, msg.clone()));
            if let Some(conn) = slot.conn {
                out.push(Output::Send {
                    to: vec![conn],
                    msg,
                });
            }
        }
        Ok(out)
    }

    /// A participant muted or unmuted: everyone else hears of it.
    pub fn media_state(
        &mut self,
        peer_id: &str,
        audio_muted: bool,
        video_muted: bool,
    ) -> Vec<Output> {
        let Some(slot) = self.slots.get_mut(peer_id) else {
            return Vec::new();
        };
        slot.audio_muted = audio_muted;
        slot.video_muted = video_muted;
        let room = slot.room.clone();
        let others: Vec<String> = self
            .rooms
            .get(&room)
            .map(|m| m.iter().filter(|id| *id != peer_id).cloned().collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        let msg = ServerMessage::PeerMedia {
            peer_id: peer_id.to_string(),
            audio_muted,
            video_muted,
        };
        self.send_to_members(&others, msg, &mut out);
        out
    }

    /// Tells a (re)joining connection which of the others are muted.
    fn media_states_to(&self, conn: ConnId, others: &[String], out: &mut Vec<Output>) {
        for id in others {
            if let Some(s) = self.slots.get(id)
                && (s.audio_muted || s.video_muted)
            {
                out.push(Output::Send {
                    to: vec![conn],
                    msg: ServerMessage::PeerMedia {
                        peer_id: id.clone(),
                        audio_muted: s.audio_muted,
                        video_muted: s.video_muted,
                    },
                });
            }
        }
    }

    /// The participant said goodbye: remove it now.
    pub fn leave(&mut self, peer_id: &str) -> Vec<Output> {
        self.remove(peer_id)
    }

    /// The participant's connection `conn` ended without a goodbye; `last_heard` is when the
    /// client last sent anything, where its grace starts. Ignored if the participant has
    /// already moved to another connection.
    pub fn detach(&mut self, peer_id: &str, conn: ConnId, last_heard: Instant) -> Vec<Output> {
        let grace = self.limits.resume_grace;
        let Some(slot) = self.slots.get_mut(peer_id) else {
            return Vec::new();
        };
        if slot.conn != Some(conn) {
            return Vec::new();
        }
        if grace.is_zero() {
            return self.remove(peer_id);
        }
        slot.conn = None;
        slot.detached_at = Some(last_heard);
        Vec::new()
    }

    /// Removes detached participants whose grace ran out.
    pub fn expire(&mut self, now: Instant) -> Vec<Output> {
        let grace = self.limits.resume_grace;
        let expired: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.detached_at
                    .is_some_and(|t| now.duration_since(t) >= grace)
            })
            .map(|(id, _)| id.clone())
            .collect();
        expired.iter().flat_map(|id| self.remove(id)).collect()
    }

    /// The earliest time [`Registry::expire`] has work, if any participant is detached.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|s| s.detached_at)
            .min()
            .map(|t| t + self.limits.resume_grace)
    }

    /// Every connection, for a server-wide announcement such as shutdown.
    pub fn connections(&self) -> Vec<ConnId> {
        self.slots.values().filter_map(|s| s.conn).collect()
    }

    fn remove(&mut self, peer_id: &str) -> Vec<Output> {
        let Some(slot) = self.slots.remove(peer_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut remaining = Vec::new();
        if let Some(members) = self.rooms.get_mut(&slot.room) {
            members.retain(|id| id != peer_id);
            remaining = members.clone();
            if members.is_empty() {
                self.rooms.remove(&slot.room);
            }
        }
        self.send_to_members(
            &remaining,
            ServerMessage::PeerLeft {
                peer_id: peer_id.to_string(),
            },
            &mut out,
        );
        out.push(Output::Removed {
            peer_id: peer_id.to_string(),
        });
        out
    }

    /// Sends one message to a participant's current connection, if it has one.
    pub fn send_to(&self, peer_id: &str, msg: ServerMessage) -> Vec<Output> {
        match self.slots.get(peer_id).and_then(|s| s.conn) {
            Some(conn) => vec![Output::Send {
                to: vec![conn],
                msg,
            }],
            None => Vec::new(),
        }
    }

    fn infos(&self, ids: &[String]) -> Vec<PeerInfo> {
        ids.iter()
            .filter_map(|id| {
                self.slots.get(id).map(|s| PeerInfo {
                    id: id.clone(),
                    extra_data: s.extra_data.clone(),
                })
            })
            .collect()
    }

    /// Sends a membership change to the attached members, serialized once for all. Detached
    /// ones miss it: a resuming client gets the whole member list in `joined`.
    fn send_to_members(&self, ids: &[String], msg: ServerMessage, out: &mut Vec<Output>) {
        let to: Vec<ConnId> = ids
            .iter()
            .filter_map(|id| self.slots.get(id).and_then(|s| s.conn))
            .collect();
        if !to.is_empty() {
            out.push(Output::Send { to, msg });
        }
    }
}

fn not_in_call() -> ProtocolError {
    ProtocolError::new(ErrorCode::NotInCall, "Join a call before sending messages.")
}

#[cfg(test)]
#[path = "rooms_tests.rs"]
mod tests;
