//! The call's state and its one owner, `Inner`: the phase, identity, roster, pending messages,
//! the signaling task and the media session. `Conference` (the API) and the signaling task
//! work on it; the call's other parts reach it only through a [`Link`] (`Inner` is their
//! [`Signals`]).

use crate::config::EngineConfig;
use crate::error::BAError;
use crate::events::EventHub;
use crate::link::{Link, Signals};
use crate::media::session::{MediaInput, MediaSession};
use crate::media::shared::MediaShared;
use crate::peer::Peer;
use crate::roster::Roster;
use between_protocol::{ClientMessage, ErrorCode, PROTOCOL_VERSION, Resume};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// What the API and media ask of the signaling task.
pub(crate) enum Command {
    Data {
        data: Value,
        to: Option<String>,
    },
    /// A signaling message of the media session.
    Signal(ClientMessage),
    Leave(oneshot::Sender<()>),
}

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
    pub device_watch: Option<JoinHandle<()>>,
}

impl CallState {
    pub fn new() -> Self {
        Self {
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
            device_watch: None,
        }
    }

    /// Out of the call, however it ended (`end_call`, or the engine giving up): no identity,
    /// nobody to talk to, nothing waiting. Media is stopped by `Inner::stop_media`, outside
    /// the lock. Returns the signaling task for the caller to end (or, from the task itself,
    /// to let go of).
    pub fn reset(&mut self) -> Option<JoinHandle<()>> {
        self.phase = Phase::Idle;
        self.peer_id = None;
        self.resume = None;
        self.commands = None;
        self.pending.clear();
        self.pending_signals.clear();
        self.roster.clear();
        self.task.take()
    }
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
    pub fn new(config: EngineConfig, api_key: String, call_id: String, extra_data: Value) -> Self {
        Self {
            config,
            api_key,
            call_id,
            extra_data,
            events: EventHub::default(),
            state: Mutex::new(CallState::new()),
        }
    }

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

    /// Starts (or restarts, with fresh connections) the media session, if media is set.
    pub fn start_media(self: &Arc<Self>) {
        let shared = self.lock().media.clone();
        if let Some(shared) = shared {
            let session = MediaSession::start(self.events.clone(), self.link(), shared);
            self.lock().media_session = Some(session);
        }
    }

    /// A handle for the call's parts (media, devices, `LocalParticipant`, `DataHandler`).
    pub fn link(self: &Arc<Self>) -> Link {
        let me: Weak<dyn Signals> = Arc::downgrade(self) as Weak<Self>;
        Link::new(me)
    }

    /// The call is over: its media stops and its devices are released at once (a camera's
    /// light goes off when the user leaves, not when the app quits). A next call sets its
    /// media again.
    pub fn stop_media(&self) {
        let (session, media) = {
            let mut state = self.lock();
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

impl Signals for Inner {
    fn send_signal(&self, msg: ClientMessage) {
        Inner::send_signal(self, msg);
    }

    fn send_data(&self, data: Value, to: Option<&str>) -> Result<(), BAError> {
        Inner::send_data(self, data, to)
    }

    fn peer_id(&self) -> Option<String> {
        self.lock().peer_id.clone()
    }

    fn peer(&self, id: &str) -> Option<Peer> {
        self.lock().roster.get(id).cloned()
    }

    fn media(&self) -> Option<Arc<MediaShared>> {
        self.lock().media.clone()
    }
}
