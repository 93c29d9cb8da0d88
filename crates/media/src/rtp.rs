//! The RTP side of media, shared by the engine and the SFU: the codecs both ends register
//! (Opus and H.264 only, so negotiation cannot land on something we cannot decode), the
//! interceptor chain (NACK, reports, plus one that hands keyframe requests to the
//! application). H.264 frame reassembly is in `frame_assembly`.
//! All of it is the sans-IO `rtc` core: nothing here touches a socket.

use crate::bwe::{EstimateHandle, Estimator, Reporting};
/// What header extension values are made of.
pub use bytes::Bytes;
use rtc::interceptor::{
    Attribute, CongestionControlBuilder, Interceptor, NackGeneratorBuilder, NackResponderBuilder,
    Packet, Slot, StreamInfo, TaggedPacket,
};
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, configure_rtcp_reports, configure_simulcast_extension_headers,
    configure_twcc_receiver_only, configure_twcc_sender_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::time::Instant;
use thiserror::Error;

pub use rtc::rtp::Packet as RtpPacket;

#[derive(Debug, Error)]
#[error("webrtc setup: {0}")]
pub struct RtpSetupError(String);

/// Opus payload type, as browsers use it.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// H.264 (constrained baseline, packetization-mode 1) payload type.
pub const H264_PAYLOAD_TYPE: u8 = 102;
/// RTP clock of video.
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

pub fn h264_codec() -> RTCRtpCodec {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: VIDEO_CLOCK_RATE,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: vec![fb("ccm", "fir"), fb("nack", ""), fb("nack", "pli")],
    }
}

/// A media engine that offers and accepts only Opus and H.264.
pub fn media_engine() -> Result<MediaEngine, RtpSetupError> {
    let mut engine = MediaEngine::default();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )
        .map_err(|e| RtpSetupError(e.to_string()))?;
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: h264_codec(),
                payload_type: H264_PAYLOAD_TYPE,
            },
            RtpCodecKind::Video,
        )
        .map_err(|e| RtpSetupError(e.to_string()))?;
    Ok(engine)
}

/// How often a lost packet is asked for again.
const NACKS_PER_PACKET: u16 = 3;

/// Where a connection's send-side estimate starts, and its bounds (bits per second): a
/// camera's worth, so a call starts with video, climbing within seconds to what the path
/// carries (the estimator's fast start), falling as soon as a queue grows.
pub const ESTIMATE_START: f64 = 1_000_000.0;
const ESTIMATE_MIN: f64 = 60_000.0;
const ESTIMATE_MAX: f64 = 50_000_000.0;

/// The default interceptors (NACK generator and responder, sender and receiver reports,
/// TWCC feedback for what arrives), transport-wide sequence numbers on everything sent and
/// the send-side estimator reading their feedback ([`crate::bwe`], its target published to
/// the returned handle), and [`KeyframeRequests`] last in line. No pacer: rtc's paces at
/// exactly the estimate in one queue, so audio would wait behind every keyframe; what is
/// sent is kept within the estimate by choosing layers and encoder rates instead.
pub fn interceptors(engine: &mut MediaEngine) -> Result<(Registry, EstimateHandle), RtpSetupError> {
    let setup = |e: rtc::shared::error::Error| RtpSetupError(e.to_string());
    // rtc's defaults, but a lost packet is asked for at most three times (100 ms apart; the
    // default asks for it until it leaves the window): on a link narrower than what comes,
    // every retransmission lost and asked for again became a storm that kept the link full
    // of retransmissions long after the SFU sent less. (H.264's NACK feedback is in
    // `h264_codec`.)
    configure_simulcast_extension_headers(engine).map_err(setup)?;
    let registry = Registry::new()
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(NACKS_PER_PACKET)
                .build(),
        );
    let registry = configure_twcc_receiver_only(registry, engine).map_err(setup)?;
    let registry = configure_rtcp_reports(registry);
    let registry = configure_twcc_sender_only(registry, engine).map_err(setup)?;
    let estimate = EstimateHandle::default();
    let estimator = Reporting::new(
        Estimator::new(ESTIMATE_START, ESTIMATE_MIN, ESTIMATE_MAX),
        estimate.clone(),
    );
    let registry = registry
        .with(
            Slot::CongestionControl,
            CongestionControlBuilder::new(estimator).build(),
        )
        .with(Slot::from(14_000), KeyframeRequests::default());
    Ok((registry, estimate))
}

