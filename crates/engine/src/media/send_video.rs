//! The video pacer: pulls pictures from a camera or a shared screen, encodes them (once per
//! simulcast layer, each layer half the size of the next) and writes RTP, keeping every
//! layer's RTP clock running through pictures it does not send.

use super::shared::{Feed, MediaShared};
use super::tasks::Tasks;
use super::track::{LocalTrack, payload_type};
use between_media::bwe::EstimateHandle;
use between_media::encoded_loop::EncodedLoop;
use between_media::h264::{EncodedVideo, H264Encoder, H264Error, VideoEncoderSettings};
use between_media::rtp::{
    Bytes, H264_PAYLOAD_TYPE, RtpPacket, RtpPacketizer, VIDEO_CLOCK_RATE, keyframe_request_ssrcs,
};
use between_media::screen::ChangeGate;
use between_media::simulcast::{can_halve, halved, layers_needed, layers_within, rate_within};
use between_media::video::I420Frame;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::time::{MissedTickBehavior, interval};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// What of the uplink estimate video may use: the rest is audio (one Opus stream with its
/// headers) and room for keyframes.
fn video_budget(uplink: Option<&EstimateHandle>) -> Option<f64> {
    let e = uplink?.get().filter(|e| e.congested)?;
    Some((e.bps * 0.85 - 50_000.0).max(0.0))
}

/// Restarts a single stream's encoder at the rate the uplink carries, at most every 2 s
/// (OpenH264's rate cannot change in place without `unsafe`; a restart begins with a
/// keyframe, so it is not done for small moves).
fn follow_uplink(layer: &mut Layer, budget: Option<f64>, now: Instant) {
    if layer
        .changed_at
        .is_some_and(|t| now.duration_since(t) < Duration::from_secs(2))
    {
        return;
    }
    let Some(rate) = rate_within(layer.rate, layer.max_rate, budget) else {
        return;
    };
    match H264Encoder::new(VideoEncoderSettings {
        bitrate_bps: rate,
        ..layer.settings
    }) {
        Ok(e) => {
            tracing::debug!(kbps = rate / 1000, "video encoder follows the uplink");
            layer.encoder = e;
            layer.rate = rate;
            layer.changed_at = Some(now);
        }
        Err(e) => tracing::debug!(error = %e, "video encoder at a new rate"),
    }
}

/// How often a share asks its source whether the screen changed.
const SCREEN_SAMPLE_HZ: f64 = 60.0;

/// One layer's encoder and RTP stream.
struct Layer {
    ssrc: u32,
    halvings: u8,
    encoder: H264Encoder,
    packetizer: RtpPacketizer,
    keyframe: Arc<AtomicBool>,
    replay: Option<EncodedLoop>,
    /// Its size as planned (for a loop, which has no pictures to measure).
    nominal: (u32, u32),
    /// Encoded last tick: a layer turned back on starts with a keyframe.
    on: bool,
    /// The encoder's rate now, and the most it may have (a single stream follows the uplink).
    rate: u32,
    max_rate: u32,
    settings: VideoEncoderSettings,
    changed_at: Option<Instant>,
}

impl Layer {
    /// Turns the layer on or off for this tick; a layer coming back asks for a keyframe.
    fn enable(&mut self, on: bool) {
        if on && !self.on {
            self.keyframe.store(true, Ordering::Relaxed);
        }
        self.on = on;
    }
}

/// The mid and rid extensions every simulcast packet carries: the SFU learns which layer an
/// SSRC is from them (the offer names RIDs, not SSRCs).
#[derive(Clone, Default)]
struct Tags {
    mid: Option<(u8, Bytes)>,
    rid_id: Option<u8>,
}

impl Tags {
    fn apply(&self, packet: &mut RtpPacket, rid: Option<&'static str>) {
        let (Some((mid_id, mid)), Some(rid_id), Some(rid)) = (&self.mid, self.rid_id, rid) else {
            return;
        };
        let mid = packet.header.set_extension(*mid_id, mid.clone());
        let rid = packet
            .header
            .set_extension(rid_id, Bytes::from_static(rid.as_bytes()));
        if let Err(e) = mid.and(rid) {
            tracing::debug!(error = %e, "tagging a simulcast packet");
        }
    }
}

