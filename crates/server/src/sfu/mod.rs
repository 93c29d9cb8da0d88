//! The SFU: forwards every participant's published RTP to everyone else in its room, without
//! decoding. Each participant has up to two WebRTC connections here: a *publisher* connection
//! (it offers, we answer) whose tracks we read, and a *subscriber* connection (we offer, it
//! answers) on which we send it a track per remote track, renegotiating as tracks come and go.
//!
//! Forwarding: a publisher's track feeds a broadcast channel; each subscription is a task that
//! reads it, gives packets the subscription's own SSRC and continuous numbering
//! ([`rewrite::Rewriter`]) and writes them to that subscriber. NACKs are answered from the
//! subscriber connection's send buffer and sender/receiver reports come from the default
//! interceptors; keyframe requests (PLI/FIR) from a subscriber are relayed to the publisher, and
//! a new video subscription asks the publisher for a keyframe at once.
//!
//! Without `--udp-port`, connections use one ephemeral UDP port each; with it, all media goes
//! through one port (UDP and ICE-TCP), demultiplexed by ICE ufrag ([`edge`]). DTLS and SRTP
//! are always on.

pub mod edge;
pub mod rewrite;

use between_media::rtp::{
    DOWNLINK_REPORTER_SSRC, RtpPacket, is_keyframe_request, loss_report, picture_loss_indication,
    reported_loss,
};
use between_protocol::{ErrorCode, ProtocolError, ServerMessage, TrackInfo, TrackKind};
use between_transport::{MediaAddress, PcEvent, advertise_public_address, build, gathered};
use rewrite::Rewriter;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};
use webrtc::rtp_transceiver::RtpSender;

/// How long a subscribe offer waits for its answer before it is made again.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Packets buffered per published track for its slowest subscriber (about 1 s of 720p).
const FANOUT_CAPACITY: usize = 1024;

/// A message for one participant's signaling connection.
pub(crate) type Signal = (String, ServerMessage);

#[derive(Clone)]
struct Published {
    fanout: broadcast::Sender<RtpPacket>,
    /// The task reading the publisher's track (ended when the track is unpublished).
    reader: Option<tokio::task::AbortHandle>,
    remote: Arc<dyn TrackRemote>,
    ssrc: u32,
    codec: RTCRtpCodec,
    /// Each subscriber's last reported loss of this track (fraction of 256) and when: the
    /// worst recent one goes back to the publisher, whose audio FEC follows it.
    downlink_loss: HashMap<String, (u8, std::time::Instant)>,
    /// When the worst of them last went to the publisher: once a second at most, as a
    /// receiver's own reports come (with N subscribers each reporting every second, relaying
    /// every report would count the same loss N times in the publisher's smoothing).
    loss_relayed: Option<std::time::Instant>,
}

struct Subscription {
    info: TrackInfo,
    sender: Arc<dyn RtpSender>,
    task: JoinHandle<()>,
}

struct Subscriber {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
}

struct PeerState {
    room: String,
    publisher: Option<(Arc<dyn PeerConnection>, watch::Receiver<bool>)>,
    subscriber: Option<Subscriber>,
    published: HashMap<TrackKind, Published>,
    /// What this participant receives, by SDP track ID.
    subscriptions: HashMap<String, Subscription>,
    negotiating: bool,
    negotiate_again: bool,
    /// The offer awaiting an answer, re-sent if the participant resumes on a new socket.
    pending_offer: Option<ServerMessage>,
}

impl PeerState {
    fn new(room: String) -> Self {
        Self {
            room,
            publisher: None,
            subscriber: None,
            published: HashMap::new(),
            subscriptions: HashMap::new(),
            negotiating: false,
            negotiate_again: false,
            pending_offer: None,
        }
    }
}

/// Packet counters for `/metrics` and `between bench sfu`.
#[derive(Default)]
pub(crate) struct RtpCounters {
    pub received: AtomicU64,
    pub forwarded: AtomicU64,
}

pub(crate) struct Sfu {
    media: MediaAddress,
    /// The one-port edge, when configured: connections then bind on loopback behind it.
    pub edge: Option<edge::Edge>,
    pub counters: Arc<RtpCounters>,
    peers: Mutex<HashMap<String, PeerState>>,
    signal: mpsc::UnboundedSender<Signal>,
}

