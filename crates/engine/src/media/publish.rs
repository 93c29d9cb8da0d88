//! Publishing: the sending connection, its local tracks, and the pacers that pull frames from
//! the sources, encode them and write RTP, keeping the RTP clock running while muted.

use super::local::LocalParticipant;
use super::shared::{Feed, MediaShared};
use super::tasks::Tasks;
use crate::events::{ConferenceEvent, EventHub};
use crate::link::Link;
use between_media::encoded_loop::EncodedLoop;
use between_media::fec_policy::FecPolicy;
use between_media::h264::{H264Encoder, VideoEncoderSettings};
use between_media::opus_codec::OpusEncoder;
use between_media::rtp::{
    H264_PAYLOAD_TYPE, OPUS_PAYLOAD_TYPE, RtpPacketizer, VIDEO_CLOCK_RATE, h264_codec,
    is_keyframe_request, opus_codec, reported_loss,
};
use between_media::screen::ChangeGate;
use between_media::{FRAME_MS, FRAME_SAMPLES};
use between_transport::{MediaAddress, TransportError, apply_answer, build, make_offer};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

pub(super) struct LocalTrack {
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
}

/// The sending connection. It lives for the whole session; a screen share adds a track to it
/// and removes it again, each time with a new offer (`publish`) and the server's answer.
pub(super) struct Publisher {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    /// Camera and microphone tracks whose pacers start with the first answer.
    audio: Option<LocalTrack>,
    video: Option<LocalTrack>,
}

fn random_ssrc() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b).max(1)
}

async fn add_track(
    pc: &Arc<dyn PeerConnection>,
    id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    fresh_transceiver: bool,
) -> Result<LocalTrack, TransportError> {
    let ssrc = random_ssrc();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "between".to_string(),
        id.to_string(),
        id.to_string(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )));
    let sender = if fresh_transceiver {
        let transceiver = pc
            .add_transceiver_from_track(
                track.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: Vec::new(),
                    send_encodings: Vec::new(),
                }),
            )
            .await
            .map_err(TransportError::webrtc("adding a transceiver"))?;
        transceiver
            .sender()
            .await
            .map_err(TransportError::webrtc("the new transceiver's sender"))?
            .ok_or(TransportError::WebRtc {
                what: "the new transceiver's sender",
                source: webrtc::error::Error::ErrRTPSenderNotExisted,
            })?
    } else {
        pc.add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(TransportError::webrtc("adding a track"))?
    };
    Ok(LocalTrack {
        track,
        sender,
        ssrc,
    })
}

async fn payload_type(sender: &Arc<dyn RtpSender>, fallback: u8) -> u8 {
    match sender.get_parameters().await {
        Ok(p) => p
            .rtp_parameters
            .codecs
            .first()
            .map_or(fallback, |c| c.payload_type),
        Err(_) => fallback,
    }
}

impl Publisher {
    /// Creates the sending connection with a track per local source (none: a connection for
    /// a screen share alone).
    pub async fn new(shared: &MediaShared) -> Result<Self, TransportError> {
        let built = build(MediaAddress::client(shared.media_ip)).await?;
        let pc = built.pc.clone();
        let audio = if shared.has_audio {
            Some(add_track(&pc, "audio", RtpCodecKind::Audio, opus_codec(), false).await?)
        } else {
            None
        };
        let video = if shared.has_video {
            Some(add_track(&pc, "video", RtpCodecKind::Video, h264_codec(), false).await?)
        } else {
            None
        };
        Ok(Self {
            pc,
            gathered: built.gathered,
            audio,
            video,
        })
    }

    /// An offer describing the connection's current tracks, with its candidates.
    pub async fn offer(&mut self) -> Result<String, TransportError> {
        make_offer(&self.pc, &mut self.gathered).await
    }

    /// Applies the server's answer to the latest offer.
    pub async fn apply_answer(&self, sdp: String) -> Result<(), TransportError> {
        apply_answer(&self.pc, sdp, Some(&mut Default::default())).await
    }

    /// Starts the camera and microphone pacers (after the first answer).
    pub async fn start_local_media(
        &mut self,
        (events, link): (&EventHub, &Link),
        shared: &Arc<MediaShared>,
        tasks: &mut Tasks,
    ) -> LocalParticipant {
        if let Some(a) = self.audio.take() {
            let pt = payload_type(&a.sender, OPUS_PAYLOAD_TYPE).await;
            let packetizer = RtpPacketizer::opus(a.ssrc, pt);
            let expected_loss = Arc::new(AtomicI32::new(FecPolicy::new().level()));
            tasks.push(tokio::spawn(reported_loss_of(
                a.track.clone(),
                a.ssrc,
                expected_loss.clone(),
            )));
            tasks.push(tokio::spawn(send_audio(
                a.track,
                packetizer,
                shared.clone(),
                events.clone(),
                expected_loss,
            )));
        }
        if let Some(v) = self.video.take() {
            start_video(&v, Feed::Camera, shared, tasks).await;
        }
        LocalParticipant {
            link: link.clone(),
            shared: shared.clone(),
        }
    }

