//! The sending connection over a session's life: the first offer with camera and microphone,
//! then screen shares added and removed. Each change is one offer and one answer, in order; a
//! command that arrives while an answer is awaited waits its turn, and an answer that never
//! comes fails the change after [`ANSWER_TIMEOUT`] instead of hanging it.

use super::local::LocalParticipant;
use super::publish::Publisher;
use super::send_video::start_video;
use super::shared::{Feed, MediaShared};
use super::sources::VideoSource;
use super::tasks::Tasks;
use super::track::LocalTrack;
use crate::error::BAError;
use crate::events::{ConferenceEvent, EventHub};
use crate::link::Link;
use between_protocol::{ClientMessage, ErrorCode, TrackKind};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long the server may take to answer an offer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum ShareCommand {
    /// Publish this source as the screen share.
    Start {
        source: Box<dyn VideoSource>,
        reply: oneshot::Sender<Result<(), BAError>>,
    },
    /// Stop the share; `false` if there was none.
    Stop {
        reply: oneshot::Sender<Result<bool, BAError>>,
    },
}

enum Command {
    User(ShareCommand),
    /// The share's source stopped delivering (window closed, display gone).
    SourceEnded {
        generation: u64,
    },
}

enum Awaiting {
    Nothing,
    LocalMedia,
    ShareStart {
        reply: oneshot::Sender<Result<(), BAError>>,
        track: LocalTrack,
    },
    ShareStop {
        reply: Option<oneshot::Sender<Result<bool, BAError>>>,
    },
}

struct ActiveShare {
    track: LocalTrack,
    generation: u64,
    /// The share's pacer and keyframe reader; dropping them stops sending at once.
    _tasks: Tasks,
}

pub(super) struct Sending {
    events: EventHub,
    link: Link,
    shared: Arc<MediaShared>,
    /// This user's published media once the first answer came (the call reads it).
    local: Arc<Mutex<Option<LocalParticipant>>>,
    publisher: Option<Publisher>,
    awaiting: Awaiting,
    deadline: Option<Instant>,
    queued: VecDeque<Command>,
    share: Option<ActiveShare>,
    generation: u64,
    /// Screen tracks added so far (each gets its own track ID, even a failed one).
    screen_tracks: u64,
}

fn share_failed(what: &str, e: impl std::fmt::Display) -> BAError {
    BAError::new(
        ErrorCode::Internal,
        format!("The screen share could not be {what} ({e}). Try again."),
    )
}

impl Sending {
    pub fn new(
        (events, link): (EventHub, Link),
        shared: Arc<MediaShared>,
        local: Arc<Mutex<Option<LocalParticipant>>>,
    ) -> Self {
        // A session restarted after a lost connection does not carry the old share over:
        // say it ended (if it had started), so the user can share again.
        if shared.sharing.swap(false, Ordering::Relaxed) {
            clear_source(&shared);
        }
        if shared.share_announced.swap(false, Ordering::Relaxed) {
            events.emit(ConferenceEvent::LocalShareClosed);
        }
        Self {
            events,
            link,
            shared,
            local,
            publisher: None,
            awaiting: Awaiting::Nothing,
            deadline: None,
            queued: VecDeque::new(),
            share: None,
            // Only needs to differ between this session's shares.
            generation: 0,
            screen_tracks: 0,
        }
    }