fn media_error(what: &str, e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InvalidMessage,
        format!("The media {what} could not be applied: {e}."),
    )
}

fn rtp_kind(kind: TrackKind) -> RtpCodecKind {
    match kind {
        TrackKind::Audio => RtpCodecKind::Audio,
        TrackKind::Video | TrackKind::Screen => RtpCodecKind::Video,
    }
}

/// Everything published in `room` by others than `peer`: what `peer` should receive.
fn published_for(
    peers: &HashMap<String, PeerState>,
    room: &str,
    peer: &str,
) -> Vec<(String, TrackKind, Published)> {
    peers
        .iter()
        .filter(|(id, p)| p.room == room && *id != peer)
        .flat_map(|(id, p)| {
            p.published
                .iter()
                .map(|(kind, pubd)| (id.clone(), *kind, pubd.clone()))
        })
        .collect()
}

/// The ID of `publisher`'s `kind` track on a subscriber's connection. A camera or microphone
/// keeps its ID when its stream restarts (subscribers see one continuous track); each screen
/// share is a track of its own, because WebRTC stacks know remote tracks by ID and would take
/// a new share under an old ID for the old, ended one.
fn subscription_id(publisher: &str, kind: TrackKind, ssrc: u32) -> String {
    match kind {
        TrackKind::Screen => format!("{publisher}-screen#{ssrc}"),
        TrackKind::Audio | TrackKind::Video => format!("{publisher}-{}", kind.as_str()),
    }
}

fn random_ssrc() -> u32 {
    let mut b = [0u8; 4];
    // An SSRC only needs to differ from its neighbours; a fixed fallback still works.
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b).max(1)
}

impl Sfu {
    pub fn new(
        media: MediaAddress,
        edge: Option<edge::Edge>,
        signal: mpsc::UnboundedSender<Signal>,
    ) -> Self {
        Self {
            media,
            edge,
            counters: Arc::default(),
            peers: Mutex::new(HashMap::new()),
            signal,
        }
    }

    /// Where a new connection binds: behind the edge on loopback, or on the media address.
    fn connection_address(&self) -> MediaAddress {
        match &self.edge {
            Some(_) => MediaAddress {
                peer_reflexive_only: true,
                ..MediaAddress::from(edge::INTERNAL_IP)
            },
            None => self.media,
        }
    }

    /// Our local description as the participant must see it.
    fn outgoing_sdp(&self, local_sdp: &str) -> Result<String, String> {
        match &self.edge {
            Some(edge) => edge.expose(local_sdp),
            None => Ok(advertise_public_address(local_sdp, self.media)),
        }
    }

    /// A participant's description as our connection should see it.
    fn incoming_sdp(&self, remote_sdp: String) -> String {
        match &self.edge {
            Some(_) => edge::sdp::without_candidates(&remote_sdp),
            None => remote_sdp,
        }
    }

