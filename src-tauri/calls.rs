//! The Conference API's commands: one engine `Conference` per handle, its events forwarded
//! in order to the page's channel under the API's names, and the media a call starts with
//! (the chosen microphone, speaker and camera).

use crate::cameras;
use crate::state::{AppState, lock};
use crate::video::{FrameSource, LocalFrame, PreviewTap};
use between_engine::devices::{Microphone, Speaker, open_blocking};
use between_engine::{
    AudioSink, AudioSource, BAError, Conference, ConferenceEvent, EngineConfig, ErrorCode,
    LocalParticipant, MediaOptions, Peer, PeerEvent, RemoteVideo,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tauri::State;
use tauri::ipc::Channel;
use tokio::sync::watch;

/// One conference the page created.
pub struct Call {
    conference: Conference,
    /// Each peer's video, from its `videoCreated`, and each share's under `PEER:screen`.
    videos: Arc<Mutex<HashMap<String, RemoteVideo>>>,
    /// The camera's frames as the call sends them, for the local tile (shared with the event
    /// forwarder, which re-taps a camera the engine fell back to).
    local_frames: Arc<Mutex<Option<watch::Sender<Option<LocalFrame>>>>>,
    /// A speaker chosen with `setOutputDevice` before the call, used when it starts.
    chosen_speaker: Mutex<Option<String>>,
    /// Mute states asked for at start, applied when the local media is published.
    start_muted: Arc<Mutex<Option<(bool, bool)>>>,
    /// Set by the forwarder once `sessionTerminated` has been sent to the page.
    terminated: watch::Receiver<bool>,
    forward: tauri::async_runtime::JoinHandle<()>,
}

impl Drop for Call {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

impl Call {
    pub fn peer_video(&self, peer_id: &str) -> Option<FrameSource> {
        lock(&self.videos)
            .get(peer_id)
            .cloned()
            .map(FrameSource::Remote)
    }

    pub fn local_frames(&self) -> Option<FrameSource> {
        lock(&self.local_frames)
            .as_ref()
            .map(|tx| FrameSource::Local(tx.subscribe()))
    }

    fn local(&self) -> Result<LocalParticipant, BAError> {
        self.conference.local_participant().ok_or_else(|| {
            BAError::new(
                ErrorCode::NotInCall,
                "You are not in a call. Join the call first.",
            )
        })
    }
}

/// `{event, ...}` for the page; the test pattern added to device lists.
fn page_event(event: &ConferenceEvent, local_id: Option<&str>) -> Value {
    let mut value = event.to_json();
    if let ConferenceEvent::DevicesUpdated(devices) = event {
        let mut all = devices.clone();
        all.push(cameras::test_pattern());
        value["devices"] = json!(all);
    }
    if let (ConferenceEvent::LocalAudioLevel(_), Some(id)) = (event, local_id) {
        value["peerId"] = json!(id);
    }
    value
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    id: u32,
    call_id: String,
}

/// `new Conference(apiKey, callId, extraData)`: checks the call ID and key, and starts
/// forwarding the conference's events to `events`.
#[tauri::command]
pub async fn conference_new(
    state: State<'_, AppState>,
    api_key: String,
    call_id: String,
    extra_data: Value,
    events: Channel<Value>,
) -> Result<Created, BAError> {
    let (url, app_key) = state.server_for_call().await?;
    let key = if api_key.is_empty() { app_key } else { api_key };
    let mut config = EngineConfig::new(url);
    config.watch_devices = true;
    let conference = Conference::new(config, key, call_id, extra_data)?;
    let videos: Arc<Mutex<HashMap<String, RemoteVideo>>> = Arc::default();
    let start_muted: Arc<Mutex<Option<(bool, bool)>>> = Arc::default();
    let (terminated_tx, terminated) = watch::channel(false);
    let mut stream = conference.events();
    let seen = videos.clone();
    let mutes = start_muted.clone();
    let local_frames: Arc<Mutex<Option<watch::Sender<Option<LocalFrame>>>>> = Arc::default();
    let taps = local_frames.clone();
    let forward = tauri::async_runtime::spawn(async move {
        let mut local_id: Option<String> = None;
        let mut local: Option<between_engine::LocalParticipant> = None;
        while let Some(event) = stream.recv().await {
            if let ConferenceEvent::LocalParticipant(local) = &event
                && let Some((audio, video)) = lock(&mutes).take()
            {
                // Before the page hears of it, so nobody sees a live microphone first.
                if audio {
                    local.mute_audio();
                }
                if video {
                    local.mute_video();
                }
            }
            match &event {
                ConferenceEvent::Peer {
                    peer_id,
                    event: PeerEvent::VideoCreated(video),
                } => {
                    lock(&seen).insert(peer_id.clone(), video.clone());
                }
                ConferenceEvent::ScreenShareCreated { peer, video } => {
                    lock(&seen).insert(share_key(peer.id()), video.clone());
                }
                ConferenceEvent::ScreenShareClosed(peer_id) => {
                    lock(&seen).remove(&share_key(peer_id));
                }
                ConferenceEvent::PeerLeft(peer_id) => {
                    let mut videos = lock(&seen);
                    videos.remove(peer_id);
                    videos.remove(&share_key(peer_id));
                }
                ConferenceEvent::LocalParticipant(participant) => {
                    local_id = participant.id();
                    local = Some(participant.clone());
                }
                // The engine replaced a lost camera with another: tap it like the first, so
                // the local tile keeps showing what is sent.
                ConferenceEvent::DeviceFallback {
                    kind: between_engine::devices::DeviceKind::VideoInput,
                    to,
                    ..
                } => {
                    // Unless a switch the user asked for came first (and tapped its camera).
                    if let (Some(local), Some(frames)) = (&local, lock(&taps).clone())
                        && local.video_input().as_deref() == Some(to.as_str())
                    {
                        local.wrap_video_source(|camera| {
                            Box::new(PreviewTap::new(camera, Some(frames)).0)
                        });
                    }
                }
                _ => {}
            }
            let sent = events.send(page_event(&event, local_id.as_deref())).is_ok();
            if matches!(event, ConferenceEvent::SessionTerminated) {
                terminated_tx.send_replace(true);
            }
            if !sent {
                tracing::debug!("the page stopped listening to a conference");
                break;
            }
        }
        terminated_tx.send_replace(true);
    });
    let id = state.next_id();
    let call_id = conference.call_id().to_string();
    state.add_call(
        id,
        Arc::new(Call {
            conference,
            videos,
            local_frames,
            chosen_speaker: Mutex::new(None),
            start_muted,
            terminated,
            forward,
        }),
    );
    Ok(Created { id, call_id })
}

/// What the join screen chose. Device IDs from `app_devices`; absent = the system default;
/// `videoInput: ""` = no camera.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StartOptions {
    audio_input: Option<String>,
    audio_output: Option<String>,
    video_input: Option<String>,
    audio_muted: bool,
    video_muted: bool,
}

/// A microphone that could not be opened: the call still starts (muted in effect), and
/// `setAudioInput` can bring a working one onto the same track.
struct Silence;

impl AudioSource for Silence {
    fn read_frame(&mut self) -> Option<Vec<f32>> {
        Some(vec![0.0; between_media::FRAME_SAMPLES])
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    peer_id: Option<String>,
}

/// `startCall()`: opens the chosen devices, then joins. A microphone or speaker that cannot
/// be opened does not stop the call: it starts without it and an `error` event says why.
#[tauri::command]
pub async fn conference_start_call(
    state: State<'_, AppState>,
    id: u32,
    options: Option<StartOptions>,
) -> Result<Started, BAError> {
    let call = state.call(id)?;
    let options = options.unwrap_or_default();
    let mut warnings = Vec::new();

    let mic_id = options.audio_input.clone().filter(|s| !s.is_empty());
    let mic = open_blocking(move || Microphone::open(mic_id.as_deref())).await;
    let (audio, processing): (Box<dyn AudioSource>, bool) = match mic {
        Ok(mic) => (Box::new(mic), true),
        Err(e) => {
            warnings.push(e);
            (Box::new(Silence), false)
        }
    };
    let speaker_id = options
        .audio_output
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| lock(&call.chosen_speaker).clone());
    let playback = match open_blocking(move || Speaker::open(speaker_id.as_deref())).await {
        Ok(s) => Some(Box::new(s) as Box<dyn AudioSink>),
        Err(e) => {
            warnings.push(e);
            None
        }
    };
    let chosen_camera = options.video_input.clone();
    // Listing and starting a camera block (up to 5 s for its first picture).
    let camera = open_blocking(move || {
        let id = match chosen_camera.as_deref() {
            Some("") => None,
            Some(id) => Some(id.to_string()),
            None => cameras::default_id(),
        };
        id.as_deref().map(cameras::open).transpose()
    })
    .await;
    let mut local_frames = None;
    let video = match camera {
        Ok(Some(camera)) => {
            let (tap, frames) = PreviewTap::new(camera, None);
            local_frames = Some(frames);
            Some(Box::new(tap) as Box<dyn between_engine::VideoSource>)
        }
        Ok(None) => None,
        Err(e) => {
            warnings.push(e);
            None
        }
    };
    call.conference.set_media(MediaOptions {
        audio: Some(audio),
        video,
        playback,
        audio_processing: processing,
        // Others' tiles get the layer that fits them; dynacast keeps layers nobody draws
        // unencoded.
        simulcast: true,
        ..MediaOptions::default()
    })?;
    *lock(&call.local_frames) = local_frames;
    *lock(&call.start_muted) = Some((options.audio_muted, options.video_muted));
    if let Err(e) = call.conference.start_call().await {
        // Give the devices back; a later start opens them again.
        let _ = call.conference.set_media(MediaOptions::default());
        *lock(&call.local_frames) = None;
        return Err(e);
    }
    if state.call(id).is_err() {
        // The page closed this conference while it was joining: leave at once, so the
        // others do not see a participant nobody controls.
        let _ = call.conference.end_call().await;
        return Err(BAError::new(
            ErrorCode::NotInCall,
            "The call was closed while joining.",
        ));
    }
    for w in warnings {
        tracing::warn!(code = %w.code.as_str(), message = %w.message, "call started without a device");
        call.conference.report_error(w);
    }
    Ok(Started {
        peer_id: call.conference.peer_id(),
    })
}

#[tauri::command]
pub async fn conference_end_call(state: State<'_, AppState>, id: u32) -> Result<(), BAError> {
    let call = state.call(id)?;
    call.conference.end_call().await?;
    *lock(&call.local_frames) = None;
    wait_terminated(&call).await;
    Ok(())
}

/// Until the forwarder has handed `sessionTerminated` to the page (IPC.md promises it before
/// `endCall` resolves); bounded, in case the page stopped listening.
async fn wait_terminated(call: &Call) {
    let mut done = call.terminated.clone();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        done.wait_for(|sent| *sent),
    )
    .await;
}

