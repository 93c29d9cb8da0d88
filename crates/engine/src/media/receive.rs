//! Receiving one remote track: audio into the playout's jitter buffer, video through
//! reassembly and decoding to the peer's [`RemoteVideo`].

use super::playout::Playout;
use super::{RemoteVideo, VideoFrame};
use crate::conference::Inner;
use crate::events::{ConferenceEvent, PeerEvent};
use between_media::h264::H264Decoder;
use between_media::rtp::{H264Assembler, picture_loss_indication};
use between_protocol::{TrackInfo, TrackKind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Keyframe requests go out at most this often per track.
const PLI_INTERVAL: Duration = Duration::from_millis(300);

pub(super) async fn track(
    remote: Arc<dyn TrackRemote>,
    infos: Vec<TrackInfo>,
    inner: Arc<Inner>,
    playout: Arc<Playout>,
) {
    let track_id = remote.track_id().await;
    let (peer, kind) = match infos.iter().find(|t| t.track_id == track_id) {
        Some(t) => (t.peer_id.clone(), t.kind),
        None => {
            let peer = remote.stream_id().await;
            let Some(kind) = track_id.rsplit('-').next().and_then(TrackKind::parse) else {
                tracing::info!(track = %track_id, "ignoring an unknown remote track");
                return;
            };
            (peer, kind)
        }
    };
    tracing::info!(peer = %peer, ?kind, "receiving a track");
    match kind {
        TrackKind::Audio => audio(remote, &peer, playout).await,
        TrackKind::Video | TrackKind::Screen => video(remote, &peer, inner).await,
    }
}

async fn audio(remote: Arc<dyn TrackRemote>, peer: &str, playout: Arc<Playout>) {
    playout.add(peer);
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

async fn video(remote: Arc<dyn TrackRemote>, peer: &str, inner: Arc<Inner>) {
    let (tx, rx) = watch::channel(None);
    inner.events.emit(ConferenceEvent::Peer {
        peer_id: peer.to_string(),
        event: PeerEvent::VideoCreated(RemoteVideo { rx }),
    });
    let mut decoder = match H264Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "no video decoder");
            return;
        }
    };
    let ssrc = remote.ssrcs().await.first().copied().unwrap_or(0);
    let mut last_pli: Option<Instant> = None;
    let mut assembler = H264Assembler::default();
    let mut decoded = 0u64;
    let mut ask_keyframe = true;
    let mut skipping = false;
    while let Some(event) = remote.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(p) => p,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let now = Instant::now();
        if tx.receiver_count() == 0 {
            // Nobody shows this video (no handle is held): do not spend a decoder on it, and
            // ask for a keyframe when someone looks again.
            skipping = true;
            continue;
        }
        if std::mem::take(&mut skipping) {
            assembler = H264Assembler::default();
            ask_keyframe = true;
        }
        assembler.push(packet, now);
        while let Some(unit) = assembler.pop(now) {
            if unit.lost_before > 0 {
                ask_keyframe = true;
            }
            // Decoding takes milliseconds: on a blocking thread, so the audio tasks sharing
            // this runtime never wait behind a picture.
            let data = unit.data;
            let Ok((back, decoded_frame)) = tokio::task::spawn_blocking(move || {
                let result = decoder.decode(&data);
                (decoder, result)
            })
            .await
            else {
                return;
            };
            decoder = back;
            match decoded_frame {
                Ok(Some(frame)) => {
                    decoded += 1;
                    let _ = tx.send(Some(VideoFrame {
                        frame: Arc::new(frame),
                        at: now,
                        number: decoded,
                    }));
                }
                Ok(None) => {
                    if decoded == 0 {
                        ask_keyframe = true;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "undecodable picture");
                    ask_keyframe = true;
                }
            }
        }
        if ask_keyframe && last_pli.is_none_or(|t| now.duration_since(t) >= PLI_INTERVAL) {
            last_pli = Some(now);
            ask_keyframe = false;
            let _ = remote.write_rtcp(vec![picture_loss_indication(ssrc)]).await;
        }
    }
}