    /// Closes a connection and, behind the edge, its route.
    async fn close_connection(&self, pc: &Arc<dyn PeerConnection>) {
        if let Some(edge) = &self.edge
            && let Some(local) = pc.local_description().await
        {
            edge.forget(&local.sdp);
        }
        let _ = pc.close().await;
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, PeerState>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open media connections, for metrics.
    pub fn connection_count(&self) -> usize {
        self.lock()
            .values()
            .map(|p| usize::from(p.publisher.is_some()) + usize::from(p.subscriber.is_some()))
            .sum()
    }

    /// A participant joined `room`: it will receive everything already published there.
    pub fn add_peer(self: &Arc<Self>, peer: &str, room: &str) {
        let existing = {
            let mut peers = self.lock();
            peers.insert(peer.to_string(), PeerState::new(room.to_string()));
            published_for(&peers, room, peer)
        };
        if existing.is_empty() {
            return;
        }
        let sfu = self.clone();
        let peer = peer.to_string();
        tokio::spawn(async move {
            for (publisher, kind, published) in existing {
                sfu.subscribe(&peer, &publisher, kind, published).await;
            }
            sfu.renegotiate(&peer).await;
        });
    }

    /// The participant's receiving connection never came up: it is dropped, and everything
    /// published in the room is offered again on a new one.
    pub async fn resubscribe(self: &Arc<Self>, peer: &str) {
        let (old, subscriptions, room) = {
            let mut peers = self.lock();
            let Some(state) = peers.get_mut(peer) else {
                return;
            };
            state.negotiating = false;
            state.negotiate_again = false;
            state.pending_offer = None;
            (
                state.subscriber.take(),
                std::mem::take(&mut state.subscriptions),
                state.room.clone(),
            )
        };
        tracing::info!(peer = %peer, "receiving connection restarted at the client's request");
        for sub in subscriptions.into_values() {
            sub.task.abort();
        }
        if let Some(old) = old {
            self.close_connection(&old.pc).await;
        }
        let existing = published_for(&self.lock(), &room, peer);
        for (publisher, kind, published) in existing {
            self.subscribe(peer, &publisher, kind, published).await;
        }
        self.renegotiate(peer).await;
    }

    /// A participant left: its connections close and everyone stops receiving its tracks.
    pub async fn remove_peer(self: &Arc<Self>, peer: &str) {
        let (state, affected) = {
            let mut peers = self.lock();
            let Some(state) = peers.remove(peer) else {
                return;
            };
            let mut affected = Vec::new();
            for (id, other) in peers.iter_mut() {
                let gone: Vec<String> = other
                    .subscriptions
                    .iter()
                    .filter(|(_, s)| s.info.peer_id == peer)
                    .map(|(k, _)| k.clone())
                    .collect();
                if gone.is_empty() {
                    continue;
                }
                let subs: Vec<Subscription> = gone
                    .iter()
                    .filter_map(|k| other.subscriptions.remove(k))
                    .collect();
                if let Some(s) = &other.subscriber {
                    affected.push((id.clone(), s.pc.clone(), subs));
                }
            }
            (state, affected)
        };
        for sub in state.subscriptions.into_values() {
            sub.task.abort();
        }
        if let Some((pc, _)) = state.publisher {
            self.close_connection(&pc).await;
        }
        if let Some(s) = state.subscriber {
            self.close_connection(&s.pc).await;
        }
        for (id, pc, subs) in affected {
            for sub in subs {
                sub.task.abort();
                if let Err(e) = pc.remove_track(&sub.sender).await {
                    tracing::debug!(error = %e, "remove_track");
                }
            }
            self.renegotiate(&id).await;
        }
    }

    /// Applies a participant's publishing offer; returns our answer.
    pub async fn publish(
        self: &Arc<Self>,
        peer: &str,
        sdp: String,
    ) -> Result<String, ProtocolError> {
        let offer = RTCSessionDescription::offer(self.incoming_sdp(sdp))
            .map_err(|e| media_error("offer", e))?;
        let existing = {
            let peers = self.lock();
            let Some(state) = peers.get(peer) else {
                return Err(ProtocolError::new(
                    ErrorCode::NotInCall,
                    "Join the call before publishing media.",
                ));
            };
            state.publisher.clone()
        };
        // A renegotiation may leave nothing to receive (the last track, a share, was
        // removed); only a first offer must bring something.
        let first_offer = existing.is_none();
        let (pc, mut gathered_rx) = match existing {
            Some(p) => p,
            None => {
                let built = build(self.connection_address())
                    .await
                    .map_err(|e| ProtocolError::new(ErrorCode::Internal, e))?;
                let pc = built.pc.clone();
                self.spawn_publisher_events(peer.to_string(), built.events);
                if let Some(state) = self.lock().get_mut(peer) {
                    state.publisher = Some((pc.clone(), built.gathered.clone()));
                }
                (pc, built.gathered)
            }
        };
        let answered = async {
            pc.set_remote_description(offer)
                .await
                .map_err(|e| media_error("offer", e))?;
            let answer = pc
                .create_answer(None)
                .await
                .map_err(|e| media_error("offer", e))?;
            pc.set_local_description(answer)
                .await
                .map_err(|e| media_error("offer", e))?;
            gathered(&mut gathered_rx).await;
            let local = pc
                .local_description()
                .await
                .ok_or_else(|| ProtocolError::new(ErrorCode::Internal, "No local description."))?;
            let receives = local.sdp.contains("a=sendrecv") || local.sdp.contains("a=recvonly");
            if !receives && first_offer {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidArgument,
                    "The media offer has no track this server can receive: send Opus audio or H.264 video.",
                ));
            }
            Ok(local)
        }
        .await;
        let local = match answered {
            Ok(local) => local,
            Err(e) => {
                // A first offer that failed: start the next from a clean connection rather than
                // one in an odd state. A later one (a share added or removed) leaves the
                // connection alone: it still carries the camera and microphone.
                if first_offer {
                    let dropped = self.lock().get_mut(peer).and_then(|s| s.publisher.take());
                    if let Some((pc, _)) = dropped {
                        self.close_connection(&pc).await;
                    }
                }
                return Err(e);
            }
        };
        self.outgoing_sdp(&local.sdp)
            .map_err(|e| ProtocolError::new(ErrorCode::Internal, e))
    }

    fn spawn_publisher_events(
        self: &Arc<Self>,
        peer: String,
        mut events: mpsc::UnboundedReceiver<PcEvent>,
    ) {
        let sfu = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Some(sfu) = sfu.upgrade() else { return };
                match event {
                    PcEvent::Track(track) => sfu.on_published_track(&peer, track).await,
                    PcEvent::State(state) => {
                        tracing::debug!(peer = %peer, %state, "publisher connection");
                        if state == RTCPeerConnectionState::Failed {
                            tracing::info!(peer = %peer, "publisher connection failed");
                        }
                    }
                }
            }
        });
    }

    async fn on_published_track(self: &Arc<Self>, peer: &str, track: Arc<dyn TrackRemote>) {
        let track_id = track.track_id().await;
        let Some(kind) = TrackKind::of_published(&track_id) else {
            tracing::info!(peer = %peer, track = %track_id, "ignoring a track with an unknown id");
            return;
        };
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let Some(codec) = track.codec(ssrc).await else {
            return;
        };
        tracing::info!(peer = %peer, ?kind, ssrc, codec = %codec.mime_type, "track published");
        // Each share is a track of its own: one still listed (its end never announced) goes
        // first, so its subscribers are told and nobody keeps a dead share.
        if kind == TrackKind::Screen {
            let stale = self
                .lock()
                .get(peer)
                .and_then(|p| p.published.get(&kind))
                .is_some_and(|p| p.ssrc != ssrc);
            if stale {
                self.stop_publishing(peer, kind).await;
            }
        }
        let (published, fresh, others) = {
            let mut peers = self.lock();
            let Some(state) = peers.get_mut(peer) else {
                return;
            };
            let room = state.room.clone();
            let (published, fresh) = match state.published.get_mut(&kind) {
                // A restarted track keeps its fan-out, so subscribers see one stream.
                Some(existing) => {
                    existing.remote = track.clone();
                    existing.ssrc = ssrc;
                    (existing.clone(), false)
                }
                None => {
                    let p = Published {
                        fanout: broadcast::channel(FANOUT_CAPACITY).0,
                        reader: None,
                        remote: track.clone(),
                        ssrc,
                        codec,
                        downlink_loss: HashMap::new(),
                        loss_relayed: None,
                    };
                    state.published.insert(kind, p.clone());
                    (p, true)
                }
            };
            let others: Vec<String> = peers
                .iter()
                .filter(|(id, p)| p.room == room && *id != peer)
                .map(|(id, _)| id.clone())
                .collect();
            (published, fresh, others)
        };
        let fanout = published.fanout.clone();
        let sfu = Arc::downgrade(self);
        let publisher = peer.to_string();
        let counters = self.counters.clone();
        let reader = tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        counters.received.fetch_add(1, Ordering::Relaxed);
                        // No subscribers yet is fine: nothing to forward to.
                        let _ = fanout.send(packet);
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
            if let Some(sfu) = sfu.upgrade() {
                sfu.unpublish(&publisher, kind, ssrc).await;
            }
        });
        if let Some(p) = self
            .lock()
            .get_mut(peer)
            .and_then(|p| p.published.get_mut(&kind))
            .filter(|p| p.ssrc == ssrc)
            && let Some(old) = p.reader.replace(reader.abort_handle())
        {
            old.abort();
        }
        if fresh {
            for other in others {
                self.subscribe(&other, peer, kind, published.clone()).await;
                self.renegotiate(&other).await;
            }
        } else if kind != TrackKind::Audio {
            self.request_keyframe(peer, kind).await;
        }
    }

    /// The participant stopped sending `kind` (a share ended): its subscribers lose the track
    /// now. A track it sends later under the same kind is a new one.
    pub async fn stop_publishing(self: &Arc<Self>, peer: &str, kind: TrackKind) {
        let published = self
            .lock()
            .get(peer)
            .and_then(|p| p.published.get(&kind))
            .map(|p| (p.ssrc, p.reader.clone()));
        if let Some((ssrc, reader)) = published {
            tracing::info!(peer = %peer, ?kind, "track unpublished");
            self.unpublish(peer, kind, ssrc).await;
            // Its connection keeps the old track open; nothing more will be read from it.
            if let Some(reader) = reader {
                reader.abort();
            }
        }
    }

    /// The publisher's track ended: its subscriptions go away.
    async fn unpublish(self: &Arc<Self>, publisher: &str, kind: TrackKind, ssrc: u32) {
        let track_id = subscription_id(publisher, kind, ssrc);
        let affected = {
            let mut peers = self.lock();
            let still_ours = peers
                .get(publisher)
                .and_then(|p| p.published.get(&kind))
                .is_some_and(|p| p.ssrc == ssrc);
            if !still_ours {
                return;
            }
            if let Some(p) = peers.get_mut(publisher) {
                p.published.remove(&kind);
            }
            let mut affected = Vec::new();
            for (id, other) in peers.iter_mut() {
                if let (Some(sub), Some(s)) =
                    (other.subscriptions.remove(&track_id), &other.subscriber)
                {
                    affected.push((id.clone(), s.pc.clone(), sub));
                }
            }
            affected
        };
        for (id, pc, sub) in affected {
            sub.task.abort();
            let _ = pc.remove_track(&sub.sender).await;
            self.renegotiate(&id).await;
        }
    }

    /// Adds a track carrying `publisher`'s `kind` to `subscriber`'s connection (renegotiation
    /// is the caller's).
    async fn subscribe(
        self: &Arc<Self>,
        subscriber: &str,
        publisher: &str,
        kind: TrackKind,
        published: Published,
    ) {
        let track_id = subscription_id(publisher, kind, published.ssrc);
        let Some(pc) = self.subscriber_pc(subscriber).await else {
            return;
        };
        let ssrc = random_ssrc();
        let local = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            publisher.to_string(),
            track_id.clone(),
            kind.as_str().to_string(),
            rtp_kind(kind),
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: published.codec.clone(),
                ..Default::default()
            }],
        )));
        let sender = match pc.add_track(local.clone() as Arc<dyn TrackLocal>).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "add_track");
                return;
            }
        };
        let gap = if kind == TrackKind::Audio { 960 } else { 3000 };
        let task = tokio::spawn(forward(
            Arc::downgrade(self),
            self.counters.clone(),
            (publisher.to_string(), subscriber.to_string()),
            kind,
            (local, ssrc),
            published.fanout.subscribe(),
            Rewriter::new(ssrc, gap),
        ));
        let info = TrackInfo {
            peer_id: publisher.to_string(),
            kind,
            track_id: track_id.clone(),
        };
        let mut peers = self.lock();
        match peers.get_mut(subscriber) {
            Some(state) => {
                if let Some(old) = state
                    .subscriptions
                    .insert(track_id, Subscription { info, sender, task })
                {
                    old.task.abort();
                }
            }
            None => task.abort(),
        }
    }

    async fn subscriber_pc(self: &Arc<Self>, peer: &str) -> Option<Arc<dyn PeerConnection>> {
        if let Some(s) = self.lock().get(peer)?.subscriber.as_ref() {
            return Some(s.pc.clone());
        }
        let built = match build(self.connection_address()).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a subscriber connection");
                return None;
            }
        };
        let mut events = built.events;
        let peer_id = peer.to_string();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let PcEvent::State(state) = event {
                    tracing::debug!(peer = %peer_id, %state, "subscriber connection");
                }
            }
            tracing::debug!(peer = %peer_id, "subscriber connection events ended");
        });
        let mut peers = self.lock();
        let state = peers.get_mut(peer)?;
        // Another task may have raced us here; keep the first.
        let s = state.subscriber.get_or_insert(Subscriber {
            pc: built.pc,
            gathered: built.gathered,
        });
        Some(s.pc.clone())
    }

    /// Sends the subscriber a new offer describing its current tracks; queues one more round if
    /// an offer is already waiting for its answer.
    async fn renegotiate(self: &Arc<Self>, peer: &str) {
        let (pc, mut gathered_rx, tracks) = {
            let mut peers = self.lock();
            let Some(state) = peers.get_mut(peer) else {
                return;
            };
            let Some(sub) = &state.subscriber else { return };
            if state.negotiating {
                state.negotiate_again = true;
                return;
            }
            state.negotiating = true;
            let tracks: Vec<TrackInfo> = state
                .subscriptions
                .values()
                .map(|s| s.info.clone())
                .collect();
            (sub.pc.clone(), sub.gathered.clone(), tracks)
        };
        let offer = async {
            let offer = pc.create_offer(None).await.map_err(|e| e.to_string())?;
            pc.set_local_description(offer)
                .await
                .map_err(|e| e.to_string())?;
            gathered(&mut gathered_rx).await;
            let desc = pc
                .local_description()
                .await
                .ok_or_else(|| "no local description".to_string())?;
            self.outgoing_sdp(&desc.sdp)
        }
        .await;
        match offer {
            Ok(sdp) => {
                let msg = ServerMessage::SubscribeOffer { sdp, tracks };
                if let Some(state) = self.lock().get_mut(peer) {
                    state.pending_offer = Some(msg.clone());
                }
                let _ = self.signal.send((peer.to_string(), msg.clone()));
                self.expect_answer(peer, msg);
            }
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "cannot create a subscriber offer");
                if let Some(state) = self.lock().get_mut(peer) {
                    state.negotiating = false;
                }
            }
        }
    }

    /// An offer lost on the way (or a client that never answered) must not stall this
    /// participant's renegotiation for good: after a while, offer again.
    fn expect_answer(self: &Arc<Self>, peer: &str, offer: ServerMessage) {
        let sfu = Arc::downgrade(self);
        let peer = peer.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(ANSWER_TIMEOUT).await;
            let Some(sfu) = sfu.upgrade() else { return };
            let stale = {
                let mut peers = sfu.lock();
                match peers.get_mut(&peer) {
                    Some(state) if state.pending_offer.as_ref() == Some(&offer) => {
                        state.negotiating = false;
                        state.pending_offer = None;
                        true
                    }
                    _ => false,
                }
            };
            if stale {
                tracing::info!(peer = %peer, "no answer to a subscribe offer; offering again");
                sfu.renegotiate(&peer).await;
            }
        });
    }

    /// Applies a subscriber's answer, then the next round if one is queued.
    pub async fn subscribe_answer(
        self: &Arc<Self>,
        peer: &str,
        sdp: String,
    ) -> Result<(), ProtocolError> {
        let answer = RTCSessionDescription::answer(self.incoming_sdp(sdp))
            .map_err(|e| media_error("answer", e))?;
        let pc = {
            let peers = self.lock();
            let state = peers.get(peer).filter(|s| s.negotiating);
            match state.and_then(|s| s.subscriber.as_ref()) {
                Some(s) => s.pc.clone(),
                None => {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidMessage,
                        "No subscribe offer is waiting for an answer.",
                    ));
                }
            }
        };
        let applied = pc.set_remote_description(answer).await;
        let again = {
            let mut peers = self.lock();
            let Some(state) = peers.get_mut(peer) else {
                return Ok(());
            };
            state.negotiating = false;
            state.pending_offer = None;
            std::mem::take(&mut state.negotiate_again) || applied.is_err()
        };
        if again {
            let sfu = self.clone();
            let peer = peer.to_string();
            tokio::spawn(async move { sfu.renegotiate(&peer).await });
        }
        applied.map_err(|e| media_error("answer", e))
    }

    /// The participant resumed on a new socket: an offer it may have missed goes again.
    pub fn resend_offer(&self, peer: &str) {
        let pending = self.lock().get(peer).and_then(|s| s.pending_offer.clone());
        if let Some(msg) = pending {
            let _ = self.signal.send((peer.to_string(), msg));
        }
    }

    /// A subscriber's receiver report about a publisher's audio: the worst loss any
    /// subscriber reported in the last 10 s goes to the publisher as a report of ours.
    async fn relay_loss(&self, publisher: &str, subscriber: &str, fraction_lost: u8) {
        let target = {
            let mut peers = self.lock();
            let Some(published) = peers
                .get_mut(publisher)
                .and_then(|p| p.published.get_mut(&TrackKind::Audio))
            else {
                return;
            };
            let now = std::time::Instant::now();
            published
                .downlink_loss
                .insert(subscriber.to_string(), (fraction_lost, now));
            published
                .downlink_loss
                .retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(10));
            if published
                .loss_relayed
                .is_some_and(|at| now.duration_since(at) < Duration::from_millis(900))
            {
                return;
            }
            published.loss_relayed = Some(now);
            let worst = published
                .downlink_loss
                .values()
                .map(|(lost, _)| *lost)
                .max()
                .unwrap_or(0);
            (published.remote.clone(), published.ssrc, worst)
        };
        let (remote, ssrc, worst) = target;
        if let Err(e) = remote
            .write_rtcp(vec![loss_report(DOWNLINK_REPORTER_SSRC, ssrc, worst)])
            .await
        {
            tracing::debug!(error = %e, "cannot relay the subscribers' loss");
        }
    }

    async fn request_keyframe(&self, publisher: &str, kind: TrackKind) {
        let target = self
            .lock()
            .get(publisher)
            .and_then(|p| p.published.get(&kind))
            .map(|p| (p.remote.clone(), p.ssrc));
        if let Some((remote, ssrc)) = target
            && let Err(e) = remote.write_rtcp(vec![picture_loss_indication(ssrc)]).await
        {
            tracing::debug!(error = %e, "cannot send PLI");
        }
    }
}

