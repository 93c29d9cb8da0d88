//! The adaptive jitter buffer for audio. Packets go in as they arrive (any order, with gaps);
//! every 20 ms the playout side asks for the next frame and gets it, or word that it is lost
//! (with the following packet, whose in-band FEC can rebuild it), or silence while nothing is
//! playing. Sans-IO: arrival and playout times are arguments, in milliseconds on any clock.
//!
//! The delay it adds follows the network: each packet's transit time (arrival minus its
//! timestamp) is kept for the last couple of seconds, and the target delay is the spread
//! between the 95th percentile and the minimum of those, plus one frame, bounded by
//! `[min_delay_ms, max_delay_ms]`. When the buffer holds more than the target needs (after a
//! burst), one frame is dropped per pop until it is back; when a frame is missing and less
//! than the target is buffered, it conceals without advancing (waiting for the straggler),
//! which is how the delay grows to what the network needs.

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    /// RTP clock rate (48 000 for Opus).
    pub clock_rate: u32,
    /// RTP timestamp ticks per frame (960 = 20 ms at 48 kHz).
    pub frame_ticks: u32,
    pub min_delay_ms: f64,
    pub max_delay_ms: f64,
    /// Transit samples kept for the estimate (100 = 2 s of 20 ms packets).
    pub window: usize,
    /// Consecutive empty pops after which playout stops and waits to prebuffer again (the
    /// sender went quiet: muted, DTX, or gone).
    pub idle_after: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            clock_rate: 48_000,
            frame_ticks: 960,
            min_delay_ms: 20.0,
            max_delay_ms: 200.0,
            window: 100,
            idle_after: 5,
        }
    }
}

/// What to play for the next frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The frame's packet.
    Frame(Vec<u8>),
    /// The frame is missing: conceal it. `fec` is the next packet, if present, whose in-band
    /// FEC data can rebuild this one.
    Conceal { fec: Option<Vec<u8>> },
    /// Nothing is playing (not started, or the sender went quiet): play silence.
    Silence,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub played: u64,
    pub concealed: u64,
    /// Arrived after their time had passed.
    pub late: u64,
    pub duplicates: u64,
    /// Dropped to bring the delay back down to the target.
    pub dropped: u64,
}

struct Buffered {
    payload: Vec<u8>,
    arrival_ms: f64,
    seq: u16,
}

/// How long a loss keeps the extra frame of delay.
const LOSS_MEMORY_MS: f64 = 5_000.0;

pub struct JitterBuffer {
    cfg: JitterConfig,
    packets: BTreeMap<u64, Buffered>,
    /// Extended timestamp of the next frame to play, once playing.
    play_ts: Option<u64>,
    last_ts: Option<u64>,
    transits: VecDeque<f64>,
    target_ms: f64,
    /// While losses are recent, hold two frames more, so the packets after a lost one (the
    /// next carries its FEC) are usually there when it is due: Opus concealment fades to
    /// silence within about 40 ms, so blind concealment must stay short.
    loss_boost_until_ms: f64,
    /// The sequence number of the last packet played: when the packet after a hole follows it
    /// directly, the hole was DTX (the sender had nothing to say), not loss.
    last_seq: Option<u16>,
    empty_pops: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        Self {
            target_ms: cfg.min_delay_ms,
            cfg,
            packets: BTreeMap::new(),
            play_ts: None,
            last_ts: None,
            transits: VecDeque::new(),
            loss_boost_until_ms: f64::NEG_INFINITY,
            last_seq: None,
            empty_pops: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The delay the buffer currently aims for, in ms.
    pub fn target_delay_ms(&self) -> f64 {
        self.target_ms
    }

    fn ticks_to_ms(&self, ticks: u64) -> f64 {
        ticks as f64 * 1000.0 / self.cfg.clock_rate as f64
    }

    fn frame_ms(&self) -> f64 {
        self.ticks_to_ms(self.cfg.frame_ticks as u64)
    }

    /// Extends a 32-bit RTP timestamp to 64 bits, across wrap-arounds in either direction.
    fn unwrap(&mut self, ts: u32) -> u64 {
        let Some(last) = self.last_ts else {
            // Start high enough that a reordered earlier packet cannot go below zero.
            let ext = (1u64 << 32) + ts as u64;
            self.last_ts = Some(ext);
            return ext;
        };
        let last_low = last as u32;
        let delta = ts.wrapping_sub(last_low) as i32 as i64;
        let ext = (last as i64 + delta).max(0) as u64;
        if ext > last {
            self.last_ts = Some(ext);
        }
        ext
    }

    pub fn push(&mut self, sequence: u16, rtp_timestamp: u32, payload: Vec<u8>, arrival_ms: f64) {
        self.stats.received += 1;
        let ts = self.unwrap(rtp_timestamp);
        self.observe_transit(arrival_ms - self.ticks_to_ms(ts), arrival_ms);
        if self.play_ts.is_some_and(|play| ts < play) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ts) {
            self.stats.duplicates += 1;
            return;
        }
        self.packets.insert(
            ts,
            Buffered {
                payload,
                arrival_ms,
                seq: sequence,
            },
        );
        // Never hold more than the maximum delay's worth (plus slack): a sender far ahead of
        // playout is a broken clock, not jitter.
        let cap = (self.cfg.max_delay_ms / self.frame_ms()).ceil() as usize * 2 + 4;
        while self.packets.len() > cap {
            self.packets.pop_first();
            self.stats.dropped += 1;
        }
    }

