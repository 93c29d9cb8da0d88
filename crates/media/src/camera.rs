//! What a camera delivers, turned into what the encoder takes: which of a camera's modes to
//! ask for, and its pictures (MJPEG, YUYV, NV12) converted to I420. No device I/O: the
//! engine's device layer hands in the modes it was offered and the bytes it captured.

use crate::video::{FrameError, I420Frame};
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// How a camera encodes its pictures (the ones webcams offer and this module converts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// One JPEG per picture; what most USB webcams offer at 720p30 and above.
    Mjpeg,
    /// Packed 4:2:2, `Y0 U Y1 V`.
    Yuyv,
    /// A luma plane, then interleaved `U V` at half size.
    Nv12,
}

impl PixelFormat {
    /// Work per picture before encoding: raw formats are a copy, MJPEG is a decode.
    fn cost(self) -> u8 {
        match self {
            PixelFormat::Nv12 => 0,
            PixelFormat::Yuyv => 1,
            PixelFormat::Mjpeg => 2,
        }
    }
}

/// One way a camera can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CameraMode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: PixelFormat,
}

impl std::fmt::Display for CameraMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{}@{} {:?}",
            self.width, self.height, self.fps, self.format
        )
    }
}

/// What a call asks of a camera: 1280x720 at 30 pictures a second.
pub const WANTED: (u32, u32, u32) = (1280, 720, 30);

/// Below this a camera's motion looks jerky; a smaller picture at a smooth rate is the
/// better call (USB 2 webcams often offer 720p raw only at 5-10 fps, and MJPEG at 30).
const SMOOTH_FPS: u32 = 24;

/// Picks the mode to ask for: a smooth rate first (if the camera has one), then the smallest
/// picture at least 1280x720 (a larger one only costs decoding and scaling; a smaller one
/// looks worse), else the largest; then the rate nearest 30; then the format cheapest to
/// convert. `None` when nothing offered can be used.
pub fn choose_mode(offered: &[CameraMode]) -> Option<CameraMode> {
    let usable: Vec<CameraMode> = offered
        .iter()
        .copied()
        .filter(|m| m.width >= 2 && m.height >= 2 && m.fps > 0)
        .collect();
    let any_smooth = usable.iter().any(|m| m.fps >= SMOOTH_FPS);
    let (want_w, want_h, want_fps) = WANTED;
    let wanted_area = u64::from(want_w) * u64::from(want_h);
    usable
        .into_iter()
        .filter(|m| !any_smooth || m.fps >= SMOOTH_FPS)
        .min_by_key(|m| {
            let area = u64::from(m.width) * u64::from(m.height);
            // Big enough ones first, smallest of those; then the rest, largest first.
            let size_rank = if area >= wanted_area {
                (0, area)
            } else {
                (1, u64::MAX - area)
            };
            let fps_rank = (m.fps.abs_diff(want_fps), std::cmp::Reverse(m.fps));
            (size_rank, fps_rank, m.format.cost())
        })
}

