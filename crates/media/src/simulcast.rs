//! Which simulcast layers a camera is sent in, and the cheap box-filtered downscale that makes
//! the lower ones. Pure: the engine's pacer encodes one picture per layer per tick.
//!
//! Rates: the top layer keeps the camera's bitrate; half size gets 30 % of it and quarter size
//! 10 % (at least 100 kbit/s), about LiveKit's presets (1.7 Mbit/s 720p, 450 k 360p, 160 k
//! 180p) scaled to ours: a quarter of the pixels needs about a third of the bits at the same
//! quality (the encoder spends less per pixel on a smoother small picture), a sixteenth about
//! a tenth. So the whole is 1.4x the top layer's bitrate, and the encoding ~1.3x its CPU.

use crate::video::{FrameError, I420Frame};

/// Up to this many layers, lowest first, as browsers send them.
pub const RIDS: [&str; 3] = ["q", "h", "f"];
/// No layer narrower than this (180p): below it a picture shows nothing a tile needs.
const MIN_WIDTH: u32 = 320;
/// The lowest bitrate a layer gets.
const MIN_BITRATE: u32 = 100_000;

/// One layer to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    pub rid: &'static str,
    pub width: u32,
    pub height: u32,
    pub bitrate_bps: u32,
    /// How many halvings of the source make it (0: the source itself).
    pub halvings: u8,
}

/// The layers for a `width`x`height` camera sent at `bitrate_bps`, lowest first: one (no
/// simulcast) for a source too small to halve into a useful picture, else up to three, each
/// half the size of the next. A layer's sides stay even (I420).
pub fn plan(width: u32, height: u32, bitrate_bps: u32) -> Vec<LayerSpec> {
    let mut layers = Vec::new();
    let (mut w, mut h) = (width, height);
    for (halvings, share) in [(0u8, 1.0f64), (1, 0.3), (2, 0.1)] {
        if halvings > 0 {
            if !can_halve(w, h) {
                break;
            }
            w /= 2;
            h /= 2;
        }
        let rate = (f64::from(bitrate_bps) * share) as u32;
        layers.push(LayerSpec {
            rid: "",
            width: w,
            height: h,
            bitrate_bps: if halvings == 0 {
                bitrate_bps
            } else {
                rate.max(MIN_BITRATE).min(bitrate_bps)
            },
            halvings,
        });
    }
    layers.reverse();
    if layers.len() > 1 {
        // Named from the lowest up, whatever their count: "q", "h" for two, as browsers do.
        for (layer, rid) in layers.iter_mut().zip(RIDS) {
            layer.rid = rid;
        }
    }
    layers
}

/// Which layers to encode (lowest first; `sizes[i]`: layer i's picture size now, `None` if
/// the source is too small to make it) when receivers need `max` at most (`None`: someone
/// may draw it at full size). Every layer up to the smallest covering `max` is encoded, the
/// lower ones too: they are cheap, and the server falls back to them when a link is thin.
/// None for `(0, 0)`: nobody draws it.
pub fn layers_needed(sizes: &[Option<(u32, u32)>], max: Option<(u32, u32)>) -> Vec<bool> {
    let Some((w, h)) = max else {
        return sizes.iter().map(Option::is_some).collect();
    };
    if w == 0 || h == 0 {
        return vec![false; sizes.len()];
    }
    let cover = sizes
        .iter()
        .position(|s| s.is_some_and(|(sw, sh)| sw >= w && sh >= h))
        .or_else(|| sizes.iter().rposition(Option::is_some));
    sizes
        .iter()
        .enumerate()
        .map(|(i, s)| s.is_some() && cover.is_some_and(|c| i <= c))
        .collect()
}

/// Of the layers `needed` (lowest first, costing `bitrates`), those an uplink of `budget` bits
/// per second carries (`None`: not known to be short): from the lowest up while their sum
/// fits; the lowest needed one always (receivers keep a picture; the server pauses it for
/// those whose own link cannot carry it).
pub fn layers_within(needed: &[bool], bitrates: &[u32], budget: Option<f64>) -> Vec<bool> {
    let Some(budget) = budget else {
        return needed.to_vec();
    };
    let mut used = 0.0;
    let mut first = true;
    needed
        .iter()
        .zip(bitrates)
        .map(|(&on, &rate)| {
            if !on {
                return false;
            }
            used += f64::from(rate);
            let keep = first || used <= budget;
            first = false;
            keep
        })
        .collect()
}

/// The rate for a single-stream encoder now at `current` (at most `max`) when the uplink
/// carries `budget`: lower at once when short by a fifth, higher when there is a quarter to
/// spare; `None` to keep it (each change restarts the encoder at a keyframe).
pub fn rate_within(current: u32, max: u32, budget: Option<f64>) -> Option<u32> {
    let budget = budget?;
    let now = f64::from(current);
    let wanted = if budget < 0.8 * now {
        budget.max(f64::from(MIN_BITRATE))
    } else if budget > 1.25 * now && current < max {
        budget.min(f64::from(max))
    } else {
        return None;
    };
    let wanted = wanted as u32;
    (wanted != current).then_some(wanted)
}

/// Whether a `width`x`height` picture halves into a layer: sides that stay even (I420), and a
/// picture worth having.
pub fn can_halve(width: u32, height: u32) -> bool {
    width.is_multiple_of(4) && height.is_multiple_of(4) && width / 2 >= MIN_WIDTH
}

