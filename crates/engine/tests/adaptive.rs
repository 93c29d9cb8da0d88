//! Adaptive stream through the real SFU: the size a participant draws a video at reaches the
//! server, which forwards nothing for a video drawn nowhere and resumes it (from a keyframe)
//! when a tile shows it again.
#![allow(clippy::unwrap_used)]

mod common;

use between_engine::media::sources::{PatternVideo, ToneAudio};
use between_engine::{MediaOptions, RemoteVideo};
use between_media::h264::VideoEncoderSettings;
use common::*;
use std::time::Duration;

/// Samples `video`'s byte count until it stays the same for `quiet`; panics after `within`.
async fn until_quiet(video: &RemoteVideo, quiet: Duration, within: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + within;
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let mut last = video.bytes_received();
    let mut since = tokio::time::Instant::now();
    loop {
        ticks.tick().await;
        let now = tokio::time::Instant::now();
        let bytes = video.bytes_received();
        if bytes != last {
            last = bytes;
            since = now;
        } else if now - since >= quiet {
            return bytes;
        }
        assert!(
            now < deadline,
            "video bytes still arriving {within:?} after its tile closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_tile_receives_no_video_and_a_shown_one_resumes() {
    let server = server().await;
    let url = server.url();
    let (_a, b, mut video) = call_with(&url, "adaptive", (320, 240), 400_000, false).await;

    let tile = video.draw(320, 240);
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(10), video.next())
            .await
            .expect("frames while drawn")
            .expect("track alive");
    }

    // The last tile closes: the server stops forwarding the video (its audio goes on) and
    // nothing arrives for 3 s.
    drop(tile);
    let stopped = until_quiet(&video, Duration::from_secs(3), Duration::from_secs(8)).await;

    // Shown again: pictures within a keyframe request's time (at most one of the five is the
    // last one from before, which the watch channel still holds unseen).
    let _tile = video.draw(160, 120);
    let resumed = tokio::time::Instant::now();
    let mut frames = 0;
    while frames < 5 {
        tokio::time::timeout(Duration::from_secs(5), video.next())
            .await
            .expect("frames again once a tile shows the video")
            .expect("track alive");
        frames += 1;
    }
    assert!(video.bytes_received() > stopped);
    eprintln!(
        "hidden: no bytes for 3 s; shown again: 5 frames in {:?}",
        resumed.elapsed()
    );

    // The page's override on the Peer beats the tile, and letting go of it gives the tile back.
    let peer = b.conf.peers().into_iter().next().expect("A is B's peer");
    peer.set_video_size(Some((0, 0))).unwrap();
    let stopped = until_quiet(&video, Duration::from_secs(3), Duration::from_secs(8)).await;
    peer.set_video_size(None).unwrap();
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(5), video.next())
            .await
            .expect("frames again once the override is cleared")
            .expect("track alive");
    }
    assert!(video.bytes_received() > stopped);
    assert!(peer.set_video_size(Some((100_000, 1))).is_err());
}

/// Waits for a picture of `width` pixels across; panics after `within`.
async fn until_width(video: &mut RemoteVideo, width: u32, within: Duration) -> Duration {
    let start = tokio::time::Instant::now();
    let deadline = start + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, video.next())
            .await
            .unwrap_or_else(|_| panic!("no {width}-wide picture within {within:?}"))
            .expect("track alive");
        if frame.frame.width() == width {
            return start.elapsed();
        }
    }
}

