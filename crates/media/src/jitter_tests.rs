use super::*;

const FRAME: u32 = 960;

fn payload(n: u32) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn number(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[0], p[1], p[2], p[3]])
}

/// Feeds packet n at `arrivals[n]` ms (None = lost) and pops every 20 ms from t=0 until
/// `until_ms`, returning what each pop gave and the delay of each played frame.
fn run(arrivals: &[Option<f64>], until_ms: f64) -> (JitterBuffer, Vec<Playout>, Vec<f64>) {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut order: Vec<(f64, u32)> = arrivals
        .iter()
        .enumerate()
        .filter_map(|(n, a)| a.map(|t| (t, n as u32)))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut next = 0;
    let mut out = Vec::new();
    let mut delays = Vec::new();
    let mut t = 0.0;
    while t <= until_ms {
        while next < order.len() && order[next].0 <= t {
            let (at, n) = order[next];
            jb.push(
                n as u16,
                n.wrapping_mul(FRAME).wrapping_add(7),
                payload(n),
                at,
            );
            next += 1;
        }
        let p = jb.pop(t);
        if let Playout::Frame(ref bytes) = p {
            // Packet n is captured at n * 20 ms.
            delays.push(t - number(bytes) as f64 * 20.0);
        }
        out.push(p);
        t += 20.0;
    }
    (jb, out, delays)
}

