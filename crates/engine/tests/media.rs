//! Media through the real SFU over loopback WebRTC: every participant hears every other one's
//! tone and sees its test pattern, checked by content (tone detector, frame counter, PSNR).
#![allow(clippy::unwrap_used)]

mod common;

use between_engine::media::sources::{PatternVideo, ToneAudio};
use between_engine::{ConferenceEvent, MediaOptions, PeerEvent, RemoteVideo};
use between_media::analysis::tone_snr_db;
use between_media::h264::VideoEncoderSettings;
use between_media::pattern::read_counter;
use common::*;
use std::sync::Arc;
use std::time::Duration;

const W: u32 = 320;
const H: u32 = 240;

/// These tests are real-time calls with several encoders and decoders each; on a 2-core
/// machine, running them side by side starves the playout clocks. One at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn media(freq: f64, audio: Arc<AudioRecorder>) -> MediaOptions {
    MediaOptions {
        audio: Some(Box::new(ToneAudio::new(freq))),
        video: Some(Box::new(PatternVideo::new(W, H, 15.0).unwrap())),
        video_encoder: VideoEncoderSettings {
            bitrate_bps: 600_000,
            max_fps: 15.0,
            screen: false,
        },
        peer_audio: Some(audio),
        media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        ..MediaOptions::default()
    }
}

