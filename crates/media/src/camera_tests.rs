use super::*;
use crate::analysis::psnr;
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

fn mode(width: u32, height: u32, fps: u32, format: PixelFormat) -> CameraMode {
    CameraMode {
        width,
        height,
        fps,
        format,
    }
}

/// What a typical USB 2 webcam lists: raw YUYV is smooth only at small sizes.
fn usb2_webcam() -> Vec<CameraMode> {
    use PixelFormat::*;
    vec![
        mode(640, 480, 30, Yuyv),
        mode(1280, 720, 10, Yuyv),
        mode(1920, 1080, 5, Yuyv),
        mode(640, 480, 30, Mjpeg),
        mode(1280, 720, 30, Mjpeg),
        mode(1920, 1080, 30, Mjpeg),
    ]
}

#[test]
fn a_usb2_webcam_runs_720p30_mjpeg_rather_than_raw_at_10_fps() {
    assert_eq!(
        choose_mode(&usb2_webcam()),
        Some(mode(1280, 720, 30, PixelFormat::Mjpeg))
    );
}

#[test]
fn raw_formats_win_when_they_are_as_good() {
    let mut modes = usb2_webcam();
    modes.push(mode(1280, 720, 30, PixelFormat::Yuyv));
    modes.push(mode(1280, 720, 30, PixelFormat::Nv12));
    assert_eq!(
        choose_mode(&modes),
        Some(mode(1280, 720, 30, PixelFormat::Nv12))
    );
}

#[test]
fn a_smooth_smaller_picture_beats_a_jerky_720p() {
    use PixelFormat::*;
    let modes = [
        mode(640, 480, 30, Yuyv),
        mode(1280, 720, 10, Yuyv),
        mode(320, 240, 30, Yuyv),
    ];
    assert_eq!(choose_mode(&modes), Some(mode(640, 480, 30, Yuyv)));
}

#[test]
fn the_smallest_picture_at_least_720p_and_the_rate_nearest_30() {
    use PixelFormat::*;
    let modes = [
        mode(1920, 1080, 30, Mjpeg),
        mode(1280, 960, 60, Mjpeg),
        mode(1280, 960, 30, Mjpeg),
        mode(1280, 960, 25, Mjpeg),
    ];
    assert_eq!(choose_mode(&modes), Some(mode(1280, 960, 30, Mjpeg)));
}

#[test]
fn a_camera_that_is_only_slow_is_still_used() {
    use PixelFormat::*;
    let modes = [mode(640, 480, 5, Yuyv), mode(1280, 720, 10, Yuyv)];
    assert_eq!(choose_mode(&modes), Some(mode(1280, 720, 10, Yuyv)));
}

#[test]
fn nothing_usable_is_none() {
    assert_eq!(choose_mode(&[]), None);
    assert_eq!(choose_mode(&[mode(0, 0, 30, PixelFormat::Mjpeg)]), None);
}

/// A picture with structure in every plane (so a swapped, shifted or mirrored plane shows):
/// full-range Y, Cb, Cr per pixel.
fn picture(width: usize, height: usize) -> Vec<[u8; 3]> {
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let luma = 30 + (x * 180 / width) as u8 + if (y / 40) % 2 == 0 { 20 } else { 0 };
            let cb = 70 + (y * 110 / height) as u8;
            let cr = 190 - (x * 120 / width) as u8;
            out.push([luma, cb, cr]);
        }
    }
    out
}

