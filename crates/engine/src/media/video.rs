//! Remote video as the app and tests take it: the latest decoded picture of a track.

use between_media::video::I420Frame;
use std::sync::Arc;
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
}

impl RemoteVideo {
    pub fn latest(&self) -> Option<VideoFrame> {
        self.rx.borrow().clone()
    }

    /// Whether the track is gone (no frame will follow the latest).
    pub fn has_ended(&self) -> bool {
        self.rx.has_changed().is_err()
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
