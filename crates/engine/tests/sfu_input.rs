//! Bad media input to the SFU: an SDP that is not one, an offer with no codec we take, an
//! answer nobody asked for, and garbage datagrams at its media port. Each is refused with a
//! clear error or ignored, and a call in progress keeps its sound.
#![allow(clippy::unwrap_used)]

mod common;

use between_engine::media::sources::ToneAudio;
use between_engine::{ErrorCode, MediaOptions};
use between_media::analysis::tone_snr_db;
use between_protocol::{ServerMessage, decode_server};
use common::*;
use futures_util::{SinkExt, StreamExt};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_message(ws: &mut Ws) -> ServerMessage {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a message in time");
        if let Some(Ok(Message::Text(t))) = frame {
            return decode_server(&t).unwrap();
        }
    }
}

/// The next error, skipping other traffic (peer joins, offers).
async fn next_error(ws: &mut Ws) -> (ErrorCode, bool) {
    loop {
        if let ServerMessage::Error { code, fatal, .. } = next_message(ws).await {
            return (code, fatal);
        }
    }
}

/// The server's answer to a publish, failing on an error.
async fn publish_answer(ws: &mut Ws) -> String {
    loop {
        match next_message(ws).await {
            ServerMessage::PublishAnswer { sdp } => return sdp,
            ServerMessage::Error { message, .. } => panic!("publish refused: {message}"),
            _ => {}
        }
    }
}

struct NoEvents;
#[async_trait::async_trait]
impl PeerConnectionEventHandler for NoEvents {}

/// An offer from a real WebRTC stack that only speaks `codec`.
async fn offer_with(codec: RTCRtpCodec, payload_type: u8, kind: RtpCodecKind) -> String {
    let mut engine = MediaEngine::default();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codec.clone(),
                payload_type,
            },
            kind,
        )
        .unwrap();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_handler(Arc::new(NoEvents))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .unwrap();
    let track = TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "raw".into(),
        "audio".into(),
        "audio".into(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(4242),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    ));
    pc.add_track(Arc::new(track) as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();
    // Host candidates on loopback are gathered at once; a short wait is enough for them to be
    // in the description, and missing ones do not matter for what these tests check.
    for _ in 0..50 {
        let sdp = pc.local_description().await.unwrap().sdp;
        if sdp.contains("a=candidate") {
            return sdp;
        }
        tokio::task::yield_now().await;
    }
    pc.local_description().await.unwrap().sdp
}

