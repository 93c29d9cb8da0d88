//! The SFU core with a fake clock: membership, routing and negotiation checked from inputs
//! and outputs.
#![allow(clippy::unwrap_used)]

use super::core::RESUBSCRIBE_MIN;
use super::core_sim::*;
use super::io::{Input, Output};
use super::negotiation::{ANSWER_TIMEOUT, OFFER_RETRY};
use between_protocol::{ErrorCode, ServerMessage, TrackKind};
use std::time::Duration;

#[test]
fn a_late_joiner_gets_an_offer_with_what_is_published() {
    let mut sim = Sim::new();
    assert!(sim.join("a", "t/r").is_empty(), "nothing to receive yet");
    assert!(
        sim.publish("a", TrackKind::Audio, "a-audio", 1).is_empty(),
        "nobody to send it to"
    );
    let audio = track("a", TrackKind::Audio, "a-audio");
    assert_eq!(
        sim.join("b", "t/r"),
        vec![subscribe("b", audio.clone(), 1), make_offer("b", 1)]
    );
    let out = sim.offer_ready("b", 1, "v=0");
    assert_eq!(out, vec![offer_signal("b", "v=0", vec![audio], 1)]);
}

#[test]
fn a_new_track_goes_to_everyone_else_in_the_room_only() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.join("c", "t/other");
    sim.join("d", "u/r");
    let out = sim.publish("a", TrackKind::Video, "a-video", 7);
    assert_eq!(
        out,
        vec![
            subscribe("b", track("a", TrackKind::Video, "a-video"), 7),
            make_offer("b", 1)
        ]
    );
    assert!(sim.core.subscriptions("a").is_empty(), "not its own");
    assert!(sim.core.subscriptions("c").is_empty(), "another call");
    assert!(sim.core.subscriptions("d").is_empty(), "another tenant");
}

#[test]
fn changes_during_an_exchange_wait_for_it_then_go_in_one_offer() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Video, "a-video", 1);
    sim.offer_ready("b", 1, "o1");
    // Unpublished while offer 1 waits for its answer: the sender goes now, the offer later.
    let out = sim.input(Input::Unpublished {
        peer: "a".into(),
        track_id: "a-video".into(),
    });
    assert_eq!(
        out,
        vec![Output::Unsubscribe {
            subscriber: "b".into(),
            track_id: "a-video".into()
        }]
    );
    // And a microphone while it is so.
    let out = sim.publish("a", TrackKind::Audio, "a-audio", 2);
    assert_eq!(
        out,
        vec![subscribe("b", track("a", TrackKind::Audio, "a-audio"), 2)]
    );
    let out = sim.input(Input::Answered {
        peer: "b".into(),
        offer: None,
        sdp: "a1".into(),
    });
    assert_eq!(
        out,
        vec![Output::ApplyAnswer {
            subscriber: "b".into(),
            offer: 1,
            sdp: "a1".into()
        }]
    );
    let out = sim.input(Input::AnswerApplied {
        peer: "b".into(),
        offer: 1,
        error: None,
    });
    assert_eq!(out, vec![make_offer("b", 2)]);
    let out = sim.offer_ready("b", 2, "o2");
    assert_eq!(
        out,
        vec![offer_signal(
            "b",
            "o2",
            vec![track("a", TrackKind::Audio, "a-audio")],
            2
        )]
    );
}

#[test]
fn an_answer_that_never_comes_is_offered_again_after_the_timeout() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    sim.offer_ready("b", 1, "o1");
    assert_eq!(sim.core.poll_timeout(), Some(sim.now + ANSWER_TIMEOUT));
    assert!(
        sim.advance(ANSWER_TIMEOUT - Duration::from_millis(1))
            .is_empty()
    );
    assert_eq!(
        sim.advance(Duration::from_millis(1)),
        vec![make_offer("b", 2)]
    );
    // The late answer to offer 1 is no answer to offer 2, which is still being made.
    let late = sim.core.handle_input(
        sim.now,
        Input::Answered {
            peer: "b".into(),
            offer: None,
            sdp: "a1".into(),
        },
    );
    assert_eq!(late.unwrap_err().code, ErrorCode::InvalidMessage);
    // Offer 2 goes out and is answered as usual.
    let out = sim.settle("b", 2);
    assert_eq!(out.len(), 2, "the offer and applying its answer: {out:?}");
    assert_eq!(sim.core.poll_timeout(), None, "nothing is waiting");
}

