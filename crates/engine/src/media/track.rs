//! A published track: its encodings (one per simulcast layer, each with its RID and SSRC),
//! as the publishing connection's stack and the pacers see it.

use between_media::bwe::EstimateHandle;
use between_media::simulcast::LayerSpec;
use between_transport::TransportError;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::Arc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::{RtpSender, RtpTransceiver};

pub(super) struct LocalTrack {
    pub track: Arc<TrackLocalStaticRTP>,
    pub sender: Arc<dyn RtpSender>,
    /// Kept where the pacer needs its mid (simulcast packets carry it).
    pub transceiver: Option<Arc<dyn RtpTransceiver>>,
    /// One per simulcast layer, lowest first (a track without simulcast has one, no rid).
    pub layers: Vec<TrackLayer>,
    /// The publishing connection's uplink estimate, for a camera whose encoders follow it.
    pub uplink: Option<EstimateHandle>,
}

pub(super) struct TrackLayer {
    pub rid: &'static str,
    pub ssrc: u32,
    pub halvings: u8,
    pub bitrate_bps: u32,
    /// As planned (0x0 for a track without simulcast).
    pub width: u32,
    pub height: u32,
}

fn random_ssrc() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b).max(1)
}

/// One stream of `bitrate_bps`, no simulcast.
pub(super) fn one_layer(bitrate_bps: u32) -> Vec<LayerSpec> {
    vec![LayerSpec {
        rid: "",
        width: 0,
        height: 0,
        bitrate_bps,
        halvings: 0,
    }]
}

/// A track on `pc`, in `specs.len()` simulcast encodings if more than one (each with its
/// RID, as a browser sends them, so the SFU receives ours and theirs alike).
pub(super) async fn add_track(
    pc: &Arc<dyn PeerConnection>,
    id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    fresh_transceiver: bool,
    specs: Vec<LayerSpec>,
) -> Result<LocalTrack, TransportError> {
    let simulcast = specs.len() > 1;
    let layers: Vec<TrackLayer> = specs
        .iter()
        .map(|s| TrackLayer {
            rid: s.rid,
            ssrc: random_ssrc(),
            halvings: s.halvings,
            bitrate_bps: s.bitrate_bps,
            width: s.width,
            height: s.height,
        })
        .collect();
    let encodings = layers
        .iter()
        .map(|l| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: if simulcast {
                    l.rid.to_string()
                } else {
                    String::new()
                },
                ssrc: Some(l.ssrc),
                ..Default::default()
            },
            // Every encoding names the codec: the stack binds NACK and reports per encoding
            // by it.
            codec: codec.clone(),
            ..Default::default()
        })
        .collect();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "between".to_string(),
        id.to_string(),
        id.to_string(),
        kind,
        encodings,
    )));
    let mut kept = None;
    // Simulcast packets carry the transceiver's mid: keep it.
    let sender = if fresh_transceiver || simulcast {
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
        kept = Some(transceiver.clone());
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
        transceiver: kept,
        layers,
        uplink: None,
    })
}

pub(super) async fn payload_type(sender: &Arc<dyn RtpSender>, fallback: u8) -> u8 {
    match sender.get_parameters().await {
        Ok(p) => p
            .rtp_parameters
            .codecs
            .first()
            .map_or(fallback, |c| c.payload_type),
        Err(_) => fallback,
    }
}