    /// Adds a screen track (announced with the next offer). Each share gets a transceiver
    /// of its own: one reused from an earlier share would carry the new stream on an old
    /// m-line, where the server's connection does not announce a new track.
    pub async fn add_screen(&self, number: u64) -> Result<LocalTrack, TransportError> {
        // A track ID of its own too: the server's stack knows remote tracks by ID.
        let id = format!("screen#{number}");
        add_track(&self.pc, &id, RtpCodecKind::Video, h264_codec(), true).await
    }

    /// Takes a track off the connection (gone with the next offer).
    pub async fn remove(&self, track: &LocalTrack) {
        if let Err(e) = self.pc.remove_track(&track.sender).await {
            tracing::debug!(error = %e, "remove_track");
        }
    }
}

/// Starts the pacer and keyframe-request reader of a video track. For a share, `ended` hears
/// when its source stops delivering.
pub(super) async fn start_video(
    track: &LocalTrack,
    feed: Feed,
    shared: &Arc<MediaShared>,
    tasks: &mut Tasks,
) {
    let pt = payload_type(&track.sender, H264_PAYLOAD_TYPE).await;
    let packetizer = RtpPacketizer::h264(track.ssrc, pt);
    let keyframe = Arc::new(AtomicBool::new(true));
    tasks.push(tokio::spawn(keyframe_requests(
        track.track.clone(),
        keyframe.clone(),
    )));
    tasks.push(tokio::spawn(send_video(
        track.track.clone(),
        packetizer,
        feed,
        shared.clone(),
        keyframe,
    )));
}

async fn send_audio(
    track: Arc<TrackLocalStaticRTP>,
    mut packetizer: RtpPacketizer,
    shared: Arc<MediaShared>,
    events: EventHub,
    expected_loss: Arc<AtomicI32>,
) {
    let mut meter = between_media::level::LevelMeter::new();
    let mut loss_set = expected_loss.load(Ordering::Relaxed);
    let mut encoder = match OpusEncoder::new(32_000, loss_set) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "no audio encoder");
            return;
        }
    };
    let ticks = FRAME_SAMPLES as u32;
    let mut tick = interval(Duration::from_millis(FRAME_MS as u64));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        tick.tick().await;
        let frame = match shared.audio.lock() {
            Ok(mut source) => source.as_mut().and_then(|s| s.read_frame()),
            Err(_) => None,
        };
        let Some(mut frame) = frame else { return };
        if let Some(apm) = &shared.apm
            && let Ok(mut apm) = apm.lock()
            && let Err(e) = apm.capture(&mut frame)
        {
            tracing::debug!(error = %e, "audio processing");
        }
        // The meter shows what would be sent, muted or not ("you are muted" hints need it).
        if let Some(report) = meter.push(&frame) {
            events.emit(ConferenceEvent::LocalAudioLevel(report.level));
        }
        if shared.audio_muted.load(Ordering::Relaxed) {
            packetizer.skip(ticks);
            continue;
        }
        let loss = expected_loss.load(Ordering::Relaxed);
        if loss != loss_set {
            match encoder.set_expected_loss(loss) {
                Ok(()) => tracing::debug!(percent = loss, "audio FEC for the reported loss"),
                Err(e) => tracing::debug!(error = %e, "audio FEC"),
            }
            loss_set = loss;
        }
        // Encoding takes milliseconds (tens at 720p on a slow machine): on a blocking thread,
        // so the audio tasks sharing this runtime never wait behind a picture.
        let Ok((back, encoded)) = tokio::task::spawn_blocking(move || {
            let result = encoder.encode(&frame);
            (encoder, result)
        })
        .await
        else {
            return;
        };
        encoder = back;
        match encoded {
            Ok(Some(packet)) => {
                for p in packetizer.packetize(Instant::now(), &packet, ticks) {
                    let _ = track.write_rtp(p).await;
                }
            }
            Ok(None) => packetizer.skip(ticks),
            Err(e) => tracing::debug!(error = %e, "audio encode"),
        }
    }
}