/// Hands PLI, FIR and receiver reports to the application (they otherwise stop inside the
/// interceptor chain): a publisher answers PLI/FIR with a keyframe, the SFU relays them to
/// the publisher; the loss a receiver report gives tunes the sender's FEC.
#[derive(Default)]
pub struct KeyframeRequests {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The streams a PLI or FIR asks a keyframe of (empty for any other packet): a simulcast
/// sender makes one only in the layer that was asked.
pub fn keyframe_request_ssrcs(packet: &dyn rtc::rtcp::Packet) -> Vec<u32> {
    let any = packet.as_any();
    if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
        return vec![pli.media_ssrc];
    }
    if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
        return fir.fir.iter().map(|e| e.ssrc).collect();
    }
    Vec::new()
}

/// The fraction lost (of 256) a receiver report gives for the stream `ssrc`, if it has one,
/// with the reporter's SSRC (a publisher hears from the SFU about its uplink, and from the
/// SFU on behalf of the subscribers about their downlinks).
pub fn reported_loss(packet: &dyn rtc::rtcp::Packet, ssrc: u32) -> Option<(u32, u8)> {
    let report = packet.as_any().downcast_ref::<ReceiverReport>()?;
    report
        .reports
        .iter()
        .find(|r| r.ssrc == ssrc)
        .map(|r| (report.ssrc, r.fraction_lost))
}

/// The SSRC the SFU reports its subscribers' worst downlink loss as (a receiver report of
/// its own beside the one its connection makes about the uplink).
pub const DOWNLINK_REPORTER_SSRC: u32 = 0x4257_4c4c;

