//! Which simulcast layer of a track reaches one subscriber, packet by packet, decided without
//! IO. A subscriber's decoder can only change to another layer at a picture that needs no
//! earlier one, so a new target is taken at its first keyframe packet; until then the layer
//! it has goes on (no gap while it waits). Numbering stays continuous across the switch:
//! the [`super::rewrite::Rewriter`] after it sees a new source.

use between_media::h264_rtp::starts_keyframe;

/// Re-ask for a keyframe this often while a switch waits for one (a request can be lost).
pub const SWITCH_KEYFRAME_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSwitch {
    /// The layer going out (`None`: nothing, paused or not started).
    current: Option<u8>,
    /// The layer wanted.
    target: Option<u8>,
}

impl Default for LayerSwitch {
    /// A track without simulcast has one layer, 0, which goes out at once.
    fn default() -> Self {
        Self {
            current: Some(0),
            target: Some(0),
        }
    }
}

impl LayerSwitch {
    /// The layer the allocator chose (`None`: pause). True when a keyframe of it is needed
    /// to switch. `urgent` (a step down for a link that cannot carry the old layer): the old
    /// layer stops now and the picture holds until the new one's keyframe.
    pub fn set_target(&mut self, target: Option<u8>, urgent: bool) -> bool {
        self.target = target;
        if target.is_none() || (urgent && target != self.current) {
            // Pausing needs no picture: stop now, so the bandwidth is free at once.
            self.current = None;
        }
        self.waiting()
    }

    /// Whether a switch waits for a keyframe of the target.
    pub fn waiting(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }

    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// The layer a keyframe is wanted of: the one switched to, else the one going out.
    pub fn keyframe_layer(&self) -> Option<u8> {
        self.target.or(self.current)
    }

    /// Whether a packet of `layer` goes to the subscriber (`video`: it may start a switch only
    /// at a keyframe; audio has one layer and switches nowhere).
    pub fn admit(&mut self, layer: u8, payload: &[u8], video: bool) -> bool {
        if Some(layer) == self.target && self.current != self.target {
            if video && !starts_keyframe(payload) {
                return self.current == Some(layer);
            }
            self.current = self.target;
            return true;
        }
        self.current == Some(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = &[0x67, 0x42, 0, 0x1f];
    const DELTA: &[u8] = &[0x41, 0x9a];

    #[test]
    fn one_layer_goes_out_from_the_first_packet() {
        let mut s = LayerSwitch::default();
        assert!(s.admit(0, DELTA, true));
        assert!(!s.admit(1, KEY, true), "a layer nobody chose");
    }

    #[test]
    fn a_switch_waits_for_the_new_layer_s_keyframe_and_keeps_the_old_until_then() {
        let mut s = LayerSwitch::default();
        assert!(s.set_target(Some(2), false), "needs a keyframe");
        assert!(s.admit(0, DELTA, true), "the old layer goes on");
        assert!(!s.admit(2, DELTA, true), "not at a delta picture");
        assert!(s.admit(2, KEY, true), "switched");
        assert!(!s.waiting());
        assert!(!s.admit(0, DELTA, true), "the old layer stops");
        assert!(!s.admit(0, KEY, true));
        assert!(s.admit(2, DELTA, true));
        assert_eq!(s.current(), Some(2));
    }

    #[test]
    fn a_pause_stops_at_once_and_a_resume_waits_for_a_keyframe() {
        let mut s = LayerSwitch::default();
        assert!(!s.set_target(None, false));
        assert!(!s.admit(0, KEY, true));
        assert!(s.set_target(Some(0), false));
        assert!(!s.admit(0, DELTA, true));
        assert!(s.admit(0, KEY, true));
        assert!(s.admit(0, DELTA, true));
    }

    #[test]
    fn an_urgent_step_down_stops_the_old_layer_at_once() {
        let mut s = LayerSwitch::default();
        assert!(s.set_target(Some(1), true));
        assert!(!s.admit(0, DELTA, true), "the old layer stops now");
        assert!(!s.admit(0, KEY, true), "even its keyframe");
        assert!(!s.admit(1, DELTA, true));
        assert!(s.admit(1, KEY, true));
        assert!(
            !s.set_target(Some(1), true),
            "the layer it has: nothing stops"
        );
        assert!(s.admit(1, DELTA, true));
    }

    #[test]
    fn choosing_the_layer_it_has_needs_nothing() {
        let mut s = LayerSwitch::default();
        s.set_target(Some(1), false);
        s.admit(1, KEY, true);
        assert!(!s.set_target(Some(1), false));
        // Going back to a layer left before a keyframe came: the old one holds.
        assert!(s.set_target(Some(0), false));
        assert!(!s.set_target(Some(1), false), "back to the one it has");
        assert!(s.admit(1, DELTA, true));
    }
}