async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    mut packetizer: RtpPacketizer,
    feed: Feed,
    shared: Arc<MediaShared>,
    keyframe: Arc<AtomicBool>,
) {
    let settings = match feed {
        Feed::Camera => shared.video_encoder,
        Feed::Screen { .. } => VideoEncoderSettings::screen(),
    };
    let mut encoder = match H264Encoder::new(settings) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "no video encoder");
            return;
        }
    };
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
    let mut replay = match feed {
        Feed::Camera => shared.video_loop.map(EncodedLoop::new),
        Feed::Screen { .. } => None,
    };
    loop {
        tick.tick().await;
        if let Some(replay) = replay.as_mut().filter(|r| !r.recording()) {
            let force = keyframe.swap(false, Ordering::Relaxed);
            match replay.next(force) {
                Some(p) if !shared.video_muted.load(Ordering::Relaxed) => {
                    for p in packetizer.packetize(Instant::now(), &p.data, ticks) {
                        let _ = track.write_rtp(p).await;
                    }
                }
                _ => packetizer.skip(ticks),
            }
            continue;
        }
        if screen {
            let since = last_sent.map(|t| t.elapsed());
            let force = keyframe.load(Ordering::Relaxed);
            let changed = match shared.source(feed).lock() {
                Ok(mut s) => s.as_mut().is_none_or(|s| s.changed()),
                Err(_) => true,
            };
            let too_soon = since.is_some_and(|s| s < min_gap);
            let due = since.is_none_or(|s| s >= floor);
            if too_soon || !(changed || due || force) {
                packetizer.skip(ticks);
                continue;
            }
        }
        // Reading the camera (or drawing a test pattern) and encoding take milliseconds (tens
        // at 720p on a slow machine): one hop to a blocking thread per frame, so the audio
        // tasks sharing this runtime never wait behind a picture.
        let source = shared.clone();
        let wants_keyframe = keyframe.clone();
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
                    wants_keyframe.store(true, Ordering::Relaxed);
                    VideoStep::Muted
                }
                Some(frame) => {
                    let force = wants_keyframe.load(Ordering::Relaxed);
                    if gate
                        .as_mut()
                        .is_some_and(|g| !g.should_send(&frame, now_ms, force))
                    {
                        VideoStep::Unchanged
                    } else {
                        if wants_keyframe.swap(false, Ordering::Relaxed) {
                            encoder.request_keyframe();
                        }
                        VideoStep::Encoded(encoder.encode(&frame))
                    }
                }
            };
            (encoder, gate, step)
        })
        .await
        else {
            return;
        };
        encoder = back;
        gate = back_gate;
        if matches!(step, VideoStep::Encoded(_)) {
            last_sent = Some(captured_at);
        }
        let encoded = match step {
            VideoStep::Ended => {
                if let Feed::Screen { generation } = feed {
                    let _ = shared.share_ended.send(generation);
                }
                return;
            }
            VideoStep::Muted | VideoStep::Unchanged => {
                packetizer.skip(ticks);
                continue;
            }
            VideoStep::Encoded(encoded) => encoded,
        };
        match encoded {
            Ok(Some(encoded)) => {
                for p in packetizer.packetize(Instant::now(), &encoded.data, ticks) {
                    let _ = track.write_rtp(p).await;
                }
                if let Some(replay) = replay.as_mut() {
                    replay.record(&encoded);
                }
            }
            Ok(None) => packetizer.skip(ticks),
            Err(e) => tracing::debug!(error = %e, "video encode"),
        }
    }
}

/// How often a share asks its source whether the screen changed.
const SCREEN_SAMPLE_HZ: f64 = 60.0;

/// What one video tick did, on the blocking thread.
enum VideoStep {
    /// The source has no more frames.
    Ended,
    /// Read but not sent: the camera is off.
    Muted,
    /// Read but not sent: the shared screen did not change.
    Unchanged,
    Encoded(Result<Option<between_media::h264::EncodedVideo>, between_media::h264::H264Error>),
}

/// Follows the loss the SFU reports about our audio (RTCP receiver reports) into the level
/// of FEC the encoder spends.
async fn reported_loss_of(track: Arc<TrackLocalStaticRTP>, ssrc: u32, expected: Arc<AtomicI32>) {
    // One policy per reporter: the SFU's own reports (our uplink) and the ones it sends for
    // its subscribers (their worst downlink). The worse of the two decides; a reporter that
    // went quiet (the lossy subscriber left) stops counting after a while.
    const FORGET: Duration = Duration::from_secs(10);
    let mut policies: std::collections::HashMap<u32, (FecPolicy, Instant)> = Default::default();
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(rtcp)) => {
                let now = Instant::now();
                for (reporter, lost) in rtcp.iter().filter_map(|p| reported_loss(p.as_ref(), ssrc))
                {
                    let entry = policies
                        .entry(reporter)
                        .or_insert_with(|| (FecPolicy::new(), now));
                    entry.0.report(lost);
                    entry.1 = now;
                }
                policies.retain(|_, (_, at)| now.duration_since(*at) < FORGET);
                let level = policies.values().map(|(p, _)| p.level()).max().unwrap_or(0);
                expected.store(level, Ordering::Relaxed);
            }
            Some(_) => {}
            // Not bound to the connection yet (or any more): look again shortly.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Turns PLI/FIR from the SFU into "next frame is a keyframe".
async fn keyframe_requests(track: Arc<TrackLocalStaticRTP>, keyframe: Arc<AtomicBool>) {
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(rtcp)) => {
                if rtcp.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    keyframe.store(true, Ordering::Relaxed);
                }
            }
            Some(_) => {}
            // Not bound to the connection yet (or any more): look again shortly.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
