//! One media session: the task that offers the publishing connection, answers the server's
//! offers on the receiving connection, starts a task per remote track, and runs the shares.

use super::local::LocalParticipant;
use super::playout;
use super::receive;
use super::share::{self, ShareCommand};
use super::shared::MediaShared;
use super::tasks::Tasks;
use crate::events::EventHub;
use crate::link::Link;
use between_protocol::{ClientMessage, TrackInfo, TrackKind};
use between_transport::{MediaAddress, PcEvent, build, make_answer};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCPeerConnectionState;

pub(crate) enum MediaInput {
    PublishAnswer(String),
    /// The server's offer number `offer` for its receiving connection number `connection`.
    SubscribeOffer {
        sdp: String,
        tracks: Vec<TrackInfo>,
        offer: u64,
        connection: u64,
    },
    Share(ShareCommand),
    /// Dynacast: the largest size anyone draws our `kind` video at (`None`: full size).
    VideoNeeded {
        kind: TrackKind,
        max: Option<(u32, u32)>,
    },
}

/// A running media session.
pub(crate) struct MediaSession {
    pub input: mpsc::UnboundedSender<MediaInput>,
    /// This user's published media, once the first answer came.
    local: Arc<Mutex<Option<LocalParticipant>>>,
    task: JoinHandle<()>,
}

impl MediaSession {
    pub fn start(events: EventHub, link: Link, shared: Arc<MediaShared>) -> Self {
        let (input, rx) = mpsc::unbounded_channel();
        let local = Arc::default();
        let task = tokio::spawn(drive((events, link), shared, Arc::clone(&local), rx));
        Self { input, local, task }
    }

    pub fn local(&self) -> Option<LocalParticipant> {
        self.local.lock().ok()?.clone()
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
    /// The server's number for the connection this one talks to.
    connection: u64,
    pc: Arc<dyn webrtc::peer_connection::PeerConnection>,
    gathered: watch::Receiver<bool>,
    connected: Arc<AtomicBool>,
    created: tokio::time::Instant,
    /// Remote ICE-TCP candidates already dialled (every renegotiation repeats them).
    tcp_candidates: HashSet<String>,
}

async fn drive(
    (events, link): (EventHub, Link),
    shared: Arc<MediaShared>,
    local: Arc<Mutex<Option<LocalParticipant>>>,
    mut input: mpsc::UnboundedReceiver<MediaInput>,
) {
    let started = Instant::now();
    // A new session's publisher starts with every layer, as the server expects of it.
    shared.set_camera_need(None);
    let playout = Arc::new(playout::Playout::new(started));
    let mut tasks = Tasks::default();
    tasks.push(tokio::spawn(playout::run(
        playout.clone(),
        (events.clone(), link.clone()),
        shared.clone(),
    )));

    let mut sending = share::Sending::new((events.clone(), link.clone()), shared.clone(), local);
    if shared.has_audio || shared.has_video {
        sending.publish_local_media().await;
    }
    let mut share_ended = shared.share_ended.subscribe();
    let remote_shares = receive::RemoteShares::default();

    let (track_tx, mut track_rx) = mpsc::unbounded_channel();
    let mut subscriber: Option<Subscriber> = None;
    // The server's number of the receiving connection we last gave up on.
    let mut abandoned: Option<u64> = None;
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
                Some(MediaInput::VideoNeeded { kind, max }) => {
                    if kind == TrackKind::Video {
                        shared.set_camera_need(max);
                    }
                }
                Some(MediaInput::SubscribeOffer { sdp, tracks, offer, connection }) => {
                    // An offer for the connection given up on (it was on its way when we
                    // asked for a new one) would set ours up against the old one.
                    if abandoned.is_some_and(|c| c == connection && connection != 0) {
                        tracing::debug!(connection, "an offer for a receiving connection given up on; ignored");
                        continue;
                    }
                    // The server made a new receiving connection: ours must be new too.
                    if let Some(old) = subscriber.take_if(|s| s.connection != connection) {
                        let _ = old.pc.close().await;
                    }
                    track_infos = tracks;
                    remote_shares.keep_only(&track_infos, &events);
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
                                    connection,
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
                            Ok(answer) => link.send_signal(ClientMessage::SubscribeAnswer { sdp: answer, offer: Some(offer) }),
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
                    (events.clone(), link.clone()),
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
                    abandoned = Some(old.connection);
                    let _ = old.pc.close().await;
                }
                link.send_signal(ClientMessage::Resubscribe);
            }
        }
    }
}
