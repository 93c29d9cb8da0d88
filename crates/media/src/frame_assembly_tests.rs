use super::*;
use rtc::rtp::header::Header;

const ANNEX_B: [u8; 4] = [0, 0, 0, 1];

/// Packet `index` of picture `picture`: one whole NAL unit, a non-IDR slice naming both (the
/// first one the picture's first slice, the rest later slices).
fn packet(seq: u16, picture: u8, index: u8, last: bool) -> RtpPacket {
    RtpPacket {
        header: Header {
            sequence_number: seq,
            timestamp: u32::from(picture) * 3000,
            marker: last,
            ..Header::default()
        },
        payload: Bytes::from(vec![0x41, first_mb(index), picture, index]),
    }
}

/// The slice header's first byte: `first_mb_in_slice` 0 (bit 1) only for a first slice.
fn first_mb(index: u8) -> u8 {
    if index == 0 { 0x80 } else { 0x40 }
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
    let picture = frame.data[6];
    let expected: Vec<u8> = (0..per)
        .flat_map(|i| ANNEX_B.into_iter().chain([0x41, first_mb(i), picture, i]))
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
fn a_lost_last_packet_costs_only_its_own_picture() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(0, 3, 3);
    for (i, p) in packets.iter().enumerate() {
        if i != 2 {
            a.push(p.clone(), t0);
        }
    }
    let late = t0 + DEFAULT_MAX_WAIT + Duration::from_millis(1);
    // Picture 1 follows the hole, but its first packet says it begins a picture.
    let got = pop_all(&mut a, late, 3);
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(got[0].1 > 0, "{got:?}");
}

#[test]
fn a_picture_slower_to_arrive_than_the_wait_is_not_a_loss() {
    // A big keyframe on a slow link: its packets trickle in over more than `max_wait`.
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(0, 1, 8);
    for (i, p) in packets.into_iter().enumerate() {
        let at = t0 + DEFAULT_MAX_WAIT * i as u32 / 2;
        assert!(a.pop(at).is_none());
        a.push(p, at);
    }
    let end = t0 + DEFAULT_MAX_WAIT * 4;
    assert_eq!(pop_all(&mut a, end, 8), vec![(0, 0)]);
}

#[test]
fn a_loss_is_known_before_the_next_whole_picture() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let packets = stream(0, 2, 3);
    for p in [&packets[0], &packets[2], &packets[3]] {
        a.push(p.clone(), t0);
    }
    let late = t0 + DEFAULT_MAX_WAIT + Duration::from_millis(1);
    assert!(a.pop(late).is_none(), "picture 1 is not whole yet");
    assert!(a.has_unreported_loss());
}

#[test]
fn joining_mid_picture_starts_at_the_next_picture() {
    let t0 = Instant::now();
    let mut a = H264Assembler::default();
    let mut packets = stream(0, 3, 3);
    // The first packet seen is the middle fragment of a FU-A: it begins no NAL unit.
    packets[1].payload = Bytes::from(vec![0x5c, 0x01, 0x80, 0xaa]);
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
        a.push(packet(seq, 0, (seq % 200) as u8 + 1, false), t0);
        assert!(a.pop(t0).is_none());
    }
    assert!(a.pending.len() <= MAX_PENDING);
}
