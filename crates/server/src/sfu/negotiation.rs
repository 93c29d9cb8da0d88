//! One receiving connection's offer/answer exchange as a state machine: numbered offers, an
//! answer due by a deadline, changes during an exchange going in one later offer, retries that
//! wait longer after each failure, and a connection number that changes when the connection
//! starts over. Pure; the core holds one per participant and turns its answers into outputs.

use between_protocol::{ErrorCode, ProtocolError, ServerMessage, TrackInfo};
use std::time::{Duration, Instant};

/// How long a subscribe offer waits for its answer before it is made again.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a failed attempt to make an offer (or to set up the receiving connection)
/// the next one is made; doubled for each failure in a row, up to [`RETRY_MAX`].
pub const OFFER_RETRY: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Nothing is waiting.
    Stable,
    /// The driver is making offer `offer`, describing `tracks`.
    Making {
        offer: u64,
        tracks: Vec<TrackInfo>,
        again: bool,
    },
    /// Offer `offer` went to the client; its answer is due by `deadline`.
    Offered {
        offer: u64,
        msg: ServerMessage,
        deadline: Instant,
        again: bool,
    },
    /// The driver is applying the client's answer to `offer`.
    Applying { offer: u64, again: bool },
    /// Making an offer failed; the next is made at `at`.
    Retry { at: Instant },
}

#[derive(Debug)]
pub(crate) struct Negotiation {
    state: State,
    next_offer: u64,
    /// The receiving connection's number, new at each reset.
    connection: u64,
    /// Failed attempts in a row.
    failures: u32,
}

impl Default for Negotiation {
    fn default() -> Self {
        Self {
            state: State::Stable,
            next_offer: 1,
            connection: 1,
            failures: 0,
        }
    }
}

fn no_offer() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InvalidMessage,
        "No subscribe offer is waiting for an answer.",
    )
}

impl Negotiation {
    /// The connection starts over: a new number, and whatever was waiting was the old one's.
    pub fn reset(&mut self) {
        self.state = State::Stable;
        self.connection += 1;
    }

    /// The connection's tracks changed: the number of the offer to make now, or `None` if
    /// an exchange is under way (its end brings another offer). `tracks` is what it carries.
    pub fn changed(&mut self, tracks: impl FnOnce() -> Vec<TrackInfo>) -> Option<u64> {
        match &mut self.state {
            State::Stable | State::Retry { .. } => {
                let offer = self.next_offer;
                self.next_offer += 1;
                self.state = State::Making {
                    offer,
                    tracks: tracks(),
                    again: false,
                };
                Some(offer)
            }
            State::Making { again, .. }
            | State::Offered { again, .. }
            | State::Applying { again, .. } => {
                *again = true;
                None
            }
        }
    }

    /// The driver made offer `offer`: the message for the client, if that is the offer
    /// wanted (not one for a connection that has gone since).
    pub fn offer_ready(&mut self, now: Instant, offer: u64, sdp: String) -> Option<ServerMessage> {
        let State::Making {
            offer: making,
            tracks,
            again,
        } = &mut self.state
        else {
            return None;
        };
        if *making != offer {
            return None;
        }
        let msg = ServerMessage::SubscribeOffer {
            sdp,
            tracks: std::mem::take(tracks),
            offer,
            connection: self.connection,
        };
        self.state = State::Offered {
            offer,
            msg: msg.clone(),
            deadline: now + ANSWER_TIMEOUT,
            again: *again,
        };
        Some(msg)
    }

    pub fn offer_failed(&mut self, now: Instant, offer: u64) {
        if matches!(self.state, State::Making { offer: o, .. } if o == offer) {
            self.state = State::Retry {
                at: self.failed(now),
            };
        }
    }

    /// A failure: when to try again (the wait doubles with each failure in a row).
    pub fn failed(&mut self, now: Instant) -> Instant {
        let wait = OFFER_RETRY
            .saturating_mul(1 << self.failures.min(5))
            .min(RETRY_MAX);
        self.failures += 1;
        now + wait
    }

    /// The client answered offer `answers` (`None`: whichever waits): the offer it answers,
    /// for the driver to apply; an error for the client if no such offer waits.
    pub fn answered(&mut self, answers: Option<u64>) -> Result<u64, ProtocolError> {
        let State::Offered { offer, again, .. } = self.state else {
            return Err(no_offer());
        };
        if answers.is_some_and(|n| n != offer) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidMessage,
                "That answer is for an offer that was replaced; answer the latest one.",
            ));
        }
        self.state = State::Applying { offer, again };
        Ok(offer)
    }

    /// The driver applied the answer to `offer` (`ok`) or could not: whether to offer again
    /// (changes waited, or the connection is left with the offer unanswered); `None` if that
    /// was not the answer being applied.
    pub fn answer_applied(&mut self, offer: u64, ok: bool) -> Option<bool> {
        let State::Applying {
            offer: applying,
            again,
        } = self.state
        else {
            return None;
        };
        if applying != offer {
            return None;
        }
        self.state = State::Stable;
        if ok {
            self.failures = 0;
        }
        Some(again || !ok)
    }

    /// The offer waiting for its answer, to send again to a client that resumed.
    pub fn waiting_offer(&self) -> Option<&ServerMessage> {
        match &self.state {
            State::Offered { msg, .. } => Some(msg),
            _ => None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Offered { deadline, .. } => Some(deadline),
            State::Retry { at } => Some(at),
            _ => None,
        }
    }

    /// What is due at `now`: whether an offer must be made again (no answer came, or a
    /// failed one's wait is over).
    pub fn timed_out(&mut self, now: Instant) -> bool {
        let due = match self.state {
            State::Offered { deadline, .. } => deadline <= now,
            State::Retry { at } => at <= now,
            _ => false,
        };
        if due {
            self.state = State::Stable;
        }
        due
    }
}
