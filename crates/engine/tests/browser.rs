//! Standard WebRTC peers that are not our engine, through the real SFU. The "browser" here
//! numbers everything as browsers do, unlike the SFU: Opus as payload type 109, H.264 as 108
//! with RTX (99, `apt=108`) and VP8 offered too, header extensions in Chrome's order
//! (audio level 1, abs-send-time 2, transport-cc 3, mid 4), random msid track IDs, and
//! `extmap-allow-mixed`/`rtcp-rsize`/`goog-remb` in its offer. A `between` participant hears
//! its tone and sees its test pattern (content checked), and the browser gets the
//! participant's in return. A subscriber whose leg cannot carry video (an audio-only peer)
//! is not counted as forwarded to.
#![allow(clippy::unwrap_used)]

mod common;

use between_engine::media::sources::{PatternVideo, ToneAudio};
use between_engine::{ConferenceEvent, MediaOptions, PeerEvent};
use between_media::analysis::tone_snr_db;
use between_media::h264::{H264Decoder, H264Encoder, VideoEncoderSettings};
use between_media::opus_codec::{OpusDecoder, OpusEncoder};
use between_media::pattern::{TestPattern, read_counter};
use between_media::rtp::{H264Assembler, RtpPacketizer};
use between_media::tone::ToneSource;
use between_protocol::{ServerMessage, decode_server};
use common::*;
use futures_util::{SinkExt, StreamExt};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_twcc,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sdp::extmap::{ABS_SEND_TIME_URI, AUDIO_LEVEL_URI, SDES_MID_URI, TRANSPORT_CC_URI};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
};

const OPUS_PT: u8 = 109;
const H264_PT: u8 = 108;
const RTX_PT: u8 = 99;
const VP8_PT: u8 = 96;
const W: u32 = 320;
const H: u32 = 240;
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// Real-time media on two cores: one call at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.into(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.into(),
        rtcp_feedback: vec![],
    }
}

fn opus() -> RTCRtpCodec {
    codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1")
}

fn h264() -> RTCRtpCodec {
    codec(MIME_TYPE_H264, 90_000, 0, H264_FMTP)
}

/// A browser's media engine: its payload types, its extension IDs (in registration order),
/// NACK, reports and transport-cc on its sending side. `video: false` is an audio-only peer.
fn browser_engine(video: bool) -> (MediaEngine, Registry) {
    let mut e = MediaEngine::default();
    let mut add = |c: RTCRtpCodec, payload_type: u8, kind: RtpCodecKind| {
        e.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: c,
                payload_type,
            },
            kind,
        )
        .unwrap();
    };
    add(opus(), OPUS_PT, RtpCodecKind::Audio);
    if video {
        add(
            codec(MIME_TYPE_VP8, 90_000, 0, ""),
            VP8_PT,
            RtpCodecKind::Video,
        );
        add(h264(), H264_PT, RtpCodecKind::Video);
        add(
            codec(MIME_TYPE_RTX, 90_000, 0, &format!("apt={H264_PT}")),
            RTX_PT,
            RtpCodecKind::Video,
        );
    }
    for (uri, kinds) in [
        (AUDIO_LEVEL_URI, &[RtpCodecKind::Audio][..]),
        (
            ABS_SEND_TIME_URI,
            &[RtpCodecKind::Audio, RtpCodecKind::Video],
        ),
        (
            TRANSPORT_CC_URI,
            &[RtpCodecKind::Audio, RtpCodecKind::Video],
        ),
        (SDES_MID_URI, &[RtpCodecKind::Audio, RtpCodecKind::Video]),
    ] {
        for kind in kinds {
            e.register_header_extension(
                RTCRtpHeaderExtensionCapability { uri: uri.into() },
                *kind,
                None,
            )
            .unwrap();
        }
    }
    let registry = configure_rtcp_reports(configure_nack(Registry::new(), &mut e));
    let registry = configure_twcc(registry, &mut e).unwrap();
    (e, registry)
}