#[test]
fn an_answer_nobody_asked_for_is_refused() {
    let mut sim = Sim::room(&["a"]);
    for peer in ["a", "stranger"] {
        let err = sim
            .core
            .handle_input(
                sim.now,
                Input::Answered {
                    peer: peer.into(),
                    offer: None,
                    sdp: "v=0".into(),
                },
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidMessage);
    }
    assert!(sim.drain().is_empty());
}

#[test]
fn an_offer_that_could_not_be_made_is_tried_again() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    assert!(
        sim.input(Input::OfferFailed {
            peer: "b".into(),
            offer: 1
        })
        .is_empty()
    );
    assert_eq!(sim.core.poll_timeout(), Some(sim.now + OFFER_RETRY));
    assert_eq!(sim.advance(OFFER_RETRY), vec![make_offer("b", 2)]);
}

#[test]
fn a_failed_answer_is_reported_and_offered_again() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    sim.offer_ready("b", 1, "o1");
    sim.input(Input::Answered {
        peer: "b".into(),
        offer: None,
        sdp: "garbage".into(),
    });
    let out = sim.input(Input::AnswerApplied {
        peer: "b".into(),
        offer: 1,
        error: Some("bad SDP".into()),
    });
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(
        &out[0],
        Output::Signal { peer, msg: ServerMessage::Error { code: ErrorCode::InvalidMessage, fatal: false, message } }
            if peer == "b" && message.contains("bad SDP")
    ));
    assert_eq!(out[1], make_offer("b", 2));
}

#[test]
fn resubscribing_starts_a_new_connection_with_everything_on_it() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    sim.publish("a", TrackKind::Video, "a-video", 2);
    // Offer 1 is being made when the client gives up on the connection.
    let out = sim.input(Input::Resubscribe { peer: "b".into() });
    assert_eq!(
        out,
        vec![
            Output::ResetSubscriber {
                subscriber: "b".into()
            },
            subscribe("b", track("a", TrackKind::Audio, "a-audio"), 1),
            subscribe("b", track("a", TrackKind::Video, "a-video"), 2),
            make_offer("b", 2),
        ]
    );
    // Offer 1 was for the old connection: when it comes, it is dropped.
    assert!(sim.offer_ready("b", 1, "old").is_empty());
    assert_eq!(sim.settle("b", 2).len(), 2);
}

#[test]
fn a_resumed_peer_keeps_its_subscriptions_and_gets_the_waiting_offer_again() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    let sent = sim.offer_ready("b", 1, "o1");
    let before = sim.core.subscriptions("b");
    let out = sim.input(Input::Resumed { peer: "b".into() });
    assert_eq!(out, sent, "the same offer again, nothing else");
    assert_eq!(sim.core.subscriptions("b"), before);
    // Once answered, a resume has nothing to send.
    sim.input(Input::Answered {
        peer: "b".into(),
        offer: None,
        sdp: "a1".into(),
    });
    sim.input(Input::AnswerApplied {
        peer: "b".into(),
        offer: 1,
        error: None,
    });
    assert!(sim.input(Input::Resumed { peer: "b".into() }).is_empty());
    assert_eq!(sim.core.subscriptions("b"), before);
}

#[test]
fn a_leaving_peer_is_closed_and_its_tracks_leave_everyone() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    sim.publish("b", TrackKind::Audio, "b-audio", 2);
    sim.settle("b", 1);
    sim.settle("a", 1);
    let out = sim.input(Input::Left { peer: "a".into() });
    assert_eq!(
        out,
        vec![
            Output::Close { peer: "a".into() },
            Output::Unsubscribe {
                subscriber: "b".into(),
                track_id: "a-audio".into()
            },
            make_offer("b", 2),
        ]
    );
    assert_eq!(sim.core.member_count(), 1);
    // A departed peer's late events change nothing.
    assert!(sim.publish("a", TrackKind::Video, "a-video", 3).is_empty());
    assert!(sim.input(Input::Left { peer: "a".into() }).is_empty());
}

