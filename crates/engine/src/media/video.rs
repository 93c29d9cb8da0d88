//! Remote video as the app and tests take it: the latest decoded picture of a track.

use super::drawn::{DrawnTile, Reporter};
use between_media::video::I420Frame;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::watch;

/// A decoded remote picture.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    pub frame: Arc<I420Frame>,
    /// When it was decoded.
    pub at: Instant,
    /// Decoded frames of this track so far, counting this one.
    pub number: u64,
}

/// A remote peer's video: always the latest decoded frame, never a backlog.
#[derive(Clone)]
pub struct RemoteVideo {
    pub(crate) rx: watch::Receiver<Option<VideoFrame>>,
    /// Where the sizes it is drawn at go (adaptive stream).
    pub(crate) drawn: Arc<Reporter>,
    /// RTP bytes received for it (headers included), decoded or not.
    pub(crate) received: Arc<AtomicU64>,
}

impl RemoteVideo {
    pub fn latest(&self) -> Option<VideoFrame> {
        self.rx.borrow().clone()
    }

    /// Whether the track is gone (no frame will follow the latest).
    pub fn has_ended(&self) -> bool {
        self.rx.has_changed().is_err()
    }

    /// RTP bytes received for this video so far (what adaptive stream saves shows here).
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// A tile draws this video at `width`x`height`: the server sends the smallest layer
    /// covering the largest tile, and nothing once every tile is dropped.
    pub fn draw(&self, width: u32, height: u32) -> DrawnTile {
        self.drawn.open((width, height))
    }

    /// Overrides the tiles' sizes (`Some((0, 0))`: receive no video; `None`: follow the
    /// tiles again).
    pub fn set_drawn_size(&self, size: Option<(u32, u32)>) {
        self.drawn.force(size);
    }

    /// Waits for the next frame; `None` once the track is gone.
    pub async fn next(&mut self) -> Option<VideoFrame> {
        self.rx.changed().await.ok()?;
        self.rx.borrow_and_update().clone()
    }
}

impl PartialEq for RemoteVideo {
    fn eq(&self, other: &Self) -> bool {
        self.rx.same_channel(&other.rx)
    }
}

impl std::fmt::Debug for RemoteVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteVideo")
    }
}
