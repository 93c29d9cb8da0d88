//! Receiving one remote track: audio into the playout's jitter buffer, video through
//! reassembly and decoding to the peer's [`RemoteVideo`].

use super::drawn::Reporter;
use super::playout::Playout;
use super::video::{RemoteVideo, VideoFrame};
use crate::events::{ConferenceEvent, EventHub};
use crate::link::Link;
use crate::peer::{Peer, PeerEvent};
use between_media::h264::{H264Decoder, is_idr};
use between_media::rtp::{H264Assembler, picture_loss_indication};
use between_protocol::{PeerInfo, TrackInfo, TrackKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Pictures waiting for the decoder beyond which it skips ahead (about a second of video).
const MAX_DECODE_BACKLOG: usize = 30;

/// Keyframe requests go out at most this often per track.
const PLI_INTERVAL: Duration = Duration::from_millis(300);

/// Which peers' shares this participant has announced (`screenShareCreated`), so that each
/// share closes exactly once: when its track leaves the server's list or ends.
/// Each share has its own number, so a track that ends late cannot close the share that
/// replaced it.
#[derive(Clone, Default)]
pub(super) struct RemoteShares(Arc<Mutex<(u64, HashMap<String, u64>)>>);

impl RemoteShares {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<String, u64>)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A share track arrived; a previous share of the same peer still open closes first.
    fn open(&self, peer: &str, events: &EventHub) -> u64 {
        let (number, replaced) = {
            let mut state = self.lock();
            state.0 += 1;
            let number = state.0;
            (number, state.1.insert(peer.to_string(), number).is_some())
        };
        if replaced {
            events.emit(ConferenceEvent::ScreenShareClosed(peer.to_string()));
        }
        number
    }

    /// Closes `peer`'s share if it is still share `number` (any, for `None`).
    fn close(&self, peer: &str, number: Option<u64>, events: &EventHub) {
        let closed = {
            let mut state = self.lock();
            let current = state.1.get(peer).copied();
            let matches = current.is_some() && (number.is_none() || current == number);
            if matches {
                state.1.remove(peer);
            }
            matches
        };
        if closed {
            events.emit(ConferenceEvent::ScreenShareClosed(peer.to_string()));
        }
    }

    /// The server's new track list: shares no longer in it are closed.
    pub fn keep_only(&self, tracks: &[TrackInfo], events: &EventHub) {
        let gone: Vec<String> = self
            .lock()
            .1
            .keys()
            .filter(|peer| {
                !tracks
                    .iter()
                    .any(|t| t.kind == TrackKind::Screen && &t.peer_id == *peer)
            })
            .cloned()
            .collect();
        for peer in gone {
            self.close(&peer, None, events);
        }
    }
}

pub(super) async fn track(
    remote: Arc<dyn TrackRemote>,
    infos: Vec<TrackInfo>,
    (events, link): (EventHub, Link),
    playout: Arc<Playout>,
    shares: RemoteShares,
) {
    let track_id = remote.track_id().await;
    let (peer, kind) = match infos.iter().find(|t| t.track_id == track_id) {
        Some(t) => (t.peer_id.clone(), t.kind),
        // Not in the offer's list (it raced ahead of it): its ID says whose and what.
        None => match TrackInfo::parse_subscription_id(&track_id) {
            Some((peer, kind)) => (peer.to_string(), kind),
            None => {
                tracing::info!("ignoring an unknown remote track");
                return;
            }
        },
    };
    tracing::info!(peer = %peer, ?kind, "receiving a track");
    match kind {
        TrackKind::Audio => audio(remote, &peer, link.peer(&peer), playout).await,
        TrackKind::Video => {
            let (tx, rx) = watch::channel(None);
            let received = Arc::<AtomicU64>::default();
            let drawn = Reporter::new(track_id.clone(), link.clone());
            if let Some(p) = link.peer(&peer) {
                p.attach_camera(&drawn);
            }
            events.emit(ConferenceEvent::Peer {
                peer_id: peer.to_string(),
                event: PeerEvent::VideoCreated(RemoteVideo {
                    rx,
                    drawn,
                    received: received.clone(),
                }),
            });
            video(remote, tx, received).await;
        }
        TrackKind::Screen => {
            let (tx, rx) = watch::channel(None);
            let received = Arc::<AtomicU64>::default();
            let known = link.peer(&peer);
            let sharer = known.unwrap_or_else(|| {
                Peer::new(PeerInfo {
                    id: peer.clone(),
                    extra_data: String::new(),
                })
            });
            let number = shares.open(&peer, &events);
            events.emit(ConferenceEvent::ScreenShareCreated {
                peer: sharer,
                video: RemoteVideo {
                    rx,
                    drawn: Reporter::new(track_id.clone(), link.clone()),
                    received: received.clone(),
                },
            });
            video(remote, tx, received).await;
            shares.close(&peer, Some(number), &events);
        }
    }
}

