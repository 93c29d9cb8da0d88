use super::*;
use between_protocol::Resume;
use serde_json::json;

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
                pending_max_messages: 3,
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
    let out = h.reg.data(&a, json!(1), None).expect("broadcast");
    assert_eq!(out.len(), 1, "one serialization for all recipients");
    assert!(sent_to(&out, ca).is_empty());
    assert_eq!(sent_to(&out, cb).len(), 1);
    assert_eq!(sent_to(&out, cc).len(), 1);
    let out = h.reg.data(&a, json!(2), Some(&b)).expect("unicast");
    assert_eq!(sent_to(&out, cb).len(), 1);
    assert!(sent_to(&out, cc).is_empty());
}

#[test]
fn data_to_unknown_self_or_foreign_peer_is_rejected() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(0, "call", "A");
    let (x, _, _) = h.join(0, "elsewhere", "X");
    for to in ["nobody", a.as_str(), x.as_str()] {
        let err = h.reg.data(&a, json!(1), Some(to)).expect_err(to);
        assert_eq!(err.code, ErrorCode::PeerNotFound);
    }
    assert_eq!(
        h.reg.data("ghost", json!(1), None).expect_err("ghost").code,
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
    assert!(h.reg.leave(&b).is_empty());
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

#[test]
fn resume_keeps_identity_and_delivers_queued_data_in_order() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let (b, _, _) = h.join(0, "call", "B");
    h.reg.detach(&a, ca, h.at(0.0));
    for n in 0..5 {
        let out = h.reg.data(&b, json!(n), None).expect("data");
        assert!(out.is_empty(), "a detached peer's data is queued, not sent");
    }
    assert_eq!(h.reg.dropped_pending(), 2, "queue holds 3");
    let resume = Resume {
        peer_id: a.clone(),
        token: format!("t{ca}"),
    };
    let (joined, out) = h.reg.join(JoinRequest {
        conn: 99,
        tenant: 0,
        call_id: "call",
        extra_data: "A".into(),
        resume: Some(&resume),
        fresh_peer_id: "unused".into(),
        fresh_token: "unused".into(),
    });
    assert_eq!(
        joined,
        Joined {
            peer_id: a.clone(),
            resumed: true
        }
    );
    let msgs = sent_to(&out, 99);
    assert!(
        matches!(msgs[0], ServerMessage::Joined { resumed: true, peers, .. } if peers.len() == 1)
    );
    let data: Vec<_> = msgs[1..]
        .iter()
        .map(|m| match m {
            ServerMessage::Data { data, .. } => data.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(data, vec![json!(2), json!(3), json!(4)]);
    assert!(
        h.reg.expire(h.at(10.0)).is_empty(),
        "resumed peer must not expire"
    );
}

#[test]
fn resume_on_a_live_slot_closes_the_old_connection() {
    let mut h = Harness::new();
    let (a, ca, _) = h.join(0, "call", "A");
    let resume = Resume {
        peer_id: a.clone(),
        token: format!("t{ca}"),
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
