//! Probing a subscriber's downlink by allocation, without IO. The send-side estimate never
//! rises far above what is sent, so a subscriber held to low layers (or a paused video) by
//! its estimate would stay there after the link recovers. Now and then, while something is
//! held back, the allocator may spend half as much again as the estimate (at least a small layer more) for a while: if the path carries it
//! the estimate does not fall and the higher layers stay; if a queue grows the estimate
//! falls, the probe ends at once and the next waits twice as long.

use std::time::{Duration, Instant};

/// The first wait, after a subscriber is first held back or a probe held.
const FIRST_GAP: Duration = Duration::from_secs(3);
const MAX_GAP: Duration = Duration::from_secs(30);
/// The longest wait while a video is paused outright: a frozen picture costs more than a
/// failed probe.
const MAX_GAP_PAUSED: Duration = Duration::from_secs(5);
/// A probe that the estimate did not refute within this long holds.
const PROBE_LEN: Duration = Duration::from_millis(1500);
/// After a probe held, the next may come this soon: a link that recovered is climbed in a
/// few steps, not one per [`FIRST_GAP`].
const AFTER_HELD: Duration = Duration::from_secs(1);
/// How much more than the usable estimate a probe may spend.
const FACTOR: f64 = 1.5;
/// A probe adds at least this (a small layer of noisy 180p).
const MIN_STEP: f64 = 200_000.0;
/// An estimate this far above the last counts as a rise (the path has more room).
const RISE: f64 = 1.1;
/// An estimate this far below the last counts as a fall (the estimator backed off).
const FALL: f64 = 0.92;

#[derive(Debug)]
pub struct Probe {
    gap: Duration,
    next: Option<Instant>,
    /// A probe under way: when it holds if nothing refutes it.
    until: Option<Instant>,
    /// What the allocator may spend beyond the estimate (a probe under way, or one that held
    /// and has not been refuted since).
    budget: Option<f64>,
    last_estimate: Option<f64>,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            gap: FIRST_GAP,
            next: None,
            until: None,
            budget: None,
            last_estimate: None,
        }
    }
}

/// What the allocator should do after [`Probe::tick`] or [`Probe::estimate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reallocate {
    No,
    Yes,
}

impl Probe {
    /// The budget to allocate within, given the usable estimate.
    pub fn budget(&self, usable: f64) -> f64 {
        self.budget.map_or(usable, |b| b.max(usable))
    }

    /// The allocation just made did (`held_back`) or did not hold a video back for the
    /// budget: a probe is due in a while, or none.
    pub fn arm(&mut self, now: Instant, held_back: bool) {
        if !held_back {
            self.next = None;
        } else if self.next.is_none() && self.until.is_none() {
            self.next = Some(now + self.gap);
        }
    }