/// `handle`: the peer's `Peer` (whose volume the mix uses), when the roster has it already.
async fn audio(
    remote: Arc<dyn TrackRemote>,
    peer: &str,
    handle: Option<Peer>,
    playout: Arc<Playout>,
) {
    playout.add(peer, handle);
    while let Some(event) = remote.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => {
                playout.push(
                    peer,
                    p.header.sequence_number,
                    p.header.timestamp,
                    p.payload.to_vec(),
                );
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    playout.remove(peer);
}

/// Decodes a video track into `tx` until it ends. Reading packets and decoding run apart:
/// the stack holds only 256 packets for a track, and a 1080p keyframe is more than that, so
/// a reader that waited on the decoder lost packets (and the picture) on every keyframe.
async fn video(
    remote: Arc<dyn TrackRemote>,
    tx: watch::Sender<Option<VideoFrame>>,
    received: Arc<AtomicU64>,
) {
    let decoder = match H264Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "no video decoder");
            return;
        }
    };
    let ssrc = remote.ssrcs().await.first().copied().unwrap_or(0);
    let ask_keyframe = Arc::new(AtomicBool::new(true));
    let (units, pictures) = mpsc::unbounded_channel();
    let decoding = AbortOnDrop(tokio::spawn(decode(
        decoder,
        pictures,
        tx.clone(),
        ask_keyframe.clone(),
    )));
    let mut last_pli: Option<Instant> = None;
    let mut assembler = H264Assembler::default();
    let mut skipping = false;
    while let Some(event) = remote.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(p) => p,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        received.fetch_add(12 + packet.payload.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        if tx.receiver_count() == 0 {
            // Nobody shows this video (no handle is held): do not spend a decoder on it, and
            // ask for a keyframe when someone looks again.
            skipping = true;
            continue;
        }
        if std::mem::take(&mut skipping) {
            assembler = H264Assembler::default();
            ask_keyframe.store(true, Ordering::Relaxed);
        }
        assembler.push(packet, now);
        while let Some(unit) = assembler.pop(now) {
            if unit.lost_before > 0 {
                ask_keyframe.store(true, Ordering::Relaxed);
            }
            if units.send(unit.data).is_err() {
                return;
            }
        }
        if assembler.has_unreported_loss() {
            // Ask now, not only when the next whole picture reports it.
            ask_keyframe.store(true, Ordering::Relaxed);
        }
        if ask_keyframe.load(Ordering::Relaxed)
            && last_pli.is_none_or(|t| now.duration_since(t) >= PLI_INTERVAL)
        {
            last_pli = Some(now);
            ask_keyframe.store(false, Ordering::Relaxed);
            let _ = remote.write_rtcp(vec![picture_loss_indication(ssrc)]).await;
        }
    }
    // The decoder task ends with `decoding`, here.
    drop(decoding);
}

/// Decodes access units in order; a picture it cannot decode asks for a keyframe.
async fn decode(
    mut decoder: H264Decoder,
    mut units: mpsc::UnboundedReceiver<Vec<u8>>,
    tx: watch::Sender<Option<VideoFrame>>,
    ask_keyframe: Arc<AtomicBool>,
) {
    let mut decoded = 0u64;
    while let Some(first) = units.recv().await {
        let mut backlog = vec![first];
        while let Ok(more) = units.try_recv() {
            backlog.push(more);
        }
        if backlog.len() > MAX_DECODE_BACKLOG {
            // The decoder fell behind by more than a second: showing every late picture would
            // only add delay. Start again from the newest keyframe, or ask for one.
            match backlog.iter().rposition(|unit| is_idr(unit)) {
                Some(idr) => {
                    backlog.drain(..idr);
                }
                None => {
                    backlog.clear();
                    ask_keyframe.store(true, Ordering::Relaxed);
                }
            }
            tracing::debug!("video decoding fell behind; skipped to a keyframe");
        }
        for data in backlog {
            // Decoding takes milliseconds: on a blocking thread, so the audio tasks sharing this
            // runtime never wait behind a picture.
            let Ok((back, result)) = tokio::task::spawn_blocking(move || {
                let result = decoder.decode(&data);
                (decoder, result)
            })
            .await
            else {
                return;
            };
            decoder = back;
            match result {
                Ok(Some(frame)) => {
                    decoded += 1;
                    let _ = tx.send(Some(VideoFrame {
                        frame: Arc::new(frame),
                        at: Instant::now(),
                        number: decoded,
                    }));
                }
                Ok(None) => {
                    if decoded == 0 {
                        ask_keyframe.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "undecodable picture");
                    ask_keyframe.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
