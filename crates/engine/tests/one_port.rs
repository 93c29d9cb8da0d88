//! All media through one port: a server started with a media port (`--udp-port`) advertises
//! only that port, UDP and ICE-TCP; participants hear each other through it; garbage at it is
//! dropped without disturbing the call; a participant that leaves has its paths closed.
#![allow(clippy::unwrap_used)]

mod common;

use between_engine::MediaOptions;
use between_engine::media::sources::ToneAudio;
use between_media::analysis::tone_snr_db;
use between_server::{ApiKeys, RunningServer, ServerConfig};
use common::*;
use std::sync::Arc;
use std::time::Duration;

async fn one_port_server() -> RunningServer {
    let mut keys = ApiKeys::default();
    keys.add(KEY, Some("alpha")).unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), keys);
    config.udp_port = Some(0);
    between_server::start(config).await.expect("server starts")
}

/// A metric's value, 0 when absent.
fn metric(server: &RunningServer, name: &str) -> u64 {
    server
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `done` until it holds, for at most 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_media_goes_through_one_port() {
    let server = one_port_server().await;
    let port = server.media_port().expect("a media port");
    let url = server.url();
    let heard_by_a = Arc::new(AudioRecorder::default());
    let heard_by_b = Arc::new(AudioRecorder::default());
    let a = Participant::with_media(
        &url,
        "one-port",
        "A",
        MediaOptions {
            audio: Some(Box::new(ToneAudio::new(440.0))),
            peer_audio: Some(heard_by_a.clone()),
            ..MediaOptions::default()
        },
    )
    .await;
    let b = Participant::with_media(
        &url,
        "one-port",
        "B",
        MediaOptions {
            audio: Some(Box::new(ToneAudio::new(660.0))),
            peer_audio: Some(heard_by_b.clone()),
            ..MediaOptions::default()
        },
    )
    .await;
    let (a_id, b_id) = (a.id(), b.id());
    heard_by_b.until(|r| r.len(&a_id) >= 48_000).await;
    heard_by_a.until(|r| r.len(&b_id) >= 48_000).await;
    let a_at_b = tone_snr_db(&heard_by_b.tail(&a_id, 24_000), 48_000, 440.0);
    let b_at_a = tone_snr_db(&heard_by_a.tail(&b_id, 24_000), 48_000, 660.0);
    assert!(
        a_at_b >= 30.0 && b_at_a >= 30.0,
        "{a_at_b:.1} / {b_at_a:.1} dB"
    );

    // Four connections (each participant publishes and subscribes), each reached over UDP
    // through the one port.
    assert_eq!(
        metric(
            &server,
            "between_edge_paths_opened_total{transport=\"udp\"}"
        ),
        4
    );

    // Garbage at the port is counted and dropped; the call goes on.
    // In batches, each counted before the next goes, so no socket buffer overflows.
    let garbage = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for batch in 0..10u32 {
        for i in batch * 50..(batch + 1) * 50 {
            let bytes: Vec<u8> = (0..(1 + i % 300)).map(|j| (i * 7 + j) as u8).collect();
            let _ = garbage.send_to(&bytes, ("127.0.0.1", port)).await;
        }
        let sent = u64::from((batch + 1) * 50);
        eventually("garbage counted", || {
            metric(&server, "between_edge_unroutable_total") >= sent
        })
        .await;
    }
    // A TCP client that never says who it is, and one that sends nonsense.
    let silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut noisy = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut noisy, b"\x00\x05hello")
        .await
        .unwrap();
    eventually("the garbage counted", || {
        metric(&server, "between_edge_unroutable_total") >= 501
    })
    .await;
    let at = heard_by_b.len(&a_id);
    heard_by_b.until(|r| r.len(&a_id) >= at + 48_000).await;
    let db = tone_snr_db(&heard_by_b.tail(&a_id, 24_000), 48_000, 440.0);
    assert!(db >= 30.0, "tone after the garbage: {db:.1} dB");
    let mut byte = [0u8; 1];
    let closed = tokio::io::AsyncReadExt::read(&mut noisy, &mut byte).await;
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "the noisy TCP client is closed"
    );

    // B leaves: its two connections' paths close; A's stay.
    b.conf.end_call().await.unwrap();
    eventually("B's paths closed", || {
        metric(&server, "between_edge_paths{transport=\"udp\"}") == 2
    })
    .await;
    drop(silent);
}