#[test]
fn a_new_share_replaces_one_whose_end_was_never_announced() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Screen, "a-screen#1", 1);
    sim.settle("b", 1);
    let out = sim.publish("a", TrackKind::Screen, "a-screen#2", 2);
    assert_eq!(
        out,
        vec![
            Output::Unsubscribe {
                subscriber: "b".into(),
                track_id: "a-screen#1".into()
            },
            subscribe("b", track("a", TrackKind::Screen, "a-screen#2"), 2),
            make_offer("b", 2),
        ]
    );
}

#[test]
fn an_answer_to_a_replaced_offer_is_refused_and_the_latest_one_taken() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    sim.offer_ready("b", 1, "o1");
    sim.advance(ANSWER_TIMEOUT);
    sim.offer_ready("b", 2, "o2");
    let stale = sim.core.handle_input(
        sim.now,
        Input::Answered {
            peer: "b".into(),
            offer: Some(1),
            sdp: "a1".into(),
        },
    );
    assert_eq!(stale.unwrap_err().code, ErrorCode::InvalidMessage);
    assert!(sim.drain().is_empty(), "nothing applied");
    let out = sim.input(Input::Answered {
        peer: "b".into(),
        offer: Some(2),
        sdp: "a2".into(),
    });
    assert_eq!(
        out,
        vec![Output::ApplyAnswer {
            subscriber: "b".into(),
            offer: 2,
            sdp: "a2".into()
        }]
    );
}

#[test]
fn resubscribing_again_at_once_is_ignored_and_each_connection_has_its_number() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    sim.settle("b", 1);
    let out = sim.input(Input::Resubscribe { peer: "b".into() });
    assert_eq!(out.len(), 3, "reset, subscribe, offer: {out:?}");
    // A loop of requests: nothing more happens.
    for _ in 0..10 {
        sim.advance(Duration::from_millis(100));
        assert!(
            sim.input(Input::Resubscribe { peer: "b".into() })
                .is_empty()
        );
    }
    // The new connection's offer says it is connection 2.
    let out = sim.offer_ready("b", 2, "o2");
    assert!(matches!(
        &out[..],
        [Output::Signal {
            msg: ServerMessage::SubscribeOffer {
                offer: 2,
                connection: 2,
                ..
            },
            ..
        }]
    ));
    // Later, a request is taken again.
    sim.advance(RESUBSCRIBE_MIN);
    assert!(
        !sim.input(Input::Resubscribe { peer: "b".into() })
            .is_empty()
    );
}

#[test]
fn a_failed_subscribe_starts_the_connection_over_later_with_growing_waits() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    let out = sim.input(Input::SubscribeFailed { peer: "b".into() });
    assert_eq!(
        out,
        vec![Output::ResetSubscriber {
            subscriber: "b".into()
        }]
    );
    assert!(sim.core.subscriptions("b").is_empty());
    assert!(
        sim.advance(OFFER_RETRY - Duration::from_millis(1))
            .is_empty()
    );
    let out = sim.advance(Duration::from_millis(1));
    assert_eq!(
        out,
        vec![
            subscribe("b", track("a", TrackKind::Audio, "a-audio"), 1),
            make_offer("b", 2)
        ]
    );
    // Failing again waits twice as long; making offers that fail, too.
    sim.input(Input::SubscribeFailed { peer: "b".into() });
    assert!(sim.advance(OFFER_RETRY).is_empty());
    assert_eq!(sim.advance(OFFER_RETRY).len(), 2, "resubscribed after 2 s");
    sim.input(Input::OfferFailed {
        peer: "b".into(),
        offer: 3,
    });
    assert_eq!(sim.core.poll_timeout(), Some(sim.now + 4 * OFFER_RETRY));
}
