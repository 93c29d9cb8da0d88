//! A call through a real `between-server` over loopback: membership, extraData, data ordering,
//! leaving, vanishing, tenant isolation and the API's error cases.
#![allow(clippy::unwrap_used)]

mod common;

use between_engine::{Conference, ConferenceEvent, EngineConfig, ErrorCode};
use common::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn three_participants_see_each_other_with_their_extra_data() {
    let server = server().await;
    let url = server.url();
    let mut a = Participant::joined(&url, KEY, "standup", "Ada").await;
    let mut b = Participant::joined(&url, KEY, "standup", "Bo").await;
    let mut c = Participant::joined(&url, KEY, "standup", "Cy").await;

    // Existing participants are announced to the newcomer as peerJoined too.
    let mut seen_by_c = HashSet::new();
    for _ in 0..2 {
        let (id, extra) = c.peer_joined(SHORT).await;
        seen_by_c.insert((id, name_of(&extra)));
    }
    assert_eq!(
        seen_by_c,
        HashSet::from([(a.id(), "Ada".into()), (b.id(), "Bo".into())])
    );
    let (id, extra) = a.peer_joined(SHORT).await;
    assert_eq!((id, extra), (b.id(), r#"{"name":"Bo"}"#.to_string()));
    let (id, extra) = a.peer_joined(SHORT).await;
    assert_eq!((id, name_of(&extra)), (c.id(), "Cy".to_string()));
    let (id, _) = b.peer_joined(SHORT).await;
    assert_eq!(id, a.id());
    let (id, _) = b.peer_joined(SHORT).await;
    assert_eq!(id, c.id());

    let ids: HashSet<String> = [a.id(), b.id(), c.id()].into();
    assert_eq!(ids.len(), 3, "peer IDs are unique");
    assert!(a.id().len() >= 32, "peer IDs carry 128 random bits");
    let a_peers: Vec<String> = a.conf.peers().iter().map(|p| p.id().to_string()).collect();
    assert_eq!(a_peers, vec![b.id(), c.id()], "roster in join order");
    assert_eq!(c.conf.call_id(), "standup");
}

#[tokio::test]
async fn data_arrives_in_order_to_everyone_or_to_one() {
    let server = server().await;
    let url = server.url();
    let mut a = Participant::joined(&url, KEY, "chat", "A").await;
    let mut b = Participant::joined(&url, KEY, "chat", "B").await;
    let mut c = Participant::joined(&url, KEY, "chat", "C").await;
    // A can address B only once it has been told B is there.
    a.peer_joined(SHORT).await;
    a.peer_joined(SHORT).await;
    let dh = a.conf.data_handler();
    for n in 0..200 {
        dh.send(json!({ "n": n, "text": "hello" }), None).unwrap();
    }
    for n in 0..50 {
        dh.send(json!({ "private": n }), Some(&b.id())).unwrap();
    }
    dh.send(json!({ "end": true }), None).unwrap();

    for (p, expect_private) in [(&mut b, true), (&mut c, false)] {
        let mut broadcast = Vec::new();
        let mut private = Vec::new();
        loop {
            let (from, data) = p.data(SHORT).await;
            assert_eq!(from, a.id());
            if data["end"] == json!(true) {
                break;
            }
            if let Some(n) = data.get("n") {
                broadcast.push(n.as_u64().unwrap());
            } else {
                private.push(data["private"].as_u64().unwrap());
            }
        }
        assert_eq!(
            broadcast,
            (0..200).collect::<Vec<_>>(),
            "broadcast in order"
        );
        if expect_private {
            assert_eq!(private, (0..50).collect::<Vec<_>>(), "unicast in order");
        } else {
            assert!(private.is_empty(), "unicast leaked to a third party");
        }
    }
}

#[tokio::test]
async fn sender_does_not_receive_its_own_broadcast() {
    let server = server().await;
    let url = server.url();
    let mut a = Participant::joined(&url, KEY, "echo", "A").await;
    let mut b = Participant::joined(&url, KEY, "echo", "B").await;
    a.conf.data_handler().send(json!("ping"), None).unwrap();
    b.conf.data_handler().send(json!("pong"), None).unwrap();
    assert_eq!(b.data(SHORT).await.1, json!("ping"));
    assert_eq!(
        a.data(SHORT).await.1,
        json!("pong"),
        "a's first data is b's, not its own"
    );
}

#[tokio::test]
async fn ending_the_call_tells_the_others_and_terminates_the_session() {
    let server = server().await;
    let url = server.url();
    let mut a = Participant::joined(&url, KEY, "bye", "A").await;
    let mut b = Participant::joined(&url, KEY, "bye", "B").await;
    let mut c = Participant::joined(&url, KEY, "bye", "C").await;
    let c_id = c.id();
    c.conf.end_call().await.unwrap();
    assert_eq!(a.peer_left(SHORT).await, c_id);
    assert_eq!(b.peer_left(SHORT).await, c_id);
    let names: Vec<&str> = c.drain().iter().map(ConferenceEvent::name).collect();
    assert!(
        names.ends_with(&["socketClose", "sessionTerminated"]),
        "{names:?}"
    );
    assert!(c.conf.peer_id().is_none());
    assert!(!c.conf.is_in_call());
    let err = c.conf.end_call().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotInCall);
    // The others keep talking.
    a.conf
        .data_handler()
        .send(json!("still here"), None)
        .unwrap();
    assert_eq!(b.data(SHORT).await.1, json!("still here"));
}

#[tokio::test]
async fn a_dropped_participant_is_declared_left() {
    let server = server().await;
    let url = server.url();
    let mut a = Participant::joined(&url, KEY, "crash", "A").await;
    let b = Participant::joined(&url, KEY, "crash", "B").await;
    let b_id = b.id();
    drop(b); // no goodbye: its socket just closes
    assert_eq!(a.peer_left(Duration::from_secs(10)).await, b_id);
    assert!(a.conf.peers().is_empty());
}

#[tokio::test]
async fn a_silently_vanished_participant_is_declared_left_within_ten_seconds() {
    let server = server().await;
    let url = server.url();
    let proxy = Proxy::start(server.local_addr()).await;
    let mut a = Participant::joined(&url, KEY, "cable", "A").await;
    let b = Participant::joined(&proxy.url, KEY, "cable", "B").await;
    let b_id = b.id();
    a.peer_joined(SHORT).await;
    proxy.freeze(); // no FIN, no RST: only the heartbeat can tell
    let started = std::time::Instant::now();
    assert_eq!(a.peer_left(Duration::from_secs(10)).await, b_id);
    eprintln!("declared left after {:?}", started.elapsed());
}

#[tokio::test]
async fn same_call_id_under_different_keys_never_meets() {
    let server = server().await;
    let url = server.url();
    let mut alpha1 = Participant::joined(&url, KEY, "shared-name", "alpha1").await;
    let mut beta = Participant::joined(&url, OTHER_KEY, "shared-name", "beta").await;
    let alpha2 = Participant::joined(&url, KEY, "shared-name", "alpha2").await;
    let (id, _) = alpha1.peer_joined(SHORT).await;
    assert_eq!(id, alpha2.id(), "alpha1's first peer is alpha2, not beta");
    beta.conf
        .data_handler()
        .send(json!("anyone?"), None)
        .unwrap();
    alpha2
        .conf
        .data_handler()
        .send(json!("marker"), None)
        .unwrap();
    assert_eq!(alpha1.data(SHORT).await.1, json!("marker"));
    assert!(beta.conf.peers().is_empty());
    assert!(
        !beta
            .drain()
            .iter()
            .any(|e| matches!(e, ConferenceEvent::PeerJoined(_))),
        "beta saw someone from another tenant"
    );
}

#[tokio::test]
async fn api_errors_are_typed_and_readable() {
    let server = server().await;
    let url = server.url();

    let err = Conference::new(EngineConfig::new(&url), KEY, "no spaces", json!({}))
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::InvalidCallId);
    assert!(err.message.contains("' '"), "{}", err.message);

    let wrong = Conference::new(EngineConfig::new(&url), "wrong-key", "room", json!({})).unwrap();
    let err = wrong.start_call().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidApiKey);
    assert!(!wrong.is_in_call());

    let dead = Conference::new(
        EngineConfig::new("ws://127.0.0.1:9"),
        KEY,
        "room",
        json!({}),
    )
    .unwrap();
    let err = dead.start_call().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ServerUnreachable);
    assert!(err.message.contains("ws://127.0.0.1:9"), "{}", err.message);

    let bad_url = Conference::new(EngineConfig::new("http://x"), KEY, "room", json!({})).unwrap();
    assert_eq!(
        bad_url.start_call().await.unwrap_err().code,
        ErrorCode::InvalidArgument
    );

    let p = Participant::joined(&url, KEY, "room", "P").await;
    assert_eq!(
        p.conf.start_call().await.unwrap_err().code,
        ErrorCode::AlreadyInCall
    );
    let dh = p.conf.data_handler();
    assert_eq!(
        dh.send(json!(1), Some("nobody")).unwrap_err().code,
        ErrorCode::PeerNotFound
    );
    let big = json!("x".repeat(70 * 1024));
    assert_eq!(
        dh.send(big, None).unwrap_err().code,
        ErrorCode::MessageTooLarge
    );

    let idle = Conference::new(EngineConfig::new(&url), KEY, "room", json!({})).unwrap();
    assert_eq!(
        idle.data_handler().send(json!(1), None).unwrap_err().code,
        ErrorCode::NotInCall
    );
    assert_eq!(
        idle.end_call().await.unwrap_err().code,
        ErrorCode::NotInCall
    );
}

#[tokio::test]
async fn a_conference_can_join_again_after_ending() {
    let server = server().await;
    let url = server.url();
    let mut a = Participant::joined(&url, KEY, "again", "A").await;
    let b = Participant::joined(&url, KEY, "again", "B").await;
    a.peer_joined(SHORT).await;
    a.conf.end_call().await.unwrap();
    a.conf.start_call().await.unwrap();
    let (id, _) = a.peer_joined(SHORT).await;
    assert_eq!(id, b.id());
}
