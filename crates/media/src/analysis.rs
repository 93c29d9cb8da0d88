//! Analysers that check content, for tests and benchmarks: is this tone in this recording and
//! how far above everything else, where are the gaps, how close is a frame to its source.

use crate::video::I420Frame;

/// In-place radix-2 FFT over (re, im) pairs; `len` must be a power of two.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -std::f64::consts::TAU / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = ((angle * k as f64).cos(), (angle * k as f64).sin());
                let (a, b) = (start + k, start + k + len / 2);
                let (xr, xi) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
        len <<= 1;
    }
}

/// Power spectrum (Hann window, zero-padded to a power of two) and the width of one bin in Hz.
pub fn power_spectrum(samples: &[f32], sample_rate: u32) -> (Vec<f64>, f64) {
    let n = samples.len().next_power_of_two().max(2);
    let mut re = vec![0.0; n];
    let mut im = vec![0.0; n];
    let m = samples.len().max(2) as f64;
    for (i, s) in samples.iter().enumerate() {
        let w = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (m - 1.0)).cos();
        re[i] = *s as f64 * w;
    }
    fft(&mut re, &mut im);
    let power = (0..n / 2).map(|k| re[k] * re[k] + im[k] * im[k]).collect();
    (power, sample_rate as f64 / n as f64)
}

/// How far (dB) the power around `frequency` stands above the strongest bin elsewhere.
/// A clean tone through Opus scores 40+ dB; noise or the wrong tone scores near 0 or below.
pub fn tone_snr_db(samples: &[f32], sample_rate: u32, frequency: f64) -> f64 {
    let (power, bin_hz) = power_spectrum(samples, sample_rate);
    let k = (frequency / bin_hz).round() as usize;
    // The Hann window spreads a tone over a few bins; exclude more than that around it.
    let near = |i: usize| i.abs_diff(k) <= 2;
    let guard = |i: usize| i.abs_diff(k) <= 8 || i < 3;
    let tone: f64 = (0..power.len())
        .filter(|&i| near(i))
        .map(|i| power[i])
        .sum();
    let other = (0..power.len())
        .filter(|&i| !guard(i))
        .map(|i| power[i])
        .fold(0.0, f64::max);
    10.0 * ((tone + 1e-20) / (other + 1e-20)).log10()
}

/// The frequency of the strongest bin (above 20 Hz).
pub fn dominant_frequency(samples: &[f32], sample_rate: u32) -> f64 {
    let (power, bin_hz) = power_spectrum(samples, sample_rate);
    let first = (20.0 / bin_hz).ceil() as usize;
    let (k, _) =
        power.iter().enumerate().skip(first).fold(
            (0, 0.0),
            |best, (i, &p)| if p > best.1 { (i, p) } else { best },
        );
    k as f64 * bin_hz
}