async fn tags(track: &LocalTrack) -> Tags {
    if track.layers.len() < 2 {
        return Tags::default();
    }
    let mid = match &track.transceiver {
        Some(t) => t.mid().await.ok().flatten(),
        None => None,
    };
    let extensions = match track.sender.get_parameters().await {
        Ok(p) => p.rtp_parameters.header_extensions,
        Err(_) => Vec::new(),
    };
    let id = |uri: &str| {
        extensions
            .iter()
            .find(|e| e.uri == uri)
            .and_then(|e| u8::try_from(e.id).ok())
    };
    let tags = Tags {
        mid: id(MID_URI).zip(mid.map(Bytes::from)),
        rid_id: id(RID_URI),
    };
    if tags.mid.is_none() || tags.rid_id.is_none() {
        tracing::warn!("simulcast without mid/rid extensions: the server sees one layer");
    }
    tags
}

/// Starts the pacer and keyframe-request reader of a video track. For a share, the pacer
/// tells `shared.share_ended` when its source stops delivering.
pub(super) async fn start_video(
    track: &LocalTrack,
    feed: Feed,
    shared: &Arc<MediaShared>,
    tasks: &mut Tasks,
) {
    let pt = payload_type(&track.sender, H264_PAYLOAD_TYPE).await;
    let settings = match feed {
        Feed::Camera => shared.video_encoder,
        Feed::Screen { .. } => VideoEncoderSettings::screen(),
    };
    let mut layers = Vec::new();
    for spec in &track.layers {
        let encoder = match H264Encoder::new(VideoEncoderSettings {
            bitrate_bps: spec.bitrate_bps,
            ..settings
        }) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "no video encoder");
                return;
            }
        };
        layers.push(Layer {
            ssrc: spec.ssrc,
            halvings: spec.halvings,
            encoder,
            packetizer: RtpPacketizer::h264(spec.ssrc, pt),
            keyframe: Arc::new(AtomicBool::new(true)),
            replay: match feed {
                Feed::Camera => shared.video_loop.map(EncodedLoop::new),
                Feed::Screen { .. } => None,
            },
            // A track without simulcast has no planned size: any tile is covered by it.
            nominal: match (spec.width, spec.height) {
                (0, _) | (_, 0) => (u32::MAX, u32::MAX),
                size => size,
            },
            on: true,
            rate: spec.bitrate_bps,
            max_rate: spec.bitrate_bps,
            settings,
            changed_at: None,
        });
    }
    let rids: Vec<Option<&'static str>> = track
        .layers
        .iter()
        .map(|l| (track.layers.len() > 1).then_some(l.rid))
        .collect();
    let flags: Vec<(u32, Arc<AtomicBool>)> = layers
        .iter()
        .map(|l| (l.ssrc, l.keyframe.clone()))
        .collect();
    tasks.push(tokio::spawn(keyframe_requests(track.track.clone(), flags)));
    let tags = tags(track).await;
    tasks.push(tokio::spawn(send_video(
        track.track.clone(),
        layers,
        (rids, tags),
        track.uplink.clone(),
        feed,
        shared.clone(),
    )));
}

/// What one video tick did, on the blocking thread.
enum VideoStep {
    /// The source has no more frames.
    Ended,
    /// Read but not sent: the camera is off.
    Muted,
    /// Read but not sent: the shared screen did not change.
    Unchanged,
    /// Per layer: its picture (`None`: the source is too small for it this time).
    Encoded(Vec<Option<Result<Option<EncodedVideo>, H264Error>>>),
}