/// Forgets the handle, leaving the call first if still in it.
#[tauri::command]
pub async fn conference_close(state: State<'_, AppState>, id: u32) -> Result<(), BAError> {
    if let Some(call) = state.remove_call(id)
        && call.conference.is_in_call()
    {
        let _ = call.conference.end_call().await;
        wait_terminated(&call).await;
    }
    Ok(())
}

#[tauri::command]
pub async fn conference_get_permission_state(
    state: State<'_, AppState>,
    id: u32,
) -> Result<between_engine::devices::PermissionState, BAError> {
    // Before a call the engine tries the default camera: if the join screen is previewing
    // that one, it works (and would be busy to a second opener).
    let call = state.call(id)?;
    let default = cameras::default_id();
    let previewed = !call.conference.is_in_call()
        && default.as_deref().is_some_and(|default| {
            lock(&state.videos)
                .values()
                .any(|feed| feed.previewed_camera() == Some(default))
        });
    let camera = previewed.then_some(between_engine::devices::CameraCheck::Skip);
    Ok(call.conference.get_permission_state_with(camera).await)
}

#[tauri::command]
pub async fn conference_set_output_device(
    state: State<'_, AppState>,
    id: u32,
    device_id: String,
) -> Result<(), BAError> {
    let call = state.call(id)?;
    if call.conference.is_in_call() {
        call.conference.set_output_device(&device_id).await
    } else {
        // Before the call there is no playback yet; check the ID now, use it at start.
        let id = device_id.clone();
        open_blocking(move || Speaker::open(Some(&id))).await?;
        *lock(&call.chosen_speaker) = Some(device_id);
        Ok(())
    }
}

