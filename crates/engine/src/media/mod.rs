//! Media for one call: publishing local tracks to the SFU and playing out everyone else's.
//!
//! A session runs as one driver task per call. It offers a *publisher* connection with the
//! local tracks (audio: Opus, video: H.264), answers the server's offers on a *subscriber*
//! connection, and starts a task per remote track. Remote audio goes into a per-peer jitter
//! buffer; one playout task pops all of them every 20 ms, decodes (with FEC and concealment),
//! hands each peer's audio to the tap and the mix to the speaker. Remote video is reassembled,
//! decoded and published as the latest frame of a [`RemoteVideo`]; lost packets or an
//! undecodable picture ask the sender for a keyframe.

mod playout;
mod publish;
mod receive;
mod share;
pub mod sources;

use crate::conference::Inner;
use crate::error::BAError;
use between_media::h264::VideoEncoderSettings;
use between_media::video::I420Frame;
use between_protocol::{ClientMessage, ErrorCode, TrackInfo};
use between_transport::{MediaAddress, PcEvent, build, make_answer};
use publish::Feed;
pub(crate) use share::ShareCommand;
use sources::{AudioSink, AudioSource, PeerAudioTap, VideoSource};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCPeerConnectionState;

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
    pub(crate) fn source(&self, feed: Feed) -> &Mutex<Option<Box<dyn VideoSource>>> {
        match feed {
            Feed::Camera => &self.video,
            Feed::Screen { .. } => &self.screen,
        }
    }
}

/// A decoded remote picture.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    pub frame: Arc<I420Frame>,
    /// When it was decoded.
    pub at: Instant,
    /// Decoded frames of this track so far, counting this one.
    pub number: u64,
}

/// A remote peer's video: always the latest decoded frame, never a backlog.
#[derive(Clone)]
pub struct RemoteVideo {
    rx: watch::Receiver<Option<VideoFrame>>,
}

impl RemoteVideo {
    pub fn latest(&self) -> Option<VideoFrame> {
        self.rx.borrow().clone()
    }

    /// Whether the track is gone (no frame will follow the latest).
    pub fn has_ended(&self) -> bool {
        self.rx.has_changed().is_err()
    }

    /// Waits for the next frame; `None` once the track is gone.
    pub async fn next(&mut self) -> Option<VideoFrame> {
        self.rx.changed().await.ok()?;
        self.rx.borrow_and_update().clone()
    }
}

impl PartialEq for RemoteVideo {
    fn eq(&self, other: &Self) -> bool {
        self.rx.same_channel(&other.rx)
    }
}

impl std::fmt::Debug for RemoteVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteVideo")
    }
}

pub(crate) enum MediaInput {
    PublishAnswer(String),
    SubscribeOffer { sdp: String, tracks: Vec<TrackInfo> },
    Share(ShareCommand),
}

/// A running media session.
pub(crate) struct MediaSession {
    pub input: mpsc::UnboundedSender<MediaInput>,
    task: JoinHandle<()>,
}