    /// When the awaited answer is overdue, if one is awaited.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn expect_answer(&mut self, awaiting: Awaiting) {
        self.awaiting = awaiting;
        self.deadline = Some(Instant::now() + ANSWER_TIMEOUT);
    }

    /// Offers the camera and microphone tracks.
    pub async fn publish_local_media(&mut self) {
        let mut publisher = match Publisher::new(&self.shared).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot set up publishing");
                return;
            }
        };
        match publisher.offer().await {
            Ok(sdp) => {
                self.link.send_signal(ClientMessage::Publish { sdp });
                self.expect_answer(Awaiting::LocalMedia);
            }
            Err(e) => tracing::warn!(error = %e, "cannot offer the local media"),
        }
        self.publisher = Some(publisher);
    }

    pub async fn command(&mut self, command: ShareCommand) {
        self.queue(Command::User(command)).await;
    }

    pub async fn source_ended(&mut self, generation: u64) {
        self.queue(Command::SourceEnded { generation }).await;
    }

    async fn queue(&mut self, command: Command) {
        self.queued.push_back(command);
        self.run_queued().await;
    }

    async fn run_queued(&mut self) {
        while matches!(self.awaiting, Awaiting::Nothing) {
            let Some(command) = self.queued.pop_front() else {
                return;
            };
            match command {
                Command::User(ShareCommand::Start { source, reply }) => {
                    self.start(source, reply).await;
                }
                Command::User(ShareCommand::Stop { reply }) => self.stop(Some(reply)).await,
                Command::SourceEnded { generation } => {
                    if self
                        .share
                        .as_ref()
                        .is_some_and(|s| s.generation == generation)
                    {
                        tracing::info!("the shared screen stopped delivering: share ended");
                        self.stop(None).await;
                        self.events.emit(ConferenceEvent::LocalShareClosed);
                    }
                }
            }
        }
    }

    async fn start(
        &mut self,
        source: Box<dyn VideoSource>,
        reply: oneshot::Sender<Result<(), BAError>>,
    ) {
        if self.share.is_some() {
            let _ = reply.send(Err(BAError::new(
                ErrorCode::ScreenshareActive,
                "You are already sharing your screen. Stop that share first.",
            )));
            return;
        }
        if self.publisher.is_none() {
            match Publisher::new(&self.shared).await {
                Ok(p) => self.publisher = Some(p),
                Err(e) => {
                    self.abandon(reply, share_failed("started", e));
                    return;
                }
            }
        }
        let Some(publisher) = self.publisher.as_mut() else {
            return;
        };
        self.screen_tracks += 1;
        let track = match publisher.add_screen(self.screen_tracks).await {
            Ok(t) => t,
            Err(e) => {
                self.abandon(reply, share_failed("started", e));
                return;
            }
        };
        if let Ok(mut screen) = self.shared.screen.lock() {
            *screen = Some(source);
        }
        match publisher.offer().await {
            Ok(sdp) => {
                self.link.send_signal(ClientMessage::Publish { sdp });
                self.expect_answer(Awaiting::ShareStart { reply, track });
            }
            Err(e) => {
                publisher.remove(&track).await;
                self.abandon(reply, share_failed("started", e));
            }
        }
    }

    /// A start that failed: nothing is shared (and the server, which may have taken the track
    /// already, drops it).
    fn abandon(&mut self, reply: oneshot::Sender<Result<(), BAError>>, error: BAError) {
        self.link.send_signal(ClientMessage::Unpublish {
            kind: TrackKind::Screen,
        });
        clear_source(&self.shared);
        self.shared.sharing.store(false, Ordering::Relaxed);
        let _ = reply.send(Err(error));
    }

    async fn stop(&mut self, reply: Option<oneshot::Sender<Result<bool, BAError>>>) {
        let Some(share) = self.share.take() else {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(false));
            }
            return;
        };
        // Everyone drops the track now; the renegotiation below only tidies the connection.
        self.link.send_signal(ClientMessage::Unpublish {
            kind: TrackKind::Screen,
        });
        let track = share.track;
        drop(share._tasks);
        clear_source(&self.shared);
        self.shared.sharing.store(false, Ordering::Relaxed);
        self.shared.share_announced.store(false, Ordering::Relaxed);
        let Some(publisher) = self.publisher.as_mut() else {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(true));
            }
            return;
        };
        publisher.remove(&track).await;
        match publisher.offer().await {
            Ok(sdp) => {
                self.link.send_signal(ClientMessage::Publish { sdp });
                self.expect_answer(Awaiting::ShareStop { reply });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renegotiate after the share");
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(true));
                }
            }
        }
    }

    /// The server answered the latest offer.
    pub async fn answered(&mut self, sdp: String, tasks: &mut Tasks) {
        let awaiting = std::mem::replace(&mut self.awaiting, Awaiting::Nothing);
        self.deadline = None;
        let Some(publisher) = self.publisher.as_mut() else {
            tracing::warn!("an answer without an offer");
            return;
        };
        let applied = publisher.apply_answer(sdp).await;
        match awaiting {
            Awaiting::Nothing => tracing::warn!("an answer nobody waited for"),
            Awaiting::LocalMedia => match applied {
                Ok(()) => {
                    let local = publisher
                        .start_local_media((&self.events, &self.link), &self.shared, tasks)
                        .await;
                    if let Ok(mut slot) = self.local.lock() {
                        *slot = Some(local.clone());
                    }
                    self.events.emit(ConferenceEvent::LocalParticipant(local));
                }
                Err(e) => tracing::warn!(error = %e, "publishing failed"),
            },
            Awaiting::ShareStart { reply, track } => match applied {
                Ok(()) => {
                    self.generation += 1;
                    let mut share_tasks = Tasks::default();
                    start_video(
                        &track,
                        Feed::Screen {
                            generation: self.generation,
                        },
                        &self.shared,
                        &mut share_tasks,
                    )
                    .await;
                    self.share = Some(ActiveShare {
                        track,
                        generation: self.generation,
                        _tasks: share_tasks,
                    });
                    self.shared.share_announced.store(true, Ordering::Relaxed);
                    self.events.emit(ConferenceEvent::LocalShareCreated);
                    let _ = reply.send(Ok(()));
                }
                Err(e) => {
                    publisher.remove(&track).await;
                    self.abandon(reply, share_failed("published", e));
                }
            },
            Awaiting::ShareStop { reply } => {
                if let Err(e) = applied {
                    tracing::warn!(error = %e, "renegotiation after the share failed");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(true));
                }
            }
        }
        self.run_queued().await;
    }

    /// The awaited answer did not come in time.
    pub async fn give_up_waiting(&mut self) {
        self.deadline = None;
        match std::mem::replace(&mut self.awaiting, Awaiting::Nothing) {
            Awaiting::Nothing => {}
            Awaiting::LocalMedia => tracing::warn!("the server did not answer the media offer"),
            Awaiting::ShareStart { reply, track } => {
                if let Some(publisher) = &self.publisher {
                    publisher.remove(&track).await;
                }
                self.abandon(
                    reply,
                    BAError::new(
                        ErrorCode::ServerUnreachable,
                        "The server did not accept the screen share in time. Check the connection and try again.",
                    ),
                );
            }
            Awaiting::ShareStop { reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(true));
                }
            }
        }
        self.run_queued().await;
    }
}

fn clear_source(shared: &MediaShared) {
    let old = shared.screen.lock().ok().and_then(|mut s| s.take());
    // The capture closes here, outside the lock.
    drop(old);
}
