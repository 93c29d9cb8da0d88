use super::*;
use rtc::rtp::header::Header;

const ANNEX_B: [u8; 4] = [0, 0, 0, 1];

/// Packet `index` of picture `picture`: one whole NAL unit (non-IDR slice) naming both.
fn packet(seq: u16, picture: u8, index: u8, last: bool) -> RtpPacket {
    RtpPacket {
        header: Header {
            sequence_number: seq,
            timestamp: u32::from(picture) * 3000,
            marker: last,
            ..Header::default()
        },
        payload: Bytes::from(vec![0x41, picture, index]),
    }
}

/// The packets of pictures `0..pictures`, `per` packets each, from sequence number `first`.
fn stream(first: u16, pictures: u8, per: u8) -> Vec<RtpPacket> {
    let mut out = Vec::new();
    let mut seq = first;
    for picture in 0..pictures {
        for index in 0..per {
            out.push(packet(seq, picture, index, index + 1 == per));
            seq = seq.wrapping_add(1);
        }
    }
    out
}

/// Which picture an access unit is, after checking it holds all `per` of its NAL units.
fn picture_of(frame: &AssembledFrame, per: u8) -> u8 {
    let picture = frame.data[5];
    let expected: Vec<u8> = (0..per)
        .flat_map(|i| ANNEX_B.into_iter().chain([0x41, picture, i]))
        .collect();
    assert_eq!(
        frame.data, expected,
        "picture {picture} reassembled wrongly"
    );
    assert_eq!(frame.rtp_timestamp, u32::from(picture) * 3000);
    picture
}

fn pop_all(a: &mut H264Assembler, now: Instant, per: u8) -> Vec<(u8, u16)> {
    std::iter::from_fn(|| a.pop(now))
        .map(|f| (picture_of(&f, per), f.lost_before))
        .collect()
}

#[test]
fn a_picture_comes_out_with_its_last_packet_not_the_next_pictures_first() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(100, 2, 3);
    for p in packets[..3].iter().cloned() {
        assert!(a.pop(t0).is_none());
        a.push(p, t0);
    }
    assert_eq!(pop_all(&mut a, t0, 3), vec![(0, 0)]);
    for p in packets[3..].iter().cloned() {
        a.push(p, t0);
    }
    assert_eq!(pop_all(&mut a, t0, 3), vec![(1, 0)]);
}

#[test]
fn reordered_packets_are_put_back_in_order() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(7, 2, 4);
    for i in [2, 0, 3, 6, 1, 5, 4, 7] {
        a.push(packets[i].clone(), t0);
    }
    assert_eq!(pop_all(&mut a, t0, 4), vec![(0, 0), (1, 0)]);
}

#[test]
fn sequence_numbers_wrap_around() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    for p in stream(65533, 3, 2) {
        a.push(p, t0);
    }
    assert_eq!(pop_all(&mut a, t0, 2), vec![(0, 0), (1, 0), (2, 0)]);
}

#[test]
fn a_retransmission_within_the_wait_completes_the_picture() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(0, 2, 3);
    for (i, p) in packets.iter().enumerate() {
        if i != 1 {
            a.push(p.clone(), t0);
        }
    }
    let later = t0 + Duration::from_millis(50);
    assert!(a.pop(later).is_none(), "a picture with a hole came out");
    a.push(packets[1].clone(), later);
    assert_eq!(pop_all(&mut a, later, 3), vec![(0, 0), (1, 0)]);
}

#[test]
fn a_lost_packet_costs_its_picture_and_the_next_one_reports_the_loss() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(0, 3, 3);
    for (i, p) in packets.iter().enumerate() {
        if i != 1 {
            a.push(p.clone(), t0);
        }
    }
    assert!(a.pop(t0 + DEFAULT_MAX_WAIT / 2).is_none());
    let late = t0 + DEFAULT_MAX_WAIT + Duration::from_millis(1);
    let got = pop_all(&mut a, late, 3);
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(got[0].1 > 0 && got[1].1 == 0, "{got:?}");
    // The retransmission that comes after all is ignored.
    a.push(packets[1].clone(), late);
    assert!(a.pop(late).is_none());
}

#[test]
fn a_lost_last_packet_waits_for_the_next_boundary() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(0, 3, 3);
    for (i, p) in packets.iter().enumerate() {
        if i != 2 {
            a.push(p.clone(), t0);
        }
    }
    let late = t0 + DEFAULT_MAX_WAIT + Duration::from_millis(1);
    // Picture 1's first packet follows the hole, so nothing says it starts a picture: the
    // assembler starts again after picture 1's end.
    let got = pop_all(&mut a, late, 3);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 2);
    assert!(got[0].1 > 0);
}

#[test]
fn joining_mid_picture_starts_at_the_next_picture() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let mut packets = stream(0, 3, 3);
    // The first packet seen is the middle fragment of a FU-A: it begins no NAL unit.
    packets[1].payload = Bytes::from(vec![0x5c, 0x01, 0xaa]);
    for p in packets.into_iter().skip(1) {
        a.push(p, t0);
    }
    let got = pop_all(&mut a, t0, 3);
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(got[0].1 > 0, "the dropped start was not reported");
}

#[test]
fn duplicates_change_nothing() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(40, 2, 2);
    for p in packets.iter().chain(packets.iter()) {
        a.push(p.clone(), t0);
    }
    assert_eq!(pop_all(&mut a, t0, 2), vec![(0, 0), (1, 0)]);
    a.push(packets[3].clone(), t0);
    assert!(a.pop(t0).is_none());
}

#[test]
fn pictures_without_a_marker_end_at_the_next_timestamp() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    for mut p in stream(0, 3, 2) {
        p.header.marker = false;
        a.push(p, t0);
    }
    assert_eq!(pop_all(&mut a, t0, 2), vec![(0, 0), (1, 0)]);
}

#[test]
fn a_stream_that_never_ends_a_picture_is_held_within_bounds() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    for seq in 0..(MAX_PENDING as u16 + 500) {
        a.push(packet(seq, 0, (seq % 200) as u8, false), t0);
        assert!(a.pop(t0).is_none());
    }
    assert!(a.pending.len() <= MAX_PENDING);
}
