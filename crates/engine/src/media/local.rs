//! `LocalParticipant`: this user's published media, muting and switching devices.

use super::shared::MediaShared;
use super::sources::{AudioSource, VideoSource};
use crate::error::BAError;
use crate::link::Link;
use between_protocol::{ClientMessage, ErrorCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// This user's published media (the API's `LocalParticipant`).
#[derive(Clone)]
pub struct LocalParticipant {
    pub(crate) link: Link,
    pub(crate) shared: Arc<MediaShared>,
}

impl std::fmt::Debug for LocalParticipant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalParticipant")
            .field("audio_muted", &self.is_audio_muted())
            .field("video_muted", &self.is_video_muted())
            .finish()
    }
}

fn started_without_camera() -> BAError {
    BAError::new(
        ErrorCode::InvalidArgument,
        "This call was started without a camera; rejoin with one to switch it.",
    )
}

impl LocalParticipant {
    /// This user's peer ID.
    pub fn id(&self) -> Option<String> {
        self.link.peer_id()
    }

    pub fn is_audio_muted(&self) -> bool {
        self.shared.audio_muted.load(Ordering::Relaxed)
    }

    pub fn is_video_muted(&self) -> bool {
        self.shared.video_muted.load(Ordering::Relaxed)
    }

    /// Stops sending the microphone; the others get `audioPaused`.
    pub fn mute_audio(&self) {
        self.set(&self.shared.audio_muted, true);
    }

    pub fn unmute_audio(&self) {
        self.set(&self.shared.audio_muted, false);
    }

    /// Stops sending the camera; the others get `videoPaused`.
    pub fn mute_video(&self) {
        self.set(&self.shared.video_muted, true);
    }

    pub fn unmute_video(&self) {
        self.set(&self.shared.video_muted, false);
    }

    /// Switches the microphone during the call: the new device is opened first, then takes
    /// over from the next 20 ms frame, on the same track (nobody renegotiates). An unknown
    /// ID is a `device_not_found` error and changes nothing.
    pub async fn set_audio_input(&self, device_id: &str) -> Result<(), BAError> {
        if !self.shared.has_audio {
            return Err(BAError::new(
                ErrorCode::InvalidArgument,
                "This call was started without a microphone; rejoin with one to switch it.",
            ));
        }
        let id = device_id.to_string();
        let mic =
            crate::devices::open_blocking(move || crate::devices::Microphone::open(Some(&id)))
                .await?;
        self.set_audio_source(Box::new(mic));
        Ok(())
    }

    /// Switches the camera during the call: the new one is opened (and has delivered its
    /// first picture) before it takes over, on the same track. Choosing the camera already
    /// in use changes nothing; an unknown ID is `device_not_found` and changes nothing.
    pub async fn set_video_input(&self, device_id: &str) -> Result<(), BAError> {
        if self.video_input().as_deref() == Some(device_id) {
            return Ok(());
        }
        if !self.shared.has_video {
            return Err(started_without_camera());
        }
        let id = device_id.to_string();
        let camera =
            crate::devices::open_blocking(move || crate::devices::camera::open(Some(&id))).await?;
        self.set_video_source(Box::new(camera))
    }

    /// Wraps what the camera track sends (e.g. in a tap that also shows it locally), in
    /// place: for a source the engine put there itself, such as the camera it fell back to.
    pub fn wrap_video_source(
        &self,
        wrap: impl FnOnce(Box<dyn VideoSource>) -> Box<dyn VideoSource>,
    ) {
        if let Ok(mut video) = self.shared.video.lock()
            && let Some(source) = video.take()
        {
            *video = Some(wrap(source));
        }
    }

    /// The camera the call is capturing from, while it delivers (not a file, pattern or a
    /// camera that stopped).
    pub fn video_input(&self) -> Option<String> {
        let video = self.shared.video.lock().ok()?;
        let source = video.as_ref()?;
        let id = source.device_id()?;
        (!source.device_failed()).then(|| id.to_string())
    }

    /// Replaces what the microphone track sends, from the next frame on.
    pub fn set_audio_source(&self, source: Box<dyn AudioSource>) {
        let old = self
            .shared
            .audio
            .lock()
            .map(|mut a| a.replace(source))
            .ok()
            .flatten();
        // The old device closes outside the lock, off the async workers.
        crate::devices::close_later(old);
    }

    /// Replaces what the camera track sends, from the next frame on (same track, no
    /// renegotiation; the encoder follows a change of picture size). A call started without
    /// a camera has no track to put it on.
    pub fn set_video_source(&self, source: Box<dyn VideoSource>) -> Result<(), BAError> {
        if !self.shared.has_video {
            return Err(started_without_camera());
        }
        let old = self
            .shared
            .video
            .lock()
            .map(|mut v| v.replace(source))
            .ok()
            .flatten();
        crate::devices::close_later(old);
        Ok(())
    }

    /// Whether the call publishes a camera track (so camera on/off and switching apply).
    pub fn has_video(&self) -> bool {
        self.shared.has_video
    }

    /// Whether the call publishes a microphone track.
    pub fn has_audio(&self) -> bool {
        self.shared.has_audio
    }

    fn set(&self, flag: &AtomicBool, muted: bool) {
        if flag.swap(muted, Ordering::Relaxed) == muted {
            return;
        }
        self.link.send_signal(ClientMessage::MediaState {
            audio_muted: self.is_audio_muted(),
            video_muted: self.is_video_muted(),
        });
    }
}
