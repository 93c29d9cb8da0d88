//! A moving test pattern that carries its frame number, so a receiver can tell which source
//! frame it is looking at after encoding, loss and decoding, and compare it with the original.
//!
//! The number sits in a band of large black and white cells across the top: a white and a
//! black reference cell, 16 counter bits (most significant first), and 2 parity bits. Cells
//! are big (a 20th of the width) and flat, so they survive heavy compression. Below the band,
//! colour bars slide sideways by 4 pixels a frame, giving the encoder real motion to code.

use crate::video::{FrameError, I420Frame};

const CELLS: usize = 20;
/// The colour bars below the band, as (Y, Cb, Cr).
const BARS: [(u8, u8, u8); 7] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
];
const WHITE: u8 = 235;
const BLACK: u8 = 16;

pub struct TestPattern {
    width: u32,
    height: u32,
}

impl TestPattern {
    pub fn new(width: u32, height: u32) -> Result<Self, FrameError> {
        I420Frame::black(width, height)?;
        if width < CELLS as u32 * 4 || height < 16 {
            return Err(FrameError::BadSize { width, height });
        }
        Ok(Self { width, height })
    }

    fn cell(&self) -> usize {
        // A multiple of 2 so the band's chroma rows align with its luma rows.
        (self.width as usize / CELLS) & !1
    }

    /// The frame with number `counter` (mod 65536); the same number always gives the same
    /// frame, which is what lets a receiver compare against the source.
    pub fn frame(&self, counter: u32) -> I420Frame {
        let (w, h) = (self.width as usize, self.height as usize);
        let cell = self.cell();
        let mut frame = I420Frame::black_checked(self.width, self.height);
        let (y, u, v) = frame.planes_mut();
        let shift = (counter as usize * 4) % w;
        let bar_w = w.div_ceil(BARS.len());
        // One row of bars, then every row a copy of it (plus its ramp): a 720p pattern is a
        // million pixels, and drawing each one by arithmetic costs milliseconds per frame
        // (tens in a debug build, which starved the audio of the app's tests).
        let bars: Vec<(u8, u8, u8)> = (0..w)
            .map(|col| BARS[((col + shift) % w) / bar_w])
            .collect();
        let base: Vec<u8> = bars.iter().map(|b| b.0).collect();
        let mut ramped = base.clone();
        let mut ramp_of_row = None;
        for row in cell..h {
            // A gentle vertical ramp, so rows differ and blocks are not all flat.
            let ramp = (row * 40 / h) as u8;
            if ramp_of_row != Some(ramp) {
                for (out, b) in ramped.iter_mut().zip(&base) {
                    *out = b.saturating_add(ramp);
                }
                ramp_of_row = Some(ramp);
            }
            y[row * w..(row + 1) * w].copy_from_slice(&ramped);
        }
        let cb_row: Vec<u8> = (0..w / 2).map(|col| bars[col * 2].1).collect();
        let cr_row: Vec<u8> = (0..w / 2).map(|col| bars[col * 2].2).collect();
        for row in (cell / 2)..(h / 2) {
            u[row * (w / 2)..(row + 1) * (w / 2)].copy_from_slice(&cb_row);
            v[row * (w / 2)..(row + 1) * (w / 2)].copy_from_slice(&cr_row);
        }
        let bits = band_bits(counter as u16);
        for (i, bit) in bits.iter().enumerate() {
            let value = if *bit { WHITE } else { BLACK };
            for row in 0..cell.min(h) {
                let start = row * w + i * cell;
                y[start..start + cell].fill(value);
            }
        }
        frame
    }

    /// Reads the frame number from a received frame of this pattern's size; `None` if the band
    /// is not legible (not this pattern, or too damaged).
    pub fn read_counter(&self, frame: &I420Frame) -> Option<u16> {
        read_counter(frame)
    }
}

/// Cells across the counter band (each `width / COUNTER_CELLS` pixels square).
pub const COUNTER_CELLS: usize = CELLS;

/// The band's cells for `counter`, left to right (white = true): what [`read_counter`] reads,
/// for drawing the band on something other than a [`TestPattern`] (a shared screen).
pub fn counter_cells(counter: u16) -> [bool; CELLS] {
    band_bits(counter)
}

fn band_bits(counter: u16) -> [bool; CELLS] {
    let mut bits = [false; CELLS];
    bits[0] = true; // white reference
    bits[1] = false; // black reference
    for i in 0..16 {
        bits[2 + i] = counter & (1 << (15 - i)) != 0;
    }
    bits[18] = (counter >> 8).count_ones() % 2 == 1;
    bits[19] = (counter & 0xff).count_ones() % 2 == 1;
    bits
}

