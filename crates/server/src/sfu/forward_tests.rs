#![allow(clippy::unwrap_used)]

use super::*;
use bytes::Bytes;
use rtc::rtp::header::Extension;

const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const ORIENTATION: &str = "urn:3gpp:video-orientation";

fn codec(pt: u8, mime: &str, clock: u32, channels: u16, fmtp: &str) -> LegCodec {
    LegCodec {
        payload_type: pt,
        mime: mime.into(),
        clock_rate: clock,
        channels,
        fmtp: fmtp.into(),
    }
}

/// What a browser's leg looks like: its own payload types and extension IDs.
fn browser() -> LegParams {
    LegParams {
        codecs: vec![
            codec(111, "audio/opus", 48000, 2, "minptime=10;useinbandfec=1"),
            codec(
                106,
                "video/h264",
                90000,
                0,
                "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
            ),
            codec(
                108,
                "video/h264",
                90000,
                0,
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            ),
        ],
        extensions: vec![
            (1, AUDIO_LEVEL.into()),
            (3, TWCC.into()),
            (4, MID.into()),
            (13, ORIENTATION.into()),
        ],
    }
}

/// The SFU's own numbering, as the subscriber leg negotiated it.
fn ours() -> LegParams {
    LegParams {
        codecs: vec![
            codec(111, "audio/opus", 48000, 2, "minptime=10;useinbandfec=1"),
            codec(
                102,
                "video/h264",
                90000,
                0,
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            ),
        ],
        extensions: vec![(1, MID.into()), (4, TWCC.into()), (16, ORIENTATION.into())],
    }
}