/// Encodes `frame` in every layer someone needs (`need`: what dynacast says receivers draw;
/// the blocking part of a tick).
fn encode_layers(
    layers: &mut [Layer],
    frame: I420Frame,
    need: Option<(u32, u32)>,
    uplink: Option<f64>,
) -> Vec<Option<Result<Option<EncodedVideo>, H264Error>>> {
    let mut dims = vec![(frame.width(), frame.height())];
    let deepest = layers.iter().map(|l| l.halvings).max().unwrap_or(0);
    for _ in 0..deepest {
        let Some(&(w, h)) = dims.last() else { break };
        if !can_halve(w, h) {
            break;
        }
        dims.push((w / 2, h / 2));
    }
    let sizes: Vec<Option<(u32, u32)>> = layers
        .iter()
        .map(|l| dims.get(usize::from(l.halvings)).copied())
        .collect();
    let needed = layers_needed(&sizes, need);
    let rates: Vec<u32> = layers.iter().map(|l| l.rate).collect();
    let needed = layers_within(&needed, &rates, uplink);
    for (layer, on) in layers.iter_mut().zip(&needed) {
        layer.enable(*on);
    }
    if let [single] = layers {
        follow_uplink(single, uplink, Instant::now());
    }
    let halvings = layers
        .iter()
        .zip(&needed)
        .filter(|(_, on)| **on)
        .map(|(l, _)| l.halvings)
        .max();
    let mut pictures = vec![frame];
    for _ in 0..halvings.unwrap_or(0) {
        let Some(last) = pictures.last() else { break };
        match halved(last) {
            Ok(h) => pictures.push(h),
            Err(_) => break,
        }
    }
    layers
        .iter_mut()
        .map(|layer| {
            if !layer.on {
                return None;
            }
            let picture = pictures.get(usize::from(layer.halvings))?;
            if layer.keyframe.swap(false, Ordering::Relaxed) {
                layer.encoder.request_keyframe();
            }
            Some(layer.encoder.encode(picture))
        })
        .collect()
}

async fn write(
    track: &TrackLocalStaticRTP,
    layer: &mut Layer,
    rid: Option<&'static str>,
    tags: &Tags,
    data: &[u8],
    ticks: u32,
) {
    for mut p in layer.packetizer.packetize(Instant::now(), data, ticks) {
        tags.apply(&mut p, rid);
        let _ = track.write_rtp(p).await;
    }
}