struct Handler {
    gathered: watch::Sender<bool>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

struct Browser {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

async fn browser_pc(video: bool) -> Browser {
    let (engine, registry) = browser_engine(video);
    let (gathered_tx, gathered) = watch::channel(false);
    let (tracks_tx, tracks) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            gathered: gathered_tx,
            tracks: tracks_tx,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .unwrap();
    Browser {
        pc: Arc::new(pc),
        gathered,
        tracks,
    }
}

impl Browser {
    async fn local_sdp(&mut self) -> String {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gathered.wait_for(|done| *done))
            .await;
        self.pc.local_description().await.unwrap().sdp
    }
}

/// What browsers put into an offer that our own stack does not.
fn as_browsers_write_it(sdp: &str) -> String {
    let mut out = String::new();
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        let body = line.trim_end();
        if body.starts_with("t=") {
            out.push_str("a=extmap-allow-mixed\r\na=msid-semantic: WMS *\r\n");
        }
        if body.starts_with(&format!("a=rtpmap:{H264_PT} ")) {
            out.push_str(&format!("a=rtcp-fb:{H264_PT} goog-remb\r\n"));
        }
        if body.starts_with("a=mid:") && !sdp.contains("a=rtcp-rsize") {
            out.push_str("a=rtcp-rsize\r\n");
        }
    }
    out
}

/// A random track ID as browsers make them.
fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn local_track(kind: RtpCodecKind, c: RTCRtpCodec, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        random_id(),
        random_id(),
        "browser".into(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: c,
            ..Default::default()
        }],
    )))
}

async fn next_message(ws: &mut futures_util::stream::SplitStream<Ws>) -> Option<ServerMessage> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return decode_server(&t).ok(),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// A tone at 660 Hz as Opus 109 and the 320x240 test pattern at 15 fps as H.264 108, paced in
/// real time until the task is dropped.
fn send_media(
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let a = tokio::spawn(async move {
        let mut tone = ToneSource::new(660.0, 0.3);
        let mut encoder = OpusEncoder::new(32_000, 0).unwrap();
        let mut packetizer = RtpPacketizer::opus(1111, OPUS_PT);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            let frame = tone.next_frame();
            match encoder.encode(&frame.samples).unwrap() {
                Some(data) => {
                    for p in packetizer.packetize(Instant::now(), &data, 960) {
                        let _ = audio.write_rtp(p).await;
                    }
                }
                None => packetizer.skip(960),
            }
        }
    });
    let v = tokio::spawn(async move {
        let pattern = TestPattern::new(W, H).unwrap();
        let mut encoder = H264Encoder::new(VideoEncoderSettings {
            bitrate_bps: 600_000,
            max_fps: 15.0,
            screen: false,
        })
        .unwrap();
        let mut packetizer = RtpPacketizer::h264(2222, H264_PT);
        let mut tick = tokio::time::interval(Duration::from_millis(66));
        let mut n = 0u32;
        loop {
            tick.tick().await;
            // Every second a keyframe: no PLI handling needed in this stand-in.
            if n.is_multiple_of(15) {
                encoder.request_keyframe();
            }
            if let Some(encoded) = encoder.encode(&pattern.frame(n)).unwrap() {
                for p in packetizer.packetize(Instant::now(), &encoded.data, 6000) {
                    let _ = video.write_rtp(p).await;
                }
            }
            n += 1;
        }
    });
    vec![a, v]
}

/// What the browser received, by kind: Opus decoded, H.264 counters read.
#[derive(Default)]
struct Received {
    audio: Mutex<Vec<f32>>,
    counters: Mutex<Vec<u16>>,
    payload_types: Mutex<Vec<u8>>,
    audio_packets: AtomicU64,
    got: Notify,
}

fn receive(track: Arc<dyn TrackRemote>, into: Arc<Received>) {
    tokio::spawn(async move {
        let audio = track.kind().await == RtpCodecKind::Audio;
        let mut opus = OpusDecoder::new().unwrap();
        let mut assembler = H264Assembler::default();
        let mut h264 = H264Decoder::new().unwrap();
        while let Some(event) = track.poll().await {
            let TrackRemoteEvent::OnRtpPacket(p) = event else {
                continue;
            };
            {
                let mut pts = into.payload_types.lock().unwrap();
                if !pts.contains(&p.header.payload_type) {
                    pts.push(p.header.payload_type);
                }
            }
            if audio {
                into.audio_packets.fetch_add(1, Ordering::Relaxed);
                if let Ok(samples) = opus.decode(&p.payload) {
                    into.audio.lock().unwrap().extend(samples);
                }
            } else {
                assembler.push(p, Instant::now());
                while let Some(frame) = assembler.pop(Instant::now()) {
                    if let Ok(Some(picture)) = h264.decode(&frame.data)
                        && let Some(c) = read_counter(&picture)
                    {
                        into.counters.lock().unwrap().push(c);
                    }
                }
            }
            into.got.notify_waiters();
        }
    });
}

