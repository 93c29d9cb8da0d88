//! Screen pictures: 32-bit pixels as capture backends deliver them (X11 ZPixmap, most OS
//! capture APIs) to I420 at a size an encoder takes, and the rules a share follows (its
//! largest size, when an unchanged picture is still worth sending).

use crate::video::{FrameError, I420Frame};

/// A share keeps its native size up to this; larger screens are scaled down to fit, keeping
/// the aspect (text stays legible at 1080p; 4K would cost four times the encoder for little).
pub const MAX_SHARE_SIZE: (u32, u32) = (1920, 1080);

/// Where the red, green and blue bytes sit in one 4-byte pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// B, G, R, X in memory: X11 on a little-endian server, Windows, macOS' BGRA.
    Bgrx,
    /// X, R, G, B in memory: X11 on a big-endian server.
    Xrgb,
    /// R, G, B, X in memory (PipeWire's RGBx).
    Rgbx,
    /// X, B, G, R in memory (PipeWire's xBGR).
    Xbgr,
}

impl PixelLayout {
    fn offsets(self) -> (usize, usize, usize) {
        match self {
            Self::Bgrx => (2, 1, 0),
            Self::Xrgb => (1, 2, 3),
            Self::Rgbx => (0, 1, 2),
            Self::Xbgr => (3, 2, 1),
        }
    }
}

/// One captured picture as the backend gave it.
#[derive(Debug, Clone, Copy)]
pub struct ScreenPixels<'a> {
    pub width: u32,
    pub height: u32,
    /// Bytes per row (at least `4 * width`).
    pub stride: usize,
    pub layout: PixelLayout,
    pub data: &'a [u8],
}

/// The size a `width`×`height` screen is sent at: native up to [`MAX_SHARE_SIZE`], else
/// scaled down to fit keeping the aspect; always even (the encoder's chroma needs it).
pub fn share_size(width: u32, height: u32) -> (u32, u32) {
    let (max_w, max_h) = MAX_SHARE_SIZE;
    let (w, h) = (width.max(2) as u64, height.max(2) as u64);
    let (w, h) = if w > max_w as u64 || h > max_h as u64 {
        // The tighter of the two limits decides.
        if w * max_h as u64 >= h * max_w as u64 {
            (max_w as u64, (h * max_w as u64 / w).max(2))
        } else {
            ((w * max_h as u64 / h).max(2), max_h as u64)
        }
    } else {
        (w, h)
    };
    ((w as u32) & !1, (h as u32) & !1)
}

/// Converts a captured picture to I420 (BT.601, limited range, as the decoders and the
/// page's shader assume) at [`share_size`]. Scaling down samples the nearest source pixel
/// for luma and averages 2×2 for chroma; an odd last row or column is dropped.
pub fn to_i420(pixels: &ScreenPixels<'_>) -> Result<I420Frame, FrameError> {
    let (sw, sh) = (pixels.width as usize, pixels.height as usize);
    let needed = pixels
        .stride
        .checked_mul(sh.saturating_sub(1))
        .and_then(|n| n.checked_add(sw * 4));
    if sw < 2 || sh < 2 || pixels.stride < sw * 4 || needed.is_none_or(|n| pixels.data.len() < n) {
        return Err(FrameError::BadLength {
            width: pixels.width,
            height: pixels.height,
            expected: pixels.stride * sh,
            got: pixels.data.len(),
        });
    }
    let (dw, dh) = share_size(pixels.width, pixels.height);
    // Zeroed, not black: both paths write every sample, and a zeroed allocation of this size
    // comes from the kernel already cleared instead of being filled here first.
    let mut out = I420Frame::from_bytes(dw, dh, vec![0; crate::video::i420_len(dw, dh)])?;
    if (dw as usize, dh as usize) == (sw & !1, sh & !1) {
        convert_native(pixels, &mut out);
    } else {
        convert_scaled(pixels, &mut out);
    }
    Ok(out)
}

