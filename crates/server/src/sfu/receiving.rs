//! One participant's receiving connection: a sender per subscription, each fed by a
//! forwarding task that reads the publisher's fan-out and writes what [`Forwarder`] makes of
//! each packet. Owned by that participant's driver; nothing else touches the connection.

use super::env::{Env, RtpCounters};
use super::feedback::{KEYFRAME_INTERVAL, LOSS_RELAY_INTERVAL};
use super::forward::{Forwarder, LayerPacket, LegParams, Refusal};
use super::inputs::Inputs;
use super::io::Input;
use super::media::Media;
use super::switch::SWITCH_KEYFRAME_RETRY;
use between_media::bwe::{Estimate, EstimateHandle};
use between_media::rtp::{is_keyframe_request, reported_loss};
use between_protocol::{TrackInfo, TrackKind};
use between_transport::{PcEvent, TransportError, apply_answer, make_offer};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

struct Subscription {
    sender: Arc<dyn RtpSender>,
    /// This leg's numbering for the track, once an answer made it.
    sink: watch::Sender<Option<Arc<LegParams>>>,
    /// The simulcast layer chosen for the subscriber (`None`: paused).
    layer: watch::Sender<(Option<u8>, bool)>,
    task: JoinHandle<()>,
    /// Described in the latest offer: only such a track is bound by its answer (one added
    /// since waits for the next, even on a transceiver an earlier track freed).
    in_offer: bool,
}

pub(crate) struct Receiving {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    subscriptions: HashMap<String, Subscription>,
    /// Whether the connection is up (media written before arrives nowhere).
    connected: watch::Sender<bool>,
    /// Reports the connection's bandwidth estimate to the core.
    estimate: JoinHandle<()>,
}

/// How often the subscriber's downlink estimate is looked at, and how far it must move to
/// be told (each report makes the core choose layers again).
const ESTIMATE_EVERY: Duration = Duration::from_millis(200);
const ESTIMATE_MOVE: f64 = 0.05;

/// Tells the core `subscriber`'s downlink estimate when it moved.
async fn report_estimate(estimate: EstimateHandle, inputs: Inputs, subscriber: String) {
    let mut ticks = tokio::time::interval(ESTIMATE_EVERY);
    let mut told: Option<Estimate> = None;
    loop {
        ticks.tick().await;
        let Some(now) = estimate.get() else { continue };
        if told.is_some_and(|t| {
            t.congested == now.congested && (now.bps - t.bps).abs() <= ESTIMATE_MOVE * t.bps
        }) {
            continue;
        }
        told = Some(now);
        inputs.send(Input::Estimate {
            subscriber: subscriber.clone(),
            bps: now.bps,
            congested: now.congested,
        });
    }
}

fn random_ssrc() -> u32 {
    let mut b = [0u8; 4];
    // An SSRC only needs to differ from its neighbours; a fixed fallback still works.
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b).max(1)
}

impl Receiving {
    pub async fn open(
        env: &Env,
        inputs: &Inputs,
        subscriber: &str,
    ) -> Result<(Self, mpsc::UnboundedReceiver<PcEvent>), TransportError> {
        let built = env.connect().await?;
        let estimate = tokio::spawn(report_estimate(
            built.estimate,
            inputs.clone(),
            subscriber.to_string(),
        ));
        Ok((
            Self {
                pc: built.pc,
                gathered: built.gathered,
                subscriptions: HashMap::new(),
                connected: watch::channel(false).0,
                estimate,
            },
            built.events,
        ))
    }

    /// The connection came up or went down.
    pub fn set_connected(&self, up: bool) {
        self.connected
            .send_if_modified(|c| std::mem::replace(c, up) != up);
    }