/// One subscription's forwarding loop.
async fn forward(
    sfu: std::sync::Weak<Sfu>,
    counters: Arc<RtpCounters>,
    (publisher, subscriber): (String, String),
    kind: TrackKind,
    (local, local_ssrc): (Arc<TrackLocalStaticRTP>, u32),
    mut packets: broadcast::Receiver<RtpPacket>,
    mut rewriter: Rewriter,
) {
    // Until negotiation binds the track, its feedback stream does not exist yet.
    let mut feedback_ready = tokio::time::Instant::now();
    let mut asked_keyframe = false;
    loop {
        tokio::select! {
            packet = packets.recv() => match packet {
                Ok(mut p) => {
                    rewriter.rewrite(&mut p);
                    let written = local.write_rtp(p).await.is_ok();
                    if written {
                        counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                    if written && !asked_keyframe && kind != TrackKind::Audio {
                        // The first packet that got through: the subscriber is bound now, so
                        // a keyframe asked for now will reach it.
                        asked_keyframe = true;
                        if let Some(sfu) = sfu.upgrade() {
                            sfu.request_keyframe(&publisher, kind).await;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            event = local.poll(), if tokio::time::Instant::now() >= feedback_ready => match event {
                Some(TrackLocalEvent::OnRtcpPacket(rtcp)) => {
                    if rtcp.iter().any(|p| is_keyframe_request(p.as_ref()))
                        && let Some(sfu) = sfu.upgrade() {
                            sfu.request_keyframe(&publisher, kind).await;
                        }
                    let lost = rtcp.iter().filter_map(|p| reported_loss(p.as_ref(), local_ssrc)).map(|(_, l)| l).max();
                    if let (Some(lost), TrackKind::Audio) = (lost, kind)
                        && let Some(sfu) = sfu.upgrade() {
                            sfu.relay_loss(&publisher, &subscriber, lost).await;
                        }
                }
                Some(_) => {}
                None => feedback_ready = tokio::time::Instant::now() + Duration::from_millis(100),
            },
            _ = tokio::time::sleep_until(feedback_ready), if tokio::time::Instant::now() < feedback_ready => {}
        }
    }
}