/// The I420 planes that picture should come out as (chroma averaged over 2x2).
fn expected_i420(
    pic: &[[u8; 3]],
    width: usize,
    height: usize,
    map: impl Fn(u8, usize) -> u8,
) -> I420Frame {
    let (ow, oh) = (width & !1, height & !1);
    let mut frame = I420Frame::black(ow as u32, oh as u32).expect("size");
    let (y, u, v) = frame.planes_mut();
    for row in 0..oh {
        for col in 0..ow {
            y[row * ow + col] = map(pic[row * width + col][0], 0);
        }
    }
    for row in 0..oh / 2 {
        for col in 0..ow / 2 {
            let at = |dy: usize, dx: usize, c: usize| {
                u32::from(pic[(row * 2 + dy) * width + col * 2 + dx][c])
            };
            let mean =
                |c: usize| ((at(0, 0, c) + at(0, 1, c) + at(1, 0, c) + at(1, 1, c) + 2) / 4) as u8;
            u[row * (ow / 2) + col] = map(mean(1), 1);
            v[row * (ow / 2) + col] = map(mean(2), 2);
        }
    }
    frame
}

fn assert_close(got: &I420Frame, want: &I420Frame, min_db: f64) {
    assert_eq!((got.width(), got.height()), (want.width(), want.height()));
    for (plane, g, w) in [
        ("Y", got.y(), want.y()),
        ("U", got.u(), want.u()),
        ("V", got.v(), want.v()),
    ] {
        let db = psnr(g, w);
        assert!(db >= min_db, "{plane} plane PSNR {db:.1} dB < {min_db} dB");
    }
}

fn identity(v: u8, _: usize) -> u8 {
    v
}

#[test]
fn yuyv_converts_exactly() {
    let (w, h) = (64, 48);
    let pic = picture(w, h);
    let mut yuyv = Vec::with_capacity(w * h * 2);
    for px in pic.chunks_exact(2) {
        // Both pixels of a pair share the chroma of the left one in this picture's encoding.
        yuyv.extend_from_slice(&[px[0][0], px[0][1], px[1][0], px[0][2]]);
    }
    let shared: Vec<[u8; 3]> = pic
        .chunks_exact(2)
        .flat_map(|p| [p[0], [p[1][0], p[0][1], p[0][2]]])
        .collect();
    let got = to_i420(PixelFormat::Yuyv, w as u32, h as u32, 0, &yuyv).expect("converts");
    let want = expected_i420(&shared, w, h, identity);
    // Rounding of the two-row mean differs from the 2x2 mean by at most one step.
    assert_eq!(got.y(), want.y());
    assert_close(&got, &want, 48.0);
}

#[test]
fn nv12_converts_exactly_also_at_odd_sizes() {
    for (w, h) in [(64usize, 48usize), (33, 17)] {
        let pic = picture(w, h);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut nv12: Vec<u8> = pic.iter().map(|p| p[0]).collect();
        for row in 0..ch {
            for col in 0..cw {
                let p = pic[(row * 2) * w + col * 2];
                nv12.extend_from_slice(&[p[1], p[2]]);
            }
        }
        let got = to_i420(PixelFormat::Nv12, w as u32, h as u32, 0, &nv12).expect("converts");
        assert_eq!(
            (got.width() as usize, got.height() as usize),
            (w & !1, h & !1)
        );
        let (ow, oh) = (w & !1, h & !1);
        for row in 0..oh {
            assert_eq!(
                &got.y()[row * ow..(row + 1) * ow],
                &nv12[row * w..row * w + ow]
            );
        }
        for row in 0..oh / 2 {
            for col in 0..ow / 2 {
                let p = pic[(row * 2) * w + col * 2];
                assert_eq!(got.u()[row * (ow / 2) + col], p[1]);
                assert_eq!(got.v()[row * (ow / 2) + col], p[2]);
            }
        }
    }
}

fn jpeg(pic: &[[u8; 3]], width: usize, height: usize, sampling: SamplingFactor) -> Vec<u8> {
    let data: Vec<u8> = pic.iter().flatten().copied().collect();
    let mut out = Vec::new();
    let mut encoder = Encoder::new(&mut out, 95);
    encoder.set_sampling_factor(sampling);
    encoder
        .encode(&data, width as u16, height as u16, ColorType::Ycbcr)
        .expect("encodes");
    out
}

fn to_video_range(v: u8, plane: usize) -> u8 {
    let span = if plane == 0 { 219 } else { 224 };
    (16 + (u32::from(v) * span + 127) / 255) as u8
}