/// The key a share's video is opened by (`video_open` with `PEER:screen`).
fn share_key(peer_id: &str) -> String {
    format!("{peer_id}:screen")
}

/// `startScreenshare(target?)`: the whole screen, or a target from
/// `conference_screenshare_targets`.
#[tauri::command]
pub async fn conference_start_screenshare(
    state: State<'_, AppState>,
    id: u32,
    target: Option<String>,
) -> Result<bool, BAError> {
    let call = state.call(id)?;
    call.conference.start_screenshare(target.as_deref()).await
}

#[tauri::command]
pub async fn conference_stop_screenshare(
    state: State<'_, AppState>,
    id: u32,
) -> Result<bool, BAError> {
    state.call(id)?.conference.stop_screenshare().await
}

/// *Ours*: what can be shared (screen, monitors, windows), for the share picker.
#[tauri::command]
pub async fn conference_screenshare_targets(
    state: State<'_, AppState>,
    id: u32,
) -> Result<Vec<between_engine::screen::ScreenTarget>, BAError> {
    state.call(id)?.conference.screenshare_targets().await
}

#[tauri::command]
pub fn conference_send_data(
    state: State<'_, AppState>,
    id: u32,
    data: Value,
    to: Option<String>,
) -> Result<(), BAError> {
    if to.as_deref() == Some("") {
        return Err(BAError::new(
            ErrorCode::InvalidArgument,
            "The recipient is empty. Leave it out to send to everyone.",
        ));
    }
    state
        .call(id)?
        .conference
        .data_handler()
        .send(data, to.as_deref())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MuteState {
    audio_muted: bool,
    video_muted: bool,
}

fn mute(
    state: &State<'_, AppState>,
    id: u32,
    change: impl FnOnce(&LocalParticipant),
) -> Result<MuteState, BAError> {
    let local = state.call(id)?.local()?;
    change(&local);
    Ok(MuteState {
        audio_muted: local.is_audio_muted(),
        video_muted: local.is_video_muted(),
    })
}

#[tauri::command]
pub fn local_mute_audio(state: State<'_, AppState>, id: u32) -> Result<MuteState, BAError> {
    mute(&state, id, LocalParticipant::mute_audio)
}

#[tauri::command]
pub fn local_unmute_audio(state: State<'_, AppState>, id: u32) -> Result<MuteState, BAError> {
    mute(&state, id, LocalParticipant::unmute_audio)
}

#[tauri::command]
pub fn local_mute_video(state: State<'_, AppState>, id: u32) -> Result<MuteState, BAError> {
    mute(&state, id, LocalParticipant::mute_video)
}

#[tauri::command]
pub fn local_unmute_video(state: State<'_, AppState>, id: u32) -> Result<MuteState, BAError> {
    mute(&state, id, LocalParticipant::unmute_video)
}

#[tauri::command]
pub async fn local_set_audio_input(
    state: State<'_, AppState>,
    id: u32,
    device_id: String,
) -> Result<(), BAError> {
    state.call(id)?.local()?.set_audio_input(&device_id).await
}

#[tauri::command]
pub async fn local_set_video_input(
    state: State<'_, AppState>,
    id: u32,
    device_id: String,
) -> Result<(), BAError> {
    let call = state.call(id)?;
    let local = call.local()?;
    if !local.has_video() {
        return Err(BAError::new(
            ErrorCode::InvalidArgument,
            "This call was started without a camera. Leave and rejoin with one to send video.",
        ));
    }
    // Opening the camera in use again would find it busy: it already is the choice.
    if local.video_input().as_deref() == Some(device_id.as_str()) {
        return Ok(());
    }
    let camera = open_blocking(move || cameras::open(&device_id)).await?;
    let current = lock(&call.local_frames).clone();
    let (tap, frames) = PreviewTap::new(camera, current);
    local.set_video_source(Box::new(tap))?;
    *lock(&call.local_frames) = Some(frames);
    Ok(())
}

fn peer(state: &AppState, id: u32, peer_id: &str) -> Result<Peer, BAError> {
    state
        .call(id)?
        .conference
        .peers()
        .into_iter()
        .find(|p| p.id() == peer_id)
        .ok_or_else(|| {
            BAError::new(
                ErrorCode::PeerNotFound,
                "That participant is not in the call any more.",
            )
        })
}

#[tauri::command]
pub fn peer_set_volume(
    state: State<'_, AppState>,
    id: u32,
    peer_id: String,
    volume: f64,
) -> Result<(), BAError> {
    peer(&state, id, &peer_id)?.set_volume(volume)
}

/// The page's override of a peer's camera size (adaptive stream); both `null`: the tiles decide.
#[tauri::command]
pub fn peer_set_video_size(
    state: State<'_, AppState>,
    id: u32,
    peer_id: String,
    width: Option<u32>,
    height: Option<u32>,
) -> Result<(), BAError> {
    let size = match (width, height) {
        (Some(w), Some(h)) => Some((w, h)),
        (None, None) => None,
        _ => {
            return Err(BAError::new(
                ErrorCode::InvalidArgument,
                "Give both a width and a height, or neither.",
            ));
        }
    };
    peer(&state, id, &peer_id)?.set_video_size(size)
}
