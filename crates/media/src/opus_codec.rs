//! Opus for voice: 48 kHz mono, 20 ms frames, in-band FEC and DTX on the sending side; packet
//! loss concealment and FEC recovery on the receiving side.

use crate::{FRAME_SAMPLES, SAMPLE_RATE};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("opus: {0}")]
pub struct OpusError(String);

impl From<opus::Error> for OpusError {
    fn from(e: opus::Error) -> Self {
        Self(e.to_string())
    }
}

/// Longest Opus packet we produce (RFC 6716 allows 1275 bytes per frame).
const MAX_PACKET: usize = 1275;

/// DTX sends a comfort-noise update at most this often while the talker is silent.
const DTX_KEEPALIVE_FRAMES: u32 = 20;

pub struct OpusEncoder {
    inner: opus::Encoder,
    buf: Vec<u8>,
    frames_since_sent: u32,
}

/// Encoder effort, 0-10. 7 is the lowest at which Opus still runs its signal analysis, which
/// keeps DTX from taking a steady tone for background noise (at 5 a 440 Hz tone became
/// comfort noise 24 dB down after about 2 s: hold music and test tones must survive). Above
/// 7 only SILK's noise shaping and quantiser search grow (8-10 are alike): 10 cost 13 % more
/// of the whole audio path in `between bench audio` for no audible gain on speech.
const COMPLEXITY: i32 = 7;

impl OpusEncoder {
    /// `bitrate_bps` around 32 000 suits voice with FEC; `expected_loss_percent` tunes how much
    /// FEC the encoder spends.
    pub fn new(bitrate_bps: i32, expected_loss_percent: i32) -> Result<Self, OpusError> {
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(bitrate_bps))?;
        inner.set_inband_fec(true)?;
        inner.set_packet_loss_perc(expected_loss_percent.clamp(0, 100))?;
        inner.set_dtx(true)?;
        inner.set_complexity(COMPLEXITY)?;
        Ok(Self {
            inner,
            buf: vec![0; MAX_PACKET],
            frames_since_sent: 0,
        })
    }

    /// How much loss to prepare for (in-band FEC), percent: see [`crate::fec_policy`].
    pub fn set_expected_loss(&mut self, percent: i32) -> Result<(), OpusError> {
        self.inner.set_packet_loss_perc(percent.clamp(0, 100))?;
        Ok(())
    }

    /// Encodes one 20 ms frame. `None` means "send nothing" (DTX: silence, and a comfort-noise
    /// update went out recently).
    pub fn encode(&mut self, frame: &[f32]) -> Result<Option<Vec<u8>>, OpusError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(OpusError(format!(
                "a frame must have {FRAME_SAMPLES} samples, got {}",
                frame.len()
            )));
        }
        let len = self.inner.encode_float(frame, &mut self.buf)?;
        // A packet of 2 bytes or less is DTX: nothing worth sending but the odd keepalive.
        if len <= 2 && self.frames_since_sent < DTX_KEEPALIVE_FRAMES {
            self.frames_since_sent += 1;
            return Ok(None);
        }
        self.frames_since_sent = 0;
        Ok(Some(self.buf[..len].to_vec()))
    }
}

pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl OpusDecoder {
    pub fn new() -> Result<Self, OpusError> {
        Ok(Self {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes a packet into one 20 ms frame.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>, OpusError> {
        self.run(packet, false)
    }

    /// Rebuilds a lost frame from the FEC data in the packet that followed it.
    pub fn recover(&mut self, next_packet: &[u8]) -> Result<Vec<f32>, OpusError> {
        self.run(next_packet, true)
    }

    /// Invents a plausible frame for a lost one (packet loss concealment).
    pub fn conceal(&mut self) -> Result<Vec<f32>, OpusError> {
        self.run(&[], false)
    }

    fn run(&mut self, packet: &[u8], fec: bool) -> Result<Vec<f32>, OpusError> {
        let mut out = vec![0.0f32; FRAME_SAMPLES];
        let n = self.inner.decode_float(packet, &mut out, fec)?;
        out.truncate(n);
        // Longer packets than 20 ms are not ours; shorter ones are padded, so one call is
        // always one frame for the jitter buffer's clock.
        out.resize(FRAME_SAMPLES, 0.0);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tone_snr_db;
    use crate::tone::ToneSource;

    #[test]
    fn a_tone_survives_encode_and_decode() {
        let mut enc = OpusEncoder::new(32_000, 10).expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut tone = ToneSource::new(440.0, 0.5);
        let mut out = Vec::new();
        for _ in 0..50 {
            let packet = enc
                .encode(&tone.next_frame().samples)
                .expect("encode")
                .expect("sent");
            assert!(packet.len() < 200, "{} bytes", packet.len());
            out.extend(dec.decode(&packet).expect("decode"));
        }
        let snr = tone_snr_db(&out[4800..], SAMPLE_RATE, 440.0);
        assert!(snr > 30.0, "{snr} dB");
    }

    #[test]
    fn silence_is_mostly_not_sent() {
        let mut enc = OpusEncoder::new(32_000, 10).expect("encoder");
        let silent = vec![0.0f32; FRAME_SAMPLES];
        let sent = (0..100)
            .filter(|_| enc.encode(&silent).expect("encode").is_some())
            .count();
        assert!(sent < 20, "{sent} of 100 silent frames sent");
    }

    #[test]
    fn lost_frames_are_recovered_or_concealed() {
        let mut enc = OpusEncoder::new(32_000, 20).expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut tone = ToneSource::new(660.0, 0.5);
        let packets: Vec<Vec<u8>> = (0..30)
            .map(|_| {
                enc.encode(&tone.next_frame().samples)
                    .expect("encode")
                    .expect("sent")
            })
            .collect();
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let frame = match i {
                10 => dec.recover(&packets[11]).expect("fec"),
                20 => dec.conceal().expect("plc"),
                _ => dec.decode(p).expect("decode"),
            };
            assert_eq!(frame.len(), FRAME_SAMPLES);
            out.extend(frame);
        }
        let around_fec = &out[9 * FRAME_SAMPLES..12 * FRAME_SAMPLES];
        assert!(
            crate::audio::rms(around_fec) > 0.2,
            "FEC frame is not silent"
        );
        assert!(tone_snr_db(&out[4800..], SAMPLE_RATE, 660.0) > 25.0);
    }

    #[test]
    fn wrong_frame_sizes_and_garbage_are_errors_not_panics() {
        let mut enc = OpusEncoder::new(32_000, 10).expect("encoder");
        assert!(enc.encode(&[0.0; 100]).is_err());
        let mut dec = OpusDecoder::new().expect("decoder");
        // Whatever garbage decodes to, it must not panic and must give one frame or an error.
        if let Ok(frame) = dec.decode(&[0xff, 0xff, 0xff, 0x00, 0x13]) {
            assert_eq!(frame.len(), FRAME_SAMPLES);
        }
    }
}