fn played(out: &[Playout]) -> Vec<u32> {
    out.iter()
        .filter_map(|p| match p {
            Playout::Frame(b) => Some(number(b)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_steady_stream_plays_in_order_at_the_minimum_delay() {
    let arrivals: Vec<Option<f64>> = (0..100).map(|n| Some(n as f64 * 20.0 + 5.0)).collect();
    let (jb, out, delays) = run(&arrivals, 2000.0);
    assert_eq!(played(&out), (0..100).collect::<Vec<_>>());
    assert_eq!(jb.target_delay_ms(), 20.0);
    let max = delays.iter().copied().fold(0.0, f64::max);
    assert!(max <= 45.0, "delay {max} ms on a clean network");
    assert_eq!(jb.stats().concealed, 0);
}

#[test]
fn reordered_packets_play_in_order() {
    let mut arrivals: Vec<Option<f64>> = (0..50).map(|n| Some(n as f64 * 20.0 + 5.0)).collect();
    for n in (10..40).step_by(5) {
        arrivals.swap(n, n + 1);
        arrivals[n] = arrivals[n].map(|t| t + 20.0); // the later one overtakes
    }
    let (_, out, _) = run(&arrivals, 1200.0);
    let p = played(&out);
    assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
    assert!(p.len() >= 48, "at most the first straggler is lost: {p:?}");
}

#[test]
fn a_lost_packet_is_concealed_with_the_next_one_for_fec() {
    let mut arrivals: Vec<Option<f64>> = (0..30).map(|n| Some(n as f64 * 20.0 + 5.0)).collect();
    arrivals[10] = None;
    let (jb, out, _) = run(&arrivals, 620.0);
    // Until packet 11 arrives, 10 may just be late: the buffer waits one frame, then gives up
    // on 10 and hands over 11 for its FEC.
    let i = out
        .iter()
        .position(|p| {
            *p == Playout::Conceal {
                fec: Some(payload(11)),
            }
        })
        .expect("concealment with FEC");
    assert_eq!(out[i + 1], Playout::Frame(payload(11)));
    let p = played(&out);
    assert!(!p.contains(&10));
    assert_eq!(p, (0..30).filter(|n| *n != 10).collect::<Vec<_>>());
    assert!(jb.stats().concealed <= 2, "{:?}", jb.stats());
}

#[test]
fn the_target_follows_jitter_and_stays_bounded() {
    // Deterministic pseudo-random delays of 0..60 ms.
    let mut x = 12345u64;
    let mut rand = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as f64 / (1u64 << 31) as f64
    };
    let arrivals: Vec<Option<f64>> = (0..300)
        .map(|n| Some(n as f64 * 20.0 + rand() * 60.0))
        .collect();
    let (jb, out, _) = run(&arrivals, 6200.0);
    let target = jb.target_delay_ms();
    assert!((60.0..=90.0).contains(&target), "target {target}");
    let stats = jb.stats();
    assert!(stats.concealed + stats.late <= 15, "{stats:?}");
    assert!(played(&out).len() >= 280);

    let wild: Vec<Option<f64>> = (0..300)
        .map(|n| Some(n as f64 * 20.0 + rand() * 2000.0))
        .collect();
    let (jb, _, _) = run(&wild, 8000.0);
    assert_eq!(jb.target_delay_ms(), 200.0, "bounded by max_delay_ms");
}

#[test]
fn after_a_stall_the_burst_plays_and_the_delay_comes_back_down() {
    // Packets 20..30 are held up 200 ms, then arrive at once.
    let arrivals: Vec<Option<f64>> = (0..150)
        .map(|n| {
            let t = n as f64 * 20.0 + 5.0;
            Some(if (20..30).contains(&n) { 605.0 } else { t })
        })
        .collect();
    let (jb, out, delays) = run(&arrivals, 3100.0);
    let p = played(&out);
    assert!(p.windows(2).all(|w| w[0] < w[1]));
    assert!(
        p.contains(&25),
        "the burst plays rather than being discarded as late"
    );
    let end = delays[delays.len() - 10..]
        .iter()
        .copied()
        .fold(0.0, f64::max);
    assert!(
        end < 130.0,
        "delay came back down: {end} ms; target {}",
        jb.target_delay_ms()
    );
    assert!(jb.stats().dropped > 0);
}

#[test]
fn a_packet_after_its_time_is_dropped_as_late() {
    let mut arrivals: Vec<Option<f64>> = (0..30).map(|n| Some(n as f64 * 20.0 + 5.0)).collect();
    arrivals[10] = Some(500.0);
    let (jb, out, _) = run(&arrivals, 700.0);
    assert!(!played(&out).contains(&10));
    assert_eq!(jb.stats().late, 1);
}

#[test]
fn a_quiet_sender_means_silence_then_a_fresh_start() {
    let arrivals: Vec<Option<f64>> = (0..60)
        .map(|n| (!(20..40).contains(&n)).then_some(n as f64 * 20.0 + 5.0))
        .collect();
    let (_, out, _) = run(&arrivals, 1300.0);
    let first_silence_after_start = out
        .iter()
        .skip_while(|p| !matches!(p, Playout::Frame(_)))
        .position(|p| *p == Playout::Silence)
        .expect("goes silent");
    assert!(first_silence_after_start > 15);
    assert!(
        played(&out).contains(&45),
        "plays again when the sender is back"
    );
}

#[test]
fn timestamps_wrap_around() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let start = u32::MAX - 2 * FRAME;
    let mut got = Vec::new();
    for n in 0..10u32 {
        let t = n as f64 * 20.0;
        jb.push(n as u16, start.wrapping_add(n * FRAME), payload(n), t);
        if let Playout::Frame(p) = jb.pop(t + 20.0) {
            got.push(number(&p));
        }
    }
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn duplicates_are_ignored() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    jb.push(0, 0, payload(0), 0.0);
    jb.push(0, 0, payload(0), 1.0);
    assert_eq!(jb.stats().duplicates, 1);
}

#[test]
fn under_loss_the_next_packet_is_there_when_a_lost_one_is_due() {
    // Every 10th packet lost: after the first loss the buffer holds two more frames, so later
    // losses find their successor (and its FEC) already buffered.
    let arrivals: Vec<Option<f64>> = (0..200)
        .map(|n| (n % 10 != 5).then_some(n as f64 * 20.0 + 5.0))
        .collect();
    let (jb, out, _) = run(&arrivals, 4100.0);
    let with_fec = out
        .iter()
        .filter(|p| matches!(p, Playout::Conceal { fec: Some(_) }))
        .count();
    let last_frame = out
        .iter()
        .rposition(|p| matches!(p, Playout::Frame(_)))
        .expect("frames");
    let without = out[..last_frame]
        .iter()
        .filter(|p| matches!(p, Playout::Conceal { fec: None }))
        .count();
    assert!(with_fec >= 18, "{with_fec} FEC recoveries of 20 losses");
    assert!(without <= 3, "{without} blind concealments");
    assert_eq!(jb.target_delay_ms(), 60.0);
}

#[test]
fn a_dtx_pause_is_not_taken_for_loss() {
    // Sequence numbers run on while the timestamps jump (no packets during silence).
    let mut jb = JitterBuffer::new(JitterConfig::default());
    for n in 0..10u32 {
        jb.push(n as u16, n * FRAME, payload(n), n as f64 * 20.0);
        jb.pop(n as f64 * 20.0 + 20.0);
    }
    for n in 10..20u32 {
        let ts = (n + 20) * FRAME; // 400 ms later
        let at = (n + 20) as f64 * 20.0;
        jb.push(n as u16, ts, payload(n), at);
        jb.pop(at + 20.0);
    }
    assert_eq!(jb.target_delay_ms(), 20.0, "no loss boost for DTX");
}

#[test]
fn a_talk_spurt_after_dtx_plays_as_soon_as_it_is_due() {
    // Frames 0-9 play; the sender then says nothing for three frames (DTX: no packets, the
    // sequence numbers run on) and the next packet, frame 13's, arrives on time.
    let mut jb = JitterBuffer::new(JitterConfig::default());
    for n in 0..10u32 {
        jb.push(n as u16, n * FRAME, payload(n), n as f64 * 20.0 + 5.0);
        assert!(matches!(jb.pop(n as f64 * 20.0 + 20.0), Playout::Frame(_)));
    }
    for n in 10..13u32 {
        assert!(!matches!(jb.pop(n as f64 * 20.0 + 20.0), Playout::Frame(_)));
    }
    jb.push(10, 13 * FRAME, payload(13), 13.0 * 20.0 + 5.0);
    // The next pop plays it: before, the three quiet frames were concealed first (60 ms).
    assert_eq!(jb.pop(14.0 * 20.0), Playout::Frame(payload(13)));
    assert_eq!(jb.target_delay_ms(), 20.0, "no loss boost for DTX");
}
