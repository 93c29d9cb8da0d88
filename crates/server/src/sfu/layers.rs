//! What a publisher sends of one video, as its reader sees it, without IO: which simulcast
//! layer each packet belongs to (by RID, as the publishing connection opened them), each
//! layer's picture size (from the sequence parameter set its keyframes carry) and bitrate
//! (measured). The core's allocator chooses among these layers; a report goes to it when a
//! size changes, a layer appears or goes quiet, or a bitrate moves by a quarter.

use between_media::h264_rtp::keyframe_size;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Bitrates are measured over windows this long.
pub const LAYER_WINDOW: Duration = Duration::from_secs(2);
/// At most this many layers per track are told apart (browsers send up to 3; more is an
/// attacker's, whose extra streams all count as the last).
const MAX_LAYERS: u8 = 4;

/// One layer of a published video, for the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer as the fan-out tags its packets.
    pub id: u8,
    pub width: u32,
    pub height: u32,
    /// Bits per second over the last window (0 until one ended).
    pub bitrate: u32,
}

#[derive(Debug, Default)]
struct Seen {
    size: Option<(u32, u32)>,
    bytes: u64,
    bitrate: u32,
    /// Packets in the current window.
    active: bool,
}

/// One published track's layers.
#[derive(Debug)]
pub struct LayerMeter {
    by_ssrc: HashMap<u32, u8>,
    by_rid: HashMap<String, u8>,
    layers: Vec<Seen>,
    window_start: Option<Instant>,
    reported: Vec<LayerInfo>,
}

impl Default for LayerMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerMeter {
    pub fn new() -> Self {
        Self {
            by_ssrc: HashMap::new(),
            by_rid: HashMap::new(),
            layers: Vec::new(),
            window_start: None,
            reported: Vec::new(),
        }
    }

    fn new_layer(&mut self) -> u8 {
        let id = u8::try_from(self.layers.len()).unwrap_or(MAX_LAYERS - 1);
        if id >= MAX_LAYERS {
            return MAX_LAYERS - 1;
        }
        self.layers.push(Seen::default());
        id
    }

    /// The publishing connection opened the stream `ssrc`, of simulcast layer `rid` (if any).
    pub fn open(&mut self, ssrc: u32, rid: Option<&str>) {
        if self.by_ssrc.contains_key(&ssrc) {
            return;
        }
        let id = match rid.filter(|r| !r.is_empty()) {
            Some(rid) => match self.by_rid.get(rid) {
                // The same layer on a new SSRC (its encoder restarted).
                Some(&id) => id,
                None if self.by_rid.len() < usize::from(MAX_LAYERS) => {
                    let id = self.new_layer();
                    self.by_rid.insert(rid.to_string(), id);
                    id
                }
                None => MAX_LAYERS - 1,
            },
            None => self.new_layer(),
        };
        if self.by_ssrc.len() < 64 {
            self.by_ssrc.insert(ssrc, id);
        }
    }

    /// The layer a packet of `ssrc` belongs to (a stream never opened counts as a layer of
    /// its own, as one without simulcast is).
    pub fn layer_of(&mut self, ssrc: u32) -> u8 {
        if let Some(&id) = self.by_ssrc.get(&ssrc) {
            return id;
        }
        self.open(ssrc, None);
        self.by_ssrc.get(&ssrc).copied().unwrap_or(MAX_LAYERS - 1)
    }

    /// Whether `layer`'s picture size is known (from a keyframe it sent): until then the
    /// allocator cannot choose it, and its reader asks for a keyframe of it.
    pub fn knows_size(&self, layer: u8) -> bool {
        self.layers
            .get(usize::from(layer))
            .is_some_and(|s| s.size.is_some())
    }

    /// Counts one packet of `layer`; returns the layers when the allocator should hear of
    /// them again.
    pub fn observe(&mut self, now: Instant, layer: u8, payload: &[u8]) -> Option<Vec<LayerInfo>> {
        let start = *self.window_start.get_or_insert(now);
        let mut changed = false;
        if let Some(seen) = self.layers.get_mut(usize::from(layer)) {
            seen.bytes += payload.len() as u64;
            seen.active = true;
            if let Some(size) = keyframe_size(payload)
                && seen.size != Some(size)
            {
                seen.size = Some(size);
                changed = true;
            }
        }
        let elapsed = now.duration_since(start);
        if elapsed >= LAYER_WINDOW {
            let secs = elapsed.as_secs_f64();
            for seen in &mut self.layers {
                seen.bitrate = (seen.bytes as f64 * 8.0 / secs) as u32;
                seen.bytes = 0;
            }
            self.window_start = Some(now);
            let current = self.current();
            let moved = current.len() != self.reported.len()
                || current.iter().zip(&self.reported).any(|(a, b)| {
                    a.id != b.id
                        || (a.width, a.height) != (b.width, b.height)
                        || a.bitrate.abs_diff(b.bitrate) > b.bitrate / 4
                });
            for seen in &mut self.layers {
                seen.active = false;
            }
            if moved {
                self.reported = current.clone();
                return Some(current);
            }
            return None;
        }
        if changed {
            self.reported = self.current();
            return Some(self.reported.clone());
        }
        None
    }

