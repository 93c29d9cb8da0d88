use super::*;
use serde_json::json;

fn join_json(extra: Value) -> String {
    json!({"type":"join","v":1,"apiKey":"k-123","callId":"team","extraData":extra}).to_string()
}

fn code_of(text: &str) -> ErrorCode {
    decode_client(text).expect_err(text).code
}

#[test]
fn join_round_trips() {
    let msg = ClientMessage::Join {
        v: PROTOCOL_VERSION,
        api_key: "k-123".into(),
        call_id: "team".into(),
        extra_data: json!({"name": "Ada"}),
        resume: Some(Resume {
            peer_id: "p1".into(),
            token: "t1".into(),
            last_seq: 7,
        }),
    };
    let text = encode(&msg);
    assert!(text.contains(r#""type":"join""#), "{text}");
    assert!(text.contains(r#""apiKey":"k-123""#), "{text}");
    assert!(text.contains(r#""callId":"team""#), "{text}");
    assert_eq!(decode_client(&text).expect("decode"), msg);
}

#[test]
fn data_and_leave_round_trip() {
    for msg in [
        ClientMessage::Data {
            data: json!({"text": "hi", "n": [1, 2]}),
            to: None,
            seq: None,
        },
        ClientMessage::Data {
            data: json!("plain"),
            to: Some("peer-1".into()),
            seq: Some(3),
        },
        ClientMessage::Leave,
    ] {
        assert_eq!(decode_client(&encode(&msg)).expect("decode"), msg);
    }
    assert_eq!(
        decode_client(r#"{"type":"leave"}"#).expect("decode"),
        ClientMessage::Leave
    );
}

#[test]
fn server_messages_round_trip() {
    let peer = PeerInfo {
        id: "p2".into(),
        extra_data: r#"{"name":"Bo"}"#.into(),
    };
    for msg in [
        ServerMessage::Joined {
            v: PROTOCOL_VERSION,
            peer_id: "p1".into(),
            peers: vec![peer.clone()],
            resume_token: "tok".into(),
            resumed: false,
            acked_seq: 0,
        },
        ServerMessage::PeerJoined { peer },
        ServerMessage::PeerLeft {
            peer_id: "p2".into(),
        },
        ServerMessage::Data {
            from: "p2".into(),
            data: json!({"text": "hello"}),
            seq: 1,
        },
        ServerMessage::error(
            &ProtocolError::new(ErrorCode::InvalidApiKey, "Wrong key."),
            true,
        ),
    ] {
        let text = encode(&msg);
        assert_eq!(decode_server(&text).expect("decode"), msg, "{text}");
    }
}

#[test]
fn server_wire_names_are_camel_case() {
    let text = encode(&ServerMessage::PeerLeft {
        peer_id: "p".into(),
    });
    assert_eq!(text, r#"{"type":"peerLeft","peerId":"p"}"#);
}

#[test]
fn extra_data_reaches_peers_as_a_string() {
    assert_eq!(extra_data_to_string(&json!("user-42")), "user-42");
    assert_eq!(
        extra_data_to_string(&json!({"name": "Ada"})),
        r#"{"name":"Ada"}"#
    );
    assert_eq!(extra_data_to_string(&Value::Null), "null");
}

#[test]
fn missing_extra_data_defaults_to_null() {
    let msg = decode_client(r#"{"type":"join","v":1,"apiKey":"k","callId":"c"}"#).expect("ok");
    assert!(matches!(
        msg,
        ClientMessage::Join {
            extra_data: Value::Null,
            ..
        }
    ));
}

#[test]
fn rejects_oversized_message() {
    let text = json!({"type":"data","data":"x".repeat(MAX_MESSAGE_BYTES)}).to_string();
    assert_eq!(code_of(&text), ErrorCode::MessageTooLarge);
}

#[test]
fn rejects_oversized_data_within_frame_limit() {
    let text = json!({"type":"data","data":"x".repeat(MAX_DATA_BYTES)}).to_string();
    assert!(text.len() <= MAX_MESSAGE_BYTES);
    assert_eq!(code_of(&text), ErrorCode::MessageTooLarge);
}

#[test]
fn accepts_data_at_the_limit() {
    // A JSON string's text is its content plus two quotes.
    let text = json!({"type":"data","data":"x".repeat(MAX_DATA_BYTES - 2)}).to_string();
    assert!(decode_client(&text).is_ok());
}

#[test]
fn rejects_oversized_extra_data() {
    let text = join_json(json!({"name": "x".repeat(MAX_EXTRA_DATA_BYTES)}));
    assert_eq!(code_of(&text), ErrorCode::MessageTooLarge);
}

#[test]
fn rejects_invalid_json() {
    for text in ["{", "not json", "", r#"{"type":"join","v":1,"#] {
        assert_eq!(code_of(text), ErrorCode::InvalidMessage, "{text:?}");
    }
}

#[test]
fn rejects_non_objects_and_missing_or_odd_type() {
    for text in ["[]", "42", r#""join""#, r#"{"v":1}"#, r#"{"type":7}"#] {
        assert_eq!(code_of(text), ErrorCode::InvalidMessage, "{text}");
    }
}

#[test]
fn rejects_unknown_type() {
    assert_eq!(
        code_of(r#"{"type":"subscribe","x":1}"#),
        ErrorCode::UnknownMessageType
    );
    // A server message type is not a client message type.
    assert_eq!(
        code_of(r#"{"type":"peerLeft","peerId":"p"}"#),
        ErrorCode::UnknownMessageType
    );
}

#[test]
fn rejects_missing_and_mistyped_fields() {
    for text in [
        r#"{"type":"join","v":1,"callId":"c"}"#,
        r#"{"type":"join","v":1,"apiKey":5,"callId":"c"}"#,
        r#"{"type":"data"}"#,
        r#"{"type":"data","data":1,"to":7}"#,
    ] {
        assert_eq!(code_of(text), ErrorCode::InvalidMessage, "{text}");
    }
}

#[test]
fn rejects_wrong_or_missing_version() {
    assert_eq!(
        code_of(r#"{"type":"join","v":2,"apiKey":"k","callId":"c"}"#),
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        code_of(r#"{"type":"join","apiKey":"k","callId":"c"}"#),
        ErrorCode::InvalidMessage
    );
}

#[test]
fn rejects_invalid_call_id_in_join() {
    let text = r#"{"type":"join","v":1,"apiKey":"k","callId":"no spaces"}"#;
    assert_eq!(code_of(text), ErrorCode::InvalidCallId);
}

#[test]
fn rejects_empty_or_huge_api_key() {
    let empty = r#"{"type":"join","v":1,"apiKey":"","callId":"c"}"#;
    assert_eq!(code_of(empty), ErrorCode::InvalidApiKey);
    let huge = json!({"type":"join","v":1,"apiKey":"k".repeat(300),"callId":"c"}).to_string();
    assert_eq!(code_of(&huge), ErrorCode::InvalidApiKey);
}

#[test]
fn rejects_bad_peer_ids() {
    let to_empty = r#"{"type":"data","data":1,"to":""}"#;
    assert_eq!(code_of(to_empty), ErrorCode::InvalidArgument);
    let resume = json!({"type":"join","v":1,"apiKey":"k","callId":"c",
        "resume":{"peerId":"p".repeat(100),"token":"t"}})
    .to_string();
    assert_eq!(code_of(&resume), ErrorCode::InvalidArgument);
}

#[test]
fn server_decoder_survives_garbage() {
    for text in ["", "{}", r#"{"type":"nope"}"#, r#"{"type":"joined"}"#] {
        assert!(decode_server(text).is_err(), "{text}");
    }
    let unknown_code = r#"{"type":"error","code":"brand_new","message":"m","fatal":false}"#;
    match decode_server(unknown_code).expect("decode") {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unknown),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn media_messages_round_trip() {
    for msg in [
        ClientMessage::Publish {
            sdp: "v=0\r\n".into(),
        },
        ClientMessage::SubscribeAnswer {
            sdp: "v=0\r\n".into(),
            offer: Some(3),
        },
        ClientMessage::SubscribeAnswer {
            sdp: "v=0\r\n".into(),
            offer: None,
        },
        ClientMessage::MediaState {
            audio_muted: true,
            video_muted: false,
        },
        ClientMessage::Unpublish {
            kind: TrackKind::Screen,
        },
    ] {
        assert_eq!(decode_client(&encode(&msg)).expect("decode"), msg);
    }
    assert_eq!(
        encode(&ClientMessage::Unpublish {
            kind: TrackKind::Screen
        }),
        r#"{"type":"unpublish","kind":"screen"}"#
    );
    let bad = json!({"type":"unpublish","kind":"hologram"}).to_string();
    assert_eq!(code_of(&bad), ErrorCode::InvalidMessage);
    let camera = json!({"type":"unpublish","kind":"video"}).to_string();
    assert_eq!(code_of(&camera), ErrorCode::InvalidArgument);
    assert_eq!(
        decode_client(r#"{"type":"resubscribe"}"#).expect("decode"),
        ClientMessage::Resubscribe
    );
    assert_eq!(
        decode_client(r#"{"type":"videoSize","trackId":"p-video-7","width":570,"height":320}"#)
            .expect("decode"),
        ClientMessage::VideoSize {
            track_id: "p-video-7".into(),
            width: 570,
            height: 320
        }
    );
    for bad in [
        r#"{"type":"videoSize","trackId":"","width":1,"height":1}"#,
        r#"{"type":"videoSize","trackId":"p-video-7","width":99999,"height":1}"#,
        r#"{"type":"videoSize","trackId":"p-video-7","width":-1,"height":1}"#,
    ] {
        assert!(decode_client(bad).is_err(), "{bad}");
    }
    let offer = ServerMessage::SubscribeOffer {
        sdp: "v=0\r\n".into(),
        tracks: vec![TrackInfo {
            peer_id: "p".into(),
            kind: TrackKind::Screen,
            track_id: "p-screen".into(),
        }],
        offer: 4,
        connection: 2,
    };
    let text = encode(&offer);
    assert!(
        text.contains(r#""offer":4"#) && text.contains(r#""connection":2"#),
        "{text}"
    );
    assert!(text.contains(r#""kind":"screen""#), "{text}");
    assert_eq!(decode_server(&text).expect("decode"), offer);
    // From a server that numbers nothing: both 0.
    let plain = json!({"type":"subscribeOffer","sdp":"v=0\r\n","tracks":[]}).to_string();
    assert!(matches!(
        decode_server(&plain).expect("decode"),
        ServerMessage::SubscribeOffer {
            offer: 0,
            connection: 0,
            ..
        }
    ));
    // An answer without a number decodes as one.
    let answer = json!({"type":"subscribeAnswer","sdp":"v=0\r\n"}).to_string();
    assert_eq!(
        decode_client(&answer).expect("decode"),
        ClientMessage::SubscribeAnswer {
            sdp: "v=0\r\n".into(),
            offer: None
        }
    );
    let state = encode(&ServerMessage::PeerMedia {
        peer_id: "p".into(),
        audio_muted: true,
        video_muted: false,
    });
    assert_eq!(
        state,
        r#"{"type":"peerMedia","peerId":"p","audioMuted":true,"videoMuted":false}"#
    );
}

#[test]
fn video_needed_says_a_size_or_everything() {
    let some = ServerMessage::VideoNeeded {
        kind: TrackKind::Video,
        max: Some([640, 360]),
    };
    let text = encode(&some);
    assert_eq!(
        text,
        r#"{"type":"videoNeeded","kind":"video","max":[640,360]}"#
    );
    assert_eq!(decode_server(&text).expect("decode"), some);
    assert_eq!(
        decode_server(r#"{"type":"videoNeeded","kind":"video"}"#).expect("decode"),
        ServerMessage::VideoNeeded {
            kind: TrackKind::Video,
            max: None
        }
    );
}

#[test]
fn a_bandwidth_pause_names_the_track() {
    let msg = ServerMessage::BandwidthPause {
        track_id: "p-video".into(),
        paused: true,
    };
    let text = encode(&msg);
    assert_eq!(
        text,
        r#"{"type":"bandwidthPause","trackId":"p-video","paused":true}"#
    );
    assert_eq!(decode_server(&text).expect("decode"), msg);
}

#[test]
fn rejects_an_sdp_that_is_not_one() {
    let text = json!({"type":"publish","sdp":"hello"}).to_string();
    assert_eq!(code_of(&text), ErrorCode::InvalidMessage);
    let text = json!({"type":"subscribeAnswer","sdp":""}).to_string();
    assert_eq!(code_of(&text), ErrorCode::InvalidMessage);
}

#[test]
fn track_kinds_parse_from_track_ids() {
    for kind in [TrackKind::Audio, TrackKind::Video, TrackKind::Screen] {
        assert_eq!(TrackKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(TrackKind::parse("other"), None);
    assert_eq!(TrackKind::of_published("screen#3"), Some(TrackKind::Screen));
    assert_eq!(TrackKind::of_published("video"), Some(TrackKind::Video));
    assert_eq!(TrackKind::of_published("screens#3"), None);
}

#[test]
fn a_published_track_is_known_by_its_media_section_whatever_its_id() {
    assert_eq!(TrackKind::of_media(true, "audio"), TrackKind::Audio);
    assert_eq!(
        TrackKind::of_media(true, "3c1f0e4a-9d2b-4f7e-8a11-5b6c7d8e9f00"),
        TrackKind::Audio
    );
    assert_eq!(
        TrackKind::of_media(false, "{8e1b2c3d-0000-4a5b-9c8d-7e6f5a4b3c2d}"),
        TrackKind::Video
    );
    assert_eq!(TrackKind::of_media(false, "video"), TrackKind::Video);
    assert_eq!(TrackKind::of_media(false, "screen#4"), TrackKind::Screen);
    // A video section is never audio, whatever its ID says.
    assert_eq!(TrackKind::of_media(false, "audio"), TrackKind::Video);
    assert_eq!(TrackKind::of_media(true, "screen#1"), TrackKind::Audio);
}

#[test]
fn subscription_ids_name_their_publisher_and_kind() {
    for (kind, ssrc, id) in [
        (TrackKind::Audio, 1, "ab12-audio"),
        (TrackKind::Video, 2, "ab12-video"),
        (TrackKind::Screen, 77, "ab12-screen#77"),
    ] {
        assert_eq!(TrackInfo::subscription_id("ab12", kind, ssrc), id);
        assert_eq!(TrackInfo::parse_subscription_id(id), Some(("ab12", kind)));
    }
    assert_eq!(TrackInfo::parse_subscription_id("audio"), None);
    assert_eq!(TrackInfo::parse_subscription_id("-audio"), None);
    assert_eq!(TrackInfo::parse_subscription_id("ab12-speaker"), None);
}
