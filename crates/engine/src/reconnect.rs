//! The reconnect schedule: exponential backoff with jitter and a bounded number of attempts.
//! Pure: the caller supplies the random seed and does the waiting.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Attempts before giving up (`socketDisconnected`).
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    /// About 35 s of trying: 0.2, 0.4, 0.8, 1.6, 3.2, then 5 s steps.
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_attempts: 11,
        }
    }
}

/// One outage's schedule.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(policy: ReconnectPolicy, seed: u64) -> Self {
        Self {
            policy,
            attempt: 0,
            // Scrambled so that nearby seeds give unrelated sequences; xorshift must not be 0.
            rng: splitmix64(seed) | 1,
        }
    }

    /// Attempts handed out so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next attempt, or `None` when the policy says give up. Each delay is
    /// the exponential step ±20 %, so clients dropped together do not return together.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.policy.max_attempts {
            return None;
        }
        let exp = self
            .policy
            .initial_delay
            .saturating_mul(1u32 << self.attempt.min(20));
        let base = exp.min(self.policy.max_delay);
        self.attempt += 1;
        let jitter = 0.8 + 0.4 * self.next_unit();
        Some(base.mul_f64(jitter))
    }

    fn next_unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: 6,
        }
    }

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let mut b = Backoff::new(policy(), 42);
        let expected = [100u64, 200, 400, 800, 1000, 1000];
        for base in expected {
            let d = b.next_delay().expect("delay").as_secs_f64() * 1000.0;
            let base = base as f64;
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "{d} vs {base}"
            );
        }
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.attempts(), 6);
    }

    #[test]
    fn seeds_spread_the_delays() {
        let a = Backoff::new(policy(), 1).next_delay();
        let b = Backoff::new(policy(), 2).next_delay();
        assert_ne!(a, b);
    }

    #[test]
    fn zero_attempts_gives_up_at_once() {
        let mut b = Backoff::new(
            ReconnectPolicy {
                max_attempts: 0,
                ..policy()
            },
            7,
        );
        assert_eq!(b.next_delay(), None);
    }
}
