//! Publishing: the sending connection, its local tracks, and the pacers that pull frames from
//! the sources, encode them and write RTP, keeping the RTP clock running while muted.

use super::local::LocalParticipant;
use super::send_video::start_video;
use super::shared::{Feed, MediaShared};
use super::tasks::Tasks;
use super::track::{LocalTrack, add_track, one_layer, payload_type};
use crate::events::{ConferenceEvent, EventHub};
use crate::link::Link;
use between_media::fec_policy::FecPolicy;
use between_media::h264::VideoEncoderSettings;
use between_media::opus_codec::OpusEncoder;
use between_media::rtp::{OPUS_PAYLOAD_TYPE, RtpPacketizer, h264_codec, opus_codec, reported_loss};
use between_media::simulcast;
use between_media::{FRAME_MS, FRAME_SAMPLES};
use between_transport::{MediaAddress, TransportError, apply_answer, build, make_offer};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;

/// The sending connection. It lives for the whole session; a screen share adds a track to it
/// and removes it again, each time with a new offer (`publish`) and the server's answer.
pub(super) struct Publisher {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    /// Camera and microphone tracks whose pacers start with the first answer.
    audio: Option<LocalTrack>,
    video: Option<LocalTrack>,
}

impl Publisher {
    /// Creates the sending connection with a track per local source (none: a connection for
    /// a screen share alone).
    pub async fn new(shared: &MediaShared) -> Result<Self, TransportError> {
        let built = build(MediaAddress::client(shared.media_ip)).await?;
        let pc = built.pc.clone();
        let audio = if shared.has_audio {
            let audio = one_layer(32_000);
            Some(
                add_track(
                    &pc,
                    "audio",
                    RtpCodecKind::Audio,
                    opus_codec(),
                    false,
                    audio,
                )
                .await?,
            )
        } else {
            None
        };
        let video = if shared.has_video {
            let settings = shared.video_encoder;
            let layers = if shared.simulcast {
                // Planned for the camera size calls use; a smaller camera leaves the layers
                // it cannot fill unsent.
                simulcast::plan(1280, 720, settings.bitrate_bps)
            } else {
                one_layer(settings.bitrate_bps)
            };
            let mut track = add_track(
                &pc,
                "video",
                RtpCodecKind::Video,
                h264_codec(),
                false,
                layers,
            )
            .await?;
            // The camera follows the uplink: layers shed from the top, a single stream slowed.
            track.uplink = Some(built.estimate.clone());
            Some(track)
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
            let ssrc = a.layers.first().map_or(0, |l| l.ssrc);
            let packetizer = RtpPacketizer::opus(ssrc, pt);
            let expected_loss = Arc::new(AtomicI32::new(FecPolicy::new().level()));
            tasks.push(tokio::spawn(reported_loss_of(
                a.track.clone(),
                ssrc,
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
        let layers = one_layer(VideoEncoderSettings::screen().bitrate_bps);
        add_track(
            &self.pc,
            &id,
            RtpCodecKind::Video,
            h264_codec(),
            true,
            layers,
        )
        .await
    }

    /// Takes a track off the connection (gone with the next offer).
    pub async fn remove(&self, track: &LocalTrack) {
        if let Err(e) = self.pc.remove_track(&track.sender).await {
            tracing::debug!(error = %e, "remove_track");
        }
    }
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
