//! Bad input against the real server over real WebSockets: each mistake gets its typed error,
//! and the participants who did nothing wrong notice nothing.
#![allow(clippy::unwrap_used)]

use between_protocol::{ErrorCode, ServerMessage, decode_server};
use between_server::{ApiKeys, RunningServer, ServerConfig, Timing};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
const KEY: &str = "bad-input-test-key";
const WAIT: Duration = Duration::from_secs(3);

async fn server_with(timing: Timing) -> RunningServer {
    server_limited(timing, between_server::DEFAULT_MAX_CONNECTIONS_PER_IP).await
}

async fn server_limited(timing: Timing, max_connections_per_ip: usize) -> RunningServer {
    let mut keys = ApiKeys::default();
    keys.add(KEY, None).unwrap();
    between_server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        keys,
        timing,
        media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        public_ip: None,
        max_connections_per_ip,
        udp_port: None,
    })
    .await
    .unwrap()
}

async fn connect(server: &RunningServer) -> Ws {
    tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap()
        .0
}

async fn send(ws: &mut Ws, text: impl Into<String>) {
    ws.send(Message::Text(text.into().into())).await.unwrap();
}

/// The next server message, skipping pings; `None` once the server closed.
async fn next(ws: &mut Ws) -> Option<ServerMessage> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("server answered")
        {
            Some(Ok(Message::Text(t))) => return Some(decode_server(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn expect_error(ws: &mut Ws, code: ErrorCode, fatal: bool) {
    match next(ws).await {
        Some(ServerMessage::Error {
            code: c,
            fatal: f,
            message,
        }) => {
            assert_eq!((c, f), (code, fatal), "{message}");
            assert!(message.ends_with('.'), "a sentence: {message}");
        }
        other => panic!("expected {code} error, got {other:?}"),
    }
    if fatal {
        assert!(
            next(ws).await.is_none(),
            "socket closed after a fatal error"
        );
    }
}

fn join_text(call: &str) -> String {
    json!({"type":"join","v":1,"apiKey":KEY,"callId":call,"extraData":{"name":call}}).to_string()
}

async fn joined(server: &RunningServer, call: &str) -> (Ws, String) {
    let mut ws = connect(server).await;
    send(&mut ws, join_text(call)).await;
    match next(&mut ws).await {
        Some(ServerMessage::Joined { peer_id, .. }) => (ws, peer_id),
        other => panic!("expected joined, got {other:?}"),
    }
}

#[tokio::test]
async fn every_bad_first_message_gets_its_typed_error_and_a_closed_socket() {
    let server = server_with(Timing::default()).await;
    let (mut a, _) = joined(&server, "good").await;
    let (mut b, b_id) = joined(&server, "good").await;
    assert!(matches!(
        next(&mut a).await,
        Some(ServerMessage::PeerJoined { .. })
    ));

    let cases: Vec<(String, ErrorCode)> = vec![
        (
            json!({"type":"join","v":1,"apiKey":"wrong","callId":"good"}).to_string(),
            ErrorCode::InvalidApiKey,
        ),
        (
            json!({"type":"data","data":1}).to_string(),
            ErrorCode::JoinRequired,
        ),
        (json!({"type":"leave"}).to_string(), ErrorCode::JoinRequired),
        ("{not json".to_string(), ErrorCode::InvalidMessage),
        (
            json!({"type":"hello"}).to_string(),
            ErrorCode::UnknownMessageType,
        ),
        (
            json!({"type":"join","v":1,"apiKey":KEY,"callId":"bad/id"}).to_string(),
            ErrorCode::InvalidCallId,
        ),
        (
            json!({"type":"join","v":9,"apiKey":KEY,"callId":"good"}).to_string(),
            ErrorCode::UnsupportedVersion,
        ),
        ("x".repeat(100 * 1024), ErrorCode::MessageTooLarge),
    ];
    for (text, code) in &cases {
        let mut bad = connect(&server).await;
        send(&mut bad, text.clone()).await;
        expect_error(&mut bad, *code, true).await;
    }

    // The good participants saw none of it and still talk.
    send(
        &mut a,
        json!({"type":"data","data":"after","to":b_id}).to_string(),
    )
    .await;
    match next(&mut b).await {
        Some(ServerMessage::Data { data, .. }) => assert_eq!(data, json!("after")),
        other => panic!("expected data, got {other:?}"),
    }
    let metrics = server.metrics_text();
    for code in [
        "invalid_api_key",
        "invalid_message",
        "message_too_large",
        "unsupported_version",
    ] {
        assert!(
            metrics.contains(&format!("between_rejections_total{{code=\"{code}\"}} 1")),
            "{code} counted:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("between_rejections_total{code=\"join_required\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("\nbetween_peers 2\n"), "{metrics}");
}

#[tokio::test]
async fn after_joining_mistakes_are_reported_and_the_connection_stays() {
    let server = server_with(Timing::default()).await;
    let (mut a, _) = joined(&server, "room").await;
    let (mut c, _) = joined(&server, "room").await;
    assert!(matches!(
        next(&mut a).await,
        Some(ServerMessage::PeerJoined { .. })
    ));

    send(&mut c, "[1,2").await;
    expect_error(&mut c, ErrorCode::InvalidMessage, false).await;
    send(&mut c, json!({"type":"mystery"}).to_string()).await;
    expect_error(&mut c, ErrorCode::UnknownMessageType, false).await;
    send(
        &mut c,
        json!({"type":"data","data":"y".repeat(100 * 1024)}).to_string(),
    )
    .await;
    expect_error(&mut c, ErrorCode::MessageTooLarge, false).await;
    send(
        &mut c,
        json!({"type":"data","data":1,"to":"nobody"}).to_string(),
    )
    .await;
    expect_error(&mut c, ErrorCode::PeerNotFound, false).await;
    send(&mut c, join_text("room")).await;
    expect_error(&mut c, ErrorCode::AlreadyInCall, false).await;
    c.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    expect_error(&mut c, ErrorCode::InvalidMessage, false).await;

    send(
        &mut c,
        json!({"type":"data","data":{"text":"still here"}}).to_string(),
    )
    .await;
    match next(&mut a).await {
        Some(ServerMessage::Data { data, .. }) => assert_eq!(data["text"], "still here"),
        other => panic!("A should get only C's good message, got {other:?}"),
    }
}

#[tokio::test]
async fn a_frame_beyond_the_transport_limit_closes_only_that_connection() {
    let server = server_with(Timing::default()).await;
    let (mut a, _) = joined(&server, "big").await;
    let (mut b, b_id) = joined(&server, "big").await;
    assert!(matches!(
        next(&mut a).await,
        Some(ServerMessage::PeerJoined { .. })
    ));
    let mut huge = connect(&server).await;
    let _ = huge
        .send(Message::Text("z".repeat(4 * 1024 * 1024).into()))
        .await;
    assert!(next(&mut huge).await.is_none(), "connection closed");
    send(
        &mut a,
        json!({"type":"data","data":"fine","to":b_id}).to_string(),
    )
    .await;
    assert!(matches!(
        next(&mut b).await,
        Some(ServerMessage::Data { .. })
    ));
}

#[tokio::test]
async fn a_connection_that_never_joins_is_closed() {
    let server = server_with(Timing {
        join_timeout: Duration::from_millis(300),
        ping_interval: Duration::from_millis(100),
        ..Timing::default()
    })
    .await;
    let mut idle = connect(&server).await;
    expect_error(&mut idle, ErrorCode::JoinRequired, true).await;
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_declared_left() {
    let server = server_with(Timing {
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(500),
        resume_grace: Duration::from_millis(500),
        join_timeout: Duration::from_secs(5),
    })
    .await;
    let (mut a, _) = joined(&server, "hb").await;
    // b joins, then is never read again: no pongs go back.
    let (_b, b_id) = joined(&server, "hb").await;
    assert!(matches!(
        next(&mut a).await,
        Some(ServerMessage::PeerJoined { .. })
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let msg = tokio::time::timeout_at(deadline, next(&mut a))
            .await
            .expect("peerLeft in time");
        if let Some(ServerMessage::PeerLeft { peer_id }) = msg {
            assert_eq!(peer_id, b_id);
            break;
        }
    }
    assert!(
        server
            .metrics_text()
            .contains("between_heartbeat_timeouts_total 1")
    );
}

async fn http_get(server: &RunningServer, path: &str) -> String {
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test]
async fn healthz_and_metrics_answer_over_http() {
    let server = server_with(Timing::default()).await;
    let (_a, _) = joined(&server, "m").await;
    let health = http_get(&server, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
    let metrics = http_get(&server, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    assert!(metrics.contains("\nbetween_rooms 1\n"), "{metrics}");
    assert!(metrics.contains("\nbetween_joins_total 1\n"), "{metrics}");
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let server = server_limited(Timing::default(), 2).await;
    let (a, _) = joined(&server, "limit").await;
    let (_b, _) = joined(&server, "limit").await;
    match tokio_tungstenite::connect_async(server.url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
        }
        other => panic!(
            "a third connection should be refused, got {:?}",
            other.map(|_| ())
        ),
    }
    assert!(
        server
            .metrics_text()
            .contains("between_connections_refused_total 1")
    );
    // A place frees when a connection closes.
    drop(a);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if tokio_tungstenite::connect_async(server.url()).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed place was not given back"
        );
        tokio::task::yield_now().await;
    }
}
