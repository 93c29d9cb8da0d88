//! Where local media comes from and where remote media goes: the traits the device layer
//! implements (microphone, camera, speaker), and the synthetic and file sources bots and
//! tests use. Sources are pulled at the media's own pace (every 20 ms for audio, every
//! 1/fps for video) by the engine.

use between_media::FRAME_SAMPLES;
use between_media::pattern::TestPattern;
use between_media::resample::Resampler;
use between_media::tone::ToneSource;
use between_media::video::I420Frame;
use between_media::y4m::Y4mReader;
use std::io::BufRead;

/// A microphone: 20 ms of 48 kHz mono at a time. `None` means the source has ended.
pub trait AudioSource: Send + 'static {
    fn read_frame(&mut self) -> Option<Vec<f32>>;

    /// The device behind it, if any (for the fallback when it goes away).
    fn device_id(&self) -> Option<&str> {
        None
    }

    /// Its device stream has failed (unplugged, sound server gone).
    fn device_failed(&self) -> bool {
        false
    }
}

/// A camera or a screen.
pub trait VideoSource: Send + 'static {
    fn read_frame(&mut self) -> Option<I420Frame>;
    fn frame_rate(&self) -> f64;

    /// Whether the picture may differ from the last one read, asked cheaply and often by a
    /// screen share (sources that cannot tell say yes).
    fn changed(&mut self) -> bool {
        true
    }

    /// The camera behind it, if any (for the fallback when it goes away).
    fn device_id(&self) -> Option<&str> {
        None
    }

    /// Its device has stopped delivering (unplugged, driver gave up).
    fn device_failed(&self) -> bool {
        false
    }
}

/// A speaker: gets the mix of everyone, 20 ms at a time, in real time order.
pub trait AudioSink: Send + 'static {
    fn write(&mut self, samples: &[f32]);

    /// The device behind it, if any (for the fallback when it goes away).
    fn device_id(&self) -> Option<&str> {
        None
    }

    /// Its device stream has failed (unplugged, sound server gone).
    fn device_failed(&self) -> bool {
        false
    }
}

/// Each remote peer's decoded audio before mixing, 20 ms at a time (silence where nothing
/// arrived), e.g. for recording.
pub trait PeerAudioTap: Send + Sync + 'static {
    fn write(&self, peer_id: &str, samples: &[f32]);
}

/// A sine tone.
pub struct ToneAudio(ToneSource);

impl ToneAudio {
    pub fn new(frequency: f64) -> Self {
        Self(ToneSource::new(frequency, 0.3))
    }
}

impl AudioSource for ToneAudio {
    fn read_frame(&mut self) -> Option<Vec<f32>> {
        Some(self.0.next_frame().samples)
    }
}

/// The moving test pattern with its frame counter.
pub struct PatternVideo {
    pattern: TestPattern,
    fps: f64,
    next: u32,
    noise: u8,
    seed: u64,
}

impl PatternVideo {
    pub fn new(width: u32, height: u32, fps: f64) -> Result<Self, String> {
        Ok(Self {
            pattern: TestPattern::new(width, height).map_err(|e| e.to_string())?,
            fps,
            next: 0,
            noise: 0,
            seed: 0x9e37_79b9_7f4a_7c15,
        })
    }

    /// With noise of up to `amplitude` luma levels on every picture: content that fills its
    /// bitrate, for anything about bandwidth (the bare pattern compresses to almost nothing).
    pub fn with_noise(mut self, amplitude: u8) -> Self {
        self.noise = amplitude;
        self
    }
}

impl VideoSource for PatternVideo {
    fn read_frame(&mut self) -> Option<I420Frame> {
        let mut frame = self.pattern.frame(self.next);
        self.next = self.next.wrapping_add(1);
        between_media::pattern::add_noise(&mut frame, self.noise, &mut self.seed);
        Some(frame)
    }

    fn frame_rate(&self) -> f64 {
        self.fps
    }
}

/// A WAV file (any rate, resampled to 48 kHz), looped.
pub struct WavAudio {
    samples: Vec<f32>,
    pos: usize,
}

impl WavAudio {
    pub fn from_reader(reader: impl std::io::Read) -> Result<Self, String> {
        let wav = between_media::wav::read(reader).map_err(|e| e.to_string())?;
        let mut resampler = Resampler::new(wav.sample_rate, 48_000).map_err(|e| e.to_string())?;
        let samples = resampler.process(&wav.samples).map_err(|e| e.to_string())?;
        if samples.len() < FRAME_SAMPLES {
            return Err("the WAV file is shorter than 20 ms".into());
        }
        Ok(Self { samples, pos: 0 })
    }
}

impl AudioSource for WavAudio {
    fn read_frame(&mut self) -> Option<Vec<f32>> {
        let mut frame = Vec::with_capacity(FRAME_SAMPLES);
        while frame.len() < FRAME_SAMPLES {
            let take = (FRAME_SAMPLES - frame.len()).min(self.samples.len() - self.pos);
            frame.extend_from_slice(&self.samples[self.pos..self.pos + take]);
            self.pos = (self.pos + take) % self.samples.len();
        }
        Some(frame)
    }
}

/// A Y4M file, looped.
pub struct Y4mVideo {
    frames: Vec<I420Frame>,
    fps: f64,
    next: usize,
}

impl Y4mVideo {
    /// Reads the whole file (bots use short clips).
    pub fn from_reader(reader: impl BufRead) -> Result<Self, String> {
        let mut r = Y4mReader::new(reader).map_err(|e| e.to_string())?;
        let (n, d) = r.header().fps;
        let mut frames = Vec::new();
        while let Some(f) = r.next_frame().map_err(|e| e.to_string())? {
            frames.push(f);
        }
        if frames.is_empty() {
            return Err("the Y4M file has no frames".into());
        }
        Ok(Self {
            frames,
            fps: n as f64 / d as f64,
            next: 0,
        })
    }
}

impl VideoSource for Y4mVideo {
    fn read_frame(&mut self) -> Option<I420Frame> {
        let f = self.frames[self.next].clone();
        self.next = (self.next + 1) % self.frames.len();
        Some(f)
    }

    fn frame_rate(&self) -> f64 {
        self.fps
    }
}
