//! Microphone and speaker streams on cpal devices, behind the engine's `AudioSource` and
//! `AudioSink` traits. The device runs on its own clock and thread; a small buffer between it
//! and the engine's 20 ms ticks absorbs the difference, bounded so clock drift never turns
//! into growing latency: the oldest audio is dropped beyond the bound, silence fills an
//! underrun.

use super::audio;
use crate::error::BAError;
use crate::media::sources::{AudioSink, AudioSource};
use between_media::FRAME_SAMPLES;
use between_media::drift::BufferTrim;
use between_media::resample::Resampler;
use between_protocol::ErrorCode;
use cpal::traits::{DeviceTrait, StreamTrait};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const RATE: u32 = 48_000;
/// The device callback period asked for: 10 ms.
const PERIOD: u32 = 480;
/// A microphone keeps at most this much unread (200 ms): a device that delivers in large
/// bursts must not lose the end of each; the trim below keeps the usual fill near 10 ms.
const MIC_MAX_BUFFERED: usize = 10 * FRAME_SAMPLES;
/// A speaker drops back to `SPEAKER_KEEP` once this much is queued (100 ms).
const SPEAKER_MAX_BUFFERED: usize = 5 * FRAME_SAMPLES;
const SPEAKER_KEEP: usize = 2 * FRAME_SAMPLES;
/// Queued audio never needed over a second beyond 10 ms of slack is dropped (latency).
const TRIM_SLACK: usize = FRAME_SAMPLES / 2;
const TRIM_WINDOW: u32 = 50;
/// How long opening a stream may take (the PulseAudio host waits on its server).
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a microphone may take to deliver its first samples after opening.
const START_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Shared {
    samples: Mutex<VecDeque<f32>>,
    /// Samples the device wanted and did not get (speaker) or that were dropped (microphone).
    glitches: AtomicU64,
    failed: AtomicBool,
}

impl Shared {
    fn samples(&self) -> MutexGuard<'_, VecDeque<f32>> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn fail(&self, e: &cpal::Error) {
        tracing::warn!(error = %e, "audio device stream error");
        self.failed.store(true, Ordering::Relaxed);
    }
}

fn open_error(what: &str, id: &str, e: &cpal::Error) -> BAError {
    match e.kind() {
        cpal::ErrorKind::PermissionDenied => BAError::new(
            ErrorCode::PermissionDenied,
            format!(
                "This app may not use the {what} \"{id}\". Allow it in the system's privacy or sound settings."
            ),
        ),
        // The platform's catch-all "default" device that leads nowhere: no hardware at all.
        cpal::ErrorKind::DeviceNotAvailable if id.ends_with(":default") => BAError::new(
            ErrorCode::DeviceNotFound,
            format!("No {what} was found. Plug one in or pick another in the device menu."),
        ),
        cpal::ErrorKind::DeviceNotAvailable => BAError::new(
            ErrorCode::DeviceNotFound,
            format!(
                "The {what} \"{id}\" is not connected. Plug it in or pick another in the device menu."
            ),
        ),
        _ => BAError::new(
            ErrorCode::DeviceUnavailable,
            format!(
                "The {what} \"{id}\" could not be opened ({e}). Close other apps using it, or pick another one in the device menu."
            ),
        ),
    }
}

/// The stream format to ask for: 48 kHz where the device offers it (PulseAudio always does:
/// its server converts), else the device's default rate, resampled here. Mono where offered.
fn choose_config(
    device: &cpal::Device,
    input: bool,
) -> Result<(cpal::StreamConfig, cpal::SampleFormat), cpal::Error> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = if input {
        device.supported_input_configs()?.collect()
    } else {
        device.supported_output_configs()?.collect()
    };
    let f32_48k = ranges
        .iter()
        .filter(|r| r.sample_format() == cpal::SampleFormat::F32)
        .filter_map(|r| r.try_with_sample_rate(RATE))
        .min_by_key(|c| c.channels());
    let chosen = match f32_48k {
        Some(c) => c,
        None if input => device.default_input_config()?,
        None => device.default_output_config()?,
    };
    let format = chosen.sample_format();
    let mut config: cpal::StreamConfig = chosen.into();
    config.buffer_size = cpal::BufferSize::Fixed(PERIOD);
    Ok((config, format))
}

/// A device stream that is closed on a thread of its own. Closing a PulseAudio record stream
/// in cpal 0.18 joins a thread that may wait forever for the server's answer to a timing
/// request (seen when switching microphones mid-call): that wait must never hold up the call.
struct Closing(Option<cpal::Stream>);