/// The longest stretch (ms) in which the signal's level stays below `threshold` (RMS over
/// 5 ms windows): a dropout in what should be a continuous tone.
pub fn longest_gap_ms(samples: &[f32], sample_rate: u32, threshold: f32) -> f64 {
    let window = (sample_rate as usize / 200).max(1);
    let (mut longest, mut current) = (0usize, 0usize);
    for chunk in samples.chunks(window) {
        if crate::audio::rms(chunk) < threshold {
            current += chunk.len();
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest as f64 * 1000.0 / sample_rate as f64
}

/// Peak signal-to-noise ratio (dB) of two equal-length 8-bit planes; infinite when identical.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// PSNR of the luma planes of two frames of the same size (0 if the sizes differ).
pub fn frame_psnr(a: &I420Frame, b: &I420Frame) -> f64 {
    if (a.width(), a.height()) != (b.width(), b.height()) {
        return 0.0;
    }
    psnr(a.y(), b.y())
}

/// Echo return loss enhancement: how much quieter `processed` is than `mic` (dB), over the
/// same stretch of far-end-only audio.
pub fn erle_db(mic: &[f32], processed: &[f32]) -> f64 {
    let energy = |s: &[f32]| s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
    10.0 * ((energy(mic) + 1e-12) / (energy(processed) + 1e-12)).log10()
}

/// The best Pearson correlation of `b` against `a` over lags of up to `max_lag` samples
/// either way (processing may delay a little).
pub fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> f64 {
    let wide = |s: &[f32]| s.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let (a, b) = (wide(a), wide(b));
    (0..=max_lag)
        .flat_map(|lag| {
            [
                pearson(
                    &a[..a.len().saturating_sub(lag)],
                    b.get(lag..).unwrap_or(&[]),
                ),
                pearson(
                    a.get(lag..).unwrap_or(&[]),
                    &b[..b.len().saturating_sub(lag)],
                ),
            ]
        })
        .fold(f64::MIN, f64::max)
}

/// How alike two recordings of speech sound: the Pearson correlation of their log power
/// spectrograms (1024-sample frames, half overlapping, up to 8 kHz), at the best of the delays
/// of `b` up to `max_lag` samples. Unlike waveform correlation it ignores phase, so a
/// high-pass filter or a band split does not count as damage; suppressed, gated or distorted
/// speech does.
pub fn spectral_correlation(a: &[f32], b: &[f32], sample_rate: u32, max_lag: usize) -> f64 {
    const FRAME: usize = 1024;
    const HOP: usize = 512;
    let spectrogram = |s: &[f32]| -> Vec<f64> {
        let mut out = Vec::new();
        let mut start = 0;
        while start + FRAME <= s.len() {
            let (power, bin_hz) = power_spectrum(&s[start..start + FRAME], sample_rate);
            let top = ((8_000.0 / bin_hz) as usize).min(power.len());
            out.extend(power[1..top].iter().map(|p| (p + 1e-10).log10()));
            start += HOP;
        }
        out
    };
    let reference = spectrogram(a);
    let mut best = f64::MIN;
    let mut lag = 0;
    while lag <= max_lag && lag < b.len() {
        let shifted = spectrogram(&b[lag..]);
        let n = reference.len().min(shifted.len());
        if n > 1 {
            best = best.max(pearson(&reference[..n], &shifted[..n]));
        }
        lag += HOP / 2;
    }
    best
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    if x.is_empty() || y.is_empty() {
        return 0.0;
    }
    let n = x.len().min(y.len()) as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::ToneSource;

    fn tone(freq: f64, frames: usize) -> Vec<f32> {
        let mut src = ToneSource::new(freq, 0.5);
        (0..frames).flat_map(|_| src.next_frame().samples).collect()
    }

    #[test]
    fn finds_the_tone_and_rejects_the_wrong_one() {
        let samples = tone(660.0, 50);
        assert!(tone_snr_db(&samples, 48_000, 660.0) > 60.0);
        assert!(tone_snr_db(&samples, 48_000, 440.0) < 0.0);
        assert!((dominant_frequency(&samples, 48_000) - 660.0).abs() < 3.0);
    }

    #[test]
    fn a_mix_of_tones_is_not_a_clean_tone() {
        let a = tone(440.0, 50);
        let b = tone(880.0, 50);
        let mix: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert!(tone_snr_db(&mix, 48_000, 440.0) < 10.0);
    }

    #[test]
    fn gaps_are_measured() {
        let mut samples = tone(440.0, 25);
        samples[4800..4800 + 2880].fill(0.0); // 60 ms of silence at 100 ms
        let gap = longest_gap_ms(&samples, 48_000, 0.05);
        assert!((55.0..=65.0).contains(&gap), "{gap}");
        assert!(longest_gap_ms(&tone(440.0, 25), 48_000, 0.05) < 1.0);
    }

    #[test]
    fn psnr_of_identical_and_noisy_planes() {
        let a = vec![100u8; 1000];
        assert_eq!(psnr(&a, &a), f64::INFINITY);
        let b: Vec<u8> = a
            .iter()
            .enumerate()
            .map(|(i, p)| if i % 2 == 0 { p + 4 } else { p - 4 })
            .collect();
        let v = psnr(&a, &b);
        assert!((v - 36.09).abs() < 0.1, "{v}");
    }
}
