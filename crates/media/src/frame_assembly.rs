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
                Ok(last) => {
                    if let Some(frame) = self.release(next, last) {
                        return Some(frame);
                    }
                }
                Err(missing) => {
                    // A packet is missing only once a later one is here (until then the
                    // picture is still arriving, which takes a while for a big keyframe on a
                    // slow link); the wait for it counts from that later packet's arrival.
                    let seen_after = self.pending.range(missing + 1..).next();
                    let waited = seen_after.map(|(_, p)| now.saturating_duration_since(p.arrived));
                    if waited.is_none_or(|w| w <= self.max_wait) {
                        return None;
                    }
                    self.give_up_gap(missing);
                }
            }
        }
    }

    /// Whether a loss was noticed that no released picture has reported yet: the receiver
    /// can ask for a keyframe now instead of at the next whole picture.
    pub fn has_unreported_loss(&self) -> bool {
        self.lost > 0
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

    /// Out of step: the first pending packet that begins a picture: its predecessor ended
    /// one, or it begins an access unit by its own look (a parameter set, a delimiter, a
    /// picture's first slice). Packets before it belong to pictures that cannot be completed
    /// and are dropped.
    fn find_start(&mut self) -> Option<u64> {
        let start = self.pending.iter().find_map(|(seq, p)| {
            let after_an_end = self
                .pending
                .get(&(seq - 1))
                .is_some_and(|before| before.marker || before.timestamp != p.timestamp);
            (after_an_end || begins_access_unit(&p.payload)).then_some(*seq)
        })?;
        let dropped = self.pending.range(..start).count();
        if dropped > 0 {
            self.lost = self.lost.saturating_add(1);
        }
        self.pending = self.pending.split_off(&start);
        self.floor = start;
        self.next = Some(start);
        Some(start)
    }

    /// Looks at the packets from `first`: the sequence number of the picture's last packet
    /// once every packet of it is here, else the first one missing.
    fn whole_picture(&self, first: u64) -> Result<u64, u64> {
        let head = self.pending.get(&first).ok_or(first)?;
        let mut seq = first;
        loop {
            let p = self.pending.get(&seq).ok_or(seq)?;
            if p.timestamp != head.timestamp {
                // The marker was never set: a new timestamp ends the picture as well.
                return Ok(seq - 1);
            }
            if p.marker {
                return Ok(seq);
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

    /// Packet `missing` never came: the picture it belonged to is lost. What came before it
    /// cannot be completed; what came after may be the rest of that picture, so reassembly
    /// starts again at the next packet that begins one.
    fn give_up_gap(&mut self, missing: u64) {
        self.pending = self.pending.split_off(&missing);
        let first_present = self.pending.keys().next().copied().unwrap_or(missing + 1);
        let gap = first_present.saturating_sub(missing).max(1);
        self.lost = self
            .lost
            .saturating_add(u16::try_from(gap).unwrap_or(u16::MAX));
        self.floor = first_present;
        self.next = None;
    }
}

/// Whether an RTP payload (RFC 6184) starts an access unit: an SPS, an access unit delimiter
/// or SEI (what encoders put first), or the first slice of a picture (`first_mb_in_slice` 0,
/// coded as the single bit 1), whole, as the first unit of a STAP-A, or as a FU-A's start.
fn begins_access_unit(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        6 | 7 | 9 => true,
        1 | 5 => payload.get(1).is_some_and(|b| b & 0x80 != 0),
        // STAP-A: one header byte, then each unit's 16-bit size and the unit.
        24 => payload.get(3..).is_some_and(begins_access_unit),
        28 => match (payload.get(1), payload.get(2)) {
            (Some(fu), Some(slice)) => {
                fu & 0x80 != 0 && matches!(fu & 0x1f, 1 | 5) && slice & 0x80 != 0
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
#[path = "frame_assembly_tests.rs"]
mod tests;
