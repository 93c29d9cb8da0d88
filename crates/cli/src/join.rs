//! `between join`: a bot participant. Every event is one JSON line on stdout; the first line
//! is `{"event":"joined",...}` once in the call. Exit status: 0 after `--duration` or
//! Ctrl-C/SIGTERM (with a clean `endCall`), 1 with a one-line error on stderr otherwise.

use crate::duration;
use crate::record::{AudioRecorder, record_video};
use anyhow::{Context, bail};
use between_engine::devices::{Microphone, Speaker};
use between_engine::media::sources::{PatternVideo, ToneAudio, WavAudio, Y4mVideo};
use between_engine::{
    AudioSink, AudioSource, Conference, ConferenceEvent, EngineConfig, MediaOptions, PeerAudioTap,
    PeerEvent, VideoSource,
};
use between_media::h264::VideoEncoderSettings;
use clap::Args;
use serde_json::{Value, json};
use std::fs::File;
use std::io::BufReader;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// The call to join (1-128 of A-Z a-z 0-9 - _ . ~).
    call_id: String,
    /// The server's WebSocket URL.
    #[arg(long, env = "BETWEEN_SERVER", default_value = "ws://127.0.0.1:7880")]
    server: String,
    /// The API key (`between-dev-key` for a server started with --dev).
    #[arg(long, env = "BETWEEN_API_KEY", hide_env_values = true)]
    api_key: String,
    /// extraData as JSON (e.g. '{"name":"bot"}'); text that is not JSON is sent as a string.
    #[arg(long, default_value = "{}")]
    data: String,
    /// Leave after this long (e.g. 10s, 500ms, 2m); without it, stay until Ctrl-C.
    #[arg(long, value_parser = duration::parse)]
    duration: Option<Duration>,
    /// Send {"text": TEXT} through the dataHandler once someone else is in the call.
    #[arg(long)]
    say: Option<String>,
    /// Send a sine tone of this frequency (Hz) as the microphone.
    #[arg(long, value_name = "HZ", conflicts_with_all = ["wav", "mic"])]
    tone: Option<f64>,
    /// Capture this microphone (an ID from `between devices`, or `default`).
    #[arg(long, value_name = "ID", conflicts_with = "wav")]
    mic: Option<String>,
    /// Send the microphone as captured: no echo cancellation, noise suppression or gain
    /// control (which treat a steady test tone as noise to remove).
    #[arg(long, requires = "mic")]
    raw_mic: bool,
    /// Play everyone's audio on this speaker (an ID from `between devices`, or `default`).
    #[arg(long, value_name = "ID")]
    speaker: Option<String>,
    /// Send a WAV file (looped) as the microphone.
    #[arg(long, value_name = "FILE")]
    wav: Option<PathBuf>,
    /// Send this camera (an ID from `between devices`, or `default`).
    #[arg(long, value_name = "ID", conflicts_with_all = ["pattern", "y4m"])]
    camera: Option<String>,
    /// Send the moving test pattern (with its frame counter) as the camera.
    #[arg(long, conflicts_with = "y4m")]
    pattern: bool,
    /// Noise of up to N luma levels on every pattern picture (e.g. 24): content that fills
    /// the video bitrate as a real camera's does, for anything about bandwidth.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "pattern")]
    noise: u8,
    /// Send a Y4M file (looped) as the camera.
    #[arg(long, value_name = "FILE")]
    y4m: Option<PathBuf>,
    /// Size of the test pattern.
    #[arg(long, default_value = "640x360", value_parser = parse_size)]
    video_size: (u32, u32),
    /// Encode only the first FRAMES camera pictures and send them again and again: a stand-in
    /// participant that costs this machine almost nothing (benchmarks).
    #[arg(long, value_name = "FRAMES")]
    video_loop: Option<usize>,
    /// Send the camera in simulcast layers (full, half and quarter size, standard RIDs), so
    /// the server forwards each receiver the layer its tile needs.
    #[arg(long)]
    simulcast: bool,
    /// Frame rate of the test pattern.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Video bitrate, bits per second.
    #[arg(long, default_value_t = 1_000_000)]
    video_bitrate: u32,
    /// Share the screen once joined (the whole screen, or --share-target).
    #[arg(long, conflicts_with = "share_y4m")]
    share: bool,
    /// What --share shares: an ID from `between screens` (e.g. window:4194305).
    #[arg(long, value_name = "ID", requires = "share")]
    share_target: Option<String>,
    /// Share a Y4M file (looped) through the screen-share track.
    #[arg(long, value_name = "FILE")]
    share_y4m: Option<PathBuf>,
    /// Write one WAV and one Y4M per remote peer into this directory (shares separately,
    /// as PEER-screen.y4m).
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// With --record: the WAV files only, no Y4M.
    #[arg(long, requires = "record")]
    no_record_video: bool,
    /// Print {"event":"videoStats",...} for each remote camera every second: pictures,
    /// size, bytes, longest time without a new picture.
    #[arg(long)]
    video_stats: bool,
    /// Receive and decode everyone's media even without --record (as the app would).
    #[arg(long)]
    receive: bool,
    /// Frame rate of recorded Y4M files.
    #[arg(long, default_value_t = 30)]
    record_fps: u32,
    /// Read commands from stdin, one JSON object per line, e.g.
    /// {"cmd":"setOutputDevice","deviceId":"..."}; also setAudioInput, muteAudio, unmuteAudio,
    /// startScreenshare (optional "target", or "y4m" for a file), stopScreenshare.
    /// Each prints {"event":"commandDone",...} or {"event":"commandFailed",...}.
    #[arg(long)]
    commands: bool,
    /// Also print the 10 Hz audioLevel/localAudioLevel events.
    #[arg(long)]
    levels: bool,
    /// Print devicesUpdated/deviceFallback events (on with --mic or --speaker).
    #[arg(long)]
    watch_devices: bool,
    /// Address to bind media sockets to (default: loopback for a loopback server, else all).
    #[arg(long, value_name = "IP")]
    media_ip: Option<IpAddr>,
}

