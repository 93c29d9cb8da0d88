//! `between join --video-stats`: what each remote video delivers, a JSON line a second, so a
//! test (or a person) sees pictures per second, freezes, size and bytes as they happen.

use between_engine::RemoteVideo;
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

/// Prints `{"event":"videoStats","peerId","frames","width","height","bytesPerSecond",
/// "longestGapMs"}` every second until the video ends or `stop` says so. `longestGapMs` is
/// the longest time without a new picture within the second (a freeze spans seconds: the
/// gap since the last picture is counted into each).
pub async fn video_stats(
    peer_id: String,
    mut video: RemoteVideo,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut window = tokio::time::interval(Duration::from_secs(1));
    window.tick().await;
    let mut frames = 0u32;
    let mut size = (0, 0);
    let mut last_picture = Instant::now();
    let mut longest = Duration::ZERO;
    let mut bytes = video.bytes_received();
    loop {
        tokio::select! {
            frame = video.next() => {
                let Some(frame) = frame else { return };
                let now = Instant::now();
                longest = longest.max(now - last_picture);
                last_picture = now;
                frames += 1;
                size = (frame.frame.width(), frame.frame.height());
            }
            _ = window.tick() => {
                let now = Instant::now();
                longest = longest.max(now - last_picture);
                let total = video.bytes_received();
                let line = json!({
                    "event": "videoStats",
                    "peerId": peer_id,
                    "frames": frames,
                    "width": size.0,
                    "height": size.1,
                    "bytesPerSecond": total - bytes,
                    "longestGapMs": longest.as_millis() as u64,
                });
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                bytes = total;
                frames = 0;
                longest = Duration::ZERO;
            }
            _ = stop.changed() => return,
        }
    }
}
