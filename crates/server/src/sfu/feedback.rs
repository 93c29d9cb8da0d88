//! Feedback from subscribers to a publisher, throttled: keyframe requests (one covers those
//! that follow it for a while) and loss reports (the worst recent one, relayed now and then).
//! Pure, as the core that holds one of each per published track.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The least time between two loss relays for one track: receivers report about once a
/// second each, and relaying every report of N subscribers would count one loss N times in
/// the publisher's smoothing.
pub const LOSS_RELAY_INTERVAL: Duration = Duration::from_millis(900);
/// A subscriber's loss report counts for this long.
pub const LOSS_MEMORY: Duration = Duration::from_secs(10);
/// How long a keyframe request to one publisher's track covers the requests that follow it:
/// subscribers that lose packets together would otherwise ask for a keyframe each, and every
/// keyframe costs the publisher's uplink several frames' worth. A covered request is held and
/// sent when the interval ends, so nobody waits more than this; a subscriber that became
/// ready to receive after the last request is not covered (that keyframe passed it by) and
/// is sent at once.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// Throttles keyframe requests to one track (see [`KEYFRAME_INTERVAL`]).
#[derive(Debug, Default)]
pub(crate) struct KeyframeGate {
    pub last: Option<Instant>,
    pub pending: bool,
    /// When each subscriber last became ready to receive the track.
    ready: HashMap<String, Instant>,
}

impl KeyframeGate {
    /// Whether `subscriber`'s request may go now (`None`: one for everybody, e.g. a
    /// restarted track); otherwise it is held for [`KeyframeGate::due`].
    pub fn ask(&mut self, now: Instant, subscriber: Option<(&str, bool)>) -> bool {
        // A subscriber ready that long ago is covered as if never seen: drop it.
        self.ready
            .retain(|_, ready| now.duration_since(*ready) < KEYFRAME_INTERVAL);
        // When the requester became ready; a subscriber never seen ready is covered by any
        // recent request, one for everybody by none.
        let ready_at = match subscriber {
            // Once per interval: a subscriber that keeps saying it is fresh (a client
            // rebuilding its connection in a loop) gets no more than one bypass.
            Some((id, true)) if !self.ready.contains_key(id) => {
                self.ready.insert(id.to_string(), now);
                Some(now)
            }
            Some((id, _)) => self.ready.get(id).copied(),
            None => Some(now),
        };
        let covered = self.last.is_some_and(|t| {
            now < t + KEYFRAME_INTERVAL && ready_at.is_none_or(|ready| t >= ready)
        });
        if covered {
            self.pending = true;
            return false;
        }
        // This request covers any held one.
        self.pending = false;
        self.last = Some(now);
        true
    }

    pub fn forget(&mut self, subscriber: &str) {
        self.ready.remove(subscriber);
    }

    pub fn due(&self) -> Option<Instant> {
        self.pending
            .then(|| self.last.map(|t| t + KEYFRAME_INTERVAL))
            .flatten()
    }
}

/// The loss a track's subscribers report, relayed to its publisher as the worst recent one,
/// at most every [`LOSS_RELAY_INTERVAL`].
#[derive(Debug, Default)]
pub(crate) struct LossRelay {
    /// Each subscriber's last report (fraction of 256) and when.
    reports: HashMap<String, (u8, Instant)>,
    relayed: Option<Instant>,
}

impl LossRelay {
    pub fn forget(&mut self, subscriber: &str) {
        self.reports.remove(subscriber);
    }

    /// Takes `subscriber`'s report; the worst recent loss if it is time to relay it.
    pub fn report(&mut self, now: Instant, subscriber: String, fraction_lost: u8) -> Option<u8> {
        self.reports.insert(subscriber, (fraction_lost, now));
        self.reports
            .retain(|_, (_, at)| now.duration_since(*at) < LOSS_MEMORY);
        if self
            .relayed
            .is_some_and(|at| now.duration_since(at) < LOSS_RELAY_INTERVAL)
        {
            return None;
        }
        self.relayed = Some(now);
        self.reports.values().map(|(l, _)| *l).max()
    }
}