impl MediaSession {
    pub fn start(inner: Arc<Inner>, shared: Arc<MediaShared>) -> Self {
        let (input, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(inner, shared, rx));
        Self { input, task }
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long a receiving connection may take to come up before it is given up and the server
/// asked for a new one. On loopback it takes ~0.2 s, at 10 % loss about a second; now and then
/// a DTLS handshake under loss never completes (webrtc-rs), and the call would stay silent.
const RECEIVE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

struct Subscriber {
    pc: Arc<dyn webrtc::peer_connection::PeerConnection>,
    gathered: watch::Receiver<bool>,
    connected: Arc<AtomicBool>,
    created: tokio::time::Instant,
    /// Remote ICE-TCP candidates already dialled (every renegotiation repeats them).
    tcp_candidates: HashSet<String>,
}

async fn drive(
    inner: Arc<Inner>,
    shared: Arc<MediaShared>,
    mut input: mpsc::UnboundedReceiver<MediaInput>,
) {
    let started = Instant::now();
    let playout = Arc::new(playout::Playout::new(started));
    let mut tasks = Tasks::default();
    tasks.push(tokio::spawn(playout::run(
        playout.clone(),
        inner.clone(),
        shared.clone(),
    )));

    let mut sending = share::Sending::new(inner.clone(), shared.clone());
    if shared.has_audio || shared.has_video {
        sending.publish_local_media().await;
    }
    let mut share_ended = shared.share_ended.subscribe();
    let remote_shares = receive::RemoteShares::default();

    let (track_tx, mut track_rx) = mpsc::unbounded_channel();
    let mut subscriber: Option<Subscriber> = None;
    let mut track_infos: Vec<TrackInfo> = Vec::new();
    loop {
        let deadline = sending.deadline();
        let stuck_at = subscriber
            .as_ref()
            .filter(|s| !s.connected.load(Ordering::Relaxed))
            .map(|s| s.created + RECEIVE_CONNECT_TIMEOUT);
        tokio::select! {
            msg = input.recv() => match msg {
                None => break,
                Some(MediaInput::PublishAnswer(sdp)) => {
                    sending.answered(sdp, &mut tasks).await;
                }
                Some(MediaInput::Share(command)) => sending.command(command).await,
                Some(MediaInput::SubscribeOffer { sdp, tracks }) => {
                    track_infos = tracks;
                    remote_shares.keep_only(&track_infos, &inner);
                    if subscriber.is_none() {
                        match build(MediaAddress::client(shared.media_ip)).await {
                            Ok(built) => {
                                let mut events = built.events;
                                let tx = track_tx.clone();
                                let connected = Arc::new(AtomicBool::new(false));
                                let up = connected.clone();
                                tasks.push(tokio::spawn(async move {
                                    while let Some(ev) = events.recv().await {
                                        match ev {
                                            PcEvent::Track(t) => {
                                                let _ = tx.send(t);
                                            }
                                            PcEvent::State(state) => {
                                                tracing::info!(%state, "receiving connection");
                                                if state == RTCPeerConnectionState::Connected {
                                                    up.store(true, Ordering::Relaxed);
                                                }
                                            }
                                        }
                                    }
                                }));
                                subscriber = Some(Subscriber {
                                    pc: built.pc,
                                    gathered: built.gathered,
                                    connected,
                                    created: tokio::time::Instant::now(),
                                    tcp_candidates: HashSet::new(),
                                });
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot create the receiving connection");
                                continue;
                            }
                        }
                    }
                    if let Some(sub) = subscriber.as_mut() {
                        match make_answer(&sub.pc, &mut sub.gathered, sdp, Some(&mut sub.tcp_candidates)).await {
                            Ok(answer) => inner.send_signal(ClientMessage::SubscribeAnswer { sdp: answer }),
                            Err(e) => tracing::warn!(error = %e, "cannot answer the subscribe offer"),
                        }
                    }
                }
            },
            track = track_rx.recv() => {
                let Some(track) = track else { continue };
                tasks.push(tokio::spawn(receive::track(
                    track,
                    track_infos.clone(),
                    inner.clone(),
                    playout.clone(),
                    remote_shares.clone(),
                )));
            }
            changed = share_ended.changed() => {
                if changed.is_err() {
                    continue;
                }
                let generation = *share_ended.borrow_and_update();
                sending.source_ended(generation).await;
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                if deadline.is_some() => sending.give_up_waiting().await,
            () = tokio::time::sleep_until(stuck_at.unwrap_or_else(tokio::time::Instant::now)),
                if stuck_at.is_some() => {
                tracing::warn!(
                    "the receiving connection did not come up within {RECEIVE_CONNECT_TIMEOUT:?}; asking the server for a new one"
                );
                if let Some(old) = subscriber.take() {
                    let _ = old.pc.close().await;
                }
                inner.send_signal(ClientMessage::Resubscribe);
            }
        }
    }
}

/// Tasks that die with the session.
#[derive(Default)]
pub(crate) struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    pub fn push(&mut self, task: JoinHandle<()>) {
        self.0.retain(|t| !t.is_finished());
        self.0.push(task);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// This user's published media (the API's `LocalParticipant`).
#[derive(Clone)]
pub struct LocalParticipant {
    pub(crate) inner: std::sync::Weak<Inner>,
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
        self.inner.upgrade().and_then(|i| i.lock().peer_id.clone())
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
        if let Some(inner) = self.inner.upgrade() {
            inner.send_signal(ClientMessage::MediaState {
                audio_muted: self.is_audio_muted(),
                video_muted: self.is_video_muted(),
            });
        }
    }
}