    /// The layers with a known size that sent in the current window, by id.
    fn current(&self) -> Vec<LayerInfo> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active)
            .filter_map(|(id, s)| {
                let (width, height) = s.size?;
                Some(LayerInfo {
                    id: u8::try_from(id).ok()?,
                    width,
                    height,
                    bitrate: s.bitrate,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STAP-A with the SPS of a `width`x`height` picture our encoder made.
    fn keyframe(width: u32, height: u32) -> Vec<u8> {
        use between_media::h264::{H264Encoder, VideoEncoderSettings};
        use between_media::rtp::RtpPacketizer;
        let mut encoder = H264Encoder::new(VideoEncoderSettings::camera()).expect("encoder");
        let frame = between_media::video::I420Frame::black(width, height).expect("frame");
        let encoded = encoder.encode(&frame).expect("encode").expect("a picture");
        RtpPacketizer::h264(1, 102)
            .packetize(Instant::now(), &encoded.data, 3000)
            .remove(0)
            .payload
            .to_vec()
    }

    #[test]
    fn layers_are_told_apart_by_rid_and_sized_by_their_keyframes() {
        let mut m = LayerMeter::new();
        let t0 = Instant::now();
        m.open(111, Some("q"));
        m.open(222, Some("f"));
        assert_eq!((m.layer_of(111), m.layer_of(222)), (0, 1));
        assert_eq!(m.observe(t0, 0, &[0x41, 0]), None, "no size known yet");
        let small = m
            .observe(t0, 0, &keyframe(320, 180))
            .expect("a size: told at once");
        assert_eq!(small.len(), 1);
        assert_eq!(
            (small[0].id, small[0].width, small[0].height),
            (0, 320, 180)
        );
        let both = m.observe(t0, 1, &keyframe(1280, 720)).expect("told");
        assert_eq!(
            both.iter().map(|l| l.width).collect::<Vec<_>>(),
            [320, 1280]
        );
        // A restarted encoder of the same layer keeps its id.
        m.open(333, Some("q"));
        assert_eq!(m.layer_of(333), 0);
    }

    #[test]
    fn bitrates_are_measured_and_a_quiet_layer_drops_out() {
        let mut m = LayerMeter::new();
        let t0 = Instant::now();
        m.open(1, Some("q"));
        m.open(2, Some("h"));
        m.observe(t0, 0, &keyframe(320, 180));
        m.observe(t0, 1, &keyframe(640, 360));
        // 2 s of 1000-byte packets: 50/s on layer 0, 100/s on layer 1.
        let mut last = None;
        for i in 1..=200u32 {
            let t = t0 + Duration::from_millis(u64::from(i) * 10);
            if i % 2 == 0 {
                last = m.observe(t, 0, &[0x41; 1000]).or(last);
            }
            last = m.observe(t, 1, &[0x41; 1000]).or(last);
        }
        let report = last.expect("a window ended");
        assert_eq!(report.len(), 2);
        let rates: Vec<u32> = report.iter().map(|l| l.bitrate / 1000).collect();
        assert!((390..=410).contains(&rates[0]), "{rates:?}");
        assert!((790..=810).contains(&rates[1]), "{rates:?}");
        // The next window only layer 1 sends: layer 0 is reported gone.
        let mut last = None;
        for i in 201..=400u32 {
            let t = t0 + Duration::from_millis(u64::from(i) * 10);
            last = m.observe(t, 1, &[0x41; 1000]).or(last);
        }
        let report = last.expect("layer 0 went quiet");
        assert_eq!(report.iter().map(|l| l.id).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn an_attacker_s_many_streams_stay_a_few_layers() {
        let mut m = LayerMeter::new();
        for ssrc in 0..1000 {
            m.open(ssrc, Some(&format!("r{ssrc}")));
            assert!(m.layer_of(ssrc) < MAX_LAYERS);
        }
        for ssrc in 1000..2000 {
            assert!(m.layer_of(ssrc) < MAX_LAYERS);
        }
        assert!(m.by_ssrc.len() <= 64 && m.layers.len() <= usize::from(MAX_LAYERS));
    }
}
