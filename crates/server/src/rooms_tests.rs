use super::*;
use between_protocol::Resume;
use serde_json::{Value, json};

struct Harness {
    reg: Registry,
    next: u64,
    t0: Instant,
}

impl Harness {
    fn new() -> Self {
        Self {
            reg: Registry::new(RegistryLimits {
                resume_grace: Duration::from_secs(4),
                replay_window: 3,
            }),
            next: 0,
            t0: Instant::now(),
        }
    }

    fn join(&mut self, tenant: TenantId, call: &str, name: &str) -> (String, ConnId, Vec<Output>) {
        self.next += 1;
        let conn = self.next;
        let (joined, out) = self.reg.join(JoinRequest {
            conn,
            tenant,
            call_id: call,
            extra_data: name.to_string(),
            resume: None,
            fresh_peer_id: format!("p{conn}"),
            fresh_token: format!("t{conn}"),
        });
        (joined.peer_id, conn, out)
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }
}

fn sent_to(out: &[Output], conn: ConnId) -> Vec<&ServerMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } if to.contains(&conn) => Some(msg),
            _ => None,
        })
        .collect()
}

#[test]
fn newcomer_gets_the_member_list_and_others_get_peer_joined() {
    let mut h = Harness::new();
    let (a, ca, out) = h.join(0, "call", "A");
    assert!(
        matches!(sent_to(&out, ca)[..], [ServerMessage::Joined { peers, .. }] if peers.is_empty())
    );
    let (b, cb, out) = h.join(0, "call", "B");
    match sent_to(&out, cb)[..] {
        [
            ServerMessage::Joined {
                peer_id,
                peers,
                resumed: false,
                ..
            },
        ] => {
            assert_eq!(*peer_id, b);
            assert_eq!(
                peers,
                &vec![PeerInfo {
                    id: a.clone(),
                    extra_data: "A".into()
                }]
            );
        }
        ref other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        sent_to(&out, ca),
        vec![&ServerMessage::PeerJoined {
            peer: PeerInfo {
                id: b,
                extra_data: "B".into()
            }
        }]
    );
    assert_eq!((h.reg.room_count(), h.reg.peer_count()), (1, 2));
}

#[test]
fn the_sfu_hears_of_each_join_with_a_room_key_per_tenant_and_call() {
    let mut h = Harness::new();
    let joined_room = |out: &[Output]| -> Vec<(String, String)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Joined { peer_id, room } => Some((peer_id.clone(), room.clone())),
                _ => None,
            })
            .collect()
    };
    let (a, _, out) = h.join(0, "same", "A");
    assert_eq!(joined_room(&out), vec![(a, "0/same".to_string())]);
    let (b, _, out) = h.join(1, "same", "B");
    assert_eq!(joined_room(&out), vec![(b, "1/same".to_string())]);
    let (c, _, out) = h.join(0, "other", "C");
    assert_eq!(joined_room(&out), vec![(c, "0/other".to_string())]);
}

#[test]
fn tenants_and_calls_are_isolated() {
    let mut h = Harness::new();
    let (_, c1, _) = h.join(0, "same", "A");
    let (_, _, out) = h.join(1, "same", "B");
    assert!(sent_to(&out, c1).is_empty(), "another tenant's join leaked");
    let (_, _, out) = h.join(0, "other", "C");
    assert!(sent_to(&out, c1).is_empty(), "another call's join leaked");
    assert_eq!(h.reg.room_count(), 3);
}

#[test]
fn data_goes_to_everyone_else_or_to_one() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let (b, cb, _) = h.join(0, "call", "B");
    let (_, cc, _) = h.join(0, "call", "C");
    let out = h.reg.data(&a, json!(1), None, None).expect("broadcast");
    assert!(sent_to(&out, ca).is_empty());
    assert_eq!(sent_to(&out, cb).len(), 1);
    assert_eq!(sent_to(&out, cc).len(), 1);
    let out = h.reg.data(&a, json!(2), Some(&b), None).expect("unicast");
    assert_eq!(sent_to(&out, cb).len(), 1);
    assert!(sent_to(&out, cc).is_empty());
}