    fn observe_transit(&mut self, transit: f64, now_ms: f64) {
        if self.transits.len() >= self.cfg.window {
            self.transits.pop_front();
        }
        self.transits.push_back(transit);
        let mut sorted: Vec<f64> = self.transits.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let min = sorted[0];
        let p95 = sorted[((sorted.len() - 1) as f64 * 0.95).round() as usize];
        let mut want = p95 - min + self.frame_ms();
        if now_ms < self.loss_boost_until_ms {
            want += 2.0 * self.frame_ms();
        }
        self.target_ms = want.clamp(self.cfg.min_delay_ms, self.cfg.max_delay_ms);
    }

    /// The next 20 ms to play, at time `now_ms`. Call once per frame period.
    pub fn pop(&mut self, now_ms: f64) -> Playout {
        let frame = self.cfg.frame_ticks as u64;
        let play = match self.play_ts {
            Some(play) => play,
            None => {
                // Start once the oldest packet has waited the target delay.
                let Some((&first, oldest)) = self.packets.first_key_value() else {
                    return Playout::Silence;
                };
                if now_ms - oldest.arrival_ms < self.target_ms - self.frame_ms() {
                    return Playout::Silence;
                }
                self.play_ts = Some(first);
                first
            }
        };
        let play = self.shed_excess_delay(play);
        if let Some(buffered) = self.packets.remove(&play) {
            self.last_seq = Some(buffered.seq);
            self.play_ts = Some(play + frame);
            self.empty_pops = 0;
            self.stats.played += 1;
            return Playout::Frame(buffered.payload);
        }
        let after_hole = self
            .packets
            .range(play..)
            .next()
            .map(|(&ts, b)| (ts, b.seq, b.arrival_ms));
        let dtx = matches!(
            (self.last_seq, after_hole),
            (Some(l), Some((_, n, _))) if n == l.wrapping_add(1)
        );
        if let (true, Some((ts, _, arrival_ms))) = (dtx, after_hole) {
            // The sender was quiet (DTX), nothing was lost: the talk spurt starts as a fresh
            // start would, once it waited the target delay, instead of concealing the quiet
            // frames one pop at a time (which delayed every first syllable by up to five
            // frames: `between bench media`, mouth-to-ear).
            if now_ms - arrival_ms >= self.target_ms - self.frame_ms()
                && let Some(buffered) = self.packets.remove(&ts)
            {
                self.last_seq = Some(buffered.seq);
                self.play_ts = Some(ts + frame);
                self.empty_pops = 0;
                self.stats.played += 1;
                return Playout::Frame(buffered.payload);
            }
            self.stats.concealed += 1;
            return Playout::Conceal { fec: None };
        }
        if let Some((&newest, _)) = self.packets.last_key_value() {
            // A hole with later packets waiting. Below the target delay, wait for it (conceal
            // without advancing: the delay grows by a frame); at or above, it is lost.
            let held_ms = self.ticks_to_ms(newest - play + frame);
            if held_ms >= self.target_ms {
                self.play_ts = Some(play + frame);
                self.empty_pops = 0;
                self.stats.concealed += 1;
                // Not DTX (that returned above): a packet was lost.
                self.loss_boost_until_ms = now_ms + LOSS_MEMORY_MS;
                let fec = self.packets.get(&(play + frame)).map(|b| b.payload.clone());
                return Playout::Conceal { fec };
            }
            self.stats.concealed += 1;
            return Playout::Conceal { fec: None };
        }
        // Dry: conceal without advancing, so a late burst still plays and the delay grows.
        self.empty_pops += 1;
        if self.empty_pops > self.cfg.idle_after {
            self.play_ts = None;
            self.empty_pops = 0;
            return Playout::Silence;
        }
        self.stats.concealed += 1;
        Playout::Conceal { fec: None }
    }

    /// Drops one frame if the buffer holds well over the target delay.
    fn shed_excess_delay(&mut self, play: u64) -> u64 {
        let Some((&newest, _)) = self.packets.last_key_value() else {
            return play;
        };
        let frame = self.cfg.frame_ticks as u64;
        let held_ms = self.ticks_to_ms(newest.saturating_sub(play) + frame);
        if held_ms > self.target_ms + 2.0 * self.frame_ms() && self.packets.contains_key(&play) {
            self.packets.remove(&play);
            self.stats.dropped += 1;
            self.play_ts = Some(play + frame);
            return play + frame;
        }
        play
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
