//! Keeping a buffer between two clocks (a sound card's and the engine's 20 ms ticks) from
//! holding more audio than it needs. Startup bursts and clock drift leave samples queued for
//! good, and every queued sample is latency. Over a window, the lowest fill level is audio
//! that was never needed; beyond a small safety margin it is dropped.

#[derive(Debug)]
pub struct BufferTrim {
    target: usize,
    window: u32,
    seen: u32,
    lowest: usize,
}

impl BufferTrim {
    /// Keep at least `target` samples of slack; decide every `window` observations.
    pub fn new(target: usize, window: u32) -> Self {
        Self {
            target,
            window: window.max(1),
            seen: 0,
            lowest: usize::MAX,
        }
    }

    /// The fill level at the buffer's low point of a cycle (after the engine read, or before
    /// it writes). At the end of each window, how many of the oldest samples to drop now.
    pub fn observe(&mut self, fill: usize) -> Option<usize> {
        self.lowest = self.lowest.min(fill);
        self.seen += 1;
        if self.seen < self.window {
            return None;
        }
        let excess = self.lowest.saturating_sub(self.target);
        self.seen = 0;
        self.lowest = usize::MAX;
        Some(excess)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_only_what_was_never_needed() {
        let mut t = BufferTrim::new(480, 5);
        // A backlog of 3000 samples that never drains below 2900: 2420 were never needed.
        let fills = [3000, 2950, 2900, 3100, 2980];
        let drops: Vec<Option<usize>> = fills.iter().map(|&f| t.observe(f)).collect();
        assert_eq!(drops, vec![None, None, None, None, Some(2420)]);
        // A healthy buffer that touches bottom keeps everything.
        let drops: Vec<Option<usize>> = [400, 0, 900, 300, 960]
            .iter()
            .map(|&f| t.observe(f))
            .collect();
        assert_eq!(drops, vec![None, None, None, None, Some(0)]);
    }
}
