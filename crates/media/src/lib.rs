//! Media processing with no I/O: audio and video frames, codecs, RTP helpers, the adaptive
//! jitter buffer, the mixer, the resampler, synthetic and file sources and sinks, and the
//! analysers tests use to check content (tone detection, frame counters, PSNR).
//!
//! Nothing here opens a file, a socket or a device, or reads a clock: readers and writers are
//! passed in, and time is an argument. So every part runs the same in a test, a benchmark and
//! the engine. Depends on no other Between crate.

pub mod analysis;
pub mod apm;
pub mod audio;
pub mod bwe;
pub mod camera;
pub mod drift;
pub mod encoded_loop;
pub mod fec_policy;
pub mod frame_assembly;
pub mod h264;
pub mod h264_rtp;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod netsim;
pub mod opus_codec;
pub mod pattern;
pub mod resample;
pub mod rtp;
pub mod screen;
pub mod simulcast;
pub mod tone;
pub mod video;
pub mod wav;
pub mod y4m;

/// The engine's audio format: 48 kHz mono, in 20 ms frames.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 960;
/// One audio frame's duration in milliseconds.
pub const FRAME_MS: u32 = 20;
