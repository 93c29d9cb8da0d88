//! `Conference`: one call for its whole lifetime. Holds the call's identity and state; the
//! socket itself lives in the signaling task ([`crate::signaling`]) that `start_call` spawns.

use crate::call::{Command, Inner, Phase};
use crate::config::EngineConfig;
use crate::data_handler::DataHandler;
use crate::error::BAError;
use crate::events::{ConferenceEvent, EventStream};
use crate::media::local::LocalParticipant;
use crate::media::session::MediaInput;
use crate::media::share::ShareCommand;
use crate::media::shared::{MediaOptions, MediaShared};
use crate::media::sources::VideoSource;
use crate::peer::Peer;
use crate::signaling;
use between_protocol::{ErrorCode, Resume, validate_call_id};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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
            inner: Arc::new(Inner::new(config, api_key, call_id, extra_data)),
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
            link: self.inner.link(),
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
        self.inner
            .lock()
            .media_session
            .as_ref()
            .and_then(|s| s.local())
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
        let watch = self.inner.config.watch_devices.then(|| {
            tokio::spawn(crate::devices::watch::run(
                self.inner.events.clone(),
                self.inner.link(),
            ))
        });
        let mut state = self.inner.lock();
        state.task = Some(task);
        // One left running by a call the engine gave up on stops now.
        if let Some(old) = std::mem::replace(&mut state.device_watch, watch) {
            old.abort();
        }
        Ok(())
    }

    /// Leaves the call: tells the server (the others get `peerLeft` at once), closes the
    /// socket, emits `socketClose` then `sessionTerminated`.
    pub async fn end_call(&self) -> Result<(), BAError> {
        let (commands, task, watch) = {
            let mut state = self.inner.lock();
            if !matches!(state.phase, Phase::Connected | Phase::Reconnecting) {
                return Err(BAError::not_in_call());
            }
            (
                state.commands.take(),
                state.task.take(),
                state.device_watch.take(),
            )
        };
        self.inner.stop_media();
        if let Some(watch) = watch {
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
        // After the task is gone: a drop while saying goodbye cannot leave it reconnecting.
        drop(self.inner.lock().reset());
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
