//! Screen sharing through the engine's API and the real SFU, with a synthetic picture as the
//! screen (`start_screenshare_from`): the share is a second video track beside the camera,
//! events fire on both sides, a participant who joins during a share sees it (the sharer is
//! asked for a keyframe), and the API's errors. The X11 and portal captures have their own
//! tests (`crates/cli/tests/screen.rs`, `portal.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use between_engine::media::sources::PatternVideo;
use between_engine::{ConferenceEvent, ErrorCode, MediaOptions, PeerEvent, RemoteVideo};
use between_media::pattern::read_counter;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn camera() -> MediaOptions {
    MediaOptions {
        video: Some(Box::new(PatternVideo::new(320, 240, 15.0).unwrap())),
        ..MediaOptions::default()
    }
}

/// A "screen": the moving test pattern at another size than the camera.
fn screen() -> Box<PatternVideo> {
    Box::new(PatternVideo::new(640, 360, 10.0).unwrap())
}

async fn share_of(p: &mut Participant, sharer: &str) -> RemoteVideo {
    let sharer = sharer.to_string();
    p.wait_for(WAIT, "screenShareCreated", |e| match e {
        ConferenceEvent::ScreenShareCreated { peer, video } if peer.id() == sharer => {
            Some(video.clone())
        }
        _ => None,
    })
    .await
}

/// Waits for a decoded share picture of `size` whose counter reads.
async fn legible(video: &mut RemoteVideo, size: (u32, u32)) {
    tokio::time::timeout(WAIT, async {
        while let Some(f) = video.next().await {
            if (f.frame.width(), f.frame.height()) == size && read_counter(&f.frame).is_some() {
                return;
            }
        }
        panic!("the share ended before a legible picture");
    })
    .await
    .expect("a legible share picture");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_travels_beside_the_camera_and_reaches_late_joiners() {
    let server = server().await;
    let url = server.url();
    let mut ada = Participant::with_media(&url, "share", "Ada", camera()).await;
    ada.local_participant().await;
    let mut bo = Participant::with_media(&url, "share", "Bo", MediaOptions::default()).await;
    let ada_id = ada.id();

    // Not in a call: refused.
    let outsider = Participant::new(&url, KEY, "share", "Cy");
    let err = outsider
        .conf
        .start_screenshare_from(screen())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotInCall);

    // A start that fails while opening the screen (no display, or no such window where there
    // is one) leaves the share free: not sharing, and the next start is not
    // `screenshare_active`.
    let err = ada
        .conf
        .start_screenshare(Some("window:0"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code,
            ErrorCode::ScreenshareUnsupported | ErrorCode::InvalidArgument
        ),
        "{err:?}"
    );
    assert!(!ada.conf.is_sharing());

    assert!(ada.conf.start_screenshare_from(screen()).await.unwrap());
    ada.wait_for(WAIT, "localShareCreated", |e| {
        matches!(e, ConferenceEvent::LocalShareCreated).then_some(())
    })
    .await;
    assert!(ada.conf.is_sharing());
    let err = ada.conf.start_screenshare_from(screen()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ScreenshareActive);

    // Bo gets the camera as Ada's videoCreated and the share as screenShareCreated.
    let mut share = share_of(&mut bo, &ada_id).await;
    legible(&mut share, (640, 360)).await;

    // Someone joining during the share sees it: the sharer is asked for a keyframe.
    let mut cy = Participant::with_media(&url, "share", "Cy", MediaOptions::default()).await;
    // Both of Ada's videos, in whichever order they come.
    let (mut late, mut camera_of_ada) = (None, None);
    while late.is_none() || camera_of_ada.is_none() {
        let (share, camera) = cy
            .wait_for(WAIT, "Ada's share and camera", |e| match e {
                ConferenceEvent::ScreenShareCreated { peer, video } if peer.id() == ada_id => {
                    Some((Some(video.clone()), None))
                }
                ConferenceEvent::Peer {
                    peer_id,
                    event: PeerEvent::VideoCreated(v),
                } if *peer_id == ada_id => Some((None, Some(v.clone()))),
                _ => None,
            })
            .await;
        late = late.or(share);
        camera_of_ada = camera_of_ada.or(camera);
    }
    let (mut late, mut camera_of_ada) = (late.unwrap(), camera_of_ada.unwrap());
    legible(&mut late, (640, 360)).await;
    legible(&mut camera_of_ada, (320, 240)).await;

    // Stopping: everyone is told, a second stop has nothing to stop.
    assert!(ada.conf.stop_screenshare().await.unwrap());
    assert!(!ada.conf.is_sharing());
    for p in [&mut bo, &mut cy] {
        let id = ada_id.clone();
        p.wait_for(WAIT, "screenShareClosed", |e| match e {
            ConferenceEvent::ScreenShareClosed(peer) if *peer == id => Some(()),
            _ => None,
        })
        .await;
    }
    assert!(!ada.conf.stop_screenshare().await.unwrap());
    // The camera goes on.
    legible(&mut camera_of_ada, (320, 240)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_stopped_during_an_outage_closes_for_the_others_once_back() {
    let server = server().await;
    let proxy = Proxy::start(server.local_addr()).await;
    // Ada's signaling goes through the proxy (her media goes straight to the server).
    let mut config = quick_config(&proxy.url);
    config.liveness_timeout = Duration::from_millis(1500);
    config.connect_timeout = Duration::from_millis(700);
    let mut ada = Participant::with_config(config, KEY, "outage", "Ada");
    ada.conf
        .set_media(MediaOptions {
            media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            ..MediaOptions::default()
        })
        .unwrap();
    ada.conf.start_call().await.unwrap();
    let mut bo =
        Participant::with_media(&server.url(), "outage", "Bo", MediaOptions::default()).await;
    let ada_id = ada.id();
    assert!(ada.conf.start_screenshare_from(screen()).await.unwrap());
    share_of(&mut bo, &ada_id).await;

    // The signaling path goes silent; Ada notices and reconnects (in vain, for now).
    proxy.freeze();
    ada.wait_for(WAIT, "socketFailed", |e| {
        matches!(e, ConferenceEvent::SocketFailed).then_some(())
    })
    .await;
    // She stops sharing meanwhile; the path comes back and the session resumes.
    let thaw = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.thaw();
    };
    let (stopped, ()) = tokio::join!(ada.conf.stop_screenshare(), thaw);
    assert!(stopped.unwrap());
    let (_, resumed) = ada
        .wait_for(WAIT, "socketReconnected", |e| match e {
            ConferenceEvent::SocketReconnected { peer_id, resumed } => {
                Some((peer_id.clone(), *resumed))
            }
            _ => None,
        })
        .await;
    assert!(resumed, "the session resumed");
    let id = ada_id.clone();
    bo.wait_for(WAIT, "screenShareClosed", |e| match e {
        ConferenceEvent::ScreenShareClosed(peer) if *peer == id => Some(()),
        _ => None,
    })
    .await;
}
