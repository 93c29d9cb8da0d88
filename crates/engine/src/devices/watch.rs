//! Watching the devices during a call: `devicesUpdated` with the whole list whenever it
//! changes (cpal has no change notification, so the list is polled), and a fallback to the
//! system default when the microphone or speaker in use goes away or its stream fails. A
//! camera that goes away is replaced by the first other camera; with none left, the camera
//! is turned off (the others see `videoPaused`) and an error says why.

use super::{
    DeviceKind, DeviceSnapshot, Microphone, Speaker, audio, camera, open_blocking, snapshot,
};
use crate::error::BAError;
use crate::events::{ConferenceEvent, EventHub};
use crate::link::Link;
use crate::media::local::LocalParticipant;
use crate::media::shared::MediaShared;
use between_protocol::ErrorCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Half the 1 s the API allows between a change and its event.
const POLL: Duration = Duration::from_millis(500);

/// A listing still not back after this (a sound server that keeps the connection open but
/// stopped answering) is given up: the next one connects anew.
const LISTING_DEADLINE: Duration = Duration::from_secs(3);

pub(crate) async fn run(events: EventHub, link: Link) {
    let mut last: Option<DeviceSnapshot> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A listing that outlasted a poll is waited for again, never started twice.
    let mut pending: Option<(tokio::task::JoinHandle<DeviceSnapshot>, Instant)> = None;
    loop {
        tick.tick().await;
        let (mut listing, started) = pending
            .take()
            .unwrap_or_else(|| (tokio::task::spawn_blocking(snapshot), Instant::now()));
        let now = match tokio::time::timeout(POLL, &mut listing).await {
            Ok(Ok(now)) => now,
            Ok(Err(_)) => return,
            Err(_) if started.elapsed() >= LISTING_DEADLINE => {
                // Its thread stays blocked on the old connection; one, not one per poll.
                tracing::warn!("the sound server stopped answering; connecting again");
                audio::forget_current_host();
                continue;
            }
            Err(_) => {
                pending = Some((listing, started));
                continue;
            }
        };
        if !link.is_alive() {
            return;
        }
        if last.as_ref() != Some(&now) {
            events.emit(ConferenceEvent::DevicesUpdated(now.devices.clone()));
        }
        if let Some(media) = link.media() {
            fall_back_if_gone((&events, &link), &media, &now).await;
        }
        last = Some(now);
    }
}

fn present(list: &DeviceSnapshot, kind: DeviceKind, id: &str) -> bool {
    list.devices
        .iter()
        .any(|d| d.kind == kind && d.device_id == id)
}

async fn fall_back_if_gone(
    (events, link): (&EventHub, &Link),
    media: &Arc<MediaShared>,
    list: &DeviceSnapshot,
) {
    let lost_speaker = media.playback.lock().ok().and_then(|sink| {
        let sink = sink.as_ref()?;
        let id = sink.device_id()?.to_string();
        (sink.device_failed() || !present(list, DeviceKind::AudioOutput, &id)).then_some(id)
    });
    if let Some(lost) = lost_speaker {
        match open_blocking(|| Speaker::open(None)).await {
            Ok(speaker) => {
                let to = speaker.device_id().to_string();
                if let Ok(mut sink) = media.playback.lock() {
                    *sink = Some(Box::new(speaker));
                }
                tracing::info!(%lost, %to, "speaker gone; using the default");
                events.emit(ConferenceEvent::DeviceFallback {
                    kind: DeviceKind::AudioOutput,
                    lost,
                    to,
                });
            }
            Err(e) => events.emit(ConferenceEvent::Error(e)),
        }
    }
    let lost_mic = media.audio.lock().ok().and_then(|source| {
        let source = source.as_ref()?;
        let id = source.device_id()?.to_string();
        (source.device_failed() || !present(list, DeviceKind::AudioInput, &id)).then_some(id)
    });
    if let Some(lost) = lost_mic {
        match open_blocking(|| Microphone::open(None)).await {
            Ok(mic) => {
                let to = mic.device_id().to_string();
                if let Ok(mut source) = media.audio.lock() {
                    *source = Some(Box::new(mic));
                }
                tracing::info!(%lost, %to, "microphone gone; using the default");
                events.emit(ConferenceEvent::DeviceFallback {
                    kind: DeviceKind::AudioInput,
                    lost,
                    to,
                });
            }
            Err(e) => events.emit(ConferenceEvent::Error(e)),
        }
    }
    fall_back_camera((events, link), media, list).await;
}

async fn fall_back_camera(
    (events, link): (&EventHub, &Link),
    media: &Arc<MediaShared>,
    list: &DeviceSnapshot,
) {
    // Only a failed capture counts: V4L2 reports an unplugged camera on its stream (ENODEV),
    // and a camera may be open by a path the list does not show (a by-id link, a node
    // outside /dev in a sandbox).
    let lost = media.video.lock().ok().and_then(|source| {
        let source = source.as_ref()?;
        let id = source.device_id()?.to_string();
        source.device_failed().then_some(id)
    });
    let Some(lost) = lost else { return };
    let other = list
        .devices
        .iter()
        .find(|d| d.kind == DeviceKind::VideoInput && d.device_id != lost)
        .map(|d| d.device_id.clone());
    let opened = match other {
        Some(id) => Some(open_blocking(move || camera::open(Some(&id))).await),
        None => None,
    };
    match opened {
        Some(Ok(cam)) => {
            let to = cam.id().to_string();
            if let Ok(mut source) = media.video.lock() {
                *source = Some(Box::new(cam));
            }
            tracing::info!(%lost, %to, "camera gone; using another");
            events.emit(ConferenceEvent::DeviceFallback {
                kind: DeviceKind::VideoInput,
                lost,
                to,
            });
        }
        failed => {
            // No camera to take over: the call goes on without video, and says so once.
            let local = LocalParticipant {
                link: link.clone(),
                shared: media.clone(),
            };
            let already_off = local.is_video_muted();
            local.mute_video();
            if let Ok(mut source) = media.video.lock() {
                // The track keeps running on the muted path; a stand-in picture keeps it
                // fed until the user picks a camera (setVideoInput) and unmutes.
                *source = Some(Box::new(camera::Stopped::new()));
            }
            tracing::warn!(%lost, "camera gone and no other camera; video off");
            if !already_off {
                let why = match failed {
                    Some(Err(e)) => format!(" (the other camera failed too: {})", e.message),
                    _ => String::new(),
                };
                events.emit(ConferenceEvent::Error(BAError::new(
                    ErrorCode::DeviceUnavailable,
                    format!("The camera was disconnected, so your video is off{why}. Plug it in or pick another camera, then turn video on."),
                )));
            }
        }
    }
}
