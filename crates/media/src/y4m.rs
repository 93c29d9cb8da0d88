//! Y4M (YUV4MPEG2) files of I420 frames: the camera stand-in of tests and bots, and the
//! format recordings are written in. Readers and writers are passed in.

use crate::video::{I420Frame, i420_len};
use std::io::{self, BufRead, Write};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Y4mError {
    #[error("not a Y4M file: {0}")]
    Format(String),
    #[error("unsupported Y4M colour space {0} (use 4:2:0)")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Width, height and frame rate (numerator, denominator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Y4mHeader {
    pub width: u32,
    pub height: u32,
    pub fps: (u32, u32),
}

pub struct Y4mReader<R: BufRead> {
    input: R,
    header: Y4mHeader,
}

impl<R: BufRead> Y4mReader<R> {
    pub fn new(mut input: R) -> Result<Self, Y4mError> {
        let mut line = Vec::new();
        input.read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let mut words = text.split_ascii_whitespace();
        if words.next() != Some("YUV4MPEG2") {
            return Err(Y4mError::Format("no YUV4MPEG2 signature".into()));
        }
        let (mut width, mut height, mut fps) = (0, 0, (30, 1));
        for word in words {
            let (tag, value) = word.split_at(1);
            match tag {
                "W" => width = value.parse().map_err(|_| Y4mError::Format(word.into()))?,
                "H" => height = value.parse().map_err(|_| Y4mError::Format(word.into()))?,
                "F" => {
                    let (n, d) = value
                        .split_once(':')
                        .ok_or_else(|| Y4mError::Format(word.into()))?;
                    let n: u32 = n.parse().map_err(|_| Y4mError::Format(word.into()))?;
                    let d: u32 = d.parse().map_err(|_| Y4mError::Format(word.into()))?;
                    if n == 0 || d == 0 {
                        return Err(Y4mError::Format(word.into()));
                    }
                    fps = (n, d);
                }
                "C" if !value.starts_with("420") => {
                    return Err(Y4mError::Unsupported(value.into()));
                }
                _ => {}
            }
        }
        I420Frame::black(width, height).map_err(|e| Y4mError::Format(e.to_string()))?;
        Ok(Self {
            input,
            header: Y4mHeader { width, height, fps },
        })
    }

    pub fn header(&self) -> Y4mHeader {
        self.header
    }

    /// The next frame; `None` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<I420Frame>, Y4mError> {
        let mut line = Vec::new();
        if self.input.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if !line.starts_with(b"FRAME") {
            return Err(Y4mError::Format("expected FRAME".into()));
        }
        let Y4mHeader { width, height, .. } = self.header;
        let mut data = vec![0u8; i420_len(width, height)];
        self.input.read_exact(&mut data)?;
        I420Frame::from_bytes(width, height, data)
            .map(Some)
            .map_err(|e| Y4mError::Format(e.to_string()))
    }
}

pub struct Y4mWriter<W: Write> {
    out: W,
    header: Y4mHeader,
}

impl<W: Write> Y4mWriter<W> {
    pub fn new(mut out: W, header: Y4mHeader) -> Result<Self, Y4mError> {
        writeln!(
            out,
            "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C420jpeg",
            header.width, header.height, header.fps.0, header.fps.1
        )?;
        Ok(Self { out, header })
    }

    /// Writes a frame, scaling it to the file's size if it differs.
    pub fn write(&mut self, frame: &I420Frame) -> Result<(), Y4mError> {
        self.out.write_all(b"FRAME\n")?;
        let Y4mHeader { width, height, .. } = self.header;
        if (frame.width(), frame.height()) == (width, height) {
            self.out.write_all(frame.as_bytes())?;
        } else {
            let scaled = frame
                .scaled(width, height)
                .map_err(|e| Y4mError::Format(e.to_string()))?;
            self.out.write_all(scaled.as_bytes())?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<W, Y4mError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::TestPattern;
    use std::io::Cursor;

    #[test]
    fn write_then_read_round_trips() {
        let header = Y4mHeader {
            width: 320,
            height: 240,
            fps: (30, 1),
        };
        let p = TestPattern::new(320, 240).expect("pattern");
        let mut w = Y4mWriter::new(Vec::new(), header).expect("writer");
        for i in 0..3 {
            w.write(&p.frame(i)).expect("write");
        }
        let bytes = w.finish().expect("finish");
        let mut r = Y4mReader::new(Cursor::new(bytes)).expect("reader");
        assert_eq!(r.header(), header);
        for i in 0..3 {
            assert_eq!(r.next_frame().expect("frame"), Some(p.frame(i)));
        }
        assert_eq!(r.next_frame().expect("end"), None);
    }

    #[test]
    fn rejects_other_files_and_colour_spaces() {
        assert!(matches!(
            Y4mReader::new(Cursor::new(b"RIFF....".to_vec())),
            Err(Y4mError::Format(_))
        ));
        let c444 = b"YUV4MPEG2 W4 H4 F30:1 C444\n".to_vec();
        assert!(matches!(
            Y4mReader::new(Cursor::new(c444)),
            Err(Y4mError::Unsupported(_))
        ));
        let odd = b"YUV4MPEG2 W5 H4\n".to_vec();
        assert!(matches!(
            Y4mReader::new(Cursor::new(odd)),
            Err(Y4mError::Format(_))
        ));
        let truncated = b"YUV4MPEG2 W4 H4\nFRAME\n\x10\x10".to_vec();
        let mut r = Y4mReader::new(Cursor::new(truncated)).expect("header ok");
        assert!(r.next_frame().is_err());
    }
}