pub(crate) fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| format!("{text:?} is not a size like 640x360"))?;
    let w: u32 = w
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 640x360"))?;
    let h: u32 = h
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 640x360"))?;
    if !w.is_multiple_of(2)
        || !h.is_multiple_of(2)
        || !(80..=3840).contains(&w)
        || !(16..=2160).contains(&h)
    {
        return Err(format!(
            "{text}: width and height must be even, 80x16 to 3840x2160"
        ));
    }
    Ok((w, h))
}

fn default_media_ip(server: &str) -> IpAddr {
    let host = server
        .trim_start_matches("ws://")
        .trim_start_matches("wss://")
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        IpAddr::from([127, 0, 0, 1])
    } else {
        IpAddr::from([0, 0, 0, 0])
    }
}

/// `--mic`/`--speaker`/`--camera`: absent → no device; `default` → the system default; else an ID.
fn device_choice(arg: &Option<String>) -> Option<Option<&str>> {
    match arg.as_deref() {
        None => None,
        Some("default") => Some(None),
        Some(id) => Some(Some(id)),
    }
}

fn media_options(
    args: &JoinArgs,
    recorder: Option<Arc<AudioRecorder>>,
) -> anyhow::Result<Option<MediaOptions>> {
    let audio: Option<Box<dyn AudioSource>> = match (&args.tone, &args.wav) {
        (Some(hz), _) => Some(Box::new(ToneAudio::new(*hz))),
        (None, Some(path)) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let wav = WavAudio::from_reader(BufReader::new(file))
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(Box::new(wav))
        }
        (None, None) => match device_choice(&args.mic) {
            None => None,
            Some(id) => Some(Box::new(Microphone::open(id)?)),
        },
    };
    let playback: Option<Box<dyn AudioSink>> = match device_choice(&args.speaker) {
        None => None,
        Some(id) => Some(Box::new(Speaker::open(id)?)),
    };
    let video: Option<Box<dyn VideoSource>> = match (args.pattern, &args.y4m) {
        (true, _) => {
            let (w, h) = args.video_size;
            Some(Box::new(
                PatternVideo::new(w, h, args.fps)
                    .map_err(|e| anyhow::anyhow!(e))?
                    .with_noise(args.noise),
            ))
        }
        (false, Some(path)) => Some(open_y4m(path)?),
        (false, None) => match device_choice(&args.camera) {
            None => None,
            Some(id) => Some(Box::new(between_engine::devices::camera::open(id)?)),
        },
    };
    let shares = args.share || args.share_y4m.is_some() || args.commands;
    if audio.is_none()
        && video.is_none()
        && playback.is_none()
        && recorder.is_none()
        && !args.receive
        && !args.video_stats
        && !shares
    {
        return Ok(None);
    }
    Ok(Some(MediaOptions {
        audio,
        video,
        video_encoder: VideoEncoderSettings {
            bitrate_bps: args.video_bitrate,
            max_fps: args.fps as f32,
            screen: false,
        },
        peer_audio: recorder.map(|r| r as Arc<dyn PeerAudioTap>),
        playback,
        // Echo cancellation, noise suppression and gain control for a real microphone.
        audio_processing: args.mic.is_some() && !args.raw_mic,
        video_loop: args.video_loop,
        simulcast: args.simulcast,
        media_ip: args
            .media_ip
            .unwrap_or_else(|| default_media_ip(&args.server)),
    }))
}

