//! `Conference`: one call for its whole lifetime. Holds the call's identity and state; the
//! socket itself lives in the signaling task ([`crate::signaling`]) that `start_call` spawns.

use crate::config::EngineConfig;
use crate::data_handler::DataHandler;
use crate::error::BAError;
use crate::events::{ConferenceEvent, EventHub, EventStream};
use crate::media::sources::VideoSource;
use crate::media::{
    LocalParticipant, MediaInput, MediaOptions, MediaSession, MediaShared, ShareCommand,
};
use crate::peer::Peer;
use crate::roster::Roster;
use crate::signaling::{self, Command};
use between_protocol::{ClientMessage, ErrorCode, PROTOCOL_VERSION, Resume, validate_call_id};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Data messages held while the socket reconnects, beyond which `send` fails.
pub(crate) const MAX_PENDING_DATA: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Joining,
    Connected,
    Reconnecting,
}

pub(crate) struct CallState {
    pub phase: Phase,
    pub peer_id: Option<String>,
    pub resume: Option<Resume>,
    pub roster: Roster,
    pub commands: Option<mpsc::UnboundedSender<Command>>,
    /// Data sent while reconnecting, oldest first.
    pub pending: VecDeque<(Value, Option<String>)>,
    /// Media messages that must not be lost to an outage (a share's `unpublish` and the
    /// offers that add or remove it): sent first once a reconnect resumed.
    pub pending_signals: VecDeque<ClientMessage>,
    pub task: Option<JoinHandle<()>>,
    pub media: Option<Arc<MediaShared>>,
    pub media_session: Option<MediaSession>,
    pub local: Option<LocalParticipant>,
    pub device_watch: Option<JoinHandle<()>>,
}

pub(crate) struct Inner {
    pub config: EngineConfig,
    pub api_key: String,
    pub call_id: String,
    pub extra_data: Value,
    pub events: EventHub,
    state: Mutex<CallState>,
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, CallState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn join_message(&self, resume: Option<Resume>) -> ClientMessage {
        ClientMessage::Join {
            v: PROTOCOL_VERSION,
            api_key: self.api_key.clone(),
            call_id: self.call_id.clone(),
            extra_data: self.extra_data.clone(),
            resume,
        }
    }

    /// Sends a signaling message now if connected. While reconnecting, a share's
    /// `unpublish` and the sending connection's offers wait for the connection to resume (a
    /// resumed session keeps its media, and without them the others would keep a share that
    /// was stopped); anything else is dropped (a session that could not resume starts its
    /// media over anyway).
    pub fn send_signal(&self, msg: ClientMessage) {
        let mut state = self.lock();
        match state.phase {
            Phase::Connected => {
                if let Some(tx) = &state.commands {
                    let _ = tx.send(Command::Signal(msg));
                }
            }
            Phase::Reconnecting
                if matches!(
                    msg,
                    ClientMessage::Unpublish { .. } | ClientMessage::Publish { .. }
                ) =>
            {
                state.pending_signals.push_back(msg);
            }
            _ => {}
        }
    }

    pub fn media_input(&self, input: MediaInput) {
        if let Some(session) = &self.lock().media_session {
            let _ = session.input.send(input);
        }
    }

    pub fn set_local_participant(&self, local: LocalParticipant) {
        self.lock().local = Some(local);
    }

    /// Starts (or restarts, with fresh connections) the media session, if media is set.
    pub fn start_media(self: &Arc<Self>) {
        let shared = self.lock().media.clone();
        if let Some(shared) = shared {
            let session = MediaSession::start(self.clone(), shared);
            let mut state = self.lock();
            state.local = None;
            state.media_session = Some(session);
        }
    }

    /// The call is over: its media stops and its devices are released at once (a camera's
    /// light goes off when the user leaves, not when the app quits). A next call sets its
    /// media again.
    pub fn stop_media(&self) {
        let (session, media) = {
            let mut state = self.lock();
            state.local = None;
            (state.media_session.take(), state.media.take())
        };
        drop(session);
        // A share ends with the call (without `localShareClosed`: the user ended it).
        if let Some(media) = media {
            media.sharing.store(false, Ordering::Relaxed);
            media.share_announced.store(false, Ordering::Relaxed);
            let screen = media.screen.lock().ok().and_then(|mut s| s.take());
            let camera = media.video.lock().ok().and_then(|mut s| s.take());
            let microphone = media.audio.lock().ok().and_then(|mut s| s.take());
            let speaker = media.playback.lock().ok().and_then(|mut s| s.take());
            // Closed here, outside the locks, before the call counts as left: a camera's
            // light and a microphone's indicator go off as the user leaves (a camera may
            // take a moment to let go).
            drop((screen, camera, microphone, speaker));
        }
    }

