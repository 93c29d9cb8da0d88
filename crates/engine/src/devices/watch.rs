//! Watching the devices during a call: `devicesUpdated` with the whole list whenever it
//! changes (cpal has no change notification, so the list is polled), and a fallback to the
//! system default when the microphone or speaker in use goes away or its stream fails.

use super::{DeviceKind, DeviceSnapshot, Microphone, Speaker, open_blocking, snapshot};
use crate::conference::Inner;
use crate::events::ConferenceEvent;
use crate::media::MediaShared;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Half the 1 s the API allows between a change and its event.
const POLL: Duration = Duration::from_millis(500);

pub(crate) async fn run(inner: Weak<Inner>) {
    let mut last: Option<DeviceSnapshot> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(now) = tokio::task::spawn_blocking(snapshot).await else {
            return;
        };
        let Some(inner) = inner.upgrade() else { return };
        if last.as_ref() != Some(&now) {
            inner
                .events
                .emit(ConferenceEvent::DevicesUpdated(now.devices.clone()));
        }
        let media = inner.lock().media.clone();
        if let Some(media) = media {
            fall_back_if_gone(&inner, &media, &now).await;
        }
        last = Some(now);
    }
}

fn present(list: &DeviceSnapshot, kind: DeviceKind, id: &str) -> bool {
    list.devices
        .iter()
        .any(|d| d.kind == kind && d.device_id == id)
}

async fn fall_back_if_gone(inner: &Arc<Inner>, media: &Arc<MediaShared>, list: &DeviceSnapshot) {
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
                inner.events.emit(ConferenceEvent::DeviceFallback {
                    kind: DeviceKind::AudioOutput,
                    lost,
                    to,
                });
            }
            Err(e) => inner.events.emit(ConferenceEvent::Error(e)),
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
                inner.events.emit(ConferenceEvent::DeviceFallback {
                    kind: DeviceKind::AudioInput,
                    lost,
                    to,
                });
            }
            Err(e) => inner.events.emit(ConferenceEvent::Error(e)),
        }
    }
}