/// A raw client joins `call` and publishes an Opus offer: its socket and the server's answer.
async fn raw_publish(server: &between_server::RunningServer, call: &str) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    let join = json!({"type":"join","v":1,"apiKey":KEY,"callId":call}).to_string();
    ws.send(Message::Text(join.into())).await.unwrap();
    assert!(matches!(
        next_message(&mut ws).await,
        ServerMessage::Joined { .. }
    ));
    let offer = offer_with(between_media::rtp::opus_codec(), 111, RtpCodecKind::Audio).await;
    let publish = json!({"type":"publish","sdp":offer}).to_string();
    ws.send(Message::Text(publish.into())).await.unwrap();
    let answer = publish_answer(&mut ws).await;
    (ws, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_input_is_refused_and_the_call_keeps_its_sound() {
    let server = server().await;
    let url = server.url();
    let a = Participant::with_media(
        &url,
        "sfu-bad",
        "A",
        MediaOptions {
            audio: Some(Box::new(ToneAudio::new(440.0))),
            ..MediaOptions::default()
        },
    )
    .await;
    let recorder = Arc::new(AudioRecorder::default());
    let _b = Participant::with_media(
        &url,
        "sfu-bad",
        "B",
        MediaOptions {
            peer_audio: Some(recorder.clone()),
            ..MediaOptions::default()
        },
    )
    .await;
    let a_id = a.id();
    recorder.until(|r| r.len(&a_id) >= 48_000).await;
    assert!(tone_snr_db(&recorder.tail(&a_id, 24_000), 48_000, 440.0) >= 30.0);

    // A raw client in the same call.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let join = json!({"type":"join","v":1,"apiKey":KEY,"callId":"sfu-bad"}).to_string();
    ws.send(Message::Text(join.into())).await.unwrap();
    assert!(matches!(
        next_message(&mut ws).await,
        ServerMessage::Joined { .. }
    ));

    let send = |text: String| Message::Text(text.into());
    ws.send(send(
        json!({"type":"publish","sdp":"v=0\r\nthis is not an SDP\r\n"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_error(&mut ws).await,
        (ErrorCode::InvalidMessage, false)
    );

    let pcmu = RTCRtpCodec {
        mime_type: MIME_TYPE_PCMU.to_owned(),
        clock_rate: 8000,
        channels: 1,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    };
    let offer = offer_with(pcmu, 0, RtpCodecKind::Audio).await;
    ws.send(send(json!({"type":"publish","sdp":offer}).to_string()))
        .await
        .unwrap();
    assert_eq!(
        next_error(&mut ws).await,
        (ErrorCode::InvalidArgument, false)
    );

    ws.send(send(
        json!({"type":"subscribeAnswer","sdp":"v=0\r\n"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_error(&mut ws).await,
        (ErrorCode::InvalidMessage, false)
    );

    // A usable offer gets an answer naming the SFU's media port; then garbage goes there.
    let opus = between_media::rtp::opus_codec();
    let offer = offer_with(opus, 111, RtpCodecKind::Audio).await;
    ws.send(send(json!({"type":"publish","sdp":offer}).to_string()))
        .await
        .unwrap();
    let answer = publish_answer(&mut ws).await;
    let port: u16 = answer
        .lines()
        .find(|l| l.starts_with("a=candidate") && l.contains("127.0.0.1"))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|p| p.parse().ok())
        .expect("a loopback candidate in the answer");
    let garbage = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..2000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + (x as usize % 1200);
        let bytes: Vec<u8> = (0..len).map(|j| (x >> (j % 56)) as u8 ^ i as u8).collect();
        let _ = garbage.send_to(&bytes, ("127.0.0.1", port)).await;
    }

    // The call goes on: another second of clean tone, and the server still answers.
    let at = recorder.len(&a_id);
    recorder.until(|r| r.len(&a_id) >= at + 48_000).await;
    let db = tone_snr_db(&recorder.tail(&a_id, 24_000), 48_000, 440.0);
    assert!(db >= 30.0, "tone after the garbage: {db:.1} dB");
    assert!(
        server
            .metrics_text()
            .contains("between_rejections_total{code=\"invalid_argument\"} 1")
    );
}

#[tokio::test]
async fn a_public_ip_is_advertised_next_to_the_local_address() {
    let public: std::net::IpAddr = "127.0.0.9".parse().unwrap();
    let server = server_with_public_ip(public).await;
    let (mut ws, answer) = raw_publish(&server, "nat").await;
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .collect();
    assert!(
        candidates.iter().any(|c| c.contains(" 127.0.0.9 ")),
        "{candidates:?}"
    );
    assert!(
        candidates.iter().any(|c| c.contains(" 127.0.0.1 ")),
        "local kept: {candidates:?}"
    );

    // The server's own offers (to receive others' media) carry it too.
    let _talker = Participant::with_media(
        &server.url(),
        "nat",
        "talker",
        MediaOptions {
            audio: Some(Box::new(ToneAudio::new(300.0))),
            ..MediaOptions::default()
        },
    )
    .await;
    let offer = loop {
        if let ServerMessage::SubscribeOffer { sdp, .. } = next_message(&mut ws).await {
            break sdp;
        }
    };
    assert!(
        offer
            .lines()
            .any(|l| l.starts_with("a=candidate") && l.contains(" 127.0.0.9 ")),
        "{offer}"
    );
}

#[tokio::test]
async fn with_a_media_port_answers_name_only_that_port() {
    let mut keys = between_server::ApiKeys::default();
    keys.add(KEY, Some("alpha")).unwrap();
    let mut config = between_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), keys);
    config.udp_port = Some(0);
    let server = between_server::start(config).await.unwrap();
    let port = server.media_port().unwrap().to_string();
    let (_ws, answer) = raw_publish(&server, "port").await;
    let candidates: Vec<Vec<&str>> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .map(|l| l.split(' ').collect())
        .collect();
    assert!(!candidates.is_empty());
    for c in &candidates {
        assert_eq!(c[4], "127.0.0.1", "{c:?}");
        assert_eq!(c[5], port, "{c:?}");
    }
    assert!(candidates.iter().any(|c| c[2] == "udp"), "{candidates:?}");
    assert!(
        candidates
            .iter()
            .any(|c| c[2] == "tcp" && c.ends_with(&["tcptype", "passive"])),
        "{candidates:?}"
    );
}

/// The next subscribe offer, skipping other traffic.
async fn subscribe_offer(ws: &mut Ws) -> (String, Vec<between_protocol::TrackInfo>) {
    loop {
        if let ServerMessage::SubscribeOffer { sdp, tracks, .. } = next_message(ws).await {
            return (sdp, tracks);
        }
    }
}

fn ice_ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiving_connection_that_never_came_up_is_offered_again_on_a_new_one() {
    let server = server().await;
    let url = server.url();
    let _a = Participant::with_media(
        &url,
        "resub",
        "A",
        MediaOptions {
            audio: Some(Box::new(ToneAudio::new(440.0))),
            ..MediaOptions::default()
        },
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let join = json!({"type":"join","v":1,"apiKey":KEY,"callId":"resub"}).to_string();
    ws.send(Message::Text(join.into())).await.unwrap();
    let (first, tracks) = subscribe_offer(&mut ws).await;
    assert_eq!(tracks.len(), 1, "{tracks:?}");
    // This client never answers (as if its handshake were lost) and asks again.
    let again = json!({"type":"resubscribe"}).to_string();
    ws.send(Message::Text(again.into())).await.unwrap();
    let (second, tracks_again) = subscribe_offer(&mut ws).await;
    assert_eq!(tracks_again.len(), 1, "the same tracks: {tracks_again:?}");
    assert_eq!(tracks_again[0].kind, tracks[0].kind);
    assert_ne!(
        ice_ufrag(&first),
        ice_ufrag(&second),
        "a new connection, not a renegotiation of the old one"
    );
}