    /// Adds a sender of `track` (renegotiation is the core's); `false` if the connection
    /// would not take it.
    pub async fn subscribe(
        &mut self,
        inputs: &Inputs,
        env: &Arc<Env>,
        subscriber: &str,
        track: TrackInfo,
        media: Media,
    ) -> bool {
        let ssrc = random_ssrc();
        let kind = match track.kind {
            TrackKind::Audio => RtpCodecKind::Audio,
            TrackKind::Video | TrackKind::Screen => RtpCodecKind::Video,
        };
        let local = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            track.peer_id.clone(),
            track.track_id.clone(),
            track.kind.as_str().to_string(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: media.codec.clone(),
                ..Default::default()
            }],
        )));
        let sender = match self
            .pc
            .add_track(local.clone() as Arc<dyn TrackLocal>)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot add a track to a receiving connection");
                return false;
            }
        };
        let (sink, sink_rx) = watch::channel(None);
        let (layer, layer_rx) = watch::channel((Some(0), false));
        let task = tokio::spawn(forward(Forwarding {
            inputs: inputs.clone(),
            env: env.clone(),
            subscriber: subscriber.to_string(),
            track: track.clone(),
            local,
            ssrc,
            packets: media.fanout.subscribe(),
            source: media.source.clone(),
            sink: sink_rx,
            layer: layer_rx,
            connected: self.connected.subscribe(),
            last_keyframe_request: None,
            last_report: None,
            worst_loss: None,
        }));
        let sub = Subscription {
            sender,
            sink,
            layer,
            task,
            in_offer: false,
        };
        if let Some(old) = self.subscriptions.insert(track.track_id, sub) {
            old.task.abort();
        }
        true
    }

    /// The core chose `layer` of `track_id` for this participant.
    /// The core chose `layer` of `track_id` for this participant (`urgent`: the old one
    /// stops at once).
    pub fn select(&self, track_id: &str, layer: Option<u8>, urgent: bool) {
        if let Some(sub) = self.subscriptions.get(track_id) {
            sub.layer.send_if_modified(|l| {
                let changed = l.0 != layer;
                *l = (layer, urgent);
                changed
            });
        }
    }

    pub async fn unsubscribe(&mut self, track_id: &str) {
        if let Some(sub) = self.subscriptions.remove(track_id) {
            sub.task.abort();
            if let Err(e) = self.pc.remove_track(&sub.sender).await {
                tracing::debug!(error = %e, "remove_track");
            }
        }
    }

    /// An offer of the connection as it now is, as the participant must see it.
    pub async fn offer(&mut self, env: &Env) -> Result<String, String> {
        for sub in self.subscriptions.values_mut() {
            sub.in_offer = true;
        }
        let sdp = make_offer(&self.pc, &mut self.gathered)
            .await
            .map_err(|e| e.to_string())?;
        env.outgoing_sdp(&sdp)
    }

    /// Applies the participant's answer; each subscription then learns its leg's numbering
    /// (none, for a track the participant declined).
    pub async fn apply_answer(&mut self, env: &Env, sdp: String) -> Result<(), String> {
        apply_answer(&self.pc, env.incoming_sdp(sdp), None)
            .await
            .map_err(|e| e.to_string())?;
        let mut sending = Vec::new();
        for t in self.pc.get_transceivers().await {
            if let Ok(Some(sender)) = t.sender().await
                && t.current_direction().await.is_ok_and(|d| d.has_send())
            {
                sending.push(sender);
            }
        }
        for sub in self.subscriptions.values().filter(|s| s.in_offer) {
            let accepted = sending.iter().any(|s| s.id() == sub.sender.id());
            match sub.sender.get_parameters().await {
                Ok(p) => {
                    let leg = Arc::new(match accepted {
                        true => LegParams::from_rtc(&p.rtp_parameters),
                        false => LegParams::default(),
                    });
                    sub.sink.send_if_modified(|old| {
                        let changed = old.as_deref() != Some(&*leg);
                        if changed {
                            *old = Some(leg);
                        }
                        changed
                    });
                }
                Err(e) => tracing::debug!(error = %e, "a sender's parameters"),
            }
        }
        Ok(())
    }

    pub async fn close(self, env: &Env) {
        self.estimate.abort();
        for sub in self.subscriptions.into_values() {
            sub.task.abort();
        }
        env.close(&self.pc).await;
    }
}

/// What one subscription's forwarding task works with.
struct Forwarding {
    inputs: Inputs,
    env: Arc<Env>,
    subscriber: String,
    track: TrackInfo,
    local: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    packets: broadcast::Receiver<LayerPacket>,
    source: watch::Receiver<Arc<LegParams>>,
    sink: watch::Receiver<Option<Arc<LegParams>>>,
    layer: watch::Receiver<(Option<u8>, bool)>,
    connected: watch::Receiver<bool>,
    /// This subscriber's feedback, held to what the core would take: a keyframe request per
    /// interval, a loss report per relay interval (the worst since the last).
    last_keyframe_request: Option<Instant>,
    last_report: Option<Instant>,
    worst_loss: Option<u8>,
}

impl Forwarding {
    fn input(&self, input: Input<Media>) {
        self.inputs.send(input);
    }

    fn want_keyframe(&mut self, fresh: bool, layer: Option<u8>) {
        let now = Instant::now();
        if !fresh
            && self
                .last_keyframe_request
                .is_some_and(|t| now.duration_since(t) < KEYFRAME_INTERVAL)
        {
            return;
        }
        self.last_keyframe_request = Some(now);
        self.input(Input::KeyframeWanted {
            publisher: self.track.peer_id.clone(),
            track_id: self.track.track_id.clone(),
            subscriber: self.subscriber.clone(),
            fresh,
            layer,
        });
    }