/// Any output size: each output pixel samples its nearest source pixel.
fn convert_scaled(pixels: &ScreenPixels<'_>, out: &mut I420Frame) {
    let (sw, sh) = (pixels.width as usize, pixels.height as usize);
    let (dw, dh) = (out.width() as usize, out.height() as usize);
    let (ro, go, bo) = pixels.layout.offsets();
    // Source column and row of each output column and row.
    let xs: Vec<usize> = (0..dw).map(|x| x * sw / dw).collect();
    let ys: Vec<usize> = (0..dh).map(|y| y * sh / dh).collect();
    let data = pixels.data;
    let stride = pixels.stride;
    let rgb = |x: usize, y: usize| -> (i32, i32, i32) {
        let p = y * stride + x * 4;
        (
            i32::from(data[p + ro]),
            i32::from(data[p + go]),
            i32::from(data[p + bo]),
        )
    };
    let (y_plane, u_plane, v_plane) = out.planes_mut();
    for (dy, &sy) in ys.iter().enumerate() {
        let row = &mut y_plane[dy * dw..(dy + 1) * dw];
        for (o, &sx) in row.iter_mut().zip(&xs) {
            let (r, g, b) = rgb(sx, sy);
            *o = luma(r, g, b);
        }
    }
    let cw = dw / 2;
    for cy in 0..dh / 2 {
        let (y0, y1) = (ys[2 * cy], ys[2 * cy + 1]);
        for cx in 0..cw {
            let (x0, x1) = (xs[2 * cx], xs[2 * cx + 1]);
            let mut sum = (0, 0, 0);
            for (x, y) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] {
                let (r, g, b) = rgb(x, y);
                sum = (sum.0 + r, sum.1 + g, sum.2 + b);
            }
            let (r, g, b) = ((sum.0 + 2) / 4, (sum.1 + 2) / 4, (sum.2 + 2) / 4);
            u_plane[cy * cw + cx] = clamp(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
            v_plane[cy * cw + cx] = clamp(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
        }
    }
}

/// The common case, no scaling. One copy of the loops per layout, so the byte offsets are
/// constants and the luma loop vectorises (about 3x faster at 1080p than reading the offsets
/// at run time, `between bench screen`); no clamping either, as BT.601 limited range cannot
/// leave 16..=240 for 8-bit input.
fn convert_native(pixels: &ScreenPixels<'_>, out: &mut I420Frame) {
    match pixels.layout {
        PixelLayout::Bgrx => convert_rows::<2, 1, 0>(pixels, out),
        PixelLayout::Xrgb => convert_rows::<1, 2, 3>(pixels, out),
        PixelLayout::Rgbx => convert_rows::<0, 1, 2>(pixels, out),
        PixelLayout::Xbgr => convert_rows::<3, 2, 1>(pixels, out),
    }
}

fn convert_rows<const R: usize, const G: usize, const B: usize>(
    pixels: &ScreenPixels<'_>,
    out: &mut I420Frame,
) {
    let (w, h) = (out.width() as usize, out.height() as usize);
    let (y_plane, u_plane, v_plane) = out.planes_mut();
    let cw = w / 2;
    let luma_row = |dst: &mut [u8], src: &[u8]| {
        for (o, p) in dst.iter_mut().zip(src.chunks_exact(4)) {
            let (r, g, b) = (u32::from(p[R]), u32::from(p[G]), u32::from(p[B]));
            *o = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        }
    };
    for cy in 0..h / 2 {
        let top = &pixels.data[2 * cy * pixels.stride..][..w * 4];
        let bottom = &pixels.data[(2 * cy + 1) * pixels.stride..][..w * 4];
        let (y_top, y_rest) = y_plane[2 * cy * w..].split_at_mut(w);
        luma_row(y_top, top);
        luma_row(&mut y_rest[..w], bottom);
        let u_row = &mut u_plane[cy * cw..(cy + 1) * cw];
        let v_row = &mut v_plane[cy * cw..(cy + 1) * cw];
        let blocks = top.chunks_exact(8).zip(bottom.chunks_exact(8));
        for ((u, v), (t, b)) in u_row.iter_mut().zip(v_row.iter_mut()).zip(blocks) {
            let sum = |c: usize| {
                i32::from(t[c]) + i32::from(t[4 + c]) + i32::from(b[c]) + i32::from(b[4 + c])
            };
            let (r, g, b) = ((sum(R) + 2) >> 2, (sum(G) + 2) >> 2, (sum(B) + 2) >> 2);
            *u = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
            *v = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
        }
    }
}

fn luma(r: i32, g: i32, b: i32) -> u8 {
    clamp(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16)
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// A page of "text" for tests and benchmarks: lines of glyph-sized dark strokes on white,
/// `width`×`rows`, BGRX. The same page every time (a fixed pseudo-random sequence), so a
/// window of it scrolled by a few rows is what a reading scroll looks like to an encoder.
pub fn text_page(width: usize, rows: usize) -> Vec<u8> {
    let mut page = vec![255u8; width * rows * 4];
    let mut seed = 0x2545_f491_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let line_height = 22;
    let margin = 40;
    for line in 0..rows / line_height {
        let top = line * line_height + 5;
        let mut x = margin;
        let end = margin + (next() as usize % width.saturating_sub(5 * margin).max(1));
        while x < end {
            let glyph = 5 + next() as usize % 6;
            let bits = next();
            for gy in 0..13 {
                for gx in 0..glyph {
                    if (bits >> ((gy * 3 + gx) % 32)) & 1 == 1 {
                        let p = ((top + gy) * width + x + gx) * 4;
                        page[p..p + 3].fill(30);
                    }
                }
            }
            x += glyph + 2 + if next() % 6 == 0 { 7 } else { 0 };
        }
    }
    page
}

/// Screens change rarely; a share sends a picture when it changed, or when the last one sent
/// is older than `min_interval_ms` (so a receiver that lost one catches up, and the rate
/// stays between the floor and the capture rate). Pure: the caller passes the time.
#[derive(Debug)]
pub struct ChangeGate {
    min_interval_ms: u64,
    last: Option<(I420Frame, u64)>,
}

impl ChangeGate {
    pub fn new(min_interval_ms: u64) -> Self {
        Self {
            min_interval_ms,
            last: None,
        }
    }

    /// Whether to send `frame` captured at `now_ms`; `force` (a keyframe is due) always sends.
    pub fn should_send(&mut self, frame: &I420Frame, now_ms: u64, force: bool) -> bool {
        let send = match &self.last {
            None => true,
            Some((last, at)) => {
                force || now_ms.saturating_sub(*at) >= self.min_interval_ms || last != frame
            }
        };
        if send {
            match &mut self.last {
                // Reuse the buffer: a 1080p picture is 3 MB.
                Some((last, at))
                    if last.width() == frame.width() && last.height() == frame.height() =>
                {
                    last.as_bytes_mut().copy_from_slice(frame.as_bytes());
                    *at = now_ms;
                }
                _ => self.last = Some((frame.clone(), now_ms)),
            }
        }
        send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, (r, g, b): (u8, u8, u8)) -> Vec<u8> {
        (0..w * h).flat_map(|_| [b, g, r, 0]).collect()
    }

    #[test]
    fn sizes_keep_native_up_to_1080p_and_scale_larger_keeping_aspect() {
        assert_eq!(share_size(1280, 720), (1280, 720));
        assert_eq!(share_size(1920, 1080), (1920, 1080));
        assert_eq!(share_size(3840, 2160), (1920, 1080));
        assert_eq!(share_size(2560, 1600), (1728, 1080));
        assert_eq!(share_size(1081, 3000), (388, 1080));
        assert_eq!(share_size(801, 601), (800, 600));
    }

    #[test]
    fn colours_convert_as_bt601_limited_range() {
        for (rgb, yuv) in [
            ((0, 0, 0), (16, 128, 128)),
            ((255, 255, 255), (235, 128, 128)),
            ((255, 0, 0), (82, 90, 240)),
            ((0, 0, 255), (41, 240, 110)),
        ] {
            let data = solid(4, 2, rgb);
            let frame = to_i420(&ScreenPixels {
                width: 4,
                height: 2,
                stride: 16,
                layout: PixelLayout::Bgrx,
                data: &data,
            })
            .expect("convert");
            assert_eq!(
                (frame.y()[0], frame.u()[0], frame.v()[0]),
                yuv,
                "rgb {rgb:?}"
            );
        }
    }

    #[test]
    fn stride_padding_and_layouts_are_honoured() {
        // 2x2 XRGB red with 8 bytes of padding per row.
        let mut data = vec![0u8; 2 * 16];
        for row in 0..2 {
            for x in 0..2 {
                data[row * 16 + x * 4 + 1] = 255;
            }
        }
        let frame = to_i420(&ScreenPixels {
            width: 2,
            height: 2,
            stride: 16,
            layout: PixelLayout::Xrgb,
            data: &data,
        })
        .expect("convert");
        assert_eq!(frame.y(), &[82, 82, 82, 82]);
    }

    #[test]
    fn short_or_tiny_buffers_are_errors() {
        let data = vec![0u8; 15];
        let pixels = ScreenPixels {
            width: 2,
            height: 2,
            stride: 8,
            layout: PixelLayout::Bgrx,
            data: &data,
        };
        assert!(to_i420(&pixels).is_err());
        assert!(to_i420(&ScreenPixels { width: 1, ..pixels }).is_err());
    }

    #[test]
    fn large_screens_are_scaled_to_fit() {
        let data = solid(3840, 2160, (255, 255, 255));
        let frame = to_i420(&ScreenPixels {
            width: 3840,
            height: 2160,
            stride: 3840 * 4,
            layout: PixelLayout::Bgrx,
            data: &data,
        })
        .expect("convert");
        assert_eq!((frame.width(), frame.height()), (1920, 1080));
        assert!(frame.y().iter().all(|&p| p == 235));
    }

    #[test]
    fn the_native_path_matches_the_scaling_one_at_the_same_size() {
        let (w, h) = (36u32, 20u32);
        let data: Vec<u8> = (0..w * h * 4 + 8).map(|i| (i * 7 % 251) as u8).collect();
        for layout in [
            PixelLayout::Bgrx,
            PixelLayout::Xrgb,
            PixelLayout::Rgbx,
            PixelLayout::Xbgr,
        ] {
            let pixels = ScreenPixels {
                width: w,
                height: h,
                stride: (w * 4) as usize,
                layout,
                data: &data,
            };
            let mut native = I420Frame::black(w, h).expect("frame");
            let mut scaled = I420Frame::black(w, h).expect("frame");
            convert_native(&pixels, &mut native);
            convert_scaled(&pixels, &mut scaled);
            assert_eq!(native, scaled, "{layout:?}");
        }
    }

    #[test]
    fn the_gate_sends_changes_and_a_floor_rate() {
        let a = I420Frame::black(4, 4).expect("frame");
        let mut b = a.clone();
        b.planes_mut().0[0] = 200;
        let mut gate = ChangeGate::new(200);
        assert!(gate.should_send(&a, 0, false), "first picture");
        assert!(!gate.should_send(&a, 66, false), "unchanged");
        assert!(gate.should_send(&a, 66, true), "keyframe due");
        assert!(!gate.should_send(&a, 133, false));
        assert!(gate.should_send(&b, 140, false), "changed");
        assert!(!gate.should_send(&b, 200, false));
        assert!(
            gate.should_send(&b, 340, false),
            "floor: 200 ms since the last one"
        );
    }
}