fn print(line: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub async fn run(args: JoinArgs) -> anyhow::Result<()> {
    let extra: Value = serde_json::from_str(&args.data).unwrap_or(Value::String(args.data.clone()));
    let recorder = match &args.record {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Some(Arc::new(AudioRecorder::new(dir)))
        }
        None => None,
    };
    // Devices take a moment to open (a camera up to seconds): off the async workers.
    let media = tokio::task::block_in_place(|| media_options(&args, recorder.clone()))?;
    let mut config = EngineConfig::new(args.server.clone());
    config.watch_devices =
        args.watch_devices || args.mic.is_some() || args.speaker.is_some() || args.camera.is_some();
    let conference = Conference::new(config, args.api_key.clone(), args.call_id.clone(), extra)
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    if let Some(media) = media {
        conference
            .set_media(media)
            .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    }
    let (stop_recording, stop_rx) = tokio::sync::watch::channel(false);
    let mut recordings = Vec::new();
    let never_closed = tokio::sync::watch::channel(false).0;
    let mut share_counts: std::collections::HashMap<String, u32> = Default::default();
    let mut share_closers: std::collections::HashMap<String, tokio::sync::watch::Sender<bool>> =
        Default::default();
    let mut events = conference.events();
    conference
        .start_call()
        .await
        .map_err(|e| anyhow::anyhow!("could not join: {} ({})", e.message, e.code))?;
    print(&json!({
        "event": "joined",
        "peerId": conference.peer_id(),
        "callId": conference.call_id(),
    }));

    if args.share || args.share_y4m.is_some() {
        let started = match &args.share_y4m {
            Some(path) => conference.start_screenshare_from(open_y4m(path)?).await,
            None => {
                conference
                    .start_screenshare(args.share_target.as_deref())
                    .await
            }
        };
        started.map_err(|e| anyhow::anyhow!("could not share: {} ({})", e.message, e.code))?;
    }

    let mut say = args.say.map(|text| json!({ "text": text }));
    if !conference.peers().is_empty()
        && let Some(data) = say.take()
    {
        conference
            .data_handler()
            .send(data, None)
            .context("--say")?;
    }

    let stop = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => shutdown_signal().await,
        }
    };
    tokio::pin!(stop);
    let mut commands = if args.commands {
        stdin_lines()
    } else {
        tokio::sync::mpsc::unbounded_channel().1
    };
    let mut lost = false;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let meter = matches!(
                    event,
                    ConferenceEvent::LocalAudioLevel(_)
                        | ConferenceEvent::Peer { event: PeerEvent::AudioLevel(_), .. }
                );
                if args.levels || !meter {
                    print(&event.to_json());
                }
                match event {
                    ConferenceEvent::PeerJoined(_) => {
                        if let Some(data) = say.take() {
                            conference.data_handler().send(data, None).context("--say")?;
                        }
                    }
                    ConferenceEvent::SocketDisconnected => {
                        lost = true;
                        break;
                    }
                    ConferenceEvent::Peer { peer_id, event: PeerEvent::VideoCreated(video) } => {
                        if args.video_stats {
                            recordings.push(tokio::spawn(crate::stats::video_stats(
                                peer_id.clone(),
                                video.clone(),
                                stop_rx.clone(),
                            )));
                        }
                        if let Some(dir) = args.record.as_ref().filter(|_| !args.no_record_video) {
                            recordings.push(tokio::spawn(record_video(
                                dir.join(format!("{peer_id}.y4m")),
                                video,
                                args.record_fps,
                                stop_rx.clone(),
                                never_closed.subscribe(),
                            )));
                        }
                    }
                    ConferenceEvent::ScreenShareCreated { peer, video } => {
                        if let Some(dir) = &args.record {
                            // Each share its own file: PEER-screen.y4m, then PEER-screen-2.y4m...
                            let count = share_counts.entry(peer.id().to_string()).or_insert(0);
                            *count += 1;
                            let name = match *count {
                                1 => format!("{}-screen.y4m", peer.id()),
                                n => format!("{}-screen-{n}.y4m", peer.id()),
                            };
                            let (closed, closed_rx) = tokio::sync::watch::channel(false);
                            share_closers.insert(peer.id().to_string(), closed);
                            recordings.push(tokio::spawn(record_video(
                                dir.join(name),
                                video,
                                args.record_fps,
                                stop_rx.clone(),
                                closed_rx,
                            )));
                        }
                    }
                    ConferenceEvent::ScreenShareClosed(peer_id) => {
                        if let Some(closed) = share_closers.remove(&peer_id) {
                            let _ = closed.send(true);
                        }
                    }
                    _ => {}
                }
            }
            Some(line) = commands.recv() => print(&run_command(&conference, &line).await),
            _ = &mut stop => break,
            _ = shutdown_signal(), if args.duration.is_some() => break,
        }
    }
    let _ = stop_recording.send(true);
    for r in recordings {
        let _ = r.await;
    }
    if let Some(r) = &recorder {
        r.finish();
    }
    if lost {
        bail!("lost the connection to the server and could not reconnect");
    }
    conference
        .end_call()
        .await
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    while let Some(event) = events.try_recv() {
        print(&event.to_json());
    }
    Ok(())
}

