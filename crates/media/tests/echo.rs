//! Echo cancellation on speech: far-end speech (espeak-ng) played through a simulated room
//! (80 ms delay, attenuation, a reverberant tail) reaches the microphone, later mixed with
//! near-end speech in another voice. After convergence the echo must drop by at least 25 dB
//! (ERLE) and the near-end speech must survive (correlation with the clean near end ≥ 0.9).
//! Needs `espeak-ng` (scripts/test.sh installs it).
#![allow(clippy::unwrap_used)]

use between_media::FRAME_SAMPLES;
use between_media::analysis::{best_correlation, erle_db, spectral_correlation};
use between_media::apm::{ApmSettings, AudioProcessor};
use between_media::resample::Resampler;

const RATE: usize = 48_000;

/// Speech from espeak-ng at 48 kHz, repeated or cut to `seconds`.
fn speech(voice: &str, text: &str, seconds: f64) -> Vec<f32> {
    let path =
        std::env::temp_dir().join(format!("between-echo-{}-{voice}.wav", std::process::id()));
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "160", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .unwrap_or_else(|e| panic!("cannot run espeak-ng ({e}); install espeak-ng"));
    assert!(status.success());
    let wav = between_media::wav::read(std::fs::File::open(&path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut resampler = Resampler::new(wav.sample_rate, RATE as u32).unwrap();
    let once = resampler.process(&wav.samples).unwrap();
    let want = (seconds * RATE as f64) as usize;
    once.iter().copied().cycle().take(want).collect()
}

/// The room: the direct echo 80 ms late at -6 dB, then a decaying tail of reflections over
/// the next 60 ms (pseudo-random signs, -20 dB at the start, e-folding in 20 ms).
fn room(far: &[f32]) -> Vec<f32> {
    let mut taps = vec![(80 * RATE / 1000, 0.5f32)];
    let mut x = 0x9e37_79b9u32;
    for ms in 1..=60usize {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let sign = if x & 1 == 0 { 1.0 } else { -1.0 };
        let gain = 0.1 * (-(ms as f32) / 20.0).exp() * sign;
        taps.push(((80 + ms) * RATE / 1000, gain));
    }
    let mut out = vec![0.0f32; far.len()];
    for (delay, gain) in taps {
        for i in delay..far.len() {
            out[i] += gain * far[i - delay];
        }
    }
    out
}

fn secs(s: f64) -> usize {
    (s * RATE as f64) as usize
}

#[test]
fn echo_drops_25_db_and_near_end_speech_survives() {
    let total = 14.0;
    let far = speech(
        "en-us",
        "The quarterly numbers look better than we expected, and the team in Lisbon shipped the new release on time. Next week we plan the migration.",
        total,
    );
    let near_voice = speech(
        "en-gb+f3",
        "Could you share the slides again? I missed the part about the budget.",
        total,
    );
    // 0-8 s: far end only. 8-11 s: near end only (the far end pauses). 11-14 s: both talk.
    let mut far_played = far.clone();
    far_played[secs(8.0)..secs(11.0)].fill(0.0);
    let mut near = vec![0.0f32; far.len()];
    near[secs(8.0)..].copy_from_slice(&near_voice[..far.len() - secs(8.0)]);
    let echo = room(&far_played);
    let mic: Vec<f32> = echo.iter().zip(&near).map(|(e, n)| e + 0.5 * n).collect();

    let mut apm = AudioProcessor::new(ApmSettings::call());
    let mut sent = Vec::with_capacity(mic.len());
    for (render, capture) in far_played
        .chunks_exact(FRAME_SAMPLES)
        .zip(mic.chunks_exact(FRAME_SAMPLES))
    {
        apm.render(render).unwrap();
        let mut frame = capture.to_vec();
        apm.capture(&mut frame).unwrap();
        sent.extend_from_slice(&frame);
    }

    // Converged within 2 s: ERLE over 2-8 s, and over the first second after convergence.
    let erle = erle_db(&mic[secs(2.0)..secs(8.0)], &sent[secs(2.0)..secs(8.0)]);
    let erle_at_2s = erle_db(&mic[secs(2.0)..secs(3.0)], &sent[secs(2.0)..secs(3.0)]);
    // Processing delays the near end by a few ms (more with AEC and NS together): allow 50 ms.
    let lag = secs(0.05);
    let near_only = secs(8.5)..secs(11.0);
    let both = secs(11.5)..secs(14.0);
    let kept = spectral_correlation(
        &near[near_only.clone()],
        &sent[near_only.clone()],
        RATE as u32,
        lag,
    );
    let waveform = best_correlation(&near[near_only.clone()], &sent[near_only], lag);
    let double_talk = spectral_correlation(&near[both.clone()], &sent[both], RATE as u32, lag);
    eprintln!(
        "ERLE 2-8 s: {erle:.1} dB (2-3 s: {erle_at_2s:.1} dB); near end kept: spectral r = {kept:.3} (waveform {waveform:.3}); during double talk: spectral r = {double_talk:.3}"
    );
    assert!(erle >= 25.0, "ERLE {erle:.1} dB");
    assert!(
        erle_at_2s >= 25.0,
        "not converged by 2 s: {erle_at_2s:.1} dB"
    );
    assert!(kept >= 0.9, "near-end correlation {kept:.3}");
}