/// `frame` at half its width and height, each output sample the mean of a 2x2 block (nearest
/// sampling aliases a noisy camera picture into shimmer the encoder then pays for).
pub fn halved(frame: &I420Frame) -> Result<I420Frame, FrameError> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut out = I420Frame::black((w / 2) as u32, (h / 2) as u32)?;
    let (y, u, v) = out.planes_mut();
    halve_plane(frame.y(), w, h, y);
    halve_plane(frame.u(), w / 2, h / 2, u);
    halve_plane(frame.v(), w / 2, h / 2, v);
    Ok(out)
}

fn halve_plane(src: &[u8], w: usize, h: usize, dst: &mut [u8]) {
    let dw = w / 2;
    for dy in 0..h / 2 {
        let (top, bottom) = (&src[2 * dy * w..][..w], &src[(2 * dy + 1) * w..][..w]);
        for (dx, o) in dst[dy * dw..][..dw].iter_mut().enumerate() {
            let sum = u16::from(top[2 * dx])
                + u16::from(top[2 * dx + 1])
                + u16::from(bottom[2 * dx])
                + u16::from(bottom[2 * dx + 1]);
            *o = ((sum + 2) / 4) as u8;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_720p_camera_goes_in_three_layers_and_a_small_one_in_one() {
        let l = plan(1280, 720, 1_500_000);
        let got: Vec<_> = l
            .iter()
            .map(|l| (l.rid, l.width, l.height, l.bitrate_bps, l.halvings))
            .collect();
        assert_eq!(
            got,
            vec![
                ("q", 320, 180, 150_000, 2),
                ("h", 640, 360, 450_000, 1),
                ("f", 1280, 720, 1_500_000, 0),
            ]
        );
        let two = plan(640, 360, 600_000);
        assert_eq!(two.len(), 2, "320x180 is worth a layer, 160x90 is not");
        assert_eq!(
            (two[0].rid, two[0].width, two[0].bitrate_bps),
            ("q", 320, 180_000)
        );
        assert_eq!((two[1].rid, two[1].width), ("h", 640));
        let one = plan(320, 240, 400_000);
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].rid, one[0].width, one[0].halvings), ("", 320, 0));
        // Sides that would turn odd are not halved.
        assert_eq!(plan(1278, 720, 1_000_000).len(), 1);
        // A low camera rate never gives a lower layer more than the top one.
        assert!(
            plan(1280, 720, 80_000)
                .iter()
                .all(|l| l.bitrate_bps <= 80_000)
        );
    }

    #[test]
    fn layers_up_to_the_one_covering_the_largest_tile_are_encoded() {
        let sizes = [Some((320, 180)), Some((640, 360)), Some((1280, 720))];
        assert_eq!(layers_needed(&sizes, None), [true, true, true]);
        assert_eq!(
            layers_needed(&sizes, Some((300, 160))),
            [true, false, false]
        );
        assert_eq!(layers_needed(&sizes, Some((321, 100))), [true, true, false]);
        assert_eq!(
            layers_needed(&sizes, Some((1920, 1080))),
            [true, true, true]
        );
        assert_eq!(layers_needed(&sizes, Some((0, 0))), [false, false, false]);
        // A camera too small for the lowest layer: the top one covers what it can.
        let small = [None, Some((320, 180)), Some((640, 360))];
        assert_eq!(
            layers_needed(&small, Some((200, 100))),
            [false, true, false]
        );
        assert_eq!(layers_needed(&small, None), [false, true, true]);
    }

    #[test]
    fn a_short_uplink_sheds_layers_from_the_top_and_slows_a_single_stream() {
        let rates = [150_000, 450_000, 1_500_000];
        assert_eq!(layers_within(&[true; 3], &rates, None), [true; 3]);
        assert_eq!(
            layers_within(&[true; 3], &rates, Some(700_000.0)),
            [true, true, false]
        );
        assert_eq!(
            layers_within(&[true; 3], &rates, Some(400_000.0)),
            [true, false, false]
        );
        assert_eq!(
            layers_within(&[true; 3], &rates, Some(50_000.0)),
            [true, false, false],
            "the lowest always"
        );
        assert_eq!(
            layers_within(&[false, true, true], &rates, Some(500_000.0)),
            [false, true, false]
        );
        assert_eq!(rate_within(1_000_000, 1_000_000, None), None);
        assert_eq!(
            rate_within(1_000_000, 1_000_000, Some(900_000.0)),
            None,
            "within a fifth"
        );
        assert_eq!(
            rate_within(1_000_000, 1_000_000, Some(500_000.0)),
            Some(500_000)
        );
        assert_eq!(
            rate_within(500_000, 1_000_000, Some(700_000.0)),
            Some(700_000)
        );
        assert_eq!(
            rate_within(500_000, 1_000_000, Some(5_000_000.0)),
            Some(1_000_000)
        );
        assert_eq!(rate_within(1_000_000, 1_000_000, Some(5_000_000.0)), None);
        assert_eq!(
            rate_within(200_000, 1_000_000, Some(10_000.0)),
            Some(MIN_BITRATE)
        );
    }

    #[test]
    fn halving_averages_blocks() {
        let mut f = I420Frame::black(4, 4).unwrap();
        {
            let (y, u, _) = f.planes_mut();
            y.copy_from_slice(&[
                0, 100, 10, 10, //
                200, 100, 10, 10, //
                7, 7, 255, 255, //
                7, 7, 255, 255,
            ]);
            u.copy_from_slice(&[1, 2, 3, 4]);
        }
        let h = halved(&f).unwrap();
        assert_eq!((h.width(), h.height()), (2, 2));
        assert_eq!(h.y(), &[100, 10, 7, 255]);
        assert_eq!(h.u(), &[3]);
    }
}