fn open_y4m(path: &std::path::Path) -> anyhow::Result<Box<dyn VideoSource>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let y4m = Y4mVideo::from_reader(BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Box::new(y4m))
}

/// Lines of stdin, read on a thread of their own (stdin has no async reader here).
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// One `--commands` line, and the event line that reports it.
async fn run_command(conference: &Conference, line: &str) -> Value {
    let parsed: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return json!({"event": "commandFailed", "code": "invalid_argument",
                "message": format!("not a JSON command: {e}")});
        }
    };
    let cmd = parsed["cmd"].as_str().unwrap_or_default().to_string();
    let device = parsed["deviceId"].as_str().unwrap_or_default();
    let local = conference.local_participant();
    let result = match (cmd.as_str(), &local) {
        ("setOutputDevice", _) => conference.set_output_device(device).await,
        ("setAudioInput", Some(local)) => local.set_audio_input(device).await,
        ("setVideoInput", Some(local)) => local.set_video_input(device).await,
        ("muteVideo", Some(local)) => {
            local.mute_video();
            Ok(())
        }
        ("unmuteVideo", Some(local)) => {
            local.unmute_video();
            Ok(())
        }
        ("muteAudio", Some(local)) => {
            local.mute_audio();
            Ok(())
        }
        ("unmuteAudio", Some(local)) => {
            local.unmute_audio();
            Ok(())
        }
        ("startScreenshare", _) => match parsed["y4m"].as_str() {
            Some(path) => match open_y4m(std::path::Path::new(path)) {
                Ok(source) => conference.start_screenshare_from(source).await.map(drop),
                Err(e) => Err(between_engine::BAError::new(
                    between_engine::ErrorCode::InvalidArgument,
                    format!("{e:#}"),
                )),
            },
            None => conference
                .start_screenshare(parsed["target"].as_str())
                .await
                .map(drop),
        },
        ("stopScreenshare", _) => conference.stop_screenshare().await.map(drop),
        (
            "setAudioInput" | "setVideoInput" | "muteAudio" | "unmuteAudio" | "muteVideo"
            | "unmuteVideo",
            None,
        ) => Err(between_engine::BAError::new(
            between_engine::ErrorCode::InvalidArgument,
            "Nothing is published yet.",
        )),
        _ => Err(between_engine::BAError::new(
            between_engine::ErrorCode::InvalidArgument,
            format!("Unknown command {cmd:?}."),
        )),
    };
    match result {
        Ok(()) => json!({"event": "commandDone", "cmd": cmd}),
        Err(e) => {
            json!({"event": "commandFailed", "cmd": cmd, "code": e.code.as_str(), "message": e.message})
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
