//! What an SFU needs to know of H.264 RTP without decoding (RFC 6184): whether a packet starts
//! a picture a decoder can begin with, and the picture size its sequence parameter set gives.
//! Simulcast layers are switched where the new layer starts such a picture, and told apart by
//! their sizes, which the SPS carries whoever the publisher is (browsers do not say sizes in
//! the SDP). Payloads come from the network: every read is bounded, nothing panics.

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// The NAL units a packet carries whole or begins, as `(type, bytes)`; the bytes of an FU-A
/// start are only its first fragment.
fn nal_units(payload: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut whole: Option<&[u8]> = None;
    let mut aggregated: &[u8] = &[];
    let mut fragment: Option<(u8, &[u8])> = None;
    match payload.first().map(|b| b & 0x1f) {
        Some(STAP_A) => aggregated = &payload[1..],
        Some(FU_A) => {
            if let Some(&fu) = payload.get(1)
                && fu & 0x80 != 0
            {
                fragment = Some((fu & 0x1f, &payload[2..]));
            }
        }
        Some(1..=23) => whole = Some(payload),
        _ => {}
    }
    let stap = std::iter::from_fn(move || {
        if aggregated.len() < 2 {
            return None;
        }
        let size = usize::from(u16::from_be_bytes([aggregated[0], aggregated[1]]));
        let nal = aggregated.get(2..2 + size)?;
        aggregated = &aggregated[2 + size..];
        Some((nal.first()? & 0x1f, nal))
    });
    whole
        .and_then(|n| Some((n.first()? & 0x1f, n)))
        .into_iter()
        .chain(fragment)
        .chain(stap)
}

/// Whether this packet starts a picture a decoder can start from: it carries the sequence
/// parameter set (which every encoder we know sends first, with the IDR picture) or begins an
/// IDR picture.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    nal_units(payload).any(|(t, _)| t == NAL_SPS || t == NAL_IDR)
}

/// The picture size of the SPS this packet carries, if it carries one that parses.
pub fn keyframe_size(payload: &[u8]) -> Option<(u32, u32)> {
    nal_units(payload)
        .find(|(t, _)| *t == NAL_SPS)
        .and_then(|(_, sps)| sps_size(sps))
}

/// Reads bits of an RBSP (emulation prevention bytes already removed).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    /// An unsigned Exp-Golomb code, ue(v).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        let magnitude = k.div_ceil(2) as i32;
        Some(if k % 2 == 1 { magnitude } else { -magnitude })
    }
}

/// The cropped picture size an SPS NAL unit (with its header byte) describes (H.264 7.3.2.1).
pub fn sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    // Remove emulation prevention (00 00 03 → 00 00); an SPS is short.
    let mut rbsp = Vec::with_capacity(nal.len().min(256));
    let mut zeros = 0;
    for &b in nal.get(1..)?.iter().take(256) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = Bits {
        data: &rbsp,
        pos: 0,
    };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    let mut separate_colour_plane = 0;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            // Scaling lists: skipped, but their lengths must be read.
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_map_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0, 0);
    if r.bit()? == 1 {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let array_type = if separate_colour_plane == 1 {
            0
        } else {
            chroma_format
        };
        let (unit_x, unit_y) = match array_type {
            1 => (2, 2),
            2 => (2, 1),
            3 => (1, 1),
            _ => (1, 1),
        };
        let unit_y = unit_y * (2 - frame_mbs_only);
        crop_x = left.checked_add(right)?.checked_mul(unit_x)?;
        crop_y = top.checked_add(bottom)?.checked_mul(unit_y)?;
    }
    let width = width_mbs.checked_mul(16)?.checked_sub(crop_x)?;
    let height = height_map_units
        .checked_mul(16)?
        .checked_mul(2 - frame_mbs_only)?
        .checked_sub(crop_y)?;
    (width > 0 && height > 0 && width <= 16_384 && height <= 16_384).then_some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::{H264Encoder, VideoEncoderSettings};
    use crate::rtp::RtpPacketizer;
    use crate::video::I420Frame;
    use std::time::Instant;

    fn packets_of(width: u32, height: u32, pictures: usize) -> Vec<Vec<Vec<u8>>> {
        let mut encoder = H264Encoder::new(VideoEncoderSettings::camera()).expect("encoder");
        let mut packetizer = RtpPacketizer::h264(1, 102);
        let mut out = Vec::new();
        for i in 0..pictures {
            let mut frame = I420Frame::black(width, height).expect("frame");
            // Some change, so later pictures are not empty.
            frame.as_bytes_mut()[i % 64] = 200;
            let Some(encoded) = encoder.encode(&frame).expect("encode") else {
                continue;
            };
            out.push(
                packetizer
                    .packetize(Instant::now(), &encoded.data, 3000)
                    .into_iter()
                    .map(|p| p.payload.to_vec())
                    .collect(),
            );
        }
        out
    }

    #[test]
    fn the_first_packet_of_a_keyframe_says_so_and_gives_the_size() {
        for (w, h) in [
            (1280, 720),
            (640, 360),
            (320, 180),
            (176, 144),
            (1920, 1080),
        ] {
            let pictures = packets_of(w, h, 3);
            let first = &pictures[0];
            assert!(starts_keyframe(&first[0]), "{w}x{h}");
            assert_eq!(keyframe_size(&first[0]), Some((w, h)), "{w}x{h}");
            // Later pictures are not keyframes, and no later packet starts one.
            for p in pictures[1..].iter().flatten() {
                assert!(!starts_keyframe(p), "{w}x{h}");
            }
            for p in &first[1..] {
                assert_eq!(keyframe_size(p), None);
            }
        }
    }

    #[test]
    fn hostile_payloads_are_no_keyframes_and_no_panic() {
        let cases: [&[u8]; 8] = [
            &[],
            &[24],
            &[24, 0xff, 0xff, 0x67],
            &[24, 0, 1, 0x67, 0, 0],
            &[28],
            &[28, 0x85],
            &[0x67],
            &[0x67, 100, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ];
        for c in cases {
            let _ = starts_keyframe(c);
            assert_eq!(keyframe_size(c), None, "{c:?}");
        }
        // Exp-Golomb codes longer than 32 bits end the parse.
        assert_eq!(sps_size(&[0x67, 66, 0, 30, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn an_fu_a_start_of_an_idr_picture_starts_a_keyframe() {
        assert!(starts_keyframe(&[0x7c, 0x85, 1, 2, 3]));
        assert!(!starts_keyframe(&[0x7c, 0x05, 1, 2, 3]), "not the start");
        assert!(!starts_keyframe(&[0x7c, 0x81, 1, 2, 3]), "not IDR");
    }
}