/// Forwards VideoCreated handles to a log until the stream ends.
fn collect_video(mut p: Participant, log: Arc<VideoLog>) -> tokio::task::JoinHandle<Participant> {
    tokio::spawn(async move {
        let mut seen = 0;
        while seen < 2 {
            let Some(ev) = p.events.recv().await else {
                break;
            };
            if let ConferenceEvent::Peer {
                peer_id,
                event: PeerEvent::VideoCreated(v),
            } = ev
            {
                watch_video(peer_id, v, log.clone());
                seen += 1;
            }
        }
        p
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_hear_and_see_each_other() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server().await;
    let url = server.url();
    let freqs = [440.0, 660.0, 880.0];
    let mut people = Vec::new();
    for (i, f) in freqs.iter().enumerate() {
        let audio = Arc::new(AudioRecorder::default());
        let video = Arc::new(VideoLog::default());
        let p = Participant::new(&url, KEY, "media-call", &format!("p{i}"));
        p.conf.set_media(media(*f, audio.clone())).unwrap();
        p.conf.start_call().await.unwrap();
        people.push((p.id(), *f, audio, video, p));
    }
    let ids: Vec<String> = people.iter().map(|x| x.0.clone()).collect();
    let mut handles = Vec::new();
    let mut logs = Vec::new();
    for (id, f, audio, video, p) in people {
        handles.push(collect_video(p, video.clone()));
        logs.push((id, f, audio, video));
    }

    for (me, _, audio, video) in &logs {
        let others: Vec<&String> = ids.iter().filter(|i| *i != me).collect();
        // 3 s of audio from each other peer.
        until(Duration::from_secs(20), &audio.wrote, || {
            let m = audio.by_peer.lock().unwrap();
            others
                .iter()
                .all(|o| m.get(*o).is_some_and(|s| s.len() >= 3 * 48_000))
        })
        .await;
        // 30 decoded frames from each.
        until(Duration::from_secs(20), &video.got, || {
            let m = video.by_peer.lock().unwrap();
            others
                .iter()
                .all(|o| m.get(*o).is_some_and(|v| v.len() >= 30))
        })
        .await;
    }

    for (me, _, audio, video) in &logs {
        for (other, freq, _, _) in logs.iter().filter(|l| &l.0 != me) {
            let samples = audio.by_peer.lock().unwrap()[other].clone();
            let tail = &samples[samples.len() - 48_000..];
            let snr = tone_snr_db(tail, 48_000, *freq);
            assert!(
                snr >= 30.0,
                "{me} hears {other} at {freq} Hz with only {snr:.1} dB"
            );
            let frames = video.by_peer.lock().unwrap()[other].clone();
            let counters: Vec<u16> = frames.iter().map(|f| f.0).collect();
            assert!(
                counters.windows(2).all(|w| w[0] < w[1]),
                "{me} sees {other}'s counters out of order: {counters:?}"
            );
            let worst = frames.iter().map(|f| f.1).fold(f64::INFINITY, f64::min);
            eprintln!(
                "{me} <- {other}: tone {snr:.1} dB, {} frames, counters {}..{}, worst PSNR {worst:.1} dB",
                frames.len(),
                counters[0],
                counters[counters.len() - 1]
            );
            assert!(worst >= 32.0, "{me} sees {other} at {worst:.1} dB PSNR");
        }
    }
    drop(handles);
}

fn av_media(freq: f64, audio: Arc<AudioRecorder>) -> MediaOptions {
    media(freq, audio)
}

async fn first_frame(p: &mut Participant, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    let mut video = p
        .wait_for(within, "videoCreated", |e| match e {
            ConferenceEvent::Peer {
                event: PeerEvent::VideoCreated(v),
                ..
            } => Some(v.clone()),
            _ => None,
        })
        .await;
    let left = within.saturating_sub(started.elapsed());
    tokio::time::timeout(left, video.next())
        .await
        .expect("a decoded frame in time")
        .expect("track alive");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_video_within_a_second() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server().await;
    let url = server.url();
    let a = Participant::new(&url, KEY, "late", "A");
    a.conf.set_media(av_media(440.0, Arc::default())).unwrap();
    a.conf.start_call().await.unwrap();
    let mut b = Participant::with_media(
        &url,
        "late",
        "B",
        MediaOptions {
            ..MediaOptions::default()
        },
    )
    .await;
    first_frame(&mut b, Duration::from_secs(10)).await;

    // A has been sending for a while: its periodic keyframe is far away, so only a keyframe
    // request gets the newcomer a picture this fast.
    let mut c = Participant::new(&url, KEY, "late", "C");
    c.conf
        .set_media(MediaOptions {
            media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            ..MediaOptions::default()
        })
        .unwrap();
    let t0 = std::time::Instant::now();
    c.conf.start_call().await.unwrap();
    first_frame(&mut c, Duration::from_secs(1)).await;
    eprintln!("late joiner's first frame after {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_pauses_the_tone_and_unmuting_brings_it_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server().await;
    let url = server.url();
    let mut a = Participant::with_media(
        &url,
        "mute",
        "A",
        MediaOptions {
            audio: Some(Box::new(ToneAudio::new(440.0))),
            ..MediaOptions::default()
        },
    )
    .await;
    let local = a.local_participant().await;
    let recorder = Arc::new(AudioRecorder::default());
    let mut b = Participant::with_media(
        &url,
        "mute",
        "B",
        MediaOptions {
            peer_audio: Some(recorder.clone()),
            ..MediaOptions::default()
        },
    )
    .await;
    let a_id = a.id();
    let recorded = |r: &AudioRecorder| r.by_peer.lock().unwrap().get(&a_id).map_or(0, Vec::len);
    let tail = |r: &AudioRecorder, n: usize| {
        let m = r.by_peer.lock().unwrap();
        let s = &m[&a_id];
        s[s.len() - n..].to_vec()
    };
    let tone_db = |r: &AudioRecorder| tone_snr_db(&tail(r, 24_000), 48_000, 440.0);
    let quiet = |r: &AudioRecorder| between_media::audio::rms(&tail(r, 24_000));
    until(Duration::from_secs(10), &recorder.wrote, || {
        recorded(&recorder) >= 24_000 && tone_db(&recorder) >= 30.0
    })
    .await;

    // Levels for meters: the tone (-13.5 dBFS) reads about 0.78, ten times a second, and A
    // is speaking; A's own meter runs too.
    b.wait_for(Duration::from_secs(3), "speaking", |e| match e {
        ConferenceEvent::Peer {
            peer_id,
            event: PeerEvent::Speaking(true),
        } if *peer_id == a_id => Some(()),
        _ => None,
    })
    .await;
    b.drain();
    let at = recorded(&recorder);
    until(Duration::from_secs(5), &recorder.wrote, || {
        recorded(&recorder) >= at + 48_000
    })
    .await;
    let levels: Vec<f32> = b
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            ConferenceEvent::Peer {
                peer_id,
                event: PeerEvent::AudioLevel(l),
            } if peer_id == a_id => Some(l),
            _ => None,
        })
        .collect();
    assert!(levels.len() >= 9, "{} levels in a second", levels.len());
    assert!(levels.iter().all(|l| (0.7..0.85).contains(l)), "{levels:?}");
    let local_level = a
        .wait_for(Duration::from_secs(2), "localAudioLevel", |e| match e {
            ConferenceEvent::LocalAudioLevel(l) => Some(*l),
            _ => None,
        })
        .await;
    assert!(local_level > 0.7, "{local_level}");

    local.mute_audio();
    assert!(local.is_audio_muted());
    b.wait_for(Duration::from_secs(3), "audioPaused", |e| match e {
        ConferenceEvent::Peer {
            peer_id,
            event: PeerEvent::AudioPaused,
        } if *peer_id == a_id => Some(()),
        _ => None,
    })
    .await;
    // Within a few frames of the mute, the recording goes silent (not just quieter).
    until(Duration::from_secs(5), &recorder.wrote, || {
        quiet(&recorder) < 0.01
    })
    .await;
    b.wait_for(Duration::from_secs(3), "speaking stopped", |e| match e {
        ConferenceEvent::Peer {
            peer_id,
            event: PeerEvent::Speaking(false),
        } if *peer_id == a_id => Some(()),
        _ => None,
    })
    .await;

    local.unmute_audio();
    b.wait_for(Duration::from_secs(3), "audioResumed", |e| match e {
        ConferenceEvent::Peer {
            peer_id,
            event: PeerEvent::AudioResumed,
        } if *peer_id == a_id => Some(()),
        _ => None,
    })
    .await;
    until(Duration::from_secs(5), &recorder.wrote, || {
        tone_db(&recorder) >= 30.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_the_camera_off_stops_the_video_and_on_brings_it_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server().await;
    let url = server.url();
    let mut a = Participant::with_media(
        &url,
        "camera",
        "A",
        MediaOptions {
            video: Some(Box::new(PatternVideo::new(W, H, 15.0).unwrap())),
            ..MediaOptions::default()
        },
    )
    .await;
    let local = a.local_participant().await;
    let mut b = Participant::with_media(
        &url,
        "camera",
        "B",
        MediaOptions {
            ..MediaOptions::default()
        },
    )
    .await;
    let mut video = b.video_created(Duration::from_secs(10)).await;
    let next_counter = async |video: &mut RemoteVideo| {
        let f = tokio::time::timeout(Duration::from_secs(3), video.next())
            .await
            .expect("a frame in time")
            .expect("track alive");
        read_counter(&f.frame).expect("pattern")
    };
    for _ in 0..5 {
        next_counter(&mut video).await;
    }

    local.mute_video();
    assert!(local.is_video_muted());
    b.wait_for(Duration::from_secs(3), "videoPaused", |e| {
        matches!(
            e,
            ConferenceEvent::Peer {
                event: PeerEvent::VideoPaused,
                ..
            }
        )
        .then_some(())
    })
    .await;
    let before = video
        .latest()
        .and_then(|f| read_counter(&f.frame))
        .expect("a frame");
    // Stay off for a while: the source keeps counting, nothing is sent.
    tokio::time::sleep(Duration::from_millis(800)).await;
    local.unmute_video();
    b.wait_for(Duration::from_secs(3), "videoResumed", |e| {
        matches!(
            e,
            ConferenceEvent::Peer {
                event: PeerEvent::VideoResumed,
                ..
            }
        )
        .then_some(())
    })
    .await;
    let mut after = next_counter(&mut video).await;
    while after <= before + 1 {
        // Frames that were in flight when the camera went off.
        after = next_counter(&mut video).await;
    }
    assert!(
        after >= before + 8,
        "frames kept flowing while off: {before} then {after}"
    );
    for _ in 0..5 {
        next_counter(&mut video).await;
    }
}

/// A source that says when it was let go (a device closed).
struct Released<S>(S, Arc<std::sync::atomic::AtomicBool>);

impl<S> Drop for Released<S> {
    fn drop(&mut self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<S: between_engine::VideoSource> between_engine::VideoSource for Released<S> {
    fn read_frame(&mut self) -> Option<between_media::video::I420Frame> {
        self.0.read_frame()
    }
    fn frame_rate(&self) -> f64 {
        self.0.frame_rate()
    }
}

impl between_engine::AudioSource for Released<ToneAudio> {
    fn read_frame(&mut self) -> Option<Vec<f32>> {
        self.0.read_frame()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_the_call_releases_camera_and_microphone_at_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server().await;
    let camera_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mic_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut a = Participant::with_media(
        &server.url(),
        "release",
        "A",
        MediaOptions {
            video: Some(Box::new(Released(
                PatternVideo::new(W, H, 15.0).unwrap(),
                camera_closed.clone(),
            ))),
            audio: Some(Box::new(Released(
                ToneAudio::new(440.0),
                mic_closed.clone(),
            ))),
            ..MediaOptions::default()
        },
    )
    .await;
    let _local = a.local_participant().await;
    assert!(!camera_closed.load(std::sync::atomic::Ordering::SeqCst));
    a.conf.end_call().await.unwrap();
    // Not when the app quits or the conference is dropped: when the user leaves.
    assert!(
        camera_closed.load(std::sync::atomic::Ordering::SeqCst),
        "camera still open"
    );
    assert!(
        mic_closed.load(std::sync::atomic::Ordering::SeqCst),
        "microphone still open"
    );
}
