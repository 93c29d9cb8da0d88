//! H.264 through OpenH264 (Cisco's BSD-licensed codec, built from source): one codec for camera
//! and screen. Chosen over VP8 because every platform decodes it in hardware, WebRTC peers all
//! speak it (packetization-mode 1, constrained baseline), and OpenH264 has a screen-content mode
//! for shared text. Output is Annex-B (start codes), which the RTP payloader splits into NALUs.

use crate::video::I420Frame;
use openh264::formats::YUVSource;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("h264: {0}")]
pub struct H264Error(String);

impl From<openh264::Error> for H264Error {
    fn from(e: openh264::Error) -> Self {
        Self(e.to_string())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct VideoEncoderSettings {
    pub bitrate_bps: u32,
    pub max_fps: f32,
    /// Tuned for a shared screen: every picture is sent (no frame skipping), at OpenH264's
    /// low-complexity setting. Not OpenH264's screen-content mode: measured on 1080p text
    /// (`cargo run --release -p between-media --example screen_encoding`, BENCHMARKS.md), that
    /// mode spends 2.3x the CPU (a feature hash of every reference picture for its scroll
    /// search: 10-12 ms a picture here, even for an unchanged screen) for text that is no
    /// sharper (PSNR 37 dB against 37-48 dB); it needs fewer bits for scrolling (1.2 against
    /// 1.9 Mbit/s at 15 fps), but the CPU, not the bitrate, is what a share must keep small.
    pub screen: bool,
}

impl VideoEncoderSettings {
    /// 720p30 camera video.
    pub fn camera() -> Self {
        Self {
            bitrate_bps: 1_500_000,
            max_fps: 30.0,
            screen: false,
        }
    }

    /// A shared screen: up to 1080p at up to 15 fps, with bits enough that small text stays
    /// sharp while it scrolls (a static screen costs almost nothing: its P-frames are skipped
    /// macroblocks).
    pub fn screen() -> Self {
        Self {
            bitrate_bps: 2_500_000,
            max_fps: 15.0,
            screen: true,
        }
    }
}

/// Whether an Annex-B access unit holds an IDR picture (NAL type 5): where a decoder can
/// start from nothing.
pub fn is_idr(access_unit: &[u8]) -> bool {
    access_unit
        .windows(4)
        .any(|w| w[0] == 0 && w[1] == 0 && w[2] == 1 && w[3] & 0x1f == 5)
}

/// One encoded picture, Annex-B.
#[derive(Debug, Clone)]
pub struct EncodedVideo {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// An I420 frame as OpenH264 reads it (also for tools that drive OpenH264 directly).
pub struct Planes<'a>(pub &'a I420Frame);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width() as usize, self.0.height() as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width() as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        self.0.y()
    }

    fn u(&self) -> &[u8] {
        self.0.u()
    }

    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

pub struct H264Encoder {
    inner: openh264::encoder::Encoder,
    keyframe_requested: bool,
}

impl H264Encoder {
    pub fn new(settings: VideoEncoderSettings) -> Result<Self, H264Error> {
        use openh264::encoder::{
            BitRate, Complexity, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode,
            UsageType,
        };
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.max_fps))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            // Keyframes come on request (a new subscriber, a PLI), plus a safety net.
            .intra_frame_period(IntraFramePeriod::from_num_frames(300));
        let config = if settings.screen {
            // A share sends a picture only when the screen changed: a skipped one would
            // leave the change unseen until the next. The rate control raises QP instead.
            config.skip_frames(false).complexity(Complexity::Low)
        } else {
            config.skip_frames(true)
        };
        let api = openh264::OpenH264API::from_source();
        Ok(Self {
            inner: openh264::encoder::Encoder::with_api_config(api, config)?,
            keyframe_requested: false,
        })
    }

    /// The next frame is a keyframe (a receiver joined or lost its picture).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Encodes one frame; `None` if the encoder chose to skip it.
    pub fn encode(&mut self, frame: &I420Frame) -> Result<Option<EncodedVideo>, H264Error> {
        if std::mem::take(&mut self.keyframe_requested) {
            self.inner.force_intra_frame();
        }
        let bitstream = self.inner.encode(&Planes(frame))?;
        let keyframe = matches!(
            bitstream.frame_type(),
            openh264::encoder::FrameType::IDR | openh264::encoder::FrameType::I
        );
        let data = bitstream.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedVideo { data, keyframe }))
    }
}

