//! Adaptive stream: the size this participant draws each remote video at, told to the server
//! so that it forwards the smallest simulcast layer covering it (and nothing for a video drawn
//! nowhere). A video may be drawn in several tiles at once (a stage and a thumbnail): each
//! tile holds a [`DrawnTile`] and the video is reported at the largest of them, 0x0 once the
//! last one closes. A size set by the page ([`RemoteVideo::set_drawn_size`]) overrides them.
//!
//! [`RemoteVideo::set_drawn_size`]: super::video::RemoteVideo::set_drawn_size

use crate::link::Link;
use between_protocol::ClientMessage;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Which size to report, from the tiles' sizes and the override: pure.
#[derive(Debug, Default)]
pub(crate) struct DrawnSizes {
    next: u64,
    tiles: BTreeMap<u64, (u32, u32)>,
    forced: Option<(u32, u32)>,
    /// What the server was told last (`None`: nothing yet, so it sends the top layer).
    told: Option<(u32, u32)>,
}

impl DrawnSizes {
    fn wanted(&self) -> Option<(u32, u32)> {
        if let Some(forced) = self.forced {
            return Some(forced);
        }
        if self.tiles.is_empty() {
            // Never drawn: say nothing (a participant without a window, a bot, gets the top
            // layer); drawn once and closed since: hidden.
            return self.told.map(|_| (0, 0));
        }
        let w = self.tiles.values().map(|s| s.0).max().unwrap_or(0);
        let h = self.tiles.values().map(|s| s.1).max().unwrap_or(0);
        Some((w, h))
    }

    /// The size to send now, if it changed.
    fn update(&mut self) -> Option<(u32, u32)> {
        let wanted = self.wanted()?;
        if self.told == Some(wanted) {
            return None;
        }
        self.told = Some(wanted);
        Some(wanted)
    }

    pub fn open(&mut self, size: (u32, u32)) -> (u64, Option<(u32, u32)>) {
        self.next += 1;
        self.tiles.insert(self.next, size);
        (self.next, self.update())
    }

    pub fn resize(&mut self, tile: u64, size: (u32, u32)) -> Option<(u32, u32)> {
        if let Some(s) = self.tiles.get_mut(&tile) {
            *s = size;
        }
        self.update()
    }

    pub fn close(&mut self, tile: u64) -> Option<(u32, u32)> {
        self.tiles.remove(&tile);
        self.update()
    }

    pub fn force(&mut self, size: Option<(u32, u32)>) -> Option<(u32, u32)> {
        self.forced = size;
        self.update()
    }
}

/// One remote video's sizes and where to tell them.
pub(crate) struct Reporter {
    track_id: String,
    link: Link,
    sizes: Mutex<DrawnSizes>,
}

impl Reporter {
    pub fn new(track_id: String, link: Link) -> Arc<Self> {
        Arc::new(Self {
            track_id,
            link,
            sizes: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, DrawnSizes> {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tell(&self, size: Option<(u32, u32)>) {
        if let Some((width, height)) = size {
            self.link.send_signal(ClientMessage::VideoSize {
                track_id: self.track_id.clone(),
                width,
                height,
            });
        }
    }

    pub fn open(self: &Arc<Self>, size: (u32, u32)) -> DrawnTile {
        let (id, told) = self.lock().open(size);
        self.tell(told);
        DrawnTile {
            reporter: Some(self.clone()),
            id,
        }
    }

    pub fn force(&self, size: Option<(u32, u32)>) {
        let told = self.lock().force(size);
        self.tell(told);
    }
}

/// A tile drawing a remote video: its size counts until it is dropped.
pub struct DrawnTile {
    reporter: Option<Arc<Reporter>>,
    id: u64,
}

impl DrawnTile {
    pub fn resize(&self, width: u32, height: u32) {
        if let Some(r) = &self.reporter {
            let told = r.lock().resize(self.id, (width, height));
            r.tell(told);
        }
    }
}

impl Drop for DrawnTile {
    fn drop(&mut self) {
        if let Some(r) = self.reporter.take() {
            let told = r.lock().close(self.id);
            r.tell(told);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_tile_counts_and_the_last_close_hides() {
        let mut s = DrawnSizes::default();
        let (a, told) = s.open((320, 180));
        assert_eq!(told, Some((320, 180)));
        let (b, told) = s.open((1280, 720));
        assert_eq!(told, Some((1280, 720)));
        // Smaller than the stage: nothing new to say.
        assert_eq!(s.resize(a, (400, 200)), None);
        assert_eq!(s.close(b), Some((400, 200)));
        assert_eq!(s.close(a), Some((0, 0)));
        assert_eq!(s.close(a), None);
    }

    #[test]
    fn the_override_wins_until_cleared() {
        let mut s = DrawnSizes::default();
        assert_eq!(s.force(None), None, "never drawn, nothing forced: silent");
        let (a, _) = s.open((640, 360));
        assert_eq!(s.force(Some((0, 0))), Some((0, 0)));
        assert_eq!(s.resize(a, (1280, 720)), None);
        assert_eq!(s.force(None), Some((1280, 720)));
    }
}