#[derive(Debug, thiserror::Error)]
pub enum CameraFrameError {
    #[error(
        "the camera sent {got} bytes for a {width}x{height} {format:?} picture (expected {expected})"
    )]
    Truncated {
        format: PixelFormat,
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
    #[error("the camera's JPEG picture could not be decoded: {0}")]
    Jpeg(String),
    #[error("the camera's picture has an unusable size: {0}")]
    Size(#[from] FrameError),
}

/// Converts one captured picture to I420. `stride` is the bytes per row of the (first)
/// plane as the driver laid it out, which may be more than the picture needs (0: no
/// padding). Odd sizes lose their last column or row (I420 needs even ones). MJPEG's
/// full-range YCbCr is mapped to the video range the encoder expects; YUYV and NV12 from
/// V4L2 cameras are video range already. MJPEG carries its own size and layout.
pub fn to_i420(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    data: &[u8],
) -> Result<I420Frame, CameraFrameError> {
    if format != PixelFormat::Mjpeg && (width < 2 || height < 2) {
        return Err(FrameError::BadSize { width, height }.into());
    }
    match format {
        PixelFormat::Yuyv => {
            let stride = if stride == 0 {
                width as usize * 2
            } else {
                stride
            };
            yuyv_to_i420(width, height, stride.max(width as usize * 2), data)
        }
        PixelFormat::Nv12 => {
            let stride = if stride == 0 { width as usize } else { stride };
            nv12_to_i420(width, height, stride.max(width as usize), data)
        }
        PixelFormat::Mjpeg => mjpeg_to_i420(data),
    }
}

fn even(n: u32) -> u32 {
    n & !1
}

fn check_len(
    format: PixelFormat,
    width: u32,
    height: u32,
    expected: usize,
    got: usize,
) -> Result<(), CameraFrameError> {
    if got < expected {
        return Err(CameraFrameError::Truncated {
            format,
            width,
            height,
            expected,
            got,
        });
    }
    Ok(())
}

fn yuyv_to_i420(
    width: u32,
    height: u32,
    stride: usize,
    data: &[u8],
) -> Result<I420Frame, CameraFrameError> {
    let (w, h) = (width as usize, height as usize);
    // The last row needs only its pixels, not its padding.
    let needed = stride * h.saturating_sub(1) + w * 2;
    check_len(PixelFormat::Yuyv, width, height, needed, data.len())?;
    let mut frame = I420Frame::black(even(width), even(height))?;
    let (ow, oh) = (even(width) as usize, even(height) as usize);
    let (y_plane, u_plane, v_plane) = frame.planes_mut();
    for row in (0..oh).step_by(2) {
        let top = &data[row * stride..row * stride + ow * 2];
        let bottom = &data[(row + 1) * stride..(row + 1) * stride + ow * 2];
        y_plane[row * ow..(row + 1) * ow]
            .iter_mut()
            .zip(top.iter().step_by(2))
            .for_each(|(out, y)| *out = *y);
        y_plane[(row + 1) * ow..(row + 2) * ow]
            .iter_mut()
            .zip(bottom.iter().step_by(2))
            .for_each(|(out, y)| *out = *y);
        // 4:2:2 has chroma on every row; 4:2:0 keeps the mean of each pair of rows.
        let c_row = row / 2 * (ow / 2);
        for (i, (t, b)) in top.chunks_exact(4).zip(bottom.chunks_exact(4)).enumerate() {
            u_plane[c_row + i] = avg(t[1], b[1]);
            v_plane[c_row + i] = avg(t[3], b[3]);
        }
    }
    Ok(frame)
}

fn nv12_to_i420(
    width: u32,
    height: u32,
    stride: usize,
    data: &[u8],
) -> Result<I420Frame, CameraFrameError> {
    let (w, h) = (width as usize, height as usize);
    // Both planes share the stride; the chroma plane of an odd size rounds up.
    let c_stride = stride.max(w.div_ceil(2) * 2);
    let needed = stride * h + c_stride * (h.div_ceil(2) - 1) + w.div_ceil(2) * 2;
    check_len(PixelFormat::Nv12, width, height, needed, data.len())?;
    let mut frame = I420Frame::black(even(width), even(height))?;
    let (ow, oh) = (even(width) as usize, even(height) as usize);
    let (y_plane, u_plane, v_plane) = frame.planes_mut();
    for row in 0..oh {
        y_plane[row * ow..(row + 1) * ow].copy_from_slice(&data[row * stride..row * stride + ow]);
    }
    let chroma = &data[stride * h..];
    for row in 0..oh / 2 {
        let line = &chroma[row * c_stride..row * c_stride + ow];
        let out = row * (ow / 2);
        for (i, uv) in line.chunks_exact(2).enumerate() {
            u_plane[out + i] = uv[0];
            v_plane[out + i] = uv[1];
        }
    }
    Ok(frame)
}

fn mjpeg_to_i420(data: &[u8]) -> Result<I420Frame, CameraFrameError> {
    // The size cap keeps a corrupt header from asking for gigabytes.
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_max_width(7680)
        .set_max_height(4320);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    let jpeg = |e: zune_jpeg::errors::DecodeErrors| CameraFrameError::Jpeg(e.to_string());
    decoder.decode_headers().map_err(jpeg)?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| CameraFrameError::Jpeg("no picture size in its header".into()))?;
    let pixels = decoder.decode().map_err(jpeg)?;
    let (w, h) = (width, height);
    let (width, height) = (w as u32, h as u32);
    // A greyscale JPEG (some IR cameras) decodes to one byte per pixel.
    let components = if pixels.len() == w * h { 1 } else { 3 };
    check_len(
        PixelFormat::Mjpeg,
        width,
        height,
        w * h * components,
        pixels.len(),
    )?;
    let mut frame = I420Frame::black(even(width), even(height))?;
    let (ow, oh) = (even(width) as usize, even(height) as usize);
    let (y_plane, u_plane, v_plane) = frame.planes_mut();
    let luma = &*FULL_TO_VIDEO_LUMA;
    let chroma = &*FULL_TO_VIDEO_CHROMA;
    if components == 1 {
        for row in 0..oh {
            for (out, px) in y_plane[row * ow..(row + 1) * ow]
                .iter_mut()
                .zip(&pixels[row * w..row * w + ow])
            {
                *out = luma[usize::from(*px)];
            }
        }
        return Ok(frame);
    }
    let stride = w * 3;
    for row in (0..oh).step_by(2) {
        let top = &pixels[row * stride..row * stride + ow * 3];
        let bottom = &pixels[(row + 1) * stride..(row + 1) * stride + ow * 3];
        for (out, px) in y_plane[row * ow..(row + 1) * ow]
            .iter_mut()
            .zip(top.chunks_exact(3))
        {
            *out = luma[usize::from(px[0])];
        }
        for (out, px) in y_plane[(row + 1) * ow..(row + 2) * ow]
            .iter_mut()
            .zip(bottom.chunks_exact(3))
        {
            *out = luma[usize::from(px[0])];
        }
        let c_row = row / 2 * (ow / 2);
        for (i, (t, b)) in top.chunks_exact(6).zip(bottom.chunks_exact(6)).enumerate() {
            let cb =
                (u16::from(t[1]) + u16::from(t[4]) + u16::from(b[1]) + u16::from(b[4]) + 2) / 4;
            let cr =
                (u16::from(t[2]) + u16::from(t[5]) + u16::from(b[2]) + u16::from(b[5]) + 2) / 4;
            u_plane[c_row + i] = chroma[usize::from(cb)];
            v_plane[c_row + i] = chroma[usize::from(cr)];
        }
    }
    Ok(frame)
}

fn avg(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

/// JPEG (JFIF) samples use 0-255; H.264 video range is 16-235 for luma, 16-240 for chroma.
static FULL_TO_VIDEO_LUMA: std::sync::LazyLock<[u8; 256]> =
    std::sync::LazyLock::new(|| range_table(219));
static FULL_TO_VIDEO_CHROMA: std::sync::LazyLock<[u8; 256]> =
    std::sync::LazyLock::new(|| range_table(224));

fn range_table(span: u32) -> [u8; 256] {
    let mut table = [0u8; 256];
    for (i, out) in table.iter_mut().enumerate() {
        // Luma: 16 + v*219/255; chroma: 128 + (v-128)*224/255 = 16 + v*224/255 (rounded).
        *out = (16 + (i as u32 * span + 127) / 255) as u8;
    }
    table
}

#[cfg(test)]
#[path = "camera_tests.rs"]
mod tests;