#[test]
fn mjpeg_as_webcams_send_it_decodes_to_video_range_i420() {
    // 4:2:2 is what UVC cameras send; 4:2:0 and an odd size for the rest.
    for (w, h, sampling) in [
        (1280usize, 720usize, SamplingFactor::F_2_1),
        (640, 480, SamplingFactor::F_2_2),
        (321, 241, SamplingFactor::F_2_2),
    ] {
        let pic = picture(w, h);
        let data = jpeg(&pic, w, h, sampling);
        let got = to_i420(PixelFormat::Mjpeg, 0, 0, 0, &data).expect("decodes");
        let want = expected_i420(&pic, w, h, to_video_range);
        assert_close(&got, &want, 38.0);
        // Video range: a full-range 30 maps to 42, so nothing may be below 16.
        assert!(got.y().iter().all(|&v| (16..=235).contains(&v)));
    }
}

#[test]
fn a_broken_jpeg_is_an_error_not_a_panic() {
    let pic = picture(64, 48);
    let data = jpeg(&pic, 64, 48, SamplingFactor::F_2_1);
    for cut in [0, 2, 20, data.len() / 2] {
        // Half a picture may decode (with grey at the end) or fail; it must not panic.
        let _ = to_i420(PixelFormat::Mjpeg, 0, 0, 0, &data[..cut]);
    }
    assert!(matches!(
        to_i420(PixelFormat::Mjpeg, 0, 0, 0, b"not a jpeg"),
        Err(CameraFrameError::Jpeg(_))
    ));
}

#[test]
fn a_short_raw_picture_is_an_error() {
    let err = to_i420(PixelFormat::Yuyv, 64, 48, 0, &[0; 100]).expect_err("too short");
    assert!(err.to_string().contains("expected 6144"), "{err}");
    assert!(to_i420(PixelFormat::Nv12, 64, 48, 0, &[0; 64 * 48]).is_err());
}

#[test]
fn rows_padded_by_the_driver_are_read_at_their_stride() {
    let (w, h) = (30usize, 8usize);
    let pic = picture(w, h);
    let packed: Vec<u8> = pic
        .chunks_exact(2)
        .flat_map(|p| [p[0][0], p[0][1], p[1][0], p[0][2]])
        .collect();
    // 64 bytes per row instead of 60, the padding filled with garbage.
    let stride = 64;
    let mut padded = Vec::new();
    for row in packed.chunks_exact(w * 2) {
        padded.extend_from_slice(row);
        padded.extend_from_slice(&[0xEE; 4]);
    }
    let tight = to_i420(PixelFormat::Yuyv, w as u32, h as u32, 0, &packed).expect("packed");
    let loose = to_i420(PixelFormat::Yuyv, w as u32, h as u32, stride, &padded).expect("padded");
    assert_eq!(tight, loose);

    let mut nv12_tight: Vec<u8> = pic.iter().map(|p| p[0]).collect();
    let mut nv12_padded = Vec::new();
    for row in nv12_tight.chunks_exact(w) {
        nv12_padded.extend_from_slice(row);
        nv12_padded.extend_from_slice(&[0xEE; 2]);
    }
    for row in 0..h / 2 {
        let mut line = Vec::new();
        for col in 0..w / 2 {
            let p = pic[row * 2 * w + col * 2];
            line.extend_from_slice(&[p[1], p[2]]);
        }
        nv12_tight.extend_from_slice(&line);
        nv12_padded.extend_from_slice(&line);
        nv12_padded.extend_from_slice(&[0xEE; 2]);
    }
    let tight = to_i420(PixelFormat::Nv12, w as u32, h as u32, 0, &nv12_tight).expect("packed");
    let loose =
        to_i420(PixelFormat::Nv12, w as u32, h as u32, w + 2, &nv12_padded).expect("padded");
    assert_eq!(tight, loose);
}