/// A receiver report saying `fraction_lost` (of 256) for `media_ssrc`, from `reporter`.
pub fn loss_report(
    reporter: u32,
    media_ssrc: u32,
    fraction_lost: u8,
) -> Box<dyn rtc::rtcp::Packet> {
    Box::new(ReceiverReport {
        ssrc: reporter,
        reports: vec![rtc::rtcp::reception_report::ReceptionReport {
            ssrc: media_ssrc,
            fraction_lost,
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn for_application(packet: &dyn rtc::rtcp::Packet) -> bool {
    is_keyframe_request(packet) || packet.as_any().is::<ReceiverReport>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| for_application(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// A picture-loss indication for `media_ssrc`, to ask its sender for a keyframe.
pub fn picture_loss_indication(media_ssrc: u32) -> Box<dyn rtc::rtcp::Packet> {
    Box::new(PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    })
}

/// Turns encoded frames into RTP packets (the webrtc crate's payloaders), and keeps the RTP
/// clock running through frames that are not sent (muted, DTX), so timestamps always follow
/// real time and a receiver never mistakes a pause for a clock jump.
pub struct RtpPacketizer {
    inner: Box<dyn rtc::rtp::packetizer::Packetizer>,
}

/// Payload size per packet: leaves room for SRTP, extensions and IPv6 under a 1280-byte MTU.
const RTP_MTU: usize = 1200;

impl RtpPacketizer {
    fn new(
        ssrc: u32,
        payload_type: u8,
        payloader: Box<dyn rtc::rtp::packetizer::Payloader>,
        clock_rate: u32,
    ) -> Self {
        Self {
            inner: Box::new(rtc::rtp::packetizer::new_packetizer(
                Instant::now(),
                RTP_MTU,
                payload_type,
                ssrc,
                payloader,
                Box::new(rtc::rtp::sequence::new_random_sequencer()),
                clock_rate,
            )),
        }
    }

    pub fn opus(ssrc: u32, payload_type: u8) -> Self {
        Self::new(
            ssrc,
            payload_type,
            Box::new(rtc::rtp::codec::opus::OpusPayloader),
            48_000,
        )
    }

    pub fn h264(ssrc: u32, payload_type: u8) -> Self {
        Self::new(
            ssrc,
            payload_type,
            Box::new(rtc::rtp::codec::h264::H264Payloader::default()),
            VIDEO_CLOCK_RATE,
        )
    }

    /// Packets for one frame covering `ticks` of the RTP clock.
    pub fn packetize(&mut self, now: Instant, frame: &[u8], ticks: u32) -> Vec<RtpPacket> {
        self.inner
            .packetize(now, &Bytes::copy_from_slice(frame), ticks)
            .unwrap_or_default()
    }

    /// Advances the clock over a frame that is not sent.
    pub fn skip(&mut self, ticks: u32) {
        self.inner.skip_samples(ticks);
    }
}

pub use crate::frame_assembly::{AssembledFrame, H264Assembler};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::{H264Decoder, H264Encoder, VideoEncoderSettings};
    use crate::pattern::TestPattern;
    use rtc::rtp::codec::h264::H264Payloader;
    use rtc::rtp::packetizer::{Packetizer, new_packetizer};
    use rtc::rtp::sequence::new_random_sequencer;

    #[test]
    fn skipped_frames_advance_the_clock_but_not_the_sequence() {
        let mut p = RtpPacketizer::opus(7, OPUS_PAYLOAD_TYPE);
        let now = Instant::now();
        let a = p.packetize(now, &[1, 2, 3], 960).remove(0);
        p.skip(960);
        p.skip(960);
        let b = p.packetize(now, &[4, 5], 960).remove(0);
        assert_eq!(b.header.timestamp.wrapping_sub(a.header.timestamp), 3 * 960);
        assert_eq!(
            b.header.sequence_number,
            a.header.sequence_number.wrapping_add(1)
        );
        assert_eq!(
            (b.header.ssrc, b.header.payload_type),
            (7, OPUS_PAYLOAD_TYPE)
        );
    }

    #[test]
    fn both_codecs_register() {
        let mut engine = media_engine().expect("engine");
        interceptors(&mut engine).expect("interceptors");
    }

    #[test]
    fn encoded_frames_survive_packetizing_and_reassembly() {
        let pattern = TestPattern::new(640, 360).expect("pattern");
        let mut enc = H264Encoder::new(VideoEncoderSettings::camera()).expect("encoder");
        let mut dec = H264Decoder::new().expect("decoder");
        let t0 = Instant::now();
        let mut packetizer = new_packetizer(
            t0,
            1200,
            H264_PAYLOAD_TYPE,
            42,
            Box::new(H264Payloader::default()),
            Box::new(new_random_sequencer()),
            VIDEO_CLOCK_RATE,
        );
        let mut assembler = H264Assembler::default();
        let mut counters = Vec::new();
        for n in 0..10u32 {
            let Some(frame) = enc.encode(&pattern.frame(n)).expect("encode") else {
                continue;
            };
            let packets = packetizer
                .packetize(t0, &Bytes::from(frame.data), 3000)
                .expect("packetize");
            assert!(packets.iter().all(|p| p.payload.len() <= 1200));
            for p in packets {
                assembler.push(p, t0);
            }
            while let Some(unit) = assembler.pop(t0) {
                if let Some(img) = dec.decode(&unit.data).expect("decode") {
                    counters.push(pattern.read_counter(&img).expect("counter"));
                }
            }
        }
        // Each picture comes out as soon as its last packet is in, the last one included.
        assert_eq!(counters, (0..10).collect::<Vec<u16>>());
    }
}