    /// When [`Probe::tick`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        self.until.or(self.next)
    }

    /// A new estimate: one that fell ends a probe (and the room it held), and the next waits
    /// longer.
    pub fn estimate(&mut self, now: Instant, bps: f64) -> Reallocate {
        let fell = self.last_estimate.is_some_and(|last| bps < last * FALL);
        let rose = self.last_estimate.is_some_and(|last| bps > last * RISE);
        self.last_estimate = Some(bps);
        if rose {
            // The path has more room than before (a link that recovered): probe again soon,
            // whatever earlier probes cost.
            self.gap = FIRST_GAP;
            if let Some(next) = self.next {
                self.next = Some(next.min(now + AFTER_HELD));
            }
        }
        if !fell || self.budget.is_none() {
            return Reallocate::No;
        }
        if self.until.is_some() {
            self.gap = (self.gap * 2).min(MAX_GAP);
        }
        self.budget = None;
        self.until = None;
        self.next = Some(now + self.gap);
        Reallocate::Yes
    }

    /// Time passes; `held_back`: the last allocation gave some video less than its tile
    /// wants because of the budget; `usable`: the usable estimate (`None`: not estimated,
    /// nothing to probe).
    pub fn tick(
        &mut self,
        now: Instant,
        held_back: bool,
        paused: bool,
        usable: Option<f64>,
    ) -> Reallocate {
        if paused && let Some(next) = self.next {
            self.next = Some(next.min(now + MAX_GAP_PAUSED));
        }
        if let Some(until) = self.until
            && now >= until
        {
            // Not refuted: the room stays, and a further probe may come soon.
            self.until = None;
            self.gap = FIRST_GAP;
            self.next = held_back.then_some(now + AFTER_HELD);
            return Reallocate::No;
        }
        let Some(usable) = usable.filter(|_| held_back && self.until.is_none()) else {
            if !held_back {
                self.next = None;
            }
            return Reallocate::No;
        };
        let next = *self.next.get_or_insert(now + self.gap);
        if now < next {
            return Reallocate::No;
        }
        // At least enough to resume a paused video's smallest layer beside the audio.
        let base = self.budget(usable);
        self.budget = Some((base * FACTOR).max(base + MIN_STEP));
        self.until = Some(now + PROBE_LEN);
        self.next = None;
        Reallocate::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_back_subscriber_is_probed_and_a_refuted_probe_backs_off() {
        let t0 = Instant::now();
        let mut p = Probe::default();
        assert_eq!(p.estimate(t0, 500_000.0), Reallocate::No);
        assert_eq!(p.tick(t0, true, false, Some(400_000.0)), Reallocate::No);
        assert_eq!(p.deadline(), Some(t0 + FIRST_GAP));
        let t1 = t0 + FIRST_GAP;
        assert_eq!(p.tick(t1, true, false, Some(400_000.0)), Reallocate::Yes);
        assert_eq!(p.budget(400_000.0), 600_000.0);
        // The estimate falls: the probe ends at once, and the next waits twice as long.
        assert_eq!(p.estimate(t1, 400_000.0), Reallocate::Yes);
        assert_eq!(p.budget(340_000.0), 340_000.0);
        assert_eq!(p.deadline(), Some(t1 + 2 * FIRST_GAP));
        // Nothing held back any more: no probing.
        assert_eq!(p.tick(t1, false, false, Some(340_000.0)), Reallocate::No);
        assert_eq!(p.deadline(), None);
    }

    /// A probe four probes into its back-off (each refuted by a falling estimate), and when.
    fn backed_off() -> (Probe, Instant) {
        let mut p = Probe::default();
        let mut t = Instant::now();
        p.estimate(t, 400_000.0);
        for bps in [300_000.0, 250_000.0, 200_000.0, 150_000.0] {
            p.arm(t, true);
            t = p.deadline().expect("a probe is due");
            assert_eq!(p.tick(t, true, false, Some(340_000.0)), Reallocate::Yes);
            p.estimate(t, bps);
        }
        let late = p.deadline().expect("due");
        assert!(
            late - t >= Duration::from_secs(24),
            "backed off: {:?}",
            late - t
        );
        (p, t)
    }

    #[test]
    fn a_paused_video_is_probed_again_within_seconds_however_often_probes_failed() {
        let (mut p, t) = backed_off();
        p.tick(t, true, true, Some(340_000.0));
        assert!(p.deadline().expect("due") <= t + MAX_GAP_PAUSED);
    }

    #[test]
    fn a_rising_estimate_brings_the_next_probe_close_whatever_the_back_off() {
        let (mut p, t) = backed_off();
        p.estimate(t, 400_000.0);
        assert_eq!(p.deadline(), Some(t + AFTER_HELD));
    }

    #[test]
    fn a_probe_the_estimate_does_not_refute_holds_and_the_next_comes_soon() {
        let t0 = Instant::now();
        let mut p = Probe::default();
        p.estimate(t0, 300_000.0);
        p.tick(t0, true, false, Some(255_000.0));
        let t1 = t0 + FIRST_GAP;
        assert_eq!(p.tick(t1, true, false, Some(255_000.0)), Reallocate::Yes);
        // A slightly lower estimate is no fall.
        assert_eq!(p.estimate(t1, 290_000.0), Reallocate::No);
        let t2 = t1 + PROBE_LEN;
        assert_eq!(p.tick(t2, true, false, Some(246_500.0)), Reallocate::No);
        assert_eq!(p.budget(246_500.0), 455_000.0, "the probed room stays");
        assert_eq!(p.deadline(), Some(t2 + AFTER_HELD));
        // Still held back: another probe, from the held room.
        assert_eq!(
            p.tick(t2 + AFTER_HELD, true, false, Some(246_500.0)),
            Reallocate::Yes
        );
        assert_eq!(p.budget(246_500.0), 682_500.0);
        // A fall after it held takes the room away too.
        assert_eq!(p.estimate(t2 + AFTER_HELD, 200_000.0), Reallocate::Yes);
        assert_eq!(p.budget(170_000.0), 170_000.0);
    }
}
