//! `between bench audio`: the CPU cost of a call's whole audio path on one participant's
//! machine, per 20 ms frame, without devices or network: send (microphone frame → echo
//! cancellation, noise suppression, gain control → Opus encode) and receive (for each of the
//! other participants: jitter buffer → Opus decode; then mix → echo reference). The frames
//! are speech-like (a tone with a syllable-rate envelope plus noise) so the codec and the
//! processing do real work. Reports the median and p99 per frame and the share of one core
//! (time per frame / 20 ms).

use anyhow::Context;
use between_media::FRAME_SAMPLES;
use between_media::apm::{ApmSettings, AudioProcessor};
use between_media::jitter::{JitterBuffer, JitterConfig, Playout};
use between_media::mixer;
use between_media::opus_codec::{OpusDecoder, OpusEncoder};
use between_media::tone::speechlike;
use clap::Args;
use serde_json::json;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct AudioBench {
    /// Participants in the call (this one included).
    #[arg(long, default_value_t = 4)]
    participants: usize,
    /// Seconds of audio to process.
    #[arg(long, default_value_t = 30)]
    seconds: usize,
    /// The loss the encoder prepares for, percent (the engine follows the loss the server
    /// reports: 0 on a clean network, 5-25 with loss).
    #[arg(long, default_value_t = 0)]
    expected_loss: i32,
    /// A conversation: one participant talks at a time (turns of 2 s), the others are quiet
    /// (background noise, which their encoders send as DTX). Without it everyone talks at
    /// once, all the time: the worst case.
    #[arg(long)]
    turns: bool,
    #[arg(long)]
    json: bool,
}

/// Whether participant `who` (0 = this one) talks during `frame`.
fn talking(turns: bool, participants: usize, who: usize, frame: u64) -> bool {
    !turns || (frame / 100) as usize % participants == who
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(args: AudioBench) -> anyhow::Result<()> {
    let others = args.participants.saturating_sub(1).max(1);
    let frames = (args.seconds * 50) as u64;
    // What the others send, encoded beforehand: their encoders run on their machines.
    let mut remote_packets: Vec<Vec<Vec<u8>>> = Vec::new();
    for p in 0..others {
        let mut enc = OpusEncoder::new(32_000, 15).context("encoder")?;
        let mut packets = Vec::new();
        for f in 0..frames {
            let pkt = enc
                .encode(&speechlike(
                    f,
                    110.0 + 40.0 * p as f64,
                    talking(args.turns, args.participants, p + 1, f),
                ))
                .context("encode")?
                .unwrap_or_default();
            packets.push(pkt);
        }
        remote_packets.push(packets);
    }
    let mut apm = AudioProcessor::new(ApmSettings::call());
    // As the engine starts (and stays on a clean network): no FEC until loss is reported.
    // `--expected-loss` measures a lossy network's cost.
    let mut encoder = OpusEncoder::new(32_000, args.expected_loss).context("encoder")?;
    let mut jitters: Vec<JitterBuffer> = (0..others)
        .map(|_| JitterBuffer::new(JitterConfig::default()))
        .collect();
    let mut decoders: Vec<OpusDecoder> = (0..others)
        .map(|_| OpusDecoder::new())
        .collect::<Result<_, _>>()
        .context("decoder")?;
    let mics: Vec<Vec<f32>> = (0..frames)
        .map(|f| speechlike(f, 180.0, talking(args.turns, args.participants, 0, f)))
        .collect();
    let (mut send, mut receive, mut capture_apm) = (Vec::new(), Vec::new(), Vec::new());
    for f in 0..frames as usize {
        // The clock the jitter buffers see: frames arrive exactly on time.
        let now_ms = f as f64 * 20.0;
        let t0 = Instant::now();
        let mut outputs = Vec::with_capacity(others);
        for (p, (jitter, decoder)) in jitters.iter_mut().zip(&mut decoders).enumerate() {
            let pkt = remote_packets[p][f].clone();
            if !pkt.is_empty() {
                jitter.push(f as u16, (f * FRAME_SAMPLES) as u32, pkt, now_ms);
            }
            let out = match jitter.pop(now_ms) {
                Playout::Frame(packet) => decoder.decode(&packet),
                Playout::Conceal { fec: Some(next) } => decoder.recover(&next),
                Playout::Conceal { fec: None } => decoder.conceal(),
                Playout::Silence => Ok(vec![0.0; FRAME_SAMPLES]),
            }
            .context("decode")?;
            outputs.push(out);
        }
        let sources: Vec<(&[f32], f32)> = outputs.iter().map(|o| (o.as_slice(), 1.0)).collect();
        let mix = mixer::mix(FRAME_SAMPLES, &sources);
        apm.render(&mix).context("render")?;
        let t1 = Instant::now();
        let mut mic = mics[f].clone();
        apm.capture(&mut mic).context("capture")?;
        let t_apm = Instant::now();
        std::hint::black_box(encoder.encode(&mic).context("encode")?);
        let t2 = Instant::now();
        receive.push((t1 - t0).as_secs_f64() * 1e6);
        send.push((t2 - t1).as_secs_f64() * 1e6);
        capture_apm.push((t_apm - t1).as_secs_f64() * 1e6);
    }
    let total: Vec<f64> = send.iter().zip(&receive).map(|(a, b)| a + b).collect();
    let stats = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        (percentile(&s, 0.5), percentile(&s, 0.99))
    };
    let (send_med, send_p99) = stats(&send);
    let (apm_med, _) = stats(&capture_apm);
    let (recv_med, recv_p99) = stats(&receive);
    let (total_med, total_p99) = stats(&total);
    let mean = total.iter().sum::<f64>() / total.len() as f64;
    let core = mean / 20_000.0 * 100.0;
    if args.json {
        println!(
            "{}",
            json!({"participants": args.participants, "frames": frames, "turns": args.turns,
                "send_us_median": send_med, "send_us_p99": send_p99, "capture_apm_us_median": apm_med,
                "receive_us_median": recv_med, "receive_us_p99": recv_p99,
                "total_us_median": total_med, "total_us_p99": total_p99,
                "core_percent_mean": core})
        );
    } else {
        println!(
            "between bench audio: {} participants, {} s of speech-like audio, {}",
            args.participants,
            args.seconds,
            if args.turns {
                "one talking at a time"
            } else {
                "everyone talking at once"
            }
        );
        println!(
            "  send (APM capture + Opus encode)          median {send_med:7.1} µs  p99 {send_p99:7.1} µs per 20 ms (APM {apm_med:.1} µs)"
        );
        println!(
            "  receive ({others} x jitter + decode, mix, APM render) median {recv_med:7.1} µs  p99 {recv_p99:7.1} µs per 20 ms"
        );
        println!(
            "  whole audio path                          median {total_med:7.1} µs  p99 {total_p99:7.1} µs -> {core:.2} % of one core (mean)"
        );
    }
    Ok(())
}