#[test]
fn data_to_unknown_self_or_foreign_peer_is_rejected() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(0, "call", "A");
    let (x, _, _) = h.join(0, "elsewhere", "X");
    for to in ["nobody", a.as_str(), x.as_str()] {
        let err = h.reg.data(&a, json!(1), Some(to), None).expect_err(to);
        assert_eq!(err.code, ErrorCode::PeerNotFound);
    }
    assert_eq!(
        h.reg
            .data("ghost", json!(1), None, None)
            .expect_err("ghost")
            .code,
        ErrorCode::NotInCall
    );
}

#[test]
fn leave_tells_the_others_and_frees_empty_rooms() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(0, "call", "A");
    let (b, cb, _) = h.join(0, "call", "B");
    let out = h.reg.leave(&a);
    assert_eq!(
        sent_to(&out, cb),
        vec![&ServerMessage::PeerLeft { peer_id: a }]
    );
    assert_eq!(
        h.reg.leave(&b),
        vec![Output::Removed { peer_id: b.clone() }],
        "no one left to tell"
    );
    assert_eq!((h.reg.room_count(), h.reg.peer_count()), (0, 0));
}

#[test]
fn detached_peer_leaves_only_after_the_grace() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let (_, cb, _) = h.join(0, "call", "B");
    assert!(h.reg.detach(&a, ca, h.at(0.0)).is_empty());
    assert_eq!(h.reg.next_expiry(), Some(h.at(4.0)));
    assert!(h.reg.expire(h.at(3.9)).is_empty());
    let out = h.reg.expire(h.at(4.0));
    assert_eq!(
        sent_to(&out, cb),
        vec![&ServerMessage::PeerLeft { peer_id: a }]
    );
    assert_eq!(h.reg.next_expiry(), None);
}

fn resume(
    h: &mut Harness,
    peer: &str,
    token: &str,
    last_seq: u64,
    conn: ConnId,
) -> (Joined, Vec<Output>) {
    let resume = Resume {
        peer_id: peer.to_string(),
        token: token.to_string(),
        last_seq,
    };
    h.reg.join(JoinRequest {
        conn,
        tenant: 0,
        call_id: "call",
        extra_data: "A".into(),
        resume: Some(&resume),
        fresh_peer_id: "unused".into(),
        fresh_token: "unused".into(),
    })
}

fn data_seqs(msgs: &[&ServerMessage]) -> Vec<(u64, Value)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Data { seq, data, .. } => Some((*seq, data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn data_is_numbered_per_recipient() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let (b, cb, _) = h.join(0, "call", "B");
    let (_, cc, _) = h.join(0, "call", "C");
    let mut out = h.reg.data(&a, json!("x"), Some(&b), None).expect("to b");
    out.extend(h.reg.data(&a, json!("y"), None, None).expect("all"));
    out.extend(h.reg.data(&b, json!("z"), None, None).expect("all"));
    assert_eq!(
        data_seqs(&sent_to(&out, cb)),
        vec![(1, json!("x")), (2, json!("y"))]
    );
    assert_eq!(
        data_seqs(&sent_to(&out, cc)),
        vec![(1, json!("y")), (2, json!("z"))]
    );
    assert_eq!(data_seqs(&sent_to(&out, ca)), vec![(1, json!("z"))]);
}

#[test]
fn resume_keeps_identity_and_replays_what_the_client_missed() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let (b, _, _) = h.join(0, "call", "B");
    // Delivered while attached, but the client only saw seq 1 before its socket died.
    h.reg.data(&b, json!(1), None, None).expect("data");
    h.reg.data(&b, json!(2), None, None).expect("data");
    h.reg.detach(&a, ca, h.at(0.0));
    let out = h.reg.data(&b, json!(3), None, None).expect("data");
    assert!(out.is_empty(), "nothing is sent to a detached peer");
    let (joined, out) = resume(&mut h, &a, &format!("t{ca}"), 1, 99);
    assert_eq!(
        joined,
        Joined {
            peer_id: a.clone(),
            resumed: true,
        }
    );
    assert_eq!(
        out.last(),
        Some(&Output::Resumed { peer_id: a.clone() }),
        "the SFU hears of the resume, after the replay"
    );
    let msgs = sent_to(&out, 99);
    assert!(
        matches!(msgs[0], ServerMessage::Joined { resumed: true, peers, .. } if peers.len() == 1)
    );
    assert_eq!(data_seqs(&msgs), vec![(2, json!(2)), (3, json!(3))]);
    assert_eq!(h.reg.replay_misses(), 0);
    assert!(
        h.reg.expire(h.at(10.0)).is_empty(),
        "resumed peer must not expire"
    );
}

