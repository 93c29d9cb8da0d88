//! Pictures encoded once and sent again in a loop. A benchmark's stand-in participants (the
//! bots of `between bench app`) stand for other people's machines: encoding a 720p30 stream
//! each, on the machine being measured, they took the cores the app needed and the figure
//! measured the bots. Replaying a recorded loop, a bot sends a real stream for almost nothing.

use crate::h264::EncodedVideo;

pub struct EncodedLoop {
    pictures: Vec<EncodedVideo>,
    len: usize,
    next: usize,
}

impl EncodedLoop {
    /// A loop of `len` pictures (at least one).
    pub fn new(len: usize) -> Self {
        let len = len.max(1);
        Self {
            pictures: Vec::with_capacity(len),
            len,
            next: 0,
        }
    }

    /// Still recording: encode the source's next picture and [`EncodedLoop::record`] it.
    pub fn recording(&self) -> bool {
        self.pictures.len() < self.len
    }

    /// A picture just encoded and sent. The loop starts at a keyframe (pictures before the
    /// first are not kept), so every pass through it decodes on its own.
    pub fn record(&mut self, picture: &EncodedVideo) {
        if self.recording() && (picture.keyframe || !self.pictures.is_empty()) {
            self.pictures.push(picture.clone());
        }
    }

    /// The next picture of the loop; `keyframe`: start over at the first, a keyframe (a
    /// receiver asked for one).
    pub fn next(&mut self, keyframe: bool) -> Option<&EncodedVideo> {
        if self.pictures.is_empty() {
            return None;
        }
        if keyframe {
            self.next = 0;
        }
        let at = self.next;
        self.next = (at + 1) % self.pictures.len();
        self.pictures.get(at)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn picture(n: u8, keyframe: bool) -> EncodedVideo {
        EncodedVideo {
            data: vec![n],
            keyframe,
        }
    }

    #[test]
    fn records_from_the_first_keyframe_then_loops() {
        let mut l = EncodedLoop::new(3);
        assert!(l.next(false).is_none(), "nothing recorded yet");
        l.record(&picture(0, false));
        l.record(&picture(1, true));
        assert!(l.recording());
        l.record(&picture(2, false));
        l.record(&picture(3, false));
        assert!(!l.recording());
        l.record(&picture(4, false));
        let sent: Vec<u8> = (0..7).map(|_| l.next(false).unwrap().data[0]).collect();
        assert_eq!(sent, vec![1, 2, 3, 1, 2, 3, 1]);
    }

    #[test]
    fn a_keyframe_request_starts_over_at_the_keyframe() {
        let mut l = EncodedLoop::new(3);
        for (n, k) in [(1, true), (2, false), (3, false)] {
            l.record(&picture(n, k));
        }
        assert_eq!(l.next(false).unwrap().data, vec![1]);
        assert_eq!(l.next(false).unwrap().data, vec![2]);
        let again = l.next(true).unwrap();
        assert_eq!((again.data[0], again.keyframe), (1, true));
        assert_eq!(l.next(false).unwrap().data, vec![2]);
    }
}
