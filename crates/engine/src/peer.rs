//! `Peer`: a remote participant. A cheap handle; clones share state, so a volume set through
//! one clone is the volume the media pipeline reads.

use crate::error::BAError;
use crate::media::drawn::Reporter;
use crate::media::video::RemoteVideo;
use between_protocol::{ErrorCode, PeerInfo};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The largest drawn size a page may set: beyond any display, so anything above is a mistake.
const MAX_DRAWN: u32 = 16_384;

/// Events of one remote peer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The peer's camera video: a handle to its decoded frames.
    VideoCreated(RemoteVideo),
    AudioPaused,
    AudioResumed,
    VideoPaused,
    VideoResumed,
    /// *Ours*: the peer's audio level, 0..1, every 100 ms while its audio plays.
    AudioLevel(f32),
    /// *Ours*: the peer started or stopped speaking.
    Speaking(bool),
    /// *Ours*: the server stopped (`true`) or resumed (`false`) sending this peer's camera
    /// because this participant's link cannot carry it beside the audio.
    PoorConnection(bool),
}

impl PeerEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::VideoCreated(_) => "videoCreated",
            Self::AudioPaused => "audioPaused",
            Self::AudioResumed => "audioResumed",
            Self::VideoPaused => "videoPaused",
            Self::VideoResumed => "videoResumed",
            Self::AudioLevel(_) => "audioLevel",
            Self::Speaking(_) => "speaking",
            Self::PoorConnection(_) => "poorConnection",
        }
    }
}

#[derive(Clone)]
pub struct Peer(Arc<Shared>);

struct Shared {
    id: String,
    extra_data: String,
    /// f32 bits; 1.0 until the user changes it.
    volume: AtomicU32,
    audio_muted: AtomicBool,
    video_muted: AtomicBool,
    camera_size: Mutex<CameraSize>,
}

/// The page's override of the size the peer's camera is drawn at, kept across the camera's
/// tracks (a republish makes a new one).
#[derive(Default)]
struct CameraSize {
    forced: Option<(u32, u32)>,
    reporter: Weak<Reporter>,
}

impl Peer {
    pub(crate) fn new(info: PeerInfo) -> Self {
        Self(Arc::new(Shared {
            id: info.id,
            extra_data: info.extra_data,
            volume: AtomicU32::new(1.0f32.to_bits()),
            audio_muted: AtomicBool::new(false),
            video_muted: AtomicBool::new(false),
            camera_size: Mutex::default(),
        }))
    }

    /// The peer's ID, assigned by the server.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The `extraData` the peer joined with, as a string.
    pub fn extra_data(&self) -> &str {
        &self.0.extra_data
    }

    /// This peer's playback volume, 0 to 1.
    pub fn set_volume(&self, volume: f64) -> Result<(), BAError> {
        if !(0.0..=1.0).contains(&volume) {
            return Err(BAError::new(
                ErrorCode::InvalidArgument,
                format!("Volume must be between 0 and 1; got {volume}."),
            ));
        }
        self.0
            .volume
            .store((volume as f32).to_bits(), Ordering::Relaxed);
        Ok(())
    }

    pub fn volume(&self) -> f32 {
        f32::from_bits(self.0.volume.load(Ordering::Relaxed))
    }

    /// *Ours*: receive the peer's camera as if drawn at `width`x`height` whatever its tiles
    /// say (`Some((0, 0))`: receive no video at all, to save the link; `None`: follow the
    /// tiles again). Lasts for the call, across the peer's camera changes.
    pub fn set_video_size(&self, size: Option<(u32, u32)>) -> Result<(), BAError> {
        if let Some((w, h)) = size
            && (w > MAX_DRAWN || h > MAX_DRAWN)
        {
            return Err(BAError::new(
                ErrorCode::InvalidArgument,
                format!("A video size must be at most {MAX_DRAWN}x{MAX_DRAWN}; got {w}x{h}."),
            ));
        }
        let mut c = self.camera_size();
        c.forced = size;
        if let Some(r) = c.reporter.upgrade() {
            r.force(size);
        }
        Ok(())
    }

    fn camera_size(&self) -> std::sync::MutexGuard<'_, CameraSize> {
        self.0.camera_size.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peer's camera is now `reporter`'s track: the override applies to it.
    pub(crate) fn attach_camera(&self, reporter: &Arc<Reporter>) {
        let mut c = self.camera_size();
        c.reporter = Arc::downgrade(reporter);
        if c.forced.is_some() {
            reporter.force(c.forced);
        }
    }

    /// Whether the peer has muted its microphone.
    pub fn is_audio_muted(&self) -> bool {
        self.0.audio_muted.load(Ordering::Relaxed)
    }

    /// Whether the peer has turned its camera off.
    pub fn is_video_muted(&self) -> bool {
        self.0.video_muted.load(Ordering::Relaxed)
    }

    /// Records the peer's mute state; returns the events for what changed.
    pub(crate) fn set_media_state(&self, audio_muted: bool, video_muted: bool) -> Vec<PeerEvent> {
        let mut events = Vec::new();
        if self.0.audio_muted.swap(audio_muted, Ordering::Relaxed) != audio_muted {
            events.push(if audio_muted {
                PeerEvent::AudioPaused
            } else {
                PeerEvent::AudioResumed
            });
        }
        if self.0.video_muted.swap(video_muted, Ordering::Relaxed) != video_muted {
            events.push(if video_muted {
                PeerEvent::VideoPaused
            } else {
                PeerEvent::VideoResumed
            });
        }
        events
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.0.id)
            .field("extra_data", &self.0.extra_data)
            .finish()
    }
}

impl PartialEq for Peer {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_is_validated_and_shared_by_clones() {
        let peer = Peer::new(PeerInfo {
            id: "p".into(),
            extra_data: "x".into(),
        });
        let clone = peer.clone();
        assert_eq!(peer.volume(), 1.0);
        clone.set_volume(0.25).expect("valid");
        assert_eq!(peer.volume(), 0.25);
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            let err = peer.set_volume(bad).expect_err("invalid");
            assert_eq!(err.code, ErrorCode::InvalidArgument);
        }
        assert_eq!(peer.volume(), 0.25, "a rejected volume changes nothing");
    }

    #[test]
    fn media_state_reports_only_changes() {
        let peer = Peer::new(PeerInfo {
            id: "p".into(),
            extra_data: String::new(),
        });
        assert_eq!(peer.set_media_state(false, false), vec![]);
        assert_eq!(
            peer.set_media_state(true, false),
            vec![PeerEvent::AudioPaused]
        );
        assert_eq!(
            peer.set_media_state(false, true),
            vec![PeerEvent::AudioResumed, PeerEvent::VideoPaused]
        );
        assert!(peer.is_video_muted() && !peer.is_audio_muted());
    }
}