    fn on_feedback(&mut self, rtcp: &[Box<dyn rtc::rtcp::Packet>], layer: Option<u8>) {
        if rtcp.iter().any(|p| is_keyframe_request(p.as_ref())) {
            self.want_keyframe(false, layer);
        }
        // Only audio's loss goes back to the publisher (its FEC follows it).
        if self.track.kind != TrackKind::Audio {
            return;
        }
        let lost = rtcp
            .iter()
            .filter_map(|p| reported_loss(p.as_ref(), self.ssrc))
            .map(|(_, l)| l)
            .max();
        let Some(lost) = lost else { return };
        let worst = self.worst_loss.map_or(lost, |w| w.max(lost));
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < LOSS_RELAY_INTERVAL)
        {
            self.worst_loss = Some(worst);
            return;
        }
        self.last_report = Some(now);
        self.worst_loss = None;
        self.input(Input::ReceiverReport {
            subscriber: self.subscriber.clone(),
            publisher: self.track.peer_id.clone(),
            track_id: self.track.track_id.clone(),
            fraction_lost: worst,
        });
    }
}

/// One subscription's forwarding loop.
async fn forward(mut f: Forwarding) {
    let env = f.env.clone();
    let counters = &env.counters;
    let gap = if f.track.kind == TrackKind::Audio {
        960
    } else {
        3000
    };
    let video = f.track.kind != TrackKind::Audio;
    let mut forwarder = Forwarder::new(f.ssrc, gap, video);
    let legs = |f: &mut Forwarding, forwarder: &mut Forwarder| {
        let source = f.source.borrow_and_update().clone();
        let sink = f.sink.borrow_and_update().clone();
        forwarder.set_legs(&source, sink.as_deref());
        sink.is_some()
    };
    let mut bound = legs(&mut f, &mut forwarder);
    let mut source_open = true;
    let mut refusal_logged = false;
    let mut asked_keyframe = false;
    // Feedback exists once the track is bound; a gap in it (a renegotiation) is retried.
    let mut feedback_ready = tokio::time::Instant::now();
    // A layer switch waiting for its keyframe asks again now and then.
    let mut switch_retry = tokio::time::Instant::now();
    loop {
        let feedback = bound && tokio::time::Instant::now() >= feedback_ready;
        let waiting = bound && forwarder.waiting_for_keyframe();
        tokio::select! {
            packet = f.packets.recv() => match packet {
                Ok(LayerPacket { layer, packet: mut p }) => match forwarder.forward(layer, &mut p) {
                    Ok(()) => {
                        if f.local.write_rtp(p).await.is_err() {
                            RtpCounters::inc(&counters.dropped);
                            continue;
                        }
                        RtpCounters::inc(&counters.forwarded);
                        // The subscriber starts from a keyframe: asked for once the track is
                        // bound and the connection up (a keyframe written before arrives
                        // nowhere), and again after the connection was down.
                        let up = *f.connected.borrow();
                        if !up {
                            asked_keyframe = false;
                        } else if !asked_keyframe && f.track.kind != TrackKind::Audio {
                            asked_keyframe = true;
                            f.want_keyframe(true, forwarder.keyframe_layer());
                        }
                    }
                    Err(Refusal::Unbound) => RtpCounters::inc(&counters.dropped),
                    Err(Refusal::NotSelected) => {}
                    Err(refusal) => {
                        RtpCounters::inc(&counters.refused);
                        if !refusal_logged {
                            refusal_logged = true;
                            tracing::warn!(
                                subscriber = %f.subscriber,
                                track = %f.track.track_id,
                                %refusal,
                                "packets of a track cannot go to a subscriber; counted, not logged again"
                            );
                        }
                    }
                },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    counters.dropped.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(missed = n, "subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = f.layer.changed() => {
                if changed.is_err() {
                    return;
                }
                let (layer, urgent) = *f.layer.borrow_and_update();
                if forwarder.select(layer, urgent) {
                    switch_retry = tokio::time::Instant::now() + SWITCH_KEYFRAME_RETRY;
                    f.want_keyframe(true, forwarder.keyframe_layer());
                }
            }
            _ = tokio::time::sleep_until(switch_retry), if waiting => {
                switch_retry = tokio::time::Instant::now() + SWITCH_KEYFRAME_RETRY;
                f.want_keyframe(false, forwarder.keyframe_layer());
            }
            changed = f.sink.changed() => {
                if changed.is_err() {
                    return;
                }
                bound = legs(&mut f, &mut forwarder);
                refusal_logged = false;
            }
            changed = f.source.changed(), if source_open => {
                if changed.is_err() {
                    source_open = false;
                } else {
                    bound = legs(&mut f, &mut forwarder);
                    refusal_logged = false;
                }
            }
            event = f.local.poll(), if feedback => match event {
                Some(TrackLocalEvent::OnRtcpPacket(rtcp)) => f.on_feedback(&rtcp, forwarder.keyframe_layer()),
                Some(_) => {}
                None => feedback_ready = tokio::time::Instant::now() + Duration::from_millis(100),
            },
            _ = tokio::time::sleep_until(feedback_ready), if bound && !feedback => {}
        }
    }
}
