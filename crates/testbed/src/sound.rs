//! A private PulseAudio daemon with virtual devices, and readers/writers of its sinks, for
//! tests that need sound devices on a machine without a sound card. Shared by the CLI's device
//! tests and the app's end-to-end test.
// Test support: a failed set-up fails the test that asked for it.
#![allow(clippy::unwrap_used)]

use crate::pulse::PulseDaemon;
use between_media::analysis::{dominant_frequency, tone_snr_db};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A PulseAudio daemon on a socket of its own, stopped on drop (the benchmarks' daemon, with
/// a test's failure on error).
pub struct Pulse(PulseDaemon);

impl Pulse {
    pub fn start(modules: &[&str]) -> Self {
        Self(PulseDaemon::start(modules).unwrap_or_else(|e| panic!("{e}")))
    }

    pub fn socket(&self) -> PathBuf {
        self.0.socket()
    }

    pub fn server_env(&self) -> String {
        self.0.server_env()
    }

    /// A PulseAudio client program (pacat, parec) talking to this daemon.
    pub fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PULSE_SERVER", self.server_env())
            .env_remove("PULSE_RUNTIME_PATH");
        cmd
    }
}

/// Everything a sink's monitor plays, in 10 ms chunks stamped with their arrival.
pub struct Monitor {
    child: Child,
    chunks: Arc<Mutex<Vec<Chunk>>>,
}

pub const CHUNK: usize = 480;

/// 10 ms of a monitor, stamped with its arrival.
pub type Chunk = (Instant, Vec<f32>);

impl Monitor {
    pub fn start(pulse: &Pulse, source: &str) -> Self {
        let mut child = pulse
            .client("parec")
            .args(["-d", source, "--raw", "--format=float32le", "--rate=48000"])
            .args(["--channels=1", "--latency-msec=10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run parec ({e}); install pulseaudio-utils"));
        let mut out = child.stdout.take().unwrap();
        let chunks = Arc::new(Mutex::new(Vec::new()));
        let sink = chunks.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut bytes = vec![0u8; CHUNK * 4];
            while out.read_exact(&mut bytes).is_ok() {
                let samples = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                sink.lock().unwrap().push((Instant::now(), samples));
            }
        });
        Self { child, chunks }
    }

    /// The last `ms` milliseconds.
    pub fn tail(&self, ms: usize) -> Vec<f32> {
        let chunks = self.chunks.lock().unwrap();
        let n = ms / 10;
        chunks[chunks.len().saturating_sub(n)..]
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .collect()
    }

    /// Waits (10 s at most) until the last half second holds a 440 Hz tone.
    pub fn wait_for_tone(&self, what: &str) -> f64 {
        self.wait_for_frequency(what, 440.0)
    }

    /// Waits (10 s at most) until the last half second holds a tone at `freq`.
    pub fn wait_for_frequency(&self, what: &str, freq: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tail = self.tail(500);
            let (db, hz) = if tail.len() >= 24_000 {
                (
                    tone_snr_db(&tail, 48_000, freq),
                    dominant_frequency(&tail, 48_000),
                )
            } else {
                (0.0, 0.0)
            };
            // The right frequency, well above everything else. (Not the 30 dB of the
            // loopback tests: device buffers that trim latency leave a click now and then.)
            if db >= 20.0 && (hz - freq).abs() <= 5.0 {
                return db;
            }
            assert!(
                Instant::now() < deadline,
                "no {freq} Hz tone at {what} within 10 s ({db:.1} dB, strongest {hz:.0} Hz, over the last {} samples, RMS {:.4}; {} chunks in all)",
                tail.len(),
                between_media::audio::rms(&tail),
                self.chunks.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (5 s at most) until the last half second is silent.
    pub fn wait_for_silence(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let tail = self.tail(500);
            if tail.len() >= 24_000 && between_media::audio::rms(&tail) < 1e-3 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not go silent within 5 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// When the tone was last (`last`) or first heard: the arrival of the chunk, 10 ms steps.
    pub fn tone_edge(&self, after: Instant, last: bool) -> Option<Instant> {
        let chunks = self.chunks.lock().unwrap();
        let loud = chunks
            .iter()
            .filter(|(t, s)| *t >= after && between_media::audio::rms(s) > 0.05);
        if last {
            loud.map(|(t, _)| *t).next_back()
        } else {
            loud.map(|(t, _)| *t).next()
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays a 440 Hz tone into `sink` (what the virtual microphone hears) for a minute.
pub fn play_tone(pulse: &Pulse, sink: &str) -> Child {
    play_frequency(pulse, sink, 440.0)
}

pub fn play_frequency(pulse: &Pulse, sink: &str, freq: f64) -> Child {
    let tone: Vec<u8> = (0..48_000 * 60)
        .flat_map(|i| {
            let s = 0.3 * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin();
            (s as f32).to_le_bytes()
        })
        .collect();
    let mut feeder = pulse
        .client("pacat")
        .args(["-d", sink, "--raw", "--format=float32le", "--rate=48000"])
        // Without it pacat asks for a 2 s buffer, and the null sink then runs in 2 s bursts.
        .args(["--channels=1", "--latency-msec=10"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run pacat ({e}); install pulseaudio-utils"));
    let mut feed = feeder.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = feed.write_all(&tone);
    });
    feeder
}

pub fn pactl(pulse: &Pulse, args: &[&str]) -> String {
    let out = pulse.client("pactl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "pactl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