/// A call where A sends a `width`x`height` test pattern (15 fps, `bps`, in simulcast if
/// asked) and a tone, and B receives it: both participants and B's handle on A's video.
async fn call_with(
    url: &str,
    call: &str,
    (width, height): (u32, u32),
    bps: u32,
    simulcast: bool,
) -> (Participant, Participant, RemoteVideo) {
    let a = Participant::with_media(
        url,
        call,
        "A",
        MediaOptions {
            audio: Some(Box::new(ToneAudio::new(440.0))),
            video: Some(Box::new(PatternVideo::new(width, height, 15.0).unwrap())),
            video_encoder: VideoEncoderSettings {
                bitrate_bps: bps,
                max_fps: 15.0,
                screen: false,
            },
            simulcast,
            ..MediaOptions::default()
        },
    )
    .await;
    let mut b = Participant::with_media(url, call, "B", MediaOptions::default()).await;
    let video = b.video_created(Duration::from_secs(10)).await;
    (a, b, video)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tile_gets_a_small_layer_of_a_simulcast_camera() {
    let server = server().await;
    let url = server.url();
    let (_a, _b, mut video) = call_with(&url, "layers", (1280, 720), 1_000_000, true).await;

    // A thumbnail: the 320x180 layer (the smallest covering it).
    let tile = video.draw(300, 160);
    let small = until_width(&mut video, 320, Duration::from_secs(10)).await;
    // The stage: the full picture, switched at its keyframe.
    tile.resize(1280, 720);
    let big = until_width(&mut video, 1280, Duration::from_secs(10)).await;
    // Half: the middle layer.
    tile.resize(600, 340);
    let half = until_width(&mut video, 640, Duration::from_secs(10)).await;
    // And the small one again: the pictures that follow are all small.
    tile.resize(320, 180);
    until_width(&mut video, 320, Duration::from_secs(10)).await;
    for _ in 0..10 {
        let frame = tokio::time::timeout(Duration::from_secs(5), video.next())
            .await
            .expect("pictures go on")
            .expect("track alive");
        assert_eq!(
            frame.frame.width(),
            320,
            "only the small layer once switched"
        );
    }
    eprintln!("small layer after {small:?}, full after {big:?}, half after {half:?}");
}

/// RTP packets the server received from publishers so far.
fn received(server: &between_server::RunningServer) -> u64 {
    server
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("between_rtp_received_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the received counter")
}

/// Packets a second the server receives, measured over one-second windows until `ok` holds
/// for one; panics after `within`.
async fn until_rate(
    server: &between_server::RunningServer,
    what: &str,
    ok: impl Fn(u64) -> bool,
    within: Duration,
) -> u64 {
    let deadline = tokio::time::Instant::now() + within;
    let mut window = tokio::time::interval(Duration::from_secs(1));
    window.tick().await;
    let mut last = received(server);
    loop {
        window.tick().await;
        let now = received(server);
        let rate = now - last;
        last = now;
        if ok(rate) {
            return rate;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {rate} packets/s after {within:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_encodes_only_the_layers_someone_draws() {
    let server = server().await;
    let url = server.url();
    let (_a, _b, mut video) = call_with(&url, "dynacast", (1280, 720), 1_000_000, true).await;
    // Audio alone is 50 packets a second; each layer adds at least one a picture (15/s).
    let tile = video.draw(1280, 720);
    until_width(&mut video, 1280, Duration::from_secs(10)).await;
    let all = until_rate(
        &server,
        "every layer",
        |r| r >= 50 + 3 * 15,
        Duration::from_secs(10),
    )
    .await;
    // A thumbnail: the publisher stops encoding the two upper layers.
    tile.resize(300, 160);
    until_width(&mut video, 320, Duration::from_secs(10)).await;
    let small = until_rate(
        &server,
        "the smallest layer",
        |r| (50 + 10..=50 + 2 * 15).contains(&r),
        Duration::from_secs(10),
    )
    .await;
    // Hidden: no video at all from the publisher.
    drop(tile);
    let hidden = until_rate(&server, "audio alone", |r| r <= 55, Duration::from_secs(10)).await;
    // Shown again at full size: every layer comes back, and the picture with it.
    let _tile = video.draw(1280, 720);
    until_width(&mut video, 1280, Duration::from_secs(10)).await;
    eprintln!("packets/s from the publisher: all layers {all}, smallest {small}, hidden {hidden}");
}
