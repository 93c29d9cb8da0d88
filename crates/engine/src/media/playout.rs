//! The playout clock: every 20 ms, one frame from every remote peer's jitter buffer, decoded
//! (with FEC and concealment), to the per-peer tap and, mixed by volume, to the speaker.

use super::shared::MediaShared;
use crate::events::{ConferenceEvent, EventHub};
use crate::link::Link;
use crate::peer::{Peer, PeerEvent};
use between_media::jitter::{JitterBuffer, JitterConfig, Playout as Next};
use between_media::level::{LevelMeter, LevelReport};
use between_media::mixer;
use between_media::opus_codec::OpusDecoder;
use between_media::{FRAME_MS, FRAME_SAMPLES};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::time::{MissedTickBehavior, interval};

/// One peer's 20 ms, decoded, and its volume.
type PeerFrame = (String, Vec<f32>, f32);

struct PeerAudio {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    meter: LevelMeter,
    /// The peer's handle, whose volume the mix reads (set through any clone of it) without
    /// the call's lock. `None` until the roster has the peer (its track came first).
    peer: Option<Peer>,
}

/// How often a peer's handle is looked for while the roster does not have it yet.
const ADOPT_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Playout {
    started: Instant,
    peers: Mutex<HashMap<String, PeerAudio>>,
}

impl Playout {
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, PeerAudio>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    pub fn add(&self, peer: &str, handle: Option<Peer>) {
        let Ok(decoder) = OpusDecoder::new() else {
            tracing::warn!("no audio decoder");
            return;
        };
        self.lock().insert(
            peer.to_string(),
            PeerAudio {
                jitter: JitterBuffer::new(JitterConfig::default()),
                decoder,
                meter: LevelMeter::new(),
                peer: handle,
            },
        );
    }

    /// Gives the peers that have no handle yet theirs, where `find` knows it.
    fn adopt(&self, find: impl Fn(&str) -> Option<Peer>) {
        for (id, p) in self.lock().iter_mut().filter(|(_, p)| p.peer.is_none()) {
            p.peer = find(id);
        }
    }

    pub fn remove(&self, peer: &str) {
        self.lock().remove(peer);
    }

    pub fn push(&self, peer: &str, sequence: u16, timestamp: u32, payload: Vec<u8>) {
        let now = self.now_ms();
        if let Some(p) = self.lock().get_mut(peer) {
            p.jitter.push(sequence, timestamp, payload, now);
        }
    }

    /// One frame per peer, and the level reports due; with `decode` false the buffers are
    /// only drained (nobody listens).
    fn pop_all(&self, decode: bool) -> (Vec<PeerFrame>, Vec<(String, LevelReport)>) {
        let now = self.now_ms();
        let mut peers = self.lock();
        if !decode {
            for p in peers.values_mut() {
                p.jitter.pop(now);
            }
            return (Vec::new(), Vec::new());
        }
        let mut reports = Vec::new();
        let frames = peers
            .iter_mut()
            .map(|(id, p)| {
                let decoded = match p.jitter.pop(now) {
                    Next::Frame(packet) => p.decoder.decode(&packet),
                    Next::Conceal { fec: Some(next) } => p.decoder.recover(&next),
                    Next::Conceal { fec: None } => p.decoder.conceal(),
                    Next::Silence => Ok(vec![0.0; FRAME_SAMPLES]),
                };
                let samples = decoded.unwrap_or_else(|_| vec![0.0; FRAME_SAMPLES]);
                if let Some(report) = p.meter.push(&samples) {
                    reports.push((id.clone(), report));
                }
                let volume = p.peer.as_ref().map_or(1.0, Peer::volume);
                (id.clone(), samples, volume)
            })
            .collect();
        (frames, reports)
    }
}

pub(crate) async fn run(
    playout: Arc<Playout>,
    (events, link): (EventHub, Link),
    shared: Arc<MediaShared>,
) {
    let mut tick = interval(Duration::from_millis(FRAME_MS as u64));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut adopted = Instant::now();
    loop {
        tick.tick().await;
        if adopted.elapsed() >= ADOPT_EVERY {
            adopted = Instant::now();
            playout.adopt(|id| link.peer(id));
        }
        // Asked every tick: a speaker can be chosen during the call.
        let listened = shared.peer_audio.is_some()
            || shared.playback.lock().map(|p| p.is_some()).unwrap_or(false);
        let (frames, reports) = playout.pop_all(listened);
        for (peer_id, report) in reports {
            events.emit(ConferenceEvent::Peer {
                peer_id: peer_id.clone(),
                event: PeerEvent::AudioLevel(report.level),
            });
            if let Some(speaking) = report.speaking_changed {
                events.emit(ConferenceEvent::Peer {
                    peer_id,
                    event: PeerEvent::Speaking(speaking),
                });
            }
        }
        if frames.is_empty() {
            continue;
        }
        if let Some(tap) = &shared.peer_audio {
            for (peer, samples, _) in &frames {
                tap.write(peer, samples);
            }
        }
        let Ok(mut playback) = shared.playback.lock() else {
            continue;
        };
        if let Some(sink) = playback.as_mut() {
            let sources: Vec<(&[f32], f32)> = frames
                .iter()
                .map(|(_, s, volume)| (s.as_slice(), *volume))
                .collect();
            let mix = mixer::mix(FRAME_SAMPLES, &sources);
            // What the speaker plays is what the echo canceller must take out of the microphone.
            if let Some(apm) = &shared.apm
                && let Ok(mut apm) = apm.lock()
                && let Err(e) = apm.render(&mix)
            {
                tracing::debug!(error = %e, "audio processing");
            }
            sink.write(&mix);
        }
    }
}
