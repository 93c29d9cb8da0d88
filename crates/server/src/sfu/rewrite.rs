//! Per-subscriber RTP rewriting. Each subscriber sees one continuous stream per track with the
//! SFU's own SSRC, whatever the publisher does: when a publisher restarts its track (new SSRC,
//! new random sequence numbers and timestamps), the sequence numbers and timestamps go on from
//! where they were instead of jumping, so the subscriber's jitter buffer and decoder do not
//! take the jump for massive loss. Pure: tested without sockets.

use between_media::rtp::RtpPacket;

pub struct Rewriter {
    ssrc: u32,
    /// The publisher's SSRC the offsets were computed for.
    source: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_out: Option<(u16, u32)>,
    /// Timestamp step assumed between the last packet of an old source and the first of a new
    /// one (one frame).
    gap_ticks: u32,
}

impl Rewriter {
    pub fn new(ssrc: u32, gap_ticks: u32) -> Self {
        Self {
            ssrc,
            source: None,
            seq_offset: 0,
            ts_offset: 0,
            last_out: None,
            gap_ticks,
        }
    }

    pub fn rewrite(&mut self, packet: &mut RtpPacket) {
        let h = &mut packet.header;
        if self.source != Some(h.ssrc) {
            // A new source: line its numbers up to follow what this subscriber last saw.
            match self.last_out {
                Some((seq, ts)) => {
                    self.seq_offset = seq.wrapping_add(1).wrapping_sub(h.sequence_number);
                    self.ts_offset = ts.wrapping_add(self.gap_ticks).wrapping_sub(h.timestamp);
                }
                None => {
                    self.seq_offset = 0;
                    self.ts_offset = 0;
                }
            }
            self.source = Some(h.ssrc);
        }
        h.ssrc = self.ssrc;
        h.sequence_number = h.sequence_number.wrapping_add(self.seq_offset);
        h.timestamp = h.timestamp.wrapping_add(self.ts_offset);
        let newer = match self.last_out {
            None => true,
            Some((seq, _)) => (h.sequence_number.wrapping_sub(seq) as i16) > 0,
        };
        if newer {
            self.last_out = Some((h.sequence_number, h.timestamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, seq: u16, ts: u32) -> RtpPacket {
        let mut p = RtpPacket::default();
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p
    }

    fn out(r: &mut Rewriter, ssrc: u32, seq: u16, ts: u32) -> (u32, u16, u32) {
        let mut p = packet(ssrc, seq, ts);
        r.rewrite(&mut p);
        (p.header.ssrc, p.header.sequence_number, p.header.timestamp)
    }

    #[test]
    fn a_steady_source_keeps_its_numbers_under_our_ssrc() {
        let mut r = Rewriter::new(777, 960);
        assert_eq!(out(&mut r, 1, 100, 5000), (777, 100, 5000));
        assert_eq!(out(&mut r, 1, 101, 5960), (777, 101, 5960));
        assert_eq!(
            out(&mut r, 1, 103, 7880),
            (777, 103, 7880),
            "loss stays visible"
        );
    }

    #[test]
    fn a_restarted_source_continues_the_sequence() {
        let mut r = Rewriter::new(777, 960);
        out(&mut r, 1, 65_534, 10_000);
        out(&mut r, 1, 65_535, 10_960);
        assert_eq!(
            out(&mut r, 2, 9, 42),
            (777, 0, 11_920),
            "wraps and continues"
        );
        assert_eq!(out(&mut r, 2, 10, 1002), (777, 1, 12_880));
    }

    #[test]
    fn reordered_packets_do_not_move_the_anchor_back() {
        let mut r = Rewriter::new(5, 960);
        out(&mut r, 1, 10, 0);
        out(&mut r, 1, 12, 1920);
        assert_eq!(out(&mut r, 1, 11, 960), (5, 11, 960));
        assert_eq!(
            out(&mut r, 2, 500, 0),
            (5, 13, 2880),
            "continues after 12, not 11"
        );
    }
}