    pub fn send_data(&self, data: Value, to: Option<&str>) -> Result<(), BAError> {
        let mut state = self.lock();
        if let Some(to) = to
            && state.roster.get(to).is_none()
        {
            return Err(BAError::new(
                ErrorCode::PeerNotFound,
                format!("No participant with ID {to:?} is in this call."),
            ));
        }
        let to = to.map(str::to_string);
        match state.phase {
            Phase::Connected => {
                let sent = state
                    .commands
                    .as_ref()
                    .is_some_and(|tx| tx.send(Command::Data { data, to }).is_ok());
                if sent {
                    Ok(())
                } else {
                    Err(BAError::not_in_call())
                }
            }
            Phase::Reconnecting => {
                if state.pending.len() >= MAX_PENDING_DATA {
                    return Err(BAError::new(
                        ErrorCode::ServerUnreachable,
                        format!(
                            "The connection is down and {MAX_PENDING_DATA} messages are already waiting. Try again once it is back."
                        ),
                    ));
                }
                state.pending.push_back((data, to));
                Ok(())
            }
            Phase::Idle | Phase::Joining => Err(BAError::not_in_call()),
        }
    }
}

/// One call. Create it, subscribe to its [`events`](Conference::events), then
/// [`start_call`](Conference::start_call).
pub struct Conference {
    inner: Arc<Inner>,
}