/// Joins `call` as a raw WebSocket client: publishes `publish` (its offer made by `pc`)
/// if given, answers every subscribe offer with a connection of `video`'s kind, and feeds
/// what it receives into the returned log. Runs until dropped.
async fn browser_in_call(
    url: &str,
    call: &str,
    mut publisher: Option<Browser>,
    video: bool,
) -> (String, Arc<Received>, tokio::task::JoinHandle<()>) {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let join = json!({"type":"join","v":1,"apiKey":KEY,"callId":call,"extraData":"browser"});
    tx.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    let Some(ServerMessage::Joined { peer_id, .. }) = next_message(&mut rx).await else {
        panic!("not joined");
    };
    if let Some(p) = &mut publisher {
        let offer = p.pc.create_offer(None).await.unwrap();
        p.pc.set_local_description(offer).await.unwrap();
        let sdp = as_browsers_write_it(&p.local_sdp().await);
        let publish = json!({"type":"publish","sdp":sdp});
        tx.send(Message::Text(publish.to_string().into()))
            .await
            .unwrap();
    }
    let received = Arc::new(Received::default());
    let log = received.clone();
    let task = tokio::spawn(async move {
        let mut subscriber: Option<Browser> = None;
        let _keep = publisher.as_ref().map(|p| p.pc.clone());
        loop {
            let tracks = async {
                match subscriber.as_mut() {
                    Some(s) => s.tracks.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = next_message(&mut rx) => match msg {
                    None => return,
                    Some(ServerMessage::PublishAnswer { sdp }) => {
                        let answer = RTCSessionDescription::answer(sdp).unwrap();
                        publisher.as_ref().unwrap().pc.set_remote_description(answer).await.unwrap();
                    }
                    Some(ServerMessage::SubscribeOffer { sdp, .. }) => {
                        if subscriber.is_none() {
                            subscriber = Some(browser_pc(video).await);
                        }
                        let s = subscriber.as_mut().unwrap();
                        let offer = RTCSessionDescription::offer(sdp).unwrap();
                        s.pc.set_remote_description(offer).await.unwrap();
                        let answer = s.pc.create_answer(None).await.unwrap();
                        s.pc.set_local_description(answer).await.unwrap();
                        let sdp = s.local_sdp().await;
                        let msg = json!({"type":"subscribeAnswer","sdp":sdp});
                        if tx.send(Message::Text(msg.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                    Some(ServerMessage::Error { message, .. }) => panic!("the server refused: {message}"),
                    Some(_) => {}
                },
                Some(track) = tracks => receive(track, log.clone()),
            }
        }
    });
    (peer_id, received, task)
}

/// A `between` participant sending a 440 Hz tone and the test pattern, logging what it
/// hears and sees.
async fn bot(
    url: &str,
    call: &str,
) -> (
    between_engine::Conference,
    Arc<AudioRecorder>,
    Arc<VideoLog>,
) {
    let audio = Arc::new(AudioRecorder::default());
    let video = Arc::new(VideoLog::default());
    let Participant { conf, mut events } = Participant::with_media(
        url,
        call,
        "bot",
        MediaOptions {
            audio: Some(Box::new(ToneAudio::new(440.0))),
            video: Some(Box::new(PatternVideo::new(W, H, 15.0).unwrap())),
            video_encoder: VideoEncoderSettings {
                bitrate_bps: 600_000,
                max_fps: 15.0,
                screen: false,
            },
            peer_audio: Some(audio.clone()),
            media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            ..MediaOptions::default()
        },
    )
    .await;
    let log = video.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let ConferenceEvent::Peer {
                peer_id,
                event: PeerEvent::VideoCreated(v),
            } = ev
            {
                watch_video(peer_id, v, log.clone());
            }
        }
    });
    (conf, audio, video)
}

fn metric(server: &between_server::RunningServer, name: &str) -> u64 {
    server
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_numbered_publisher_reaches_a_bot_and_hears_it_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server().await;
    let url = server.url();
    let (_bot, heard, seen) = bot(&url, "browser").await;

    let publisher = browser_pc(true).await;
    let audio = local_track(RtpCodecKind::Audio, opus(), 1111);
    let video = local_track(RtpCodecKind::Video, h264(), 2222);
    publisher
        .pc
        .add_track(audio.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    publisher
        .pc
        .add_track(video.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let (browser_id, received, _browser) =
        browser_in_call(&url, "browser", Some(publisher), true).await;
    let _media = send_media(audio, video);

    // The bot hears the browser's tone and sees its pattern, whatever the browser's numbers.
    heard.until(|r| r.len(&browser_id) >= 48_000).await;
    let snr = tone_snr_db(&heard.tail(&browser_id, 24_000), 48_000, 660.0);
    assert!(snr >= 30.0, "the bot hears the browser at {snr:.1} dB");
    until_else(
        Duration::from_secs(15),
        &seen.got,
        || {
            seen.by_peer
                .lock()
                .unwrap()
                .get(&browser_id)
                .is_some_and(|v| v.len() >= 30)
        },
        || {
            format!(
                "pictures at the bot: {:?}",
                seen.by_peer.lock().unwrap().get(&browser_id).map(Vec::len)
            )
        },
    )
    .await;
    let frames = seen.by_peer.lock().unwrap()[&browser_id].clone();
    let counters: Vec<u16> = frames.iter().map(|f| f.0).collect();
    assert!(
        counters.windows(2).all(|w| w[0] < w[1]),
        "the browser's pictures out of order at the bot: {counters:?}"
    );
    let worst = frames.iter().map(|f| f.1).fold(f64::INFINITY, f64::min);
    assert!(worst >= 32.0, "the browser's pattern at {worst:.1} dB PSNR");

    // And the other way: the browser decodes the bot's tone and pictures.
    until_else(
        Duration::from_secs(15),
        &received.got,
        || {
            received.audio.lock().unwrap().len() >= 48_000
                && received.counters.lock().unwrap().len() >= 20
        },
        || {
            format!(
                "at the browser: {} samples, {} pictures, payload types {:?}",
                received.audio.lock().unwrap().len(),
                received.counters.lock().unwrap().len(),
                received.payload_types.lock().unwrap()
            )
        },
    )
    .await;
    let tail: Vec<f32> = {
        let a = received.audio.lock().unwrap();
        a[a.len() - 24_000..].to_vec()
    };
    let snr = tone_snr_db(&tail, 48_000, 440.0);
    assert!(snr >= 30.0, "the browser hears the bot at {snr:.1} dB");
    let counters = received.counters.lock().unwrap().clone();
    assert!(
        counters.windows(2).all(|w| w[0] < w[1]),
        "the bot's pictures out of order at the browser: {counters:?}"
    );
    eprintln!(
        "browser -> bot: {} pictures, worst PSNR {worst:.1} dB; bot -> browser: {} pictures, payload types {:?}",
        frames.len(),
        counters.len(),
        received.payload_types.lock().unwrap()
    );
    assert_eq!(metric(&server, "between_rtp_refused_total"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_a_subscriber_cannot_take_are_counted_as_refused_not_forwarded() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server().await;
    let url = server.url();
    let (_bot, _, _) = bot(&url, "audio-only").await;
    // An audio-only peer: its answer turns the video down.
    let (_, received, _peer) = browser_in_call(&url, "audio-only", None, false).await;
    until(Duration::from_secs(15), &received.got, || {
        received.audio_packets.load(Ordering::Relaxed) >= 150
    })
    .await;
    let refused = metric(&server, "between_rtp_refused_total");
    let forwarded = metric(&server, "between_rtp_forwarded_total");
    let got = received.audio_packets.load(Ordering::Relaxed);
    eprintln!(
        "forwarded {forwarded}, refused {refused}, dropped {}, audio packets received {got}",
        metric(&server, "between_rtp_dropped_total")
    );
    assert!(refused >= 20, "the video packets are refused: {refused}");
    // Forwarded is what went out: the audio (a few packets may be on the way), no video.
    assert!(
        forwarded <= got + 25,
        "forwarded {forwarded} but only {got} audio packets arrived"
    );
}
