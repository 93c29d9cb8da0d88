//! Video to the page: one feed per drawn tile. The page pulls (`video_next`) the newest frame
//! when it has drawn the last one, as raw bytes scaled to the tile's drawn size (a 720p30
//! stream is 41 MB/s and the IPC carries about 80 MB/s, so full-size frames for four tiles
//! would not fit). Pulling is the back-pressure: a page that draws slower than the video
//! arrives skips frames instead of queueing them (pushing every frame down a `Channel` built
//! up seconds of delay and a gigabyte of memory). A hidden tile closes its feed and costs
//! nothing.

use crate::cameras;
use crate::frame;
use crate::state::{AppState, lock};
use between_engine::{BAError, DrawnTile, ErrorCode, RemoteVideo, VideoSource};
use between_media::video::I420Frame;
use std::sync::Arc;
use std::time::Duration;
use tauri::State;
use tauri::ipc::Response;
use tokio::sync::watch;

/// Where a feed's frames come from.
pub enum FrameSource {
    Remote(RemoteVideo),
    Local(watch::Receiver<Option<LocalFrame>>),
}

pub type LocalFrame = (Arc<I420Frame>, u64);

impl FrameSource {
    async fn next(&mut self) -> Option<(Arc<I420Frame>, u64)> {
        match self {
            Self::Remote(video) => video.next().await.map(|f| (f.frame, f.number)),
            Self::Local(rx) => {
                rx.changed().await.ok()?;
                rx.borrow_and_update().clone()
            }
        }
    }
}

/// A camera (or any video source) whose frames are also shown locally: the engine pulls it
/// for the call, and every frame is offered to the preview when someone is watching.
pub struct PreviewTap {
    source: Box<dyn VideoSource>,
    frames: watch::Sender<Option<LocalFrame>>,
    number: u64,
}

impl PreviewTap {
    /// Frames go to `frames` (a new channel when `None`; the same one when switching
    /// cameras, so open local tiles keep drawing).
    pub fn new(
        source: Box<dyn VideoSource>,
        frames: Option<watch::Sender<Option<LocalFrame>>>,
    ) -> (Self, watch::Sender<Option<LocalFrame>>) {
        let frames = frames.unwrap_or_else(|| watch::channel(None).0);
        (
            Self {
                source,
                frames: frames.clone(),
                number: 0,
            },
            frames,
        )
    }
}

impl VideoSource for PreviewTap {
    fn read_frame(&mut self) -> Option<I420Frame> {
        let frame = self.source.read_frame()?;
        self.number += 1;
        if self.frames.receiver_count() > 0 {
            self.frames
                .send_replace(Some((Arc::new(frame.clone()), self.number)));
        }
        Some(frame)
    }

    fn frame_rate(&self) -> f64 {
        self.source.frame_rate()
    }

    // The engine's device watcher must see the camera behind the tap.
    fn device_id(&self) -> Option<&str> {
        self.source.device_id()
    }

    fn device_failed(&self) -> bool {
        self.source.device_failed()
    }
}

/// An open feed: its size can change; dropping it stops a preview's camera.
pub struct VideoFeed {
    size: std::sync::Mutex<(u32, u32)>,
    source: tokio::sync::Mutex<FrameSource>,
    /// Set by `video_close`: a pull waiting at that moment ends with an error at once.
    closed: watch::Sender<bool>,
    /// A preview's own camera thread, stopped with the feed.
    camera: Option<CameraThread>,
    /// A remote video's tile: its size goes to the server, so it sends the layer that fits
    /// (and nothing once the tile closes).
    tile: std::sync::Mutex<Option<DrawnTile>>,
}

impl VideoFeed {
    /// The camera this feed previews (on the join screen), if it is one.
    pub fn previewed_camera(&self) -> Option<&str> {
        self.camera.as_ref().map(|c| c.device_id.as_str())
    }
}

/// Reads a camera at its frame rate on a thread of its own (for the join screen's preview,
/// where no call pulls it).
struct CameraThread {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Which camera it reads.
    device_id: String,
}

impl Drop for CameraThread {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn start_camera(
    mut source: Box<dyn VideoSource>,
    device_id: String,
) -> (CameraThread, FrameSource) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = watch::channel(None);
    let flag = stop.clone();
    let period = Duration::from_secs_f64(1.0 / source.frame_rate().clamp(1.0, 60.0));
    std::thread::spawn(move || {
        let mut number = 0u64;
        let mut next = std::time::Instant::now();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let Some(frame) = source.read_frame() else {
                break;
            };
            number += 1;
            if tx.send(Some((Arc::new(frame), number))).is_err() {
                break;
            }
            next += period;
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        }
    });
    (CameraThread { stop, device_id }, FrameSource::Local(rx))
}