pub struct H264Decoder {
    inner: openh264::decoder::Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, H264Error> {
        let api = openh264::OpenH264API::from_source();
        let config = openh264::decoder::DecoderConfig::new();
        Ok(Self {
            inner: openh264::decoder::Decoder::with_api_config(api, config)?,
        })
    }

    /// Decodes one Annex-B access unit; `None` if it completed no picture (e.g. parameter
    /// sets alone, or a picture that needs a keyframe first).
    pub fn decode(&mut self, annex_b: &[u8]) -> Result<Option<I420Frame>, H264Error> {
        let Some(yuv) = self.inner.decode(annex_b)? else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (ys, us, vs) = yuv.strides();
        let mut data = Vec::with_capacity(w * h * 3 / 2);
        copy_plane(&mut data, yuv.y(), ys, w, h);
        copy_plane(&mut data, yuv.u(), us, w / 2, h / 2);
        copy_plane(&mut data, yuv.v(), vs, w / 2, h / 2);
        I420Frame::from_bytes(w as u32, h as u32, data)
            .map(Some)
            .map_err(|e| H264Error(e.to_string()))
    }
}

fn copy_plane(out: &mut Vec<u8>, plane: &[u8], stride: usize, w: usize, h: usize) {
    for row in 0..h {
        let start = row * stride;
        out.extend_from_slice(&plane[start..start + w]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::frame_psnr;
    use crate::pattern::TestPattern;

    #[test]
    fn pattern_frames_round_trip_with_counter_and_quality() {
        let pattern = TestPattern::new(640, 360).expect("pattern");
        let mut enc = H264Encoder::new(VideoEncoderSettings {
            bitrate_bps: 1_000_000,
            max_fps: 30.0,
            screen: false,
        })
        .expect("encoder");
        let mut dec = H264Decoder::new().expect("decoder");
        let mut decoded = 0;
        for n in 0..30u32 {
            let Some(encoded) = enc.encode(&pattern.frame(n)).expect("encode") else {
                continue;
            };
            if n == 0 {
                assert!(encoded.keyframe, "first frame is a keyframe");
            }
            if let Some(frame) = dec.decode(&encoded.data).expect("decode") {
                let counter = pattern.read_counter(&frame).expect("legible counter");
                assert_eq!(counter as u32, n);
                let psnr = frame_psnr(&frame, &pattern.frame(n));
                assert!(psnr >= 32.0, "frame {n}: {psnr:.1} dB");
                decoded += 1;
            }
        }
        assert!(decoded >= 28, "{decoded} of 30 decoded");
    }

    #[test]
    fn idr_pictures_are_recognised() {
        let mut enc = H264Encoder::new(VideoEncoderSettings::camera()).expect("encoder");
        let frame = I420Frame::black(64, 48).expect("frame");
        let first = enc.encode(&frame).expect("encode").expect("picture");
        assert!(is_idr(&first.data));
        let next = enc.encode(&frame).expect("encode");
        if let Some(next) = next {
            assert!(!is_idr(&next.data), "a P picture");
        }
        assert!(!is_idr(&[0, 0, 1, 0x41, 0x9a]));
    }

    #[test]
    fn a_keyframe_can_be_requested() {
        let pattern = TestPattern::new(320, 240).expect("pattern");
        let mut enc = H264Encoder::new(VideoEncoderSettings::camera()).expect("encoder");
        for n in 0..5 {
            enc.encode(&pattern.frame(n)).expect("encode");
        }
        enc.request_keyframe();
        let f = enc
            .encode(&pattern.frame(5))
            .expect("encode")
            .expect("frame");
        assert!(f.keyframe);
        let g = enc
            .encode(&pattern.frame(6))
            .expect("encode")
            .expect("frame");
        assert!(!g.keyframe);
    }

    #[test]
    fn garbage_is_an_error_or_nothing_never_a_panic() {
        let mut dec = H264Decoder::new().expect("decoder");
        for junk in [&[0u8, 0, 0, 1, 0x65, 0xff, 0x00][..], &[1, 2, 3], &[]] {
            if let Ok(Some(frame)) = dec.decode(junk) {
                panic!("garbage decoded to {frame:?}");
            }
        }
    }
}
