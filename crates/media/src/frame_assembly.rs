//! H.264 access units from RTP packets, released the moment a picture is whole.
//!
//! A picture is whole when every packet from its first to the one carrying the marker bit
//! (RFC 6184: the last packet of an access unit) has arrived. The webrtc crate's sample
//! builder, used before, also waited for the first packet of the *next* picture, which held
//! every picture back by a frame interval: 33 ms for a camera, and up to 200 ms for a screen
//! share that sends a picture only when the screen changes.
//!
//! A missing packet is waited for (NACK may bring it back) for `max_wait`; then the pictures it
//! broke are dropped, reassembly starts again at the next picture boundary, and the next
//! picture reports the loss so the receiver asks for a keyframe. Time is an argument: no clock
//! is read here.

use crate::rtp::RtpPacket;
use bytes::Bytes;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a gap is waited for before the pictures around it are given up.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(200);
/// Packets held at most (a 1080p keyframe is a few hundred): beyond this the oldest gap is
/// given up at once, so a stream that lost its way cannot grow the buffer without bound.
const MAX_PENDING: usize = 4096;

/// One reassembled H.264 access unit.
#[derive(Debug, Clone)]
pub struct AssembledFrame {
    /// Annex-B bitstream.
    pub data: Vec<u8>,
    pub rtp_timestamp: u32,
    /// Packets lost (or pictures dropped as broken) before this one: the decoder's reference
    /// pictures may be damaged, ask for a keyframe.
    pub lost_before: u16,
}

struct Pending {
    timestamp: u32,
    marker: bool,
    payload: Bytes,
    arrived: Instant,
}

/// Reassembles the pictures of one RTP stream (one SSRC).
pub struct H264Assembler {
    /// Packets not released yet, by sequence number extended to 64 bits.
    pending: BTreeMap<u64, Pending>,
    /// Where the next picture starts while in step; `None` at the start and after a gap was
    /// given up, until a picture boundary is seen.
    next: Option<u64>,
    /// Packets below this are too late (released, or given up) and are ignored.
    floor: u64,
    /// The highest extended sequence number seen, to extend the next one.
    highest: Option<u64>,
    ever_in_step: bool,
    lost: u16,
    max_wait: Duration,
}

impl Default for H264Assembler {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_WAIT)
    }
}

impl H264Assembler {
    pub fn new(max_wait: Duration) -> Self {
        Self {
            pending: BTreeMap::new(),
            next: None,
            floor: 0,
            highest: None,
            ever_in_step: false,
            lost: 0,
            max_wait,
        }
    }

    pub fn push(&mut self, packet: RtpPacket, now: Instant) {
        let seq = self.extend(packet.header.sequence_number);
        if seq < self.floor || packet.payload.is_empty() {
            // A duplicate, a retransmission that came too late, or padding.
            return;
        }
        self.pending.entry(seq).or_insert(Pending {
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: packet.payload,
            arrived: now,
        });
        while self.pending.len() > MAX_PENDING {
            // Lost its way (no boundary for thousands of packets): start over from here on.
            self.pending.pop_first();
            self.next = None;
            self.lost = self.lost.saturating_add(1);
        }
    }

    /// The next whole picture, if any.
    pub fn pop(&mut self, now: Instant) -> Option<AssembledFrame> {
        loop {
            let next = match self.next {
                Some(next) => next,
                None => self.find_start()?,
            };
            match self.whole_picture(next) {
                Some(last) => {
                    if let Some(frame) = self.release(next, last) {
                        return Some(frame);
                    }
                }
                None => {
                    let oldest = self.pending.values().map(|p| p.arrived).min();
                    if oldest.is_none_or(|t| now.saturating_duration_since(t) <= self.max_wait) {
                        return None;
                    }
                    self.give_up_gap(next);
                }
            }
        }
    }

    /// Extends a 16-bit sequence number next to the highest one seen, across wrap-arounds.
    fn extend(&mut self, seq: u16) -> u64 {
        let extended = match self.highest {
            // Far from zero, so a stream that starts by going back a little stays positive.
            None => u64::from(seq) + (1 << 32),
            Some(high) => {
                let delta = i64::from(seq.wrapping_sub(high as u16) as i16);
                high.saturating_add_signed(delta)
            }
        };
        if self.highest.is_none_or(|h| extended > h) {
            self.highest = Some(extended);
        }
        extended
    }

    /// Out of step: the first pending packet that begins a picture (its predecessor ended
    /// one; or, before the first picture, any packet that begins a NAL unit). Packets before
    /// it belong to pictures that cannot be completed and are dropped.
    fn find_start(&mut self) -> Option<u64> {
        let first_ever = (!self.ever_in_step)
            .then(|| self.pending.iter().next())
            .flatten()
            .filter(|(_, p)| H264Packet::default().is_partition_head(&p.payload))
            .map(|(seq, _)| *seq);
        let start = first_ever.or_else(|| {
            self.pending.iter().find_map(|(seq, p)| {
                let before = self.pending.get(&(seq - 1))?;
                (before.marker || before.timestamp != p.timestamp).then_some(*seq)
            })
        })?;
        let dropped = self.pending.range(..start).count();
        if dropped > 0 {
            self.lost = self.lost.saturating_add(1);
        }
        self.pending = self.pending.split_off(&start);
        self.floor = start;
        self.next = Some(start);
        self.ever_in_step = true;
        Some(start)
    }

    /// Looks at the packets from `first`: the sequence number of the picture's last packet
    /// once every packet of it is here.
    fn whole_picture(&self, first: u64) -> Option<u64> {
        let head = self.pending.get(&first)?;
        let mut seq = first;
        loop {
            let p = self.pending.get(&seq)?;
            if p.timestamp != head.timestamp {
                // The marker was never set: a new timestamp ends the picture as well.
                return Some(seq - 1);
            }
            if p.marker {
                return Some(seq);
            }
            seq += 1;
        }
    }

    /// Takes packets `first..=last` out and depacketizes them into one access unit.
    fn release(&mut self, first: u64, last: u64) -> Option<AssembledFrame> {
        let mut depacketizer = H264Packet::default();
        let mut data = Vec::new();
        let mut timestamp = 0;
        let mut broken = false;
        for seq in first..=last {
            let Some(p) = self.pending.remove(&seq) else {
                broken = true;
                continue;
            };
            timestamp = p.timestamp;
            match depacketizer.depacketize(&p.payload) {
                Ok(nal) => data.extend_from_slice(&nal),
                Err(_) => broken = true,
            }
        }
        self.next = Some(last + 1);
        self.floor = last + 1;
        if broken || data.is_empty() {
            // A malformed picture is as good as a lost one to the decoder.
            self.lost = self.lost.saturating_add(1);
            return None;
        }
        Some(AssembledFrame {
            data,
            rtp_timestamp: timestamp,
            lost_before: std::mem::take(&mut self.lost),
        })
    }

    /// The packet at `next` never came: the picture it belonged to is lost, and the packets
    /// after the gap may be the rest of it, so reassembly waits for the next boundary.
    fn give_up_gap(&mut self, next: u64) {
        let first_present = self.pending.keys().next().copied().unwrap_or(next + 1);
        let missing = first_present.saturating_sub(next).max(1);
        self.lost = self
            .lost
            .saturating_add(u16::try_from(missing).unwrap_or(u16::MAX));
        self.floor = first_present;
        self.next = None;
    }
}

#[cfg(test)]
#[path = "frame_assembly_tests.rs"]
mod tests;