#[test]
fn replay_is_bounded_and_misses_are_counted() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let (b, _, _) = h.join(0, "call", "B");
    h.reg.detach(&a, ca, h.at(0.0));
    for n in 1..=5 {
        h.reg.data(&b, json!(n), None, None).expect("data");
    }
    let (_, out) = resume(&mut h, &a, &format!("t{ca}"), 0, 99);
    assert_eq!(
        data_seqs(&sent_to(&out, 99)),
        vec![(3, json!(3)), (4, json!(4)), (5, json!(5))]
    );
    assert_eq!(h.reg.replay_misses(), 2, "window holds 3");
}

#[test]
fn client_resends_are_dropped_by_number() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let (_, cb, _) = h.join(0, "call", "B");
    let out = h.reg.data(&a, json!("once"), None, Some(1)).expect("first");
    assert_eq!(sent_to(&out, cb).len(), 1);
    h.reg.detach(&a, ca, h.at(0.0));
    let (_, out) = resume(&mut h, &a, &format!("t{ca}"), 0, 99);
    assert!(matches!(
        sent_to(&out, 99)[0],
        ServerMessage::Joined { acked_seq: 1, .. }
    ));
    let out = h
        .reg
        .data(&a, json!("once"), None, Some(1))
        .expect("resend");
    assert!(out.is_empty(), "a resend of seq 1 is not delivered twice");
    let out = h.reg.data(&a, json!("twice"), None, Some(2)).expect("next");
    assert_eq!(sent_to(&out, cb).len(), 1);
}

#[test]
fn resume_on_a_live_slot_closes_the_old_connection() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let resume = Resume {
        peer_id: a.clone(),
        token: format!("t{ca}"),
        last_seq: 0,
    };
    let (_, out) = h.reg.join(JoinRequest {
        conn: 50,
        tenant: 0,
        call_id: "call",
        extra_data: "A".into(),
        resume: Some(&resume),
        fresh_peer_id: "n".into(),
        fresh_token: "n".into(),
    });
    assert_eq!(out[0], Output::Close { conn: ca });
    // The old connection's late detach must not detach the new one.
    assert!(h.reg.detach(&a, ca, h.at(0.0)).is_empty());
    assert_eq!(h.reg.next_expiry(), None);
}

#[test]
fn resume_with_wrong_token_room_or_tenant_joins_fresh() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    h.reg.detach(&a, ca, h.at(0.0));
    for (tenant, call, token) in [(0, "call", "wrong"), (0, "other", "t1"), (1, "call", "t1")] {
        let resume = Resume {
            peer_id: a.clone(),
            token: token.into(),
            last_seq: 0,
        };
        let (joined, _) = h.reg.join(JoinRequest {
            conn: 70,
            tenant,
            call_id: call,
            extra_data: "A".into(),
            resume: Some(&resume),
            fresh_peer_id: format!("fresh-{tenant}-{call}-{token}"),
            fresh_token: "x".into(),
        });
        assert!(!joined.resumed, "{tenant} {call} {token}");
        assert_ne!(joined.peer_id, a);
    }
}

#[test]
fn mute_state_reaches_the_others_and_later_joiners() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let (_, cb, _) = h.join(0, "call", "B");
    let out = h.reg.media_state(&a, true, false);
    let expected = ServerMessage::PeerMedia {
        peer_id: a.clone(),
        audio_muted: true,
        video_muted: false,
    };
    assert_eq!(sent_to(&out, cb), vec![&expected]);
    assert!(sent_to(&out, ca).is_empty());
    let (_, cc, out) = h.join(0, "call", "C");
    let to_c = sent_to(&out, cc);
    assert!(matches!(to_c[0], ServerMessage::Joined { .. }));
    assert_eq!(to_c[1], &expected, "a newcomer learns who is muted");
}
