//! Video frames in I420 (planar Y, then U and V at half resolution), the format codecs take
//! and give. One buffer per frame, planes packed without padding, so a frame crosses to the
//! page or a file as one byte slice.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {width}x{height} is not allowed: both must be even and 2..=7680x4320")]
    BadSize { width: u32, height: u32 },
    #[error("an I420 frame of {width}x{height} needs {expected} bytes, got {got}")]
    BadLength {
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for I420Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "I420Frame({}x{})", self.width, self.height)
    }
}

pub fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * (w / 2) * (h / 2)
}

fn check_size(width: u32, height: u32) -> Result<(), FrameError> {
    let ok = width >= 2
        && height >= 2
        && width.is_multiple_of(2)
        && height.is_multiple_of(2)
        && width <= 7680
        && height <= 4320;
    if ok {
        Ok(())
    } else {
        Err(FrameError::BadSize { width, height })
    }
}

impl I420Frame {
    /// A black frame.
    pub fn black(width: u32, height: u32) -> Result<Self, FrameError> {
        check_size(width, height)?;
        Ok(Self::black_checked(width, height))
    }

    /// `black` for a size the caller has already checked.
    pub(crate) fn black_checked(width: u32, height: u32) -> Self {
        let y = (width * height) as usize;
        // Zeroed memory comes from the allocator already cleared; two fills are memsets
        // (`vec![128; n]` fills element by element in debug builds).
        let mut data = vec![0u8; i420_len(width, height)];
        data[..y].fill(16);
        data[y..].fill(128);
        Self {
            width,
            height,
            data,
        }
    }

    pub fn from_bytes(width: u32, height: u32, data: Vec<u8>) -> Result<Self, FrameError> {
        check_size(width, height)?;
        let expected = i420_len(width, height);
        if data.len() != expected {
            return Err(FrameError::BadLength {
                width,
                height,
                expected,
                got: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    fn y_len(&self) -> usize {
        (self.width * self.height) as usize
    }

    fn c_len(&self) -> usize {
        ((self.width / 2) * (self.height / 2)) as usize
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.y_len()]
    }

    pub fn u(&self) -> &[u8] {
        let y = self.y_len();
        &self.data[y..y + self.c_len()]
    }

    pub fn v(&self) -> &[u8] {
        let start = self.y_len() + self.c_len();
        &self.data[start..]
    }

    /// All three planes as one mutable buffer (to overwrite a frame of the same size).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The three planes, mutable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (y_len, c_len) = (self.y_len(), self.c_len());
        let (y, rest) = self.data.split_at_mut(y_len);
        let (u, v) = rest.split_at_mut(c_len);
        (y, u, v)
    }

    /// A copy scaled to `width`x`height` (even sizes), nearest sample: cheap enough per frame
    /// for previews and tiles, where the page draws at the tile's size anyway.
    pub fn scaled(&self, width: u32, height: u32) -> Result<Self, FrameError> {
        if (width, height) == (self.width, self.height) {
            return Ok(self.clone());
        }
        let mut out = Self::black(width, height)?;
        let (sw, sh) = (self.width as usize, self.height as usize);
        let (dw, dh) = (width as usize, height as usize);
        let (y, u, v) = out.planes_mut();
        scale_plane(self.y(), sw, sh, y, dw, dh);
        scale_plane(self.u(), sw / 2, sh / 2, u, dw / 2, dh / 2);
        scale_plane(self.v(), sw / 2, sh / 2, v, dw / 2, dh / 2);
        Ok(out)
    }
}

fn scale_plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    for dy in 0..dh {
        let sy = dy * sh / dh;
        let row = &src[sy * sw..(sy + 1) * sw];
        let out = &mut dst[dy * dw..(dy + 1) * dw];
        for (dx, o) in out.iter_mut().enumerate() {
            *o = row[dx * sw / dw];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert!(I420Frame::black(640, 360).is_ok());
        assert!(matches!(
            I420Frame::black(641, 360),
            Err(FrameError::BadSize { .. })
        ));
        assert!(matches!(
            I420Frame::from_bytes(4, 4, vec![0; 10]),
            Err(FrameError::BadLength {
                expected: 24,
                got: 10,
                ..
            })
        ));
    }

    #[test]
    fn planes_have_the_right_lengths() {
        let f = I420Frame::black(8, 6).expect("frame");
        assert_eq!((f.y().len(), f.u().len(), f.v().len()), (48, 12, 12));
        assert!(f.y().iter().all(|&p| p == 16));
    }

    #[test]
    fn scaling_halves_and_keeps_content() {
        let mut f = I420Frame::black(8, 8).expect("frame");
        let (y, _, _) = f.planes_mut();
        for (i, p) in y.iter_mut().enumerate() {
            *p = if (i % 8) < 4 { 200 } else { 50 };
        }
        let s = f.scaled(4, 4).expect("scaled");
        assert_eq!(&s.y()[..4], &[200, 200, 50, 50]);
    }
}
