//! Losing the socket: a network blip (resume, same identity, nothing lost or doubled), a
//! server restart (new identities, everyone sees everyone again), and giving up.
#![allow(clippy::unwrap_used)]

mod common;

use between_engine::{ConferenceEvent, ReconnectPolicy};
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

fn reconnected(e: &ConferenceEvent) -> Option<(String, bool)> {
    match e {
        ConferenceEvent::SocketReconnected { peer_id, resumed } => {
            Some((peer_id.clone(), *resumed))
        }
        _ => None,
    }
}

#[tokio::test]
async fn a_network_blip_resumes_the_same_identity_without_losing_data() {
    let server = server().await;
    let proxy = Proxy::start(server.local_addr()).await;
    let mut a = Participant::joined(&server.url(), KEY, "blip", "A").await;
    let mut b = Participant::joined(&proxy.url, KEY, "blip", "B").await;
    a.peer_joined(SHORT).await;
    b.peer_joined(SHORT).await;
    let b_id = b.id();

    // Messages both ways straddle the cut: some go out before it, some while B reconnects.
    let (a_dh, b_dh) = (a.conf.data_handler(), b.conf.data_handler());
    for n in 0..50 {
        a_dh.send(json!({ "n": n }), None).unwrap();
        b_dh.send(json!({ "n": n }), None).unwrap();
        if n == 20 {
            proxy.cut();
        }
    }
    b.wait_for(SHORT, "socketFailed", |e| {
        matches!(e, ConferenceEvent::SocketFailed).then_some(())
    })
    .await;
    let (id, resumed) = b
        .wait_for(Duration::from_secs(5), "socketReconnected", reconnected)
        .await;
    assert!(resumed, "the server still held B's slot");
    assert_eq!(id, b_id, "B kept its peer ID");
    for n in 50..60 {
        a_dh.send(json!({ "n": n }), None).unwrap();
        b_dh.send(json!({ "n": n }), None).unwrap();
    }

    for (receiver, sender_id) in [(&mut b, a.id()), (&mut a, b_id.clone())] {
        let mut got = Vec::new();
        while got.len() < 60 {
            let (from, data) = receiver.data(Duration::from_secs(5)).await;
            assert_eq!(from, sender_id);
            got.push(data["n"].as_u64().unwrap());
        }
        assert_eq!(
            got,
            (0..60).collect::<Vec<_>>(),
            "every message once, in order"
        );
    }
    assert!(
        !a.drain()
            .iter()
            .any(|e| matches!(e, ConferenceEvent::PeerLeft(_))),
        "A must not see B leave during a blip"
    );
    assert_eq!(a.conf.peers().len(), 1);
}

#[tokio::test]
async fn after_a_server_restart_everyone_reconnects_and_sees_each_other() {
    let addr: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let server = server_on(addr).await;
    let url = server.url();
    let mut a = Participant::joined(&url, KEY, "restart", "A").await;
    let mut b = Participant::joined(&url, KEY, "restart", "B").await;
    a.peer_joined(SHORT).await;
    b.peer_joined(SHORT).await;
    let (old_a, old_b) = (a.id(), b.id());

    server.shutdown(Duration::from_secs(2)).await;
    for p in [&mut a, &mut b] {
        p.wait_for(SHORT, "socketFailed", |e| {
            matches!(e, ConferenceEvent::SocketFailed).then_some(())
        })
        .await;
    }
    let _server = server_on(addr).await;
    for p in [&mut a, &mut b] {
        let (_, resumed) = p
            .wait_for(Duration::from_secs(5), "socketReconnected", reconnected)
            .await;
        assert!(!resumed, "a restarted server knows nobody");
    }
    let (new_a, new_b) = (a.id(), b.id());
    assert_ne!(new_a, old_a);
    // Each sees the other's new identity; the old one is gone from the roster.
    let (id, extra) = a.peer_joined(Duration::from_secs(5)).await;
    assert_eq!((id, name_of(&extra)), (new_b.clone(), "B".to_string()));
    let (id, _) = b.peer_joined(Duration::from_secs(5)).await;
    assert_eq!(id, new_a);
    let ids = |p: &Participant| {
        p.conf
            .peers()
            .iter()
            .map(|x| x.id().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), vec![new_b.clone()]);
    assert_eq!(ids(&b), vec![new_a.clone()]);
    assert!(!ids(&a).contains(&old_b));
    a.conf
        .data_handler()
        .send(json!("back"), Some(&new_b))
        .unwrap();
    assert_eq!(b.data(SHORT).await, (new_a, json!("back")));
}

#[tokio::test]
async fn the_engine_gives_up_after_its_attempts_and_says_so() {
    let server = server().await;
    let mut config = quick_config(&server.url());
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
        max_attempts: 3,
    };
    let mut a = Participant::with_config(config, KEY, "gone", "A");
    a.conf.start_call().await.unwrap();
    server.shutdown(Duration::from_secs(2)).await;
    let mut failed = 0;
    a.wait_for(Duration::from_secs(10), "socketDisconnected", |e| match e {
        ConferenceEvent::SocketFailed => {
            failed += 1;
            None
        }
        ConferenceEvent::SocketDisconnected => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(failed, 1 + 3, "one for the drop, one per failed attempt");
    assert!(!a.conf.is_in_call());
    let err = a.conf.data_handler().send(json!(1), None).unwrap_err();
    assert_eq!(err.code, between_engine::ErrorCode::NotInCall);
}

#[tokio::test]
async fn ending_the_call_while_reconnecting_stops_cleanly() {
    let server = server().await;
    let mut a = Participant::joined(&server.url(), KEY, "stop", "A").await;
    server.shutdown(Duration::from_secs(2)).await;
    a.wait_for(SHORT, "socketFailed", |e| {
        matches!(e, ConferenceEvent::SocketFailed).then_some(())
    })
    .await;
    a.conf.end_call().await.unwrap();
    let names: Vec<&str> = a.drain().iter().map(ConferenceEvent::name).collect();
    assert!(
        names.ends_with(&["socketClose", "sessionTerminated"]),
        "{names:?}"
    );
    assert!(!a.conf.is_in_call());
}
