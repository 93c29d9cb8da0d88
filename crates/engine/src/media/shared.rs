//! What a call sends and where what it receives goes: the options the app gives, and the same
//! behind locks for the session (sources can be switched during the call, and a session that
//! restarts after a reconnect takes the same ones).

use super::sources::{AudioSink, AudioSource, PeerAudioTap, VideoSource};
use between_media::h264::VideoEncoderSettings;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What a conference sends and where what it receives goes. Set with
/// [`crate::Conference::set_media`] before `start_call`.
pub struct MediaOptions {
    pub audio: Option<Box<dyn AudioSource>>,
    pub video: Option<Box<dyn VideoSource>>,
    pub video_encoder: VideoEncoderSettings,
    /// The speaker: the mix of every remote peer.
    pub playback: Option<Box<dyn AudioSink>>,
    /// Each remote peer's audio, before mixing.
    pub peer_audio: Option<Arc<dyn PeerAudioTap>>,
    /// Address the media sockets bind to (`0.0.0.0` for any interface).
    pub media_ip: IpAddr,
    /// Echo cancellation, noise suppression and gain control on the microphone, with the
    /// speaker's mix as the echo reference. For real devices; synthetic sources do not need it.
    pub audio_processing: bool,
    /// Send the camera's first N encoded pictures again and again instead of encoding every
    /// picture (`between_media::encoded_loop`): for benchmark stand-ins only.
    pub video_loop: Option<usize>,
    /// Send the camera in simulcast layers (720p, 360p, 180p with a 720p camera: see
    /// `between_media::simulcast`), so the server forwards each subscriber the layer its tile
    /// needs; the server says which layers anyone draws (dynacast) and only those are
    /// encoded. On in the app; off by default, because a receiver that never says a size (a
    /// bot) needs every layer, ~1.3x the CPU of one stream for nothing.
    pub simulcast: bool,
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            audio: None,
            video: None,
            video_encoder: VideoEncoderSettings::camera(),
            playback: None,
            peer_audio: None,
            media_ip: IpAddr::from([0, 0, 0, 0]),
            audio_processing: false,
            video_loop: None,
            simulcast: false,
        }
    }
}

/// The media options behind locks, so a session can be restarted (after a reconnect that
/// could not resume) with the same sources.
pub(crate) struct MediaShared {
    pub audio: Mutex<Option<Box<dyn AudioSource>>>,
    pub video: Mutex<Option<Box<dyn VideoSource>>>,
    pub video_encoder: VideoEncoderSettings,
    pub video_loop: Option<usize>,
    pub simulcast: bool,
    /// Dynacast: the largest size anyone draws the camera at (`None`: full size, as a
    /// session starts), so the pacer encodes only the layers someone can be sent.
    camera_need: Mutex<Option<(u32, u32)>>,
    pub playback: Mutex<Option<Box<dyn AudioSink>>>,
    pub peer_audio: Option<Arc<dyn PeerAudioTap>>,
    pub media_ip: IpAddr,
    pub has_audio: bool,
    pub has_video: bool,
    pub audio_muted: AtomicBool,
    pub video_muted: AtomicBool,
    pub apm: Option<Mutex<between_media::apm::AudioProcessor>>,
    /// The screen being shared, while a share runs.
    pub screen: Mutex<Option<Box<dyn VideoSource>>>,
    /// A share was asked for and not stopped yet (checked before a capture is even opened).
    pub sharing: AtomicBool,
    /// `localShareCreated` fired for the share now running (so its end is announced once).
    pub share_announced: AtomicBool,
    /// The generation of the last share whose source stopped delivering.
    pub share_ended: watch::Sender<u64>,
}

impl MediaShared {
    pub fn new(options: MediaOptions) -> Self {
        Self {
            has_audio: options.audio.is_some(),
            has_video: options.video.is_some(),
            audio: Mutex::new(options.audio),
            video: Mutex::new(options.video),
            video_encoder: options.video_encoder,
            video_loop: options.video_loop,
            simulcast: options.simulcast,
            camera_need: Mutex::new(None),
            playback: Mutex::new(options.playback),
            peer_audio: options.peer_audio,
            media_ip: options.media_ip,
            audio_muted: AtomicBool::new(false),
            video_muted: AtomicBool::new(false),
            apm: options.audio_processing.then(|| {
                let mut apm = between_media::apm::AudioProcessor::new(
                    between_media::apm::ApmSettings::call(),
                );
                // Speaker and microphone buffers (about 40 ms in all here); AEC3 finds the rest.
                apm.set_delay_ms(40);
                Mutex::new(apm)
            }),
            screen: Mutex::new(None),
            sharing: AtomicBool::new(false),
            share_announced: AtomicBool::new(false),
            share_ended: watch::channel(0).0,
        }
    }

    /// Where a video pacer reads its pictures.
    pub(crate) fn set_camera_need(&self, max: Option<(u32, u32)>) {
        if let Ok(mut need) = self.camera_need.lock() {
            *need = max;
        }
    }

    pub(crate) fn camera_need(&self) -> Option<(u32, u32)> {
        self.camera_need.lock().ok().and_then(|n| *n)
    }

    pub(crate) fn source(&self, feed: Feed) -> &Mutex<Option<Box<dyn VideoSource>>> {
        match feed {
            Feed::Camera => &self.video,
            Feed::Screen { .. } => &self.screen,
        }
    }
}

/// Which local picture a video pacer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    Camera,
    /// The screen share; `generation` tells its end apart from an earlier share's.
    Screen {
        generation: u64,
    },
}
