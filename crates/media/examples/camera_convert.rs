//! What a camera's picture costs before encoding: converting what webcams send (MJPEG at
//! 720p and 1080p, YUYV and NV12 at 720p and 480p) to I420, on the test pattern. MJPEG
//! pictures are made here at quality 85 in 4:2:2, as UVC cameras send them. Prints the
//! median and 90th percentile per picture.
//!
//! `cargo run --release -p between-media --example camera_convert`

use between_media::camera::{PixelFormat, to_i420};
use between_media::pattern::TestPattern;
use between_media::video::I420Frame;
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use std::time::Instant;

const RUNS: usize = 200;

/// The pattern as full-range YCbCr 4:4:4 (what a camera's JPEG encoder starts from).
fn ycbcr(frame: &I420Frame) -> Vec<u8> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let c = (y / 2) * (w / 2) + x / 2;
            // Video range back to full range.
            let full =
                |v: u8, span: f32| (((f32::from(v) - 16.0) * 255.0 / span).clamp(0.0, 255.0)) as u8;
            out.extend_from_slice(&[
                full(frame.y()[y * w + x], 219.0),
                full(frame.u()[c], 224.0),
                full(frame.v()[c], 224.0),
            ]);
        }
    }
    out
}

fn yuyv(frame: &I420Frame) -> Vec<u8> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut out = Vec::with_capacity(w * h * 2);
    for y in 0..h {
        for x in (0..w).step_by(2) {
            let c = (y / 2) * (w / 2) + x / 2;
            out.extend_from_slice(&[
                frame.y()[y * w + x],
                frame.u()[c],
                frame.y()[y * w + x + 1],
                frame.v()[c],
            ]);
        }
    }
    out
}

fn nv12(frame: &I420Frame) -> Vec<u8> {
    let mut out = frame.y().to_vec();
    for (u, v) in frame.u().iter().zip(frame.v()) {
        out.extend_from_slice(&[*u, *v]);
    }
    out
}

fn measure(label: &str, format: PixelFormat, width: u32, height: u32, data: &[u8]) {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let frame = to_i420(format, width, height, 0, data).expect("converts");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(frame);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{label:<24} median {:>6.2} ms   p90 {:>6.2} ms   ({} kB in)",
        times[RUNS / 2],
        times[RUNS * 9 / 10],
        data.len() / 1000
    );
}

fn main() {
    for (w, h) in [(1920u32, 1080u32), (1280, 720), (640, 480)] {
        let frame = TestPattern::new(w, h).expect("size").frame(7);
        let mut jpeg = Vec::new();
        let mut encoder = Encoder::new(&mut jpeg, 85);
        encoder.set_sampling_factor(SamplingFactor::F_2_1);
        encoder
            .encode(&ycbcr(&frame), w as u16, h as u16, ColorType::Ycbcr)
            .expect("encodes");
        measure(&format!("MJPEG {w}x{h}"), PixelFormat::Mjpeg, w, h, &jpeg);
        if w <= 1280 {
            measure(
                &format!("YUYV {w}x{h}"),
                PixelFormat::Yuyv,
                w,
                h,
                &yuyv(&frame),
            );
            measure(
                &format!("NV12 {w}x{h}"),
                PixelFormat::Nv12,
                w,
                h,
                &nv12(&frame),
            );
        }
    }
}