impl Conference {
    /// Checks the call ID and stores what `start_call` sends. `extra_data` reaches the other
    /// participants as a string (the string itself, or the JSON text of any other value).
    pub fn new(
        config: EngineConfig,
        api_key: impl Into<String>,
        call_id: impl Into<String>,
        extra_data: Value,
    ) -> Result<Self, BAError> {
        let call_id = call_id.into();
        validate_call_id(&call_id)?;
        let api_key = api_key.into();
        if api_key.is_empty() {
            return Err(BAError::new(
                ErrorCode::InvalidApiKey,
                "No API key was given. Enter the server's API key in the settings.",
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                api_key,
                call_id,
                extra_data,
                events: EventHub::default(),
                state: Mutex::new(CallState {
                    phase: Phase::Idle,
                    peer_id: None,
                    resume: None,
                    roster: Roster::default(),
                    commands: None,
                    pending: VecDeque::new(),
                    pending_signals: VecDeque::new(),
                    task: None,
                    media: None,
                    media_session: None,
                    local: None,
                    device_watch: None,
                }),
            }),
        })
    }

    pub fn call_id(&self) -> &str {
        &self.inner.call_id
    }

    /// This participant's ID, once joined (it can change if a reconnect could not resume).
    pub fn peer_id(&self) -> Option<String> {
        self.inner.lock().peer_id.clone()
    }

    pub fn data_handler(&self) -> DataHandler {
        DataHandler {
            inner: self.inner.clone(),
        }
    }

    /// A new subscription to this call's events, from now on.
    pub fn events(&self) -> EventStream {
        self.inner.events.subscribe()
    }

    /// What this conference sends and where what it receives goes. Set before `start_call`.
    pub fn set_media(&self, options: MediaOptions) -> Result<(), BAError> {
        let mut state = self.inner.lock();
        if state.phase != Phase::Idle {
            return Err(BAError::new(
                ErrorCode::AlreadyInCall,
                "Media must be set before the call starts.",
            ));
        }
        state.media = Some(Arc::new(MediaShared::new(options)));
        Ok(())
    }

    /// Moves this call's sound to the speaker with this ID (from `devices::snapshot`), during
    /// the call or before it: the new device is opened first and takes over from the next
    /// 20 ms frame. An unknown ID is a `device_not_found` error and changes nothing.
    pub async fn set_output_device(&self, device_id: &str) -> Result<(), BAError> {
        let Some(shared) = self.inner.lock().media.clone() else {
            return Err(BAError::new(
                ErrorCode::InvalidArgument,
                "Set the call's media before choosing a speaker.",
            ));
        };
        let id = device_id.to_string();
        let speaker =
            crate::devices::open_blocking(move || crate::devices::Speaker::open(Some(&id))).await?;
        let old = shared
            .playback
            .lock()
            .map(|mut p| p.replace(Box::new(speaker) as Box<dyn crate::AudioSink>))
            .ok()
            .flatten();
        crate::devices::close_later(old);
        Ok(())
    }

    /// Tries the microphone this call uses (the system default if none is chosen yet) and
    /// its camera: can they be opened and do they deliver? A camera the call is capturing
    /// from is not opened twice (V4L2 would answer "busy"): it is asked whether it still
    /// delivers.
    pub async fn get_permission_state(&self) -> crate::devices::PermissionState {
        self.get_permission_state_with(None).await
    }

    /// `get_permission_state`, with the camera check chosen by the caller (`None`: as
    /// above). An app showing a camera's preview knows it works, and opening it a second
    /// time would find it busy.
    pub async fn get_permission_state_with(
        &self,
        camera: Option<crate::devices::CameraCheck>,
    ) -> crate::devices::PermissionState {
        use crate::devices::CameraCheck;
        let media = self.inner.lock().media.clone();
        let chosen = media.as_ref().and_then(|m| {
            m.audio
                .lock()
                .ok()
                .and_then(|a| a.as_ref().and_then(|a| a.device_id().map(str::to_string)))
        });
        let camera = match (camera, &media) {
            (Some(chosen), _) => chosen,
            (None, media) => match media {
                None => CameraCheck::Default,
                Some(m) if !m.has_video => CameraCheck::Skip,
                Some(m) => match m.video.lock().ok().and_then(|v| {
                    v.as_ref()
                        .and_then(|v| v.device_id().map(|id| (id.to_string(), v.device_failed())))
                }) {
                    // Capturing and delivering: nothing to try.
                    Some((_, false)) | None => CameraCheck::Skip,
                    // It stopped: trying it again gives the reason.
                    Some((id, true)) => CameraCheck::Chosen(id),
                },
            },
        };
        tokio::task::spawn_blocking(move || {
            crate::devices::permission_state(chosen.as_deref(), camera)
        })
        .await
        .unwrap_or_else(|e| crate::devices::PermissionState {
            state: "failed",
            error: crate::devices::PermissionError {
                reason: "internal".into(),
                raw_str: format!("The device check stopped unexpectedly ({e})."),
            },
        })
    }

    /// Tells this conference's listeners about something that went wrong outside a method
    /// call (an `error` event), e.g. a device the host could not open at start.
    pub fn report_error(&self, error: BAError) {
        self.inner.events.emit(ConferenceEvent::Error(error));
    }

    /// Shares the screen: the whole screen, or a monitor or window from
    /// [`screenshare_targets`](Self::screenshare_targets). Resolves `true` once the share is
    /// published (`localShareCreated` has fired; the others get `screenShareCreated`).
    /// Errors: `screenshare_active` while a share runs, `screenshare_unsupported` where this
    /// system cannot be captured (with the reason), `not_in_call`.
    pub async fn start_screenshare(&self, target: Option<&str>) -> Result<bool, BAError> {
        let claim = self.claim_share()?;
        let id = target.map(str::to_string);
        // The portal's chooser may keep this waiting; a caller that gives up meanwhile drops
        // the claim, which frees sharing again.
        let source =
            crate::devices::open_blocking(move || crate::screen::open(id.as_deref())).await?;
        self.publish_share(claim, source).await
    }

    /// Shares pictures from any source (a file, a synthetic picture) through the same share
    /// track as a screen.
    pub async fn start_screenshare_from(
        &self,
        source: Box<dyn VideoSource>,
    ) -> Result<bool, BAError> {
        let claim = self.claim_share()?;
        self.publish_share(claim, source).await
    }

    /// Stops this user's share; the others get `screenShareClosed`. `false` if nothing was
    /// being shared.
    pub async fn stop_screenshare(&self) -> Result<bool, BAError> {
        let (reply, answer) = oneshot::channel();
        if !self.share_command(ShareCommand::Stop { reply }) {
            return Err(BAError::not_in_call());
        }
        answer.await.unwrap_or(Ok(false))
    }

    /// Whether a share was started and has not ended.
    pub fn is_sharing(&self) -> bool {
        self.inner
            .lock()
            .media
            .as_ref()
            .is_some_and(|m| m.sharing.load(Ordering::Relaxed))
    }

    /// What can be shared here (the whole screen first, then monitors and windows), for a
    /// picker. `screenshare_unsupported` where nothing can be captured.
    pub async fn screenshare_targets(&self) -> Result<Vec<crate::screen::ScreenTarget>, BAError> {
        crate::devices::open_blocking(crate::screen::targets).await
    }

    fn claim_share(&self) -> Result<ShareClaim, BAError> {
        let state = self.inner.lock();
        if state.phase != Phase::Connected {
            return Err(BAError::not_in_call());
        }
        let Some(shared) = state.media.clone() else {
            return Err(BAError::new(
                ErrorCode::InvalidArgument,
                "This call was started without media, so there is no connection to share on.",
            ));
        };
        if shared.sharing.swap(true, Ordering::Relaxed) {
            return Err(BAError::new(
                ErrorCode::ScreenshareActive,
                "You are already sharing your screen. Stop that share first.",
            ));
        }
        Ok(ShareClaim {
            shared,
            handed_over: false,
        })
    }

    async fn publish_share(
        &self,
        mut claim: ShareClaim,
        source: Box<dyn VideoSource>,
    ) -> Result<bool, BAError> {
        let (reply, answer) = oneshot::channel();
        if !self.share_command(ShareCommand::Start { source, reply }) {
            return Err(BAError::not_in_call());
        }
        // From here the media task owns the share (and clears the flag when it ends).
        claim.handed_over = true;
        let shared = claim.shared.clone();
        match answer.await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                shared.sharing.store(false, Ordering::Relaxed);
                Err(BAError::new(
                    ErrorCode::NotInCall,
                    "The call's connection was reset before the share started. Try again.",
                ))
            }
        }
    }

    fn share_command(&self, command: ShareCommand) -> bool {
        self.inner
            .lock()
            .media_session
            .as_ref()
            .is_some_and(|s| s.input.send(MediaInput::Share(command)).is_ok())
    }

    /// This user's published media, once `localParticipant` has fired.
    pub fn local_participant(&self) -> Option<LocalParticipant> {
        self.inner.lock().local.clone()
    }

    /// The other participants, in join order.
    pub fn peers(&self) -> Vec<Peer> {
        self.inner.lock().roster.peers().to_vec()
    }

    pub fn is_in_call(&self) -> bool {
        matches!(
            self.inner.lock().phase,
            Phase::Connected | Phase::Reconnecting
        )
    }

    /// Connects, verifies the API key and joins. Resolves once joined; `PeerJoined` has then
    /// been emitted for everyone already in the call.
    pub async fn start_call(&self) -> Result<(), BAError> {
        {
            let mut state = self.inner.lock();
            if state.phase != Phase::Idle {
                return Err(BAError::new(
                    ErrorCode::AlreadyInCall,
                    "This conference is already in the call. End it before starting again.",
                ));
            }
            state.phase = Phase::Joining;
        }
        let join = self.inner.join_message(None);
        let (ws, joined) = match signaling::connect_and_join(&self.inner.config, &join).await {
            Ok(ok) => ok,
            Err(e) => {
                self.inner.lock().phase = Phase::Idle;
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let joined_peers = {
            let mut state = self.inner.lock();
            state.phase = Phase::Connected;
            state.peer_id = Some(joined.peer_id.clone());
            state.resume = Some(Resume {
                peer_id: joined.peer_id,
                token: joined.resume_token,
                last_seq: 0,
            });
            state.commands = Some(tx);
            state.roster.replace(joined.peers).joined
        };
        for peer in joined_peers {
            self.inner.events.emit(ConferenceEvent::PeerJoined(peer));
        }
        // Media first: a subscribe offer may be the very next message, and it must find the
        // media session there to take it.
        self.inner.start_media();
        let task = tokio::spawn(signaling::run(self.inner.clone(), ws, rx));
        let watch = self
            .inner
            .config
            .watch_devices
            .then(|| tokio::spawn(crate::devices::watch::run(Arc::downgrade(&self.inner))));
        let mut state = self.inner.lock();
        state.task = Some(task);
        state.device_watch = watch;
        Ok(())
    }

    /// Leaves the call: tells the server (the others get `peerLeft` at once), closes the
    /// socket, emits `socketClose` then `sessionTerminated`.
    pub async fn end_call(&self) -> Result<(), BAError> {
        let (commands, task) = {
            let mut state = self.inner.lock();
            if !matches!(state.phase, Phase::Connected | Phase::Reconnecting) {
                return Err(BAError::not_in_call());
            }
            (state.commands.take(), state.task.take())
        };
        self.inner.stop_media();
        if let Some(watch) = self.inner.lock().device_watch.take() {
            watch.abort();
        }
        if let Some(tx) = commands {
            let (done, said_goodbye) = oneshot::channel();
            if tx.send(Command::Leave(done)).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(2), said_goodbye).await;
            }
        }
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        {
            let mut state = self.inner.lock();
            state.phase = Phase::Idle;
            state.peer_id = None;
            state.resume = None;
            state.pending.clear();
            state.pending_signals.clear();
            state.roster.clear();
        }
        self.inner.events.emit(ConferenceEvent::SocketClose);
        self.inner.events.emit(ConferenceEvent::SessionTerminated);
        Ok(())
    }
}

impl Drop for Conference {
    /// A dropped conference vanishes without a goodbye, like a crashed app: the server
    /// notices the closed socket and tells the others after its resume grace.
    fn drop(&mut self) {
        self.inner.stop_media();
        let mut state = self.inner.lock();
        for task in [state.task.take(), state.device_watch.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

/// The right to start a share, taken by `start_screenshare` before it opens the screen: given
/// back when dropped, unless the share reached the media task (which then owns it). So a start
/// that fails, or whose caller stops waiting, never leaves `screenshare_active` behind.
struct ShareClaim {
    shared: Arc<MediaShared>,
    handed_over: bool,
}

impl Drop for ShareClaim {
    fn drop(&mut self) {
        if !self.handed_over {
            self.shared.sharing.store(false, Ordering::Relaxed);
        }
    }
}