async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    mut layers: Vec<Layer>,
    (rids, tags): (Vec<Option<&'static str>>, Tags),
    uplink: Option<EstimateHandle>,
    feed: Feed,
    shared: Arc<MediaShared>,
) {
    let fps = match shared.source(feed).lock() {
        Ok(source) => source.as_ref().map_or(30.0, |s| s.frame_rate()),
        Err(_) => return,
    }
    .clamp(1.0, 60.0);
    // A share sends a picture only when the screen changed, or at the floor rate.
    let screen = matches!(feed, Feed::Screen { .. });
    let mut gate = screen.then(|| ChangeGate::new((1000.0 / crate::screen::MIN_SHARE_FPS) as u64));
    // A share looks for changes more often than it may send (the source says cheaply whether
    // anything changed), so a change waits ~8 ms for its capture instead of up to a whole
    // 1/fps tick; pictures still go out at most `fps` a second.
    let min_gap = Duration::from_secs_f64(1.0 / fps);
    let floor = Duration::from_secs_f64(1.0 / crate::screen::MIN_SHARE_FPS);
    let sample_hz = if screen { SCREEN_SAMPLE_HZ } else { fps };
    let started = Instant::now();
    let ticks = (VIDEO_CLOCK_RATE as f64 / sample_hz).round() as u32;
    let mut tick = interval(Duration::from_secs_f64(1.0 / sample_hz));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last_sent: Option<Instant> = None;
    let skip_all = |layers: &mut [Layer]| layers.iter_mut().for_each(|l| l.packetizer.skip(ticks));
    loop {
        tick.tick().await;
        if layers
            .iter()
            .all(|l| l.replay.as_ref().is_some_and(|r| !r.recording()))
        {
            let muted = shared.video_muted.load(Ordering::Relaxed);
            let sizes: Vec<_> = layers.iter().map(|l| Some(l.nominal)).collect();
            let needed = layers_needed(&sizes, shared.camera_need());
            let rates: Vec<u32> = layers.iter().map(|l| l.rate).collect();
            let needed = layers_within(&needed, &rates, video_budget(uplink.as_ref()));
            for ((layer, rid), on) in layers.iter_mut().zip(&rids).zip(needed) {
                layer.enable(on);
                if !on {
                    layer.packetizer.skip(ticks);
                    continue;
                }
                let force = layer.keyframe.swap(false, Ordering::Relaxed);
                let picture = layer.replay.as_mut().and_then(|r| r.next(force)).cloned();
                match picture {
                    Some(p) if !muted => write(&track, layer, *rid, &tags, &p.data, ticks).await,
                    _ => layer.packetizer.skip(ticks),
                }
            }
            continue;
        }
        if screen {
            let since = last_sent.map(|t| t.elapsed());
            let force = layers.iter().any(|l| l.keyframe.load(Ordering::Relaxed));
            let changed = match shared.source(feed).lock() {
                Ok(mut s) => s.as_mut().is_none_or(|s| s.changed()),
                Err(_) => true,
            };
            let too_soon = since.is_some_and(|s| s < min_gap);
            let due = since.is_none_or(|s| s >= floor);
            if too_soon || !(changed || due || force) {
                skip_all(&mut layers);
                continue;
            }
        }
        // Reading the camera (or drawing a test pattern) and encoding take milliseconds (tens
        // at 720p on a slow machine): one hop to a blocking thread per frame, so the audio
        // tasks sharing this runtime never wait behind a picture.
        let source = shared.clone();
        let need = match feed {
            Feed::Camera => shared.camera_need(),
            Feed::Screen { .. } => None,
        };
        let budget = video_budget(uplink.as_ref());
        // Spacing counts from the capture, not from the end of its (long) encode.
        let captured_at = Instant::now();
        let now_ms = started.elapsed().as_millis() as u64;
        let Ok((back, back_gate, step)) = tokio::task::spawn_blocking(move || {
            let frame = match source.source(feed).lock() {
                Ok(mut s) => s.as_mut().and_then(|s| s.read_frame()),
                Err(_) => None,
            };
            let muted = feed == Feed::Camera && source.video_muted.load(Ordering::Relaxed);
            let step = match frame {
                None => VideoStep::Ended,
                Some(_) if muted => {
                    // The first picture after unmuting must be decodable on its own.
                    for l in &layers {
                        l.keyframe.store(true, Ordering::Relaxed);
                    }
                    VideoStep::Muted
                }
                Some(frame) => {
                    let force = layers.iter().any(|l| l.keyframe.load(Ordering::Relaxed));
                    if gate
                        .as_mut()
                        .is_some_and(|g| !g.should_send(&frame, now_ms, force))
                    {
                        VideoStep::Unchanged
                    } else {
                        VideoStep::Encoded(encode_layers(&mut layers, frame, need, budget))
                    }
                }
            };
            (layers, gate, step)
        })
        .await
        else {
            return;
        };
        layers = back;
        gate = back_gate;
        let encoded = match step {
            VideoStep::Ended => {
                if let Feed::Screen { generation } = feed {
                    let _ = shared.share_ended.send(generation);
                }
                return;
            }
            VideoStep::Muted | VideoStep::Unchanged => {
                skip_all(&mut layers);
                continue;
            }
            VideoStep::Encoded(encoded) => encoded,
        };
        last_sent = Some(captured_at);
        for ((layer, rid), picture) in layers.iter_mut().zip(&rids).zip(encoded) {
            match picture {
                Some(Ok(Some(p))) => {
                    write(&track, layer, *rid, &tags, &p.data, ticks).await;
                    if let Some(replay) = layer.replay.as_mut() {
                        replay.record(&p);
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "video encode");
                    layer.packetizer.skip(ticks);
                }
                Some(Ok(None)) | None => layer.packetizer.skip(ticks),
            }
        }
    }
}

/// Turns PLI/FIR from the SFU into "next picture is a keyframe" in the layer it names (all
/// of them for a request naming none of ours).
async fn keyframe_requests(track: Arc<TrackLocalStaticRTP>, layers: Vec<(u32, Arc<AtomicBool>)>) {
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(rtcp)) => {
                for ssrc in rtcp.iter().flat_map(|p| keyframe_request_ssrcs(p.as_ref())) {
                    let mut named = layers.iter().filter(|(s, _)| *s == ssrc).peekable();
                    if named.peek().is_none() {
                        layers
                            .iter()
                            .for_each(|(_, k)| k.store(true, Ordering::Relaxed));
                    }
                    named.for_each(|(_, k)| k.store(true, Ordering::Relaxed));
                }
            }
            Some(_) => {}
            // Not bound to the connection yet (or any more): look again shortly.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
