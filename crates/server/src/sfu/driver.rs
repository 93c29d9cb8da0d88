//! One task per participant: it owns that participant's connections (publishing and
//! receiving) and carries out, one at a time, what the core decides for them, so no two
//! operations on one connection ever interleave. The connections' callbacks (a track
//! arrived, a track ended) become core inputs.

use super::env::{Env, RtpCounters};
use super::forward::{LayerPacket, LegParams};
use super::inputs::Inputs;
use super::io::{Input, Output};
use super::layers::LayerMeter;
use super::media::{Media, PublishedMedia};
use super::receiving::Receiving;
use between_media::rtp::{DOWNLINK_REPORTER_SSRC, loss_report, picture_loss_indication};
use between_protocol::{ErrorCode, ProtocolError, TrackInfo, TrackKind};
use between_transport::{PcEvent, make_answer};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

/// Packets buffered per published track for its slowest subscriber (about 1 s of 720p).
const FANOUT_CAPACITY: usize = 1024;

pub(crate) enum Command {
    /// One of the core's outputs for this participant.
    Core(Output<Media>),
    /// The participant's publishing offer; the answer goes back on `reply`.
    Publish {
        sdp: String,
        reply: oneshot::Sender<Result<String, ProtocolError>>,
    },
    /// The participant stopped sending this kind (a share ended).
    StopPublishing(TrackKind),
}

/// A track this participant publishes.
struct Track {
    id: String,
    remote: Arc<dyn TrackRemote>,
    ssrc: u32,
    media: Media,
    source: watch::Sender<Arc<LegParams>>,
    reader: AbortHandle,
    /// Each simulcast layer's SSRC as its reader saw them (a keyframe request names one).
    ssrcs: LayerSsrcs,
}

type LayerSsrcs = Arc<std::sync::Mutex<HashMap<u8, u32>>>;

struct Publishing {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
}

struct Driver {
    peer: String,
    inputs: Inputs,
    env: Arc<Env>,
    publishing: Option<Publishing>,
    publishing_events: Option<mpsc::UnboundedReceiver<PcEvent>>,
    /// One track per kind: a new share replaces the old, a restarted camera its old stream.
    tracks: HashMap<TrackKind, Track>,
    receiving: Option<Receiving>,
    receiving_events: Option<mpsc::UnboundedReceiver<PcEvent>>,
    /// Readers whose track ended: `(kind, ssrc)`.
    ended_tx: mpsc::UnboundedSender<(TrackKind, u32)>,
    /// The participant stopped its share and has sent no offer since: a share track that
    /// still arrives is that stopped one's, late.
    share_stopped: bool,
    ended_rx: mpsc::UnboundedReceiver<(TrackKind, u32)>,
}

/// Starts `peer`'s driver; it ends with [`Output::Close`] or when the sender is dropped.
pub(crate) fn spawn(inputs: Inputs, env: Arc<Env>, peer: String) -> mpsc::UnboundedSender<Command> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ended_tx, ended_rx) = mpsc::unbounded_channel();
    let driver = Driver {
        peer,
        inputs,
        env,
        publishing: None,
        publishing_events: None,
        tracks: HashMap::new(),
        receiving: None,
        receiving_events: None,
        ended_tx,
        ended_rx,
        share_stopped: false,
    };
    tokio::spawn(driver.run(rx));
    tx
}

/// The next event of an optional channel; pending for ever when there is none.
async fn next<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn media_error(what: &str, e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InvalidMessage,
        format!("The media {what} could not be applied: {e}."),
    )
}

