//! What the Opus encoder's settings cost per 20 ms frame of speech-like audio (the signal
//! `between bench audio` uses, `between_media::tone::speechlike`), to choose them by
//! measurement. Prints the median and p99 encode time and the bytes sent per second for
//! each setting.
//!
//! `cargo run --release -p between-media --example opus_settings`

use between_media::tone::speechlike;
use std::time::Instant;

const RATE: u32 = 48_000;
const FRAMES: u64 = 3000;

struct Setting {
    name: &'static str,
    complexity: i32,
    loss: i32,
    max_bandwidth: Option<opus::Bandwidth>,
    voice: bool,
    bitrate: i32,
}

fn main() {
    let audio: Vec<Vec<f32>> = (0..FRAMES).map(|f| speechlike(f, 180.0, true)).collect();
    let settings = [
        Setting {
            name: "now: c10 loss 15",
            complexity: 10,
            loss: 15,
            max_bandwidth: None,
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c10 loss 0",
            complexity: 10,
            loss: 0,
            max_bandwidth: None,
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c10 loss 5",
            complexity: 10,
            loss: 5,
            max_bandwidth: None,
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c9 loss 15",
            complexity: 9,
            loss: 15,
            max_bandwidth: None,
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c8 loss 15",
            complexity: 8,
            loss: 15,
            max_bandwidth: None,
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c7 loss 15",
            complexity: 7,
            loss: 15,
            max_bandwidth: None,
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c7 loss 0",
            complexity: 7,
            loss: 0,
            max_bandwidth: None,
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c10 loss 15 voice",
            complexity: 10,
            loss: 15,
            max_bandwidth: None,
            voice: true,
            bitrate: 32_000,
        },
        Setting {
            name: "c10 loss 15 SWB",
            complexity: 10,
            loss: 15,
            max_bandwidth: Some(opus::Bandwidth::Superwideband),
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c10 loss 15 WB",
            complexity: 10,
            loss: 15,
            max_bandwidth: Some(opus::Bandwidth::Wideband),
            voice: false,
            bitrate: 32_000,
        },
        Setting {
            name: "c7 loss 0 24k",
            complexity: 7,
            loss: 0,
            max_bandwidth: None,
            voice: false,
            bitrate: 24_000,
        },
        Setting {
            name: "c7 loss 0 voice",
            complexity: 7,
            loss: 0,
            max_bandwidth: None,
            voice: true,
            bitrate: 32_000,
        },
    ];
    for s in settings {
        let mut enc = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        enc.set_bitrate(opus::Bitrate::Bits(s.bitrate))
            .expect("bitrate");
        enc.set_inband_fec(true).expect("fec");
        enc.set_packet_loss_perc(s.loss).expect("loss");
        enc.set_dtx(true).expect("dtx");
        enc.set_complexity(s.complexity).expect("complexity");
        if let Some(bw) = s.max_bandwidth {
            enc.set_max_bandwidth(bw).expect("bandwidth");
        }
        if s.voice {
            enc.set_signal(opus::Signal::Voice).expect("signal");
        }
        let mut out = vec![0u8; 1500];
        let mut times = Vec::new();
        let mut bytes = 0usize;
        for frame in &audio {
            let t = Instant::now();
            let n = enc.encode_float(frame, &mut out).expect("encode");
            times.push(t.elapsed().as_secs_f64() * 1e6);
            bytes += n;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:<22} median {:>6.1} µs  p99 {:>6.1} µs  {:>5.1} kbit/s",
            s.name,
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            bytes as f64 * 8.0 / (FRAMES as f64 * 0.02) / 1000.0
        );
    }
}