/// Reads the counter band from any frame drawn by [`TestPattern`], at any size.
pub fn read_counter(frame: &I420Frame) -> Option<u16> {
    let w = frame.width() as usize;
    let cell = (w / CELLS) & !1;
    if cell < 4 || (frame.height() as usize) < cell {
        return None;
    }
    let y = frame.y();
    // Average the middle half of each cell, away from edges that ringing blurs.
    let level = |i: usize| -> f64 {
        let (x0, x1) = (i * cell + cell / 4, i * cell + 3 * cell / 4);
        let (y0, y1) = (cell / 4, 3 * cell / 4);
        let mut sum = 0u64;
        for row in y0..y1 {
            sum += y[row * w + x0..row * w + x1]
                .iter()
                .map(|&p| p as u64)
                .sum::<u64>();
        }
        sum as f64 / ((x1 - x0) * (y1 - y0)) as f64
    };
    let (white, black) = (level(0), level(1));
    if white - black < 80.0 {
        return None;
    }
    let threshold = (white + black) / 2.0;
    let bits: Vec<bool> = (0..CELLS).map(|i| level(i) > threshold).collect();
    let mut counter = 0u16;
    for i in 0..16 {
        if bits[2 + i] {
            counter |= 1 << (15 - i);
        }
    }
    (band_bits(counter) == bits.as_slice()).then_some(counter)
}

/// Adds uniform noise of up to `amplitude` levels to every luma sample, from the xorshift
/// state `seed` (advanced): a picture that fills its bitrate, as a real camera's does, where
/// the bare pattern compresses to almost nothing. Deterministic for a given seed.
pub fn add_noise(frame: &mut I420Frame, amplitude: u8, seed: &mut u64) {
    if amplitude == 0 {
        return;
    }
    let span = u64::from(amplitude) * 2 + 1;
    let mut state = (*seed).max(1);
    let (y, _, _) = frame.planes_mut();
    for chunk in y.chunks_mut(4) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        for (k, p) in chunk.iter_mut().enumerate() {
            let r = ((state >> (16 * k)) & 0xffff) % span;
            let v = i32::from(*p) + r as i32 - i32::from(amplitude);
            *p = v.clamp(0, 255) as u8;
        }
    }
    *seed = state;
}

#[cfg(test)]
mod tests {
    /// The row-copy drawing gives exactly the pixels of drawing each one by formula.
    #[test]
    fn bars_match_the_per_pixel_definition() {
        let (w, h) = (320usize, 180usize);
        let pattern = TestPattern::new(w as u32, h as u32).expect("pattern");
        let cell = pattern.cell();
        for counter in [0u32, 7, 100, 65_535] {
            let f = pattern.frame(counter);
            let shift = (counter as usize * 4) % w;
            let bar_w = w.div_ceil(BARS.len());
            for row in (cell..h).step_by(7) {
                for col in (0..w).step_by(3) {
                    let luma = BARS[((col + shift) % w) / bar_w]
                        .0
                        .saturating_add((row * 40 / h) as u8);
                    assert_eq!(f.y()[row * w + col], luma, "luma at {row},{col}");
                }
            }
            for row in (cell / 2)..(h / 2) {
                for col in 0..w / 2 {
                    let (_, cb, cr) = BARS[((col * 2 + shift) % w) / bar_w];
                    assert_eq!(f.u()[row * (w / 2) + col], cb);
                    assert_eq!(f.v()[row * (w / 2) + col], cr);
                }
            }
        }
    }

    use super::*;

    #[test]
    fn counter_round_trips_at_several_sizes() {
        for (w, h) in [(1280, 720), (640, 360), (320, 240)] {
            let p = TestPattern::new(w, h).expect("pattern");
            for counter in [0u32, 1, 2, 255, 256, 4242, 65535] {
                let f = p.frame(counter);
                assert_eq!(
                    p.read_counter(&f),
                    Some(counter as u16),
                    "{w}x{h} #{counter}"
                );
            }
        }
    }

    #[test]
    fn frames_move_and_repeat_exactly() {
        let p = TestPattern::new(320, 240).expect("pattern");
        assert_eq!(p.frame(7), p.frame(7));
        assert_ne!(p.frame(7).y()[320 * 100..], p.frame(8).y()[320 * 100..]);
    }

    #[test]
    fn counter_survives_noise_and_scaling() {
        let p = TestPattern::new(640, 360).expect("pattern");
        let mut f = p.frame(1234);
        let (y, _, _) = f.planes_mut();
        for (i, px) in y.iter_mut().enumerate() {
            *px = px
                .saturating_add(((i * 7919) % 21) as u8)
                .saturating_sub(10);
        }
        assert_eq!(read_counter(&f), Some(1234));
        let small = f.scaled(320, 180).expect("scaled");
        assert_eq!(read_counter(&small), Some(1234));
    }

    #[test]
    fn a_black_frame_has_no_counter() {
        let f = I420Frame::black(640, 360).expect("frame");
        assert_eq!(read_counter(&f), None);
    }
}
