//! How a 1080p shared screen encodes: OpenH264's screen-content mode against the settings a
//! share uses (`VideoEncoderSettings::screen()`), on a page of text scrolling at 120 px/s and
//! on the same page standing still, 15 pictures a second. Prints the median encode time, the
//! bitrate and the PSNR of each decoded picture against its source.
//!
//! `cargo run --release -p between-media --example screen_encoding`

use between_media::analysis::frame_psnr;
use between_media::h264::{H264Decoder, H264Encoder, Planes, VideoEncoderSettings};
use between_media::screen::{PixelLayout, ScreenPixels, text_page, to_i420};
use between_media::video::I420Frame;
use openh264::encoder::{
    BitRate, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode, UsageType,
};
use std::time::Instant;

const WIDTH: usize = 1920;
const HEIGHT: usize = 1080;
const FPS: f64 = 15.0;
const PICTURES: usize = 90;

/// One encoder under test: a picture in, its bitstream out (empty when skipped).
type Encode = Box<dyn FnMut(&I420Frame) -> Vec<u8>>;

/// OpenH264's screen-content mode, as a share used it before (2.5 Mbit/s, frame skipping).
fn screen_content_encode() -> Encode {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(2_500_000))
        .max_frame_rate(FrameRate::from_hz(FPS as f32))
        .usage_type(UsageType::ScreenContentRealTime)
        .rate_control_mode(RateControlMode::Bitrate)
        .intra_frame_period(IntraFramePeriod::from_num_frames(300))
        .skip_frames(true);
    let mut encoder =
        openh264::encoder::Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
            .expect("screen-content encoder");
    Box::new(move |frame| {
        encoder
            .encode(&Planes(frame))
            .map(|b| b.to_vec())
            .unwrap_or_default()
    })
}

fn share_encode() -> Encode {
    let mut encoder = H264Encoder::new(VideoEncoderSettings::screen()).expect("share encoder");
    Box::new(move |frame| {
        encoder
            .encode(frame)
            .ok()
            .flatten()
            .map(|e| e.data)
            .unwrap_or_default()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let page = text_page(WIDTH, HEIGHT * 3);
    let row = WIDTH * 4;
    let pictures = |scroll: usize| -> Vec<I420Frame> {
        (0..PICTURES)
            .map(|i| {
                let start = i * scroll * row;
                to_i420(&ScreenPixels {
                    width: WIDTH as u32,
                    height: HEIGHT as u32,
                    stride: row,
                    layout: PixelLayout::Bgrx,
                    data: &page[start..start + row * HEIGHT],
                })
                .expect("picture")
            })
            .collect()
    };
    println!("1920x1080 text at {FPS} fps, {PICTURES} pictures");
    for (content, frames) in [("scrolling", pictures(8)), ("static", pictures(0))] {
        let modes: [(&str, Encode); 2] = [
            ("screen-content mode", screen_content_encode()),
            ("share settings", share_encode()),
        ];
        for (name, mut encode) in modes {
            let mut decoder = H264Decoder::new().expect("decoder");
            let (mut times, mut psnr, mut bytes, mut sent) = (Vec::new(), Vec::new(), 0, 0);
            for frame in &frames {
                let t = Instant::now();
                let data = encode(frame);
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                if data.is_empty() {
                    continue;
                }
                sent += 1;
                bytes += data.len();
                if let Ok(Some(decoded)) = decoder.decode(&data) {
                    psnr.push(frame_psnr(&decoded, frame));
                }
            }
            let min_psnr = psnr.iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "  {content:<9} {name:<19} encode {:5.1} ms (median), {sent}/{PICTURES} sent, {:5.0} kbit/s, PSNR min {min_psnr:.1} median {:.1} dB",
                median(times[10..].to_vec()),
                bytes as f64 * 8.0 / (PICTURES as f64 / FPS) / 1000.0,
                median(psnr),
            );
        }
    }
}