fn packet(pt: u8, seq: u16, extensions: &[(u8, &'static [u8])]) -> RtpPacket {
    let mut p = RtpPacket::default();
    p.header.version = 2;
    p.header.payload_type = pt;
    p.header.sequence_number = seq;
    p.header.timestamp = 9000;
    p.header.ssrc = 0xdead;
    if !extensions.is_empty() {
        p.header.extension = true;
        p.header.extension_profile = EXTENSION_PROFILE_ONE_BYTE;
        p.header.extensions = extensions
            .iter()
            .map(|(id, payload)| Extension {
                id: *id,
                payload: Bytes::from_static(payload),
            })
            .collect();
    }
    p.payload = Bytes::from_static(b"media");
    p
}

fn ids(p: &RtpPacket) -> Vec<u8> {
    p.header.extensions.iter().map(|e| e.id).collect()
}

#[test]
fn payload_types_follow_the_codec_and_its_packetization_mode() {
    let t = Translation::new(&browser(), &ours());
    let mut video = packet(108, 1, &[]);
    t.apply(&mut video).unwrap();
    assert_eq!(video.header.payload_type, 102);
    let mut audio = packet(111, 1, &[]);
    t.apply(&mut audio).unwrap();
    assert_eq!(audio.header.payload_type, 111);
    // Mode 0 (single NAL units) has no counterpart on our leg, which speaks mode 1 only.
    assert_eq!(
        t.apply(&mut packet(106, 1, &[])),
        Err(Refusal::PayloadType(106))
    );
    // Nor has a payload type the publisher never negotiated.
    assert_eq!(
        t.apply(&mut packet(96, 1, &[])),
        Err(Refusal::PayloadType(96))
    );
    assert_eq!(
        t.apply(&mut packet(127, 1, &[])),
        Err(Refusal::PayloadType(127))
    );
}

#[test]
fn the_same_fmtp_wins_over_another_that_also_fits() {
    let mut sink = ours();
    sink.codecs.push(codec(
        125,
        "video/h264",
        90000,
        0,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f",
    ));
    let mut source = browser();
    source.codecs[2].fmtp =
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f".into();
    let mut p = packet(108, 1, &[]);
    Translation::new(&source, &sink).apply(&mut p).unwrap();
    assert_eq!(p.header.payload_type, 125);
}

#[test]
fn extensions_are_renumbered_by_uri_and_hop_by_hop_ones_removed() {
    let t = Translation::new(&browser(), &ours());
    let mut p = packet(
        108,
        1,
        &[(1, b"\x7f"), (3, b"\x00\x01"), (4, b"0"), (13, b"\x01")],
    );
    t.apply(&mut p).unwrap();
    // audio level: not on our leg; transport-cc and mid: this hop's own; orientation: 13 → 16.
    assert_eq!(ids(&p), vec![16]);
    assert_eq!(p.header.extensions[0].payload, Bytes::from_static(b"\x01"));
    assert_eq!(
        p.header.extension_profile, EXTENSION_PROFILE_TWO_BYTE,
        "ID 16 needs two-byte headers"
    );
    // And the packet still marshals, as the sender will.
    use rtc::shared::marshal::Marshal;
    assert!(p.marshal().is_ok());
    // Also after an interceptor adds an extension of its own to it.
    p.header
        .set_extension(4, Bytes::from_static(&[0, 2]))
        .unwrap();
    assert!(p.marshal().is_ok());
}

#[test]
fn a_packet_left_without_extensions_has_no_extension_block() {
    let t = Translation::new(&browser(), &ours());
    let mut p = packet(111, 1, &[(1, b"\x7f"), (3, b"\x00\x01")]);
    t.apply(&mut p).unwrap();
    assert!(!p.header.extension);
    assert!(p.header.extensions.is_empty());
}

#[test]
fn our_own_numbering_passes_through_unchanged_but_for_this_hop() {
    let t = Translation::new(&ours(), &ours());
    let mut p = packet(102, 7, &[(16, b"\x02")]);
    p.header.extension_profile = EXTENSION_PROFILE_TWO_BYTE;
    let before = p.clone();
    t.apply(&mut p).unwrap();
    use rtc::shared::marshal::Marshal;
    assert_eq!(p.marshal().unwrap(), before.marshal().unwrap());
}

#[test]
fn the_forwarder_refuses_until_the_subscriber_leg_is_negotiated() {
    let mut f = Forwarder::new(4242, 3000, true);
    assert_eq!(
        f.forward(0, &mut packet(108, 1, &[])),
        Err(Refusal::Unbound)
    );
    f.set_legs(&browser(), Some(&ours()));
    let mut p = packet(108, 2, &[(3, b"\x00\x01")]);
    f.forward(0, &mut p).unwrap();
    assert_eq!(
        (
            p.header.ssrc,
            p.header.payload_type,
            p.header.sequence_number
        ),
        (4242, 102, 2)
    );
    assert!(!p.header.extension);
    // A refused packet leaves the packet and the numbering alone.
    let mut bad = packet(106, 3, &[]);
    assert_eq!(f.forward(0, &mut bad), Err(Refusal::PayloadType(106)));
    assert_eq!(bad.header.ssrc, 0xdead);
    let mut next = packet(108, 4, &[]);
    f.forward(0, &mut next).unwrap();
    assert_eq!(next.header.sequence_number, 4);
    f.set_legs(&browser(), None);
    assert_eq!(
        f.forward(0, &mut packet(108, 5, &[])),
        Err(Refusal::Unbound)
    );
}

#[test]
fn leg_params_come_from_the_negotiated_rtp_parameters() {
    use rtc::rtp_transceiver::rtp_sender::{
        RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters,
    };
    let params = RTCRtpParameters {
        header_extensions: vec![RTCRtpHeaderExtensionParameters {
            uri: TWCC.into(),
            id: 3,
            ..Default::default()
        }],
        codecs: vec![RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: "video/H264".into(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: "packetization-mode=1".into(),
                rtcp_feedback: vec![],
            },
            payload_type: 108,
        }],
        ..Default::default()
    };
    let leg = LegParams::from_rtc(&params);
    assert_eq!(leg.extensions, vec![(3, TWCC.to_string())]);
    assert_eq!(
        leg.codecs,
        vec![codec(108, "video/h264", 90000, 0, "packetization-mode=1")]
    );
}

#[test]
fn a_declined_track_is_refused_as_such() {
    let t = Translation::new(&browser(), &LegParams::default());
    assert_eq!(t.apply(&mut packet(108, 1, &[])), Err(Refusal::Declined));
    assert_eq!(t.apply(&mut packet(111, 1, &[])), Err(Refusal::Declined));
}

#[test]
fn a_layer_switch_happens_at_a_keyframe_and_the_numbering_runs_on() {
    const KEY: &[u8] = &[0x78, 0, 4, 0x67, 0x42, 0, 0x1f]; // STAP-A with an SPS
    const DELTA: &[u8] = &[0x41, 0x9a];
    let layer_packet = |ssrc: u32, seq: u16, ts: u32, payload: &'static [u8]| {
        let mut p = packet(108, seq, &[]);
        p.header.ssrc = ssrc;
        p.header.timestamp = ts;
        p.payload = Bytes::from_static(payload);
        p
    };
    let mut f = Forwarder::new(4242, 3000, true);
    f.set_legs(&browser(), Some(&ours()));
    let out = |f: &mut Forwarder, layer: u8, mut p: RtpPacket| {
        f.forward(layer, &mut p)
            .map(|()| (p.header.sequence_number, p.header.timestamp))
    };
    assert_eq!(
        out(&mut f, 0, layer_packet(10, 100, 9000, DELTA)),
        Ok((100, 9000))
    );
    assert!(f.select(Some(2), false));
    assert!(f.waiting_for_keyframe());
    assert_eq!(
        out(&mut f, 2, layer_packet(30, 5000, 1, DELTA)),
        Err(Refusal::NotSelected)
    );
    assert_eq!(
        out(&mut f, 0, layer_packet(10, 101, 12000, DELTA)),
        Ok((101, 12000))
    );
    // Layer 2's keyframe: it goes on where layer 0 left off.
    assert_eq!(
        out(&mut f, 2, layer_packet(30, 5001, 3001, KEY)),
        Ok((102, 15000))
    );
    assert!(!f.waiting_for_keyframe());
    assert_eq!(
        out(&mut f, 2, layer_packet(30, 5002, 6001, DELTA)),
        Ok((103, 18000))
    );
    assert_eq!(
        out(&mut f, 0, layer_packet(10, 102, 15000, KEY)),
        Err(Refusal::NotSelected)
    );
    // Paused: nothing, at once.
    assert!(!f.select(None, false));
    assert_eq!(
        out(&mut f, 2, layer_packet(30, 5003, 9001, KEY)),
        Err(Refusal::NotSelected)
    );
}