fn feed(
    source: FrameSource,
    width: u32,
    height: u32,
    camera: Option<CameraThread>,
) -> Arc<VideoFeed> {
    let tile = match &source {
        FrameSource::Remote(video) => Some(video.draw(width, height)),
        FrameSource::Local(_) => None,
    };
    Arc::new(VideoFeed {
        size: std::sync::Mutex::new((width, height)),
        source: tokio::sync::Mutex::new(source),
        closed: watch::channel(false).0,
        camera,
        tile: std::sync::Mutex::new(tile),
    })
}

/// How long `video_next` waits for a new frame before answering "nothing new" (an empty
/// body), so a page never waits on a call whose feed it has since closed.
const NEXT_WAIT: Duration = Duration::from_secs(1);

fn check_size(width: u32, height: u32) -> Result<(), BAError> {
    if (2..=7680).contains(&width) && (2..=4320).contains(&height) {
        Ok(())
    } else {
        Err(BAError::new(
            ErrorCode::InvalidArgument,
            format!("A video can be drawn at 2x2 to 7680x4320 pixels, not {width}x{height}."),
        ))
    }
}

#[derive(serde::Serialize)]
pub struct Opened {
    video: u32,
}

/// A peer's video (or `"local"`: this user's camera) into `frames`.
#[tauri::command]
pub fn video_open(
    state: State<'_, AppState>,
    id: u32,
    peer_id: String,
    width: u32,
    height: u32,
) -> Result<Opened, BAError> {
    check_size(width, height)?;
    let call = state.call(id)?;
    let source = if peer_id == "local" {
        call.local_frames().ok_or_else(|| {
            BAError::new(
                ErrorCode::InvalidArgument,
                "This call sends no camera video.",
            )
        })?
    } else {
        call.peer_video(&peer_id).ok_or_else(|| {
            BAError::new(
                ErrorCode::PeerNotFound,
                "That participant has no video (yet). Wait for its videoCreated event.",
            )
        })?
    };
    let video = state.next_id();
    lock(&state.videos).insert(video, feed(source, width, height, None));
    Ok(Opened { video })
}

/// A camera's picture on the join screen, before any call.
#[tauri::command]
pub async fn preview_open(
    state: State<'_, AppState>,
    device_id: String,
    width: u32,
    height: u32,
) -> Result<Opened, BAError> {
    check_size(width, height)?;
    // A real camera takes up to seconds to deliver its first picture: not on the main thread.
    let id = device_id.clone();
    let camera = between_engine::devices::open_blocking(move || cameras::open(&id)).await?;
    let (thread, source) = start_camera(camera, device_id);
    let video = state.next_id();
    lock(&state.videos).insert(video, feed(source, width, height, Some(thread)));
    Ok(Opened { video })
}

#[tauri::command]
pub fn video_resize(
    state: State<'_, AppState>,
    video: u32,
    width: u32,
    height: u32,
) -> Result<(), BAError> {
    check_size(width, height)?;
    if let Some(feed) = lock(&state.videos).get(&video) {
        *lock(&feed.size) = (width, height);
        if let Some(tile) = lock(&feed.tile).as_ref() {
            tile.resize(width, height);
        }
    }
    Ok(())
}

#[tauri::command]
pub fn video_close(state: State<'_, AppState>, video: u32) {
    let feed = lock(&state.videos).remove(&video);
    if let Some(feed) = feed {
        feed.closed.send_replace(true);
        // Now, not when a pull in flight lets go of the feed.
        lock(&feed.tile).take();
    }
}

/// The feed's next frame (newer than the last one it gave), scaled to the tile, as raw bytes
/// (see IPC.md); an empty body when none came within a second; an error once the feed is
/// closed or its video ended.
#[tauri::command]
pub async fn video_next(state: State<'_, AppState>, video: u32) -> Result<Response, BAError> {
    let closed = || BAError::new(ErrorCode::InvalidArgument, "This video was closed.");
    let feed = lock(&state.videos)
        .get(&video)
        .cloned()
        .ok_or_else(closed)?;
    // One pull at a time per feed; a second waits its turn.
    let mut closing = feed.closed.subscribe();
    let mut source = feed.source.lock().await;
    let next = tokio::select! {
        next = tokio::time::timeout(NEXT_WAIT, source.next()) => next,
        _ = closing.wait_for(|closed| *closed) => return Err(closed()),
    };
    let next = match next {
        Err(_) => return Ok(Response::new(Vec::new())),
        Ok(None) => {
            return Err(BAError::new(
                ErrorCode::NotInCall,
                "This video ended (the participant left or stopped sending).",
            ));
        }
        Ok(Some(next)) => next,
    };
    drop(source);
    let (w, h) = *lock(&feed.size);
    let (frame, number) = next;
    // Scaling a 720p frame takes about a millisecond: keep it off the async workers.
    let packed = tauri::async_runtime::spawn_blocking(move || {
        frame::pack(&frame, w, h, number as u32, frame::wall_ms())
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    Ok(Response::new(packed))
}
