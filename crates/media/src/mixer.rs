//! Mixes several sources into one frame, each with its own gain. The sum is soft-limited
//! rather than clipped, so three loud talkers distort gently instead of crackling.

/// Adds `input * gain` into `out`. Call once per source, then [`limit`].
pub fn accumulate(out: &mut [f32], input: &[f32], gain: f32) {
    for (o, i) in out.iter_mut().zip(input) {
        *o += i * gain;
    }
}

/// Leaves samples up to 0.75 untouched and bends larger ones smoothly toward ±1.
pub fn limit(samples: &mut [f32]) {
    const KNEE: f32 = 0.75;
    for s in samples {
        let a = s.abs();
        if a > KNEE {
            let over = (a - KNEE) / (1.0 - KNEE);
            let bent = KNEE + (1.0 - KNEE) * over.tanh();
            *s = bent.copysign(*s);
        }
    }
}

/// Mixes `(samples, gain)` sources into a new buffer of `len` samples.
pub fn mix(len: usize, sources: &[(&[f32], f32)]) -> Vec<f32> {
    let mut out = vec![0.0; len];
    for (input, gain) in sources {
        accumulate(&mut out, input, *gain);
    }
    limit(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gains_scale_and_sources_add() {
        let a = [0.1f32, 0.2, -0.3];
        let b = [0.2f32, -0.2, 0.1];
        let out = mix(3, &[(&a, 1.0), (&b, 0.5)]);
        let expected = [0.2f32, 0.1, -0.25];
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-6, "{o} vs {e}");
        }
    }

    #[test]
    fn loud_sums_stay_within_range_and_keep_their_sign() {
        let loud = [0.9f32, -0.9, 0.5];
        let out = mix(3, &[(&loud, 1.0), (&loud, 1.0), (&loud, 1.0)]);
        assert!(out.iter().all(|s| s.abs() <= 1.0));
        assert!(out[0] > 0.95 && out[1] < -0.95);
        assert!(out[2] > 0.9, "1.5 is limited, not zeroed");
    }

    #[test]
    fn muted_source_contributes_nothing() {
        let a = [0.5f32; 4];
        assert_eq!(mix(4, &[(&a, 0.0)]), vec![0.0; 4]);
    }
}