impl Drop for Closing {
    fn drop(&mut self) {
        if let Some(stream) = self.0.take() {
            let spawned = std::thread::Builder::new()
                .name("between-device-close".into())
                .spawn(move || drop(stream));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot close a device stream in the background");
            }
        }
    }
}

/// A microphone on a cpal device.
pub struct Microphone {
    shared: Arc<Shared>,
    /// Frames in a row the device had nothing for.
    starved: u32,
    trim: BufferTrim,
    device_id: String,
    _stream: Closing,
}

impl Microphone {
    /// Opens the input with this ID, or the system default with `None`. Blocks until the
    /// device delivers its first samples, at most a few seconds: cpal's PulseAudio host waits
    /// for them without a deadline, and a source that never starts must not hang the call.
    pub fn open(id: Option<&str>) -> Result<Self, BAError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = id.map(str::to_string);
        std::thread::Builder::new()
            .name("between-mic-open".into())
            .spawn(move || {
                let _ = tx.send(Self::open_now(wanted.as_deref()));
            })
            .map_err(|e| BAError::new(ErrorCode::Internal, e.to_string()))?;
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(result) => result,
            // The opening thread stays blocked in the sound server client; it is abandoned.
            Err(_) => Err(BAError::new(
                ErrorCode::DeviceUnavailable,
                format!(
                    "The microphone \"{}\" did not start within {} s. Check that it is not muted or in use, or pick another one in the device menu.",
                    id.unwrap_or("default"),
                    START_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    fn open_now(id: Option<&str>) -> Result<Self, BAError> {
        let host = audio::stream_host_for(id, true)?;
        let (device, device_id) = audio::find(&host, id, true)?;
        let (config, format) =
            choose_config(&device, true).map_err(|e| open_error("microphone", &device_id, &e))?;
        if format != cpal::SampleFormat::F32 {
            return Err(BAError::new(
                ErrorCode::DeviceUnavailable,
                format!(
                    "The microphone \"{device_id}\" offers no floating-point format this app can read. Pick another one in the device menu."
                ),
            ));
        }
        let shared = Arc::new(Shared::default());
        let channels = usize::from(config.channels.max(1));
        let mut resampler = Resampler::new(config.sample_rate, RATE)
            .map_err(|e| BAError::new(ErrorCode::Internal, e.to_string()))?;
        let (data, errors) = (shared.clone(), shared.clone());
        let stream = device
            .build_input_stream(
                config,
                move |input: &[f32], _: &cpal::InputCallbackInfo| {
                    // The usual case (48 kHz mono, which PulseAudio always offers) goes
                    // straight into the queue: no allocation on the device's thread.
                    let mut buf = if channels == 1 && resampler.is_passthrough() {
                        let mut buf = data.samples();
                        buf.extend(input.iter().copied());
                        buf
                    } else {
                        let mono: Vec<f32> = input
                            .chunks(channels)
                            .map(|f| f.iter().sum::<f32>() / f.len() as f32)
                            .collect();
                        let Ok(at_48k) = resampler.process(&mono) else {
                            return;
                        };
                        let mut buf = data.samples();
                        buf.extend(at_48k);
                        buf
                    };
                    if buf.len() > MIC_MAX_BUFFERED {
                        let excess = buf.len() - MIC_MAX_BUFFERED;
                        buf.drain(..excess);
                        data.glitches.fetch_add(excess as u64, Ordering::Relaxed);
                    }
                },
                move |e| errors.fail(&e),
                Some(OPEN_TIMEOUT),
            )
            .map_err(|e| open_error("microphone", &device_id, &e))?;
        stream
            .play()
            .map_err(|e| open_error("microphone", &device_id, &e))?;
        Ok(Self {
            shared,
            starved: 0,
            trim: BufferTrim::new(TRIM_SLACK, TRIM_WINDOW),
            device_id,
            _stream: Closing(Some(stream)),
        })
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Everything captured and not yet read (at most 60 ms), for measurements that poll.
    pub fn drain_available(&mut self) -> Vec<f32> {
        self.shared.samples().drain(..).collect()
    }
}

impl AudioSource for Microphone {
    /// The next 20 ms; silence while the device has not delivered them (before it starts, or
    /// a device that stalls): `None` would end the track, and Opus sends silence for almost
    /// nothing.
    fn read_frame(&mut self) -> Option<Vec<f32>> {
        let mut buf = self.shared.samples();
        if buf.len() < FRAME_SAMPLES {
            self.starved += 1;
            // Once a second while it lasts: a microphone that stopped delivering.
            if self.starved.is_multiple_of(50) {
                tracing::warn!(device = %self.device_id, seconds = self.starved / 50, "the microphone delivers no sound");
            }
            return Some(vec![0.0; FRAME_SAMPLES]);
        }
        self.starved = 0;
        let frame = buf.drain(..FRAME_SAMPLES).collect();
        if let Some(excess) = self.trim.observe(buf.len()) {
            let excess = excess.min(buf.len());
            buf.drain(..excess);
        }
        Some(frame)
    }

    fn device_id(&self) -> Option<&str> {
        Some(&self.device_id)
    }

    fn device_failed(&self) -> bool {
        self.shared.has_failed()
    }
}

/// A speaker on a cpal device.
pub struct Speaker {
    shared: Arc<Shared>,
    trim: BufferTrim,
    underruns_seen: u64,
    device_id: String,
    resampler: Resampler,
    _stream: Closing,
}

impl Speaker {
    /// Opens the output with this ID, or the system default with `None`.
    pub fn open(id: Option<&str>) -> Result<Self, BAError> {
        let host = audio::stream_host_for(id, false)?;
        let (device, device_id) = audio::find(&host, id, false)?;
        let (config, format) =
            choose_config(&device, false).map_err(|e| open_error("speaker", &device_id, &e))?;
        if format != cpal::SampleFormat::F32 {
            return Err(BAError::new(
                ErrorCode::DeviceUnavailable,
                format!(
                    "The speaker \"{device_id}\" offers no floating-point format this app can play. Pick another one in the device menu."
                ),
            ));
        }
        let shared = Arc::new(Shared::default());
        let channels = usize::from(config.channels.max(1));
        let resampler = Resampler::new(RATE, config.sample_rate)
            .map_err(|e| BAError::new(ErrorCode::Internal, e.to_string()))?;
        let (data, errors) = (shared.clone(), shared.clone());
        let stream = device
            .build_output_stream(
                config,
                move |out: &mut [f32], _: &cpal::OutputCallbackInfo| {
                    let mut buf = data.samples();
                    let mut missing = 0u64;
                    for frame in out.chunks_mut(channels) {
                        let s = buf.pop_front().unwrap_or_else(|| {
                            missing += 1;
                            0.0
                        });
                        frame.fill(s);
                    }
                    if missing > 0 {
                        data.glitches.fetch_add(missing, Ordering::Relaxed);
                    }
                },
                move |e| errors.fail(&e),
                Some(OPEN_TIMEOUT),
            )
            .map_err(|e| open_error("speaker", &device_id, &e))?;
        stream
            .play()
            .map_err(|e| open_error("speaker", &device_id, &e))?;
        Ok(Self {
            shared,
            trim: BufferTrim::new(TRIM_SLACK, TRIM_WINDOW),
            underruns_seen: 0,
            device_id,
            resampler,
            _stream: Closing(Some(stream)),
        })
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Samples the device asked for and got silence instead (underruns), so far.
    pub fn underruns(&self) -> u64 {
        self.shared.glitches.load(Ordering::Relaxed)
    }
}

impl AudioSink for Speaker {
    fn write(&mut self, samples: &[f32]) {
        let resampled;
        let at_device_rate = if self.resampler.is_passthrough() {
            samples
        } else {
            let Ok(r) = self.resampler.process(samples) else {
                return;
            };
            resampled = r;
            &resampled
        };
        let mut buf = self.shared.samples();
        // Just before a write is the queue's low point. A window with an underrun means the
        // device pulls in bursts larger than it seemed: no trimming then.
        if let Some(excess) = self.trim.observe(buf.len()) {
            let underruns = self.shared.glitches.load(Ordering::Relaxed);
            if underruns == self.underruns_seen {
                let excess = excess.min(buf.len());
                buf.drain(..excess);
            }
            self.underruns_seen = underruns;
        }
        buf.extend(at_device_rate.iter().copied());
        if buf.len() > SPEAKER_MAX_BUFFERED {
            let excess = buf.len() - SPEAKER_KEEP;
            buf.drain(..excess);
        }
    }

    fn device_id(&self) -> Option<&str> {
        Some(&self.device_id)
    }

    fn device_failed(&self) -> bool {
        self.shared.has_failed()
    }
}