fn internal(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::Internal,
        format!("The server could not set up media ({e}). Try again."),
    )
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                // A track that arrived is seen before a command that came after it (a share
                // stopped right after it started).
                biased;
                event = next(&mut self.publishing_events) => match event {
                    Some(PcEvent::Track(track)) => self.on_track(track).await,
                    Some(PcEvent::State(state)) => {
                        tracing::debug!(peer = %self.peer, %state, "publishing connection");
                        if state == RTCPeerConnectionState::Failed {
                            tracing::info!(peer = %self.peer, "publishing connection failed");
                        }
                    }
                    None => self.publishing_events = None,
                },
                command = commands.recv() => match command {
                    Some(Command::Core(Output::Close { .. })) | None => break,
                    Some(command) => self.on_command(command).await,
                },
                event = next(&mut self.receiving_events) => match event {
                    Some(PcEvent::State(state)) => {
                        tracing::debug!(peer = %self.peer, %state, "receiving connection");
                        if let Some(r) = &self.receiving {
                            r.set_connected(state == RTCPeerConnectionState::Connected);
                        }
                    }
                    Some(PcEvent::Track(_)) => {}
                    None => self.receiving_events = None,
                },
                Some((kind, ssrc)) = self.ended_rx.recv() => {
                    if self.tracks.get(&kind).is_some_and(|t| t.ssrc == ssrc) {
                        self.unpublish(kind);
                    }
                }
            }
        }
        self.close().await;
    }

    fn input(&self, input: Input<Media>) {
        self.inputs.send(input);
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { sdp, reply } => {
                self.share_stopped = false;
                let answer = self.publish(sdp).await;
                let _ = reply.send(answer);
            }
            Command::StopPublishing(kind) => {
                if kind == TrackKind::Screen {
                    self.share_stopped = true;
                }
                if self.tracks.contains_key(&kind) {
                    tracing::info!(peer = %self.peer, ?kind, "track unpublished");
                    self.unpublish(kind);
                }
            }
            Command::Core(output) => self.on_output(output).await,
        }
    }

    async fn on_output(&mut self, output: Output<Media>) {
        match output {
            Output::Subscribe { track, media, .. } => {
                if self.receiving.is_none() {
                    match Receiving::open(&self.env, &self.inputs, &self.peer).await {
                        Ok((receiving, events)) => {
                            self.receiving = Some(receiving);
                            self.receiving_events = Some(events);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot create a receiving connection");
                        }
                    }
                }
                let added = match &mut self.receiving {
                    Some(r) => {
                        r.subscribe(&self.inputs, &self.env, &self.peer, track, media)
                            .await
                    }
                    None => false,
                };
                if !added {
                    // The core starts this connection over, later.
                    self.input(Input::SubscribeFailed {
                        peer: self.peer.clone(),
                    });
                }
            }
            Output::Unsubscribe { track_id, .. } => {
                if let Some(r) = &mut self.receiving {
                    r.unsubscribe(&track_id).await;
                }
            }
            Output::MakeOffer { offer, .. } => {
                let made = match &mut self.receiving {
                    Some(r) => r.offer(&self.env).await,
                    None => Err("no receiving connection".to_string()),
                };
                let peer = self.peer.clone();
                self.input(match made {
                    Ok(sdp) => Input::OfferReady { peer, offer, sdp },
                    Err(e) => {
                        tracing::warn!(peer = %peer, error = %e, "cannot make a subscriber offer");
                        Input::OfferFailed { peer, offer }
                    }
                });
            }
            Output::ApplyAnswer { offer, sdp, .. } => {
                let applied = match &mut self.receiving {
                    Some(r) => r.apply_answer(&self.env, sdp).await,
                    None => Err("no receiving connection".to_string()),
                };
                self.input(Input::AnswerApplied {
                    peer: self.peer.clone(),
                    offer,
                    error: applied.err(),
                });
            }
            Output::ResetSubscriber { .. } => {
                self.receiving_events = None;
                if let Some(r) = self.receiving.take() {
                    r.close(&self.env).await;
                }
            }
            Output::RequestKeyframe {
                track_id, layer, ..
            } => {
                if let Some(t) = self.track(&track_id) {
                    // The layer asked for, if its stream is known; every layer otherwise.
                    let named = layer.and_then(|l| t.ssrcs.lock().ok()?.get(&l).copied());
                    let mut ssrcs = match named {
                        Some(ssrc) => vec![ssrc],
                        None => t.remote.ssrcs().await,
                    };
                    if ssrcs.is_empty() {
                        ssrcs.push(t.ssrc);
                    }
                    let plis = ssrcs.into_iter().map(picture_loss_indication).collect();
                    if let Err(e) = t.remote.write_rtcp(plis).await {
                        tracing::debug!(error = %e, "cannot send PLI");
                    }
                }
            }
            Output::SelectLayer {
                track_id,
                layer,
                urgent,
                ..
            } => {
                if let Some(r) = &self.receiving {
                    r.select(&track_id, layer, urgent);
                }
            }
            Output::RelayLoss {
                track_id,
                fraction_lost,
                ..
            } => {
                if let Some(t) = self.track(&track_id) {
                    let report = loss_report(DOWNLINK_REPORTER_SSRC, t.ssrc, fraction_lost);
                    if let Err(e) = t.remote.write_rtcp(vec![report]).await {
                        tracing::debug!(error = %e, "cannot relay the subscribers' loss");
                    }
                }
            }
            // Signals go to the signaling layer, Close ends the loop: never sent here.
            Output::Signal { .. } | Output::Close { .. } => {}
        }
    }

    fn track(&self, id: &str) -> Option<&Track> {
        self.tracks.values().find(|t| t.id == id)
    }

    /// Applies a publishing offer; returns our answer.
    async fn publish(&mut self, sdp: String) -> Result<String, ProtocolError> {
        // A renegotiation may leave nothing to receive (the last track, a share, was
        // removed); only a first offer must bring something.
        let first_offer = self.publishing.is_none();
        if first_offer {
            let built = self.env.connect().await.map_err(internal)?;
            self.publishing = Some(Publishing {
                pc: built.pc,
                gathered: built.gathered,
            });
            self.publishing_events = Some(built.events);
        }
        let Some(p) = &mut self.publishing else {
            return Err(internal("no publishing connection"));
        };
        let incoming = self.env.incoming_sdp(sdp);
        let answered = match make_answer(&p.pc, &mut p.gathered, incoming, None).await {
            Ok(local) => {
                let receives = local.contains("a=sendrecv") || local.contains("a=recvonly");
                if !receives && first_offer {
                    Err(ProtocolError::new(
                        ErrorCode::InvalidArgument,
                        "The media offer has no track this server can receive: send Opus audio or H.264 video.",
                    ))
                } else {
                    Ok(local)
                }
            }
            Err(e) => Err(media_error("offer", e)),
        };
        match answered {
            Ok(local) => self.env.outgoing_sdp(&local).map_err(internal),
            Err(e) => {
                // A first offer that failed: the next starts from a clean connection rather
                // than one in an odd state. A later one (a share added or removed) leaves the
                // connection alone: it still carries the camera and microphone.
                if first_offer && let Some(p) = self.publishing.take() {
                    self.publishing_events = None;
                    self.env.close(&p.pc).await;
                }
                Err(e)
            }
        }
    }

    /// The publisher leg's numbering for `remote`, from its receiver.
    async fn source_params(&self, remote: &Arc<dyn TrackRemote>) -> LegParams {
        let Some(p) = &self.publishing else {
            return LegParams::default();
        };
        for receiver in p.pc.get_receivers().await {
            if Arc::as_ptr(receiver.track()) as *const () != Arc::as_ptr(remote) as *const () {
                continue;
            }
            match receiver.get_parameters().await {
                Ok(params) => return LegParams::from_rtc(&params.rtp_parameters),
                Err(e) => tracing::debug!(error = %e, "a receiver's parameters"),
            }
        }
        tracing::warn!(peer = %self.peer, "no receiver for a published track");
        LegParams::default()
    }

    async fn on_track(&mut self, remote: Arc<dyn TrackRemote>) {
        let audio = remote.kind().await == RtpCodecKind::Audio;
        let kind = TrackKind::of_media(audio, &remote.track_id().await);
        let Some(ssrc) = remote.ssrcs().await.first().copied() else {
            return;
        };
        let Some(codec) = remote.codec(ssrc).await else {
            return;
        };
        if kind == TrackKind::Screen && self.share_stopped {
            tracing::debug!(peer = %self.peer, "a share arrived after it was stopped; ignored");
            return;
        }
        let id = TrackInfo::subscription_id(&self.peer, kind, ssrc);
        tracing::info!(peer = %self.peer, ?kind, ssrc, codec = %codec.mime_type, "track published");
        let params = Arc::new(self.source_params(&remote).await);
        let track = match self.tracks.remove(&kind) {
            // A restarted camera or microphone keeps its fan-out: subscribers see one stream.
            Some(mut old) if old.id == id => {
                old.reader.abort();
                let _ = old.source.send(params);
                old.reader = self.read(
                    &remote,
                    kind,
                    (ssrc, &id),
                    old.media.fanout.clone(),
                    old.ssrcs.clone(),
                );
                old.remote = remote;
                old.ssrc = ssrc;
                old
            }
            old => {
                if let Some(old) = old {
                    old.reader.abort();
                }
                let (source, source_rx) = watch::channel(params);
                let fanout = broadcast::channel(FANOUT_CAPACITY).0;
                let media = Arc::new(PublishedMedia {
                    codec,
                    fanout: fanout.clone(),
                    source: source_rx,
                });
                let ssrcs = LayerSsrcs::default();
                Track {
                    id: id.clone(),
                    reader: self.read(&remote, kind, (ssrc, &id), fanout, ssrcs.clone()),
                    ssrcs,
                    remote,
                    ssrc,
                    media,
                    source,
                }
            }
        };
        let media = track.media.clone();
        self.tracks.insert(kind, track);
        self.input(Input::Published {
            peer: self.peer.clone(),
            kind,
            track_id: id,
            media,
        });
    }

    /// Reads a published track into its fan-out until it ends, each packet tagged with its
    /// simulcast layer; a video's layers are reported to the core as they change.
    fn read(
        &self,
        remote: &Arc<dyn TrackRemote>,
        kind: TrackKind,
        (ssrc, track_id): (u32, &str),
        fanout: broadcast::Sender<LayerPacket>,
        ssrcs: LayerSsrcs,
    ) -> AbortHandle {
        let remote = remote.clone();
        let env = self.env.clone();
        let ended = self.ended_tx.clone();
        let inputs = self.inputs.clone();
        let peer = self.peer.clone();
        let track_id = track_id.to_string();
        tokio::spawn(async move {
            let mut meter = LayerMeter::new();
            let video = kind != TrackKind::Audio;
            let mut seen: Option<u32> = None;
            // A layer whose size is unknown (its first keyframe came before the stream was
            // read, or was lost) is asked for one, once a second: nobody else asks for it,
            // as nobody receives it, and the allocator cannot choose it without its size.
            let mut asked: HashMap<u8, std::time::Instant> = HashMap::new();
            while let Some(event) = remote.poll().await {
                match event {
                    TrackRemoteEvent::OnOpen(init) => meter.open(init.ssrc, init.rid.as_deref()),
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        RtpCounters::inc(&env.counters.received);
                        let layer = meter.layer_of(packet.header.ssrc);
                        // A new stream (the last one seen is the common case): its layer's
                        // SSRC is the one to ask for keyframes.
                        if seen != Some(packet.header.ssrc) {
                            seen = Some(packet.header.ssrc);
                            if let Ok(mut map) = ssrcs.lock()
                                && map.get(&layer) != Some(&packet.header.ssrc)
                            {
                                map.insert(layer, packet.header.ssrc);
                            }
                        }
                        let now = std::time::Instant::now();
                        if video
                            && !meter.knows_size(layer)
                            && asked.get(&layer).is_none_or(|t| {
                                now.duration_since(*t) >= std::time::Duration::from_secs(1)
                            })
                        {
                            asked.insert(layer, now);
                            let pli = vec![picture_loss_indication(packet.header.ssrc)];
                            if let Err(e) = remote.write_rtcp(pli).await {
                                tracing::debug!(error = %e, "cannot ask for a layer's keyframe");
                            }
                        }
                        if video && let Some(layers) = meter.observe(now, layer, &packet.payload) {
                            inputs.send(Input::Layers {
                                peer: peer.clone(),
                                track_id: track_id.clone(),
                                layers,
                            });
                        }
                        // No subscribers yet is fine: nothing to forward to.
                        let _ = fanout.send(LayerPacket { layer, packet });
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
            let _ = ended.send((kind, ssrc));
        })
        .abort_handle()
    }

    fn unpublish(&mut self, kind: TrackKind) {
        if let Some(t) = self.tracks.remove(&kind) {
            // Its connection keeps the old track open; nothing more is read from it.
            t.reader.abort();
            self.input(Input::Unpublished {
                peer: self.peer.clone(),
                track_id: t.id,
            });
        }
    }

    async fn close(mut self) {
        for t in self.tracks.values() {
            t.reader.abort();
        }
        if let Some(r) = self.receiving.take() {
            r.close(&self.env).await;
        }
        if let Some(p) = self.publishing.take() {
            self.env.close(&p.pc).await;
        }
    }
}
