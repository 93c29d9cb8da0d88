//! WAV files: reading PCM 16-bit or float 32-bit (mono or stereo, any rate; stereo is mixed
//! down, resampling is the caller's), and writing 16-bit mono. Readers and writers are passed
//! in; this module opens nothing.

use crate::audio::{from_i16, to_i16};
use std::io::{self, Read, Seek, SeekFrom, Write};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WavError {
    #[error("not a WAV file: {0}")]
    Format(String),
    #[error("unsupported WAV encoding: {0} (use 16-bit PCM or 32-bit float)")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A decoded WAV file, mixed down to mono.
#[derive(Debug, Clone, PartialEq)]
pub struct WavAudio {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

pub fn read<R: Read>(mut reader: R) -> Result<WavAudio, WavError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::Format("no RIFF/WAVE header".into()));
    }
    let mut pos = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32_at(&bytes, pos + 4) as usize;
        let body_start = pos + 8;
        // A streamed WAV may say 0 or too much for the data chunk: take what is there.
        let body_end = body_start.saturating_add(len).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(WavError::Format("short fmt chunk".into()));
                }
                let mut tag = u16_at(body, 0);
                if tag == 0xFFFE && body.len() >= 26 {
                    tag = u16_at(body, 24); // WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                }
                format = Some((tag, u16_at(body, 2), u32_at(body, 4), u16_at(body, 14)));
            }
            b"data" => {
                let (tag, channels, rate, bits) =
                    format.ok_or_else(|| WavError::Format("data before fmt".into()))?;
                return decode(body, tag, channels, rate, bits);
            }
            _ => {}
        }
        pos = body_start + len + (len & 1);
    }
    Err(WavError::Format("no data chunk".into()))
}

fn decode(
    data: &[u8],
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
) -> Result<WavAudio, WavError> {
    if channels == 0 || channels > 2 {
        return Err(WavError::Unsupported(format!("{channels} channels")));
    }
    if rate == 0 {
        return Err(WavError::Format("sample rate 0".into()));
    }
    let raw: Vec<f32> = match (tag, bits) {
        (1, 16) => data
            .chunks_exact(2)
            .map(|c| from_i16(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        (3, 32) => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => {
            return Err(WavError::Unsupported(format!(
                "format tag {tag}, {bits} bits"
            )));
        }
    };
    let samples = if channels == 2 {
        raw.chunks_exact(2).map(|c| (c[0] + c[1]) * 0.5).collect()
    } else {
        raw
    };
    Ok(WavAudio {
        sample_rate: rate,
        samples,
    })
}

/// Writes 16-bit mono PCM. The header's sizes are patched on [`WavWriter::finish`] (and kept
/// valid after every [`WavWriter::write`] flush, so a killed recorder leaves a playable file).
pub struct WavWriter<W: Write + Seek> {
    out: W,
    data_bytes: u32,
}

impl<W: Write + Seek> WavWriter<W> {
    pub fn new(mut out: W, sample_rate: u32) -> Result<Self, WavError> {
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&36u32.to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&1u16.to_le_bytes()); // mono
        h.extend_from_slice(&sample_rate.to_le_bytes());
        h.extend_from_slice(&(sample_rate * 2).to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&0u32.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self { out, data_bytes: 0 })
    }

    pub fn write(&mut self, samples: &[f32]) -> Result<(), WavError> {
        let mut buf = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            buf.extend_from_slice(&to_i16(*s).to_le_bytes());
        }
        self.out.write_all(&buf)?;
        self.data_bytes = self.data_bytes.saturating_add(buf.len() as u32);
        Ok(())
    }

    /// Patches the header's sizes; the writer stays usable.
    pub fn update_header(&mut self) -> Result<(), WavError> {
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&(36 + self.data_bytes).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&self.data_bytes.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<W, WavError> {
        self.update_header()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn write_then_read_round_trips() {
        let samples: Vec<f32> = (0..480).map(|i| ((i as f32) / 480.0) - 0.5).collect();
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 48_000).expect("writer");
        w.write(&samples).expect("write");
        let bytes = w.finish().expect("finish").into_inner();
        assert_eq!(bytes.len(), 44 + 960);
        let audio = read(Cursor::new(bytes)).expect("read");
        assert_eq!(audio.sample_rate, 48_000);
        assert_eq!(audio.samples.len(), 480);
        for (a, b) in audio.samples.iter().zip(&samples) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn reads_float_stereo_and_mixes_down() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&3u16.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&44_100u32.to_le_bytes());
        bytes.extend_from_slice(&(44_100u32 * 8).to_le_bytes());
        bytes.extend_from_slice(&8u16.to_le_bytes());
        bytes.extend_from_slice(&32u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        for s in [0.5f32, 0.1, -0.2, -0.4] {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let audio = read(Cursor::new(bytes)).expect("read");
        assert_eq!(audio.sample_rate, 44_100);
        assert_eq!(audio.samples, vec![0.3, -0.3]);
    }

    #[test]
    fn rejects_garbage_and_unsupported_encodings() {
        assert!(matches!(
            read(Cursor::new(b"hello".to_vec())),
            Err(WavError::Format(_))
        ));
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 8000).expect("writer");
        w.write(&[0.0; 4]).expect("write");
        let mut bytes = w.finish().expect("finish").into_inner();
        bytes[34] = 24; // claim 24-bit samples
        assert!(matches!(
            read(Cursor::new(bytes)),
            Err(WavError::Unsupported(_))
        ));
    }
}
