//! The core's feedback decisions with a fake clock: keyframe requests and loss relays.
#![allow(clippy::unwrap_used)]

use super::core_sim::*;
use super::feedback::{KEYFRAME_INTERVAL, LOSS_MEMORY};
use super::io::{Input, Output};
use between_protocol::TrackKind;
use std::time::Duration;

#[test]
fn a_restarted_track_keeps_its_subscribers_and_asks_for_a_picture() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Video, "a-video", 1);
    sim.publish("a", TrackKind::Audio, "a-audio", 2);
    sim.settle("b", 1);
    sim.settle("b", 2);
    let out = sim.publish("a", TrackKind::Video, "a-video", 1);
    assert_eq!(
        out,
        vec![Output::RequestKeyframe {
            publisher: "a".into(),
            track_id: "a-video".into(),
            layer: None,
        }]
    );
    assert!(sim.publish("a", TrackKind::Audio, "a-audio", 2).is_empty());
    assert_eq!(sim.core.subscriptions("b").len(), 2);
}

#[test]
fn keyframe_requests_are_held_to_one_per_interval_and_none_is_lost() {
    let mut sim = Sim::room(&["a"]);
    sim.publish("a", TrackKind::Video, "a-video", 1);
    sim.publish("a", TrackKind::Audio, "a-audio", 2);
    let want = |track: &str| Input::KeyframeWanted {
        publisher: "a".into(),
        track_id: track.into(),
        subscriber: "b".into(),
        fresh: false,
        layer: None,
    };
    let request = Output::RequestKeyframe {
        publisher: "a".into(),
        track_id: "a-video".into(),
        layer: None,
    };
    assert_eq!(sim.input(want("a-video")), vec![request.clone()]);
    assert!(sim.advance(Duration::from_millis(100)).is_empty());
    assert!(sim.input(want("a-video")).is_empty(), "held");
    assert!(sim.input(want("a-video")).is_empty(), "held, once");
    assert!(sim.input(want("a-audio")).is_empty(), "audio has none");
    assert!(sim.input(want("nothing")).is_empty());
    assert!(sim.advance(Duration::from_millis(199)).is_empty());
    assert_eq!(sim.advance(Duration::from_millis(1)), vec![request.clone()]);
    assert_eq!(sim.core.poll_timeout(), None);
    assert!(sim.advance(KEYFRAME_INTERVAL).is_empty(), "nothing held");
    assert_eq!(sim.input(want("a-video")), vec![request]);
}

#[test]
fn loss_is_relayed_at_most_once_a_second_and_forgotten_when_stale() {
    let mut sim = Sim::room(&["a", "b", "c"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    sim.publish("a", TrackKind::Video, "a-video", 2);
    let report = |from: &str, track: &str, lost: u8| Input::ReceiverReport {
        subscriber: from.into(),
        publisher: "a".into(),
        track_id: track.into(),
        fraction_lost: lost,
    };
    let relay = |lost: u8| Output::RelayLoss {
        publisher: "a".into(),
        track_id: "a-audio".into(),
        fraction_lost: lost,
    };
    assert_eq!(sim.input(report("b", "a-audio", 10)), vec![relay(10)]);
    sim.advance(Duration::from_millis(500));
    assert!(sim.input(report("c", "a-audio", 50)).is_empty(), "too soon");
    sim.advance(Duration::from_millis(400));
    // The worst recent report of anyone.
    assert_eq!(sim.input(report("b", "a-audio", 12)), vec![relay(50)]);
    assert!(
        sim.input(report("b", "a-video", 90)).is_empty(),
        "only audio's FEC follows the loss"
    );
    // c's 50 is stale ten seconds on.
    sim.advance(LOSS_MEMORY);
    assert_eq!(sim.input(report("b", "a-audio", 5)), vec![relay(5)]);
    // Reports about tracks that are gone are dropped.
    sim.advance(Duration::from_secs(1));
    sim.input(Input::Unpublished {
        peer: "a".into(),
        track_id: "a-audio".into(),
    });
    assert!(sim.input(report("b", "a-audio", 30)).is_empty());
}

#[test]
fn a_subscriber_ready_after_the_last_keyframe_request_is_not_kept_waiting() {
    let mut sim = Sim::room(&["a", "b", "c"]);
    sim.publish("a", TrackKind::Video, "a-video", 1);
    let want = |from: &str, fresh: bool| Input::KeyframeWanted {
        publisher: "a".into(),
        track_id: "a-video".into(),
        subscriber: from.into(),
        fresh,
        layer: None,
    };
    let request = vec![Output::RequestKeyframe {
        publisher: "a".into(),
        track_id: "a-video".into(),
        layer: None,
    }];
    // b becomes ready: its keyframe is asked for.
    assert_eq!(sim.input(want("b", true)), request);
    // b's own decoder asks too, right after: covered by the request on its way.
    sim.advance(Duration::from_millis(5));
    assert!(sim.input(want("b", false)).is_empty());
    // c becomes ready 100 ms later: the keyframe asked for before passed it by.
    sim.advance(Duration::from_millis(100));
    assert_eq!(sim.input(want("c", true)), request);
    // b and c lose a packet together later on: one request, the other held.
    sim.advance(Duration::from_secs(2));
    sim.drain();
    assert_eq!(sim.input(want("b", false)), request);
    assert!(sim.input(want("c", false)).is_empty());
    assert_eq!(sim.advance(KEYFRAME_INTERVAL), request, "the held one goes");
}

#[test]
fn a_departed_subscribers_loss_no_longer_counts() {
    let mut sim = Sim::room(&["a", "b", "c"]);
    sim.publish("a", TrackKind::Audio, "a-audio", 1);
    let report = |from: &str, lost: u8| Input::ReceiverReport {
        subscriber: from.into(),
        publisher: "a".into(),
        track_id: "a-audio".into(),
        fraction_lost: lost,
    };
    sim.input(report("c", 200));
    sim.input(Input::Left { peer: "c".into() });
    sim.advance(Duration::from_secs(1));
    let out = sim.input(report("b", 10));
    assert_eq!(
        out,
        vec![Output::RelayLoss {
            publisher: "a".into(),
            track_id: "a-audio".into(),
            fraction_lost: 10
        }],
        "c's 200 went with c"
    );
}

#[test]
fn a_keyframe_is_asked_of_the_layer_wanted_and_of_every_layer_when_several_were() {
    let mut sim = Sim::room(&["a"]);
    sim.publish("a", TrackKind::Video, "a-video", 1);
    let want = |subscriber: &str, layer: Option<u8>| Input::KeyframeWanted {
        publisher: "a".into(),
        track_id: "a-video".into(),
        subscriber: subscriber.into(),
        fresh: false,
        layer,
    };
    let request = |layer: Option<u8>| Output::RequestKeyframe {
        publisher: "a".into(),
        track_id: "a-video".into(),
        layer,
    };
    assert_eq!(sim.input(want("b", Some(1))), vec![request(Some(1))]);
    // Held, all for layer 2: layer 2 when the interval ends.
    assert!(sim.input(want("c", Some(2))).is_empty());
    assert!(sim.input(want("d", Some(2))).is_empty());
    assert_eq!(sim.advance(KEYFRAME_INTERVAL), vec![request(Some(2))]);
    // Held for two layers: every layer.
    assert!(sim.input(want("c", Some(0))).is_empty());
    assert!(sim.input(want("d", Some(2))).is_empty());
    assert_eq!(sim.advance(KEYFRAME_INTERVAL), vec![request(None)]);
}
