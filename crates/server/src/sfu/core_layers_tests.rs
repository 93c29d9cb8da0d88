//! The core's layer choice, with a fake clock: layers as readers report them, sizes as
//! subscribers draw them.
#![allow(clippy::unwrap_used)]

use super::core_sim::*;
use super::io::{Input, Output};
use super::layers::LayerInfo;
use between_protocol::TrackKind;

fn layers(peer: &str, track_id: &str, sizes: &[(u8, u32, u32)]) -> Input<u32> {
    Input::Layers {
        peer: peer.into(),
        track_id: track_id.into(),
        layers: sizes
            .iter()
            .map(|&(id, width, height)| LayerInfo {
                id,
                width,
                height,
                bitrate: width * height,
            })
            .collect(),
    }
}

fn drawn(subscriber: &str, track_id: &str, size: (u32, u32)) -> Input<u32> {
    Input::Drawn {
        subscriber: subscriber.into(),
        track_id: track_id.into(),
        size,
    }
}

fn selected(out: &[Output<u32>]) -> Vec<(String, Option<u8>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::SelectLayer {
                subscriber, layer, ..
            } => Some((subscriber.clone(), *layer)),
            _ => None,
        })
        .collect()
}

fn bandwidth_pauses(out: &[Output<u32>]) -> Vec<(String, String, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Signal {
                peer,
                msg: between_protocol::ServerMessage::BandwidthPause { track_id, paused },
            } => Some((peer.clone(), track_id.clone(), *paused)),
            _ => None,
        })
        .collect()
}

/// The reader numbers layers as they open, not by size: "f" came first here.
const SIMULCAST: [(u8, u32, u32); 3] = [(0, 1280, 720), (1, 320, 180), (2, 640, 360)];

#[test]
fn each_subscriber_gets_the_layer_its_tile_needs_and_a_hidden_tile_nothing() {
    let mut sim = Sim::room(&["a", "b", "c"]);
    sim.publish("a", TrackKind::Video, "a/v", 1);
    // Nothing is chosen before the layers are known: forwarders start with what comes.
    let out = sim.input(layers("a", "a/v", &SIMULCAST));
    let mut got = selected(&out);
    got.sort();
    assert_eq!(
        got,
        [("b".into(), Some(0)), ("c".into(), Some(0))],
        "nobody said a size: the top layer"
    );
    assert_eq!(
        selected(&sim.input(drawn("b", "a/v", (570, 320)))),
        [("b".into(), Some(2))]
    );
    assert_eq!(
        selected(&sim.input(drawn("c", "a/v", (200, 112)))),
        [("c".into(), Some(1))]
    );
    assert_eq!(
        selected(&sim.input(drawn("c", "a/v", (0, 0)))),
        [("c".into(), None)],
        "hidden: paused"
    );
    // The same size again, or layers that did not change: nothing new.
    assert!(selected(&sim.input(drawn("b", "a/v", (570, 320)))).is_empty());
    assert!(selected(&sim.input(layers("a", "a/v", &SIMULCAST))).is_empty());
    // The top layer goes quiet (the publisher dropped it): b stays on 640x360, nobody
    // asked for more; a size for a track it does not receive is ignored.
    assert!(selected(&sim.input(drawn("b", "x/v", (10, 10)))).is_empty());
    let out = sim.input(layers("a", "a/v", &SIMULCAST[1..]));
    assert!(selected(&out).is_empty(), "{out:?}");
}

#[test]
fn a_new_subscription_is_chosen_for_at_once_and_audio_never() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a/a", 1);
    sim.publish("a", TrackKind::Video, "a/v", 2);
    assert!(selected(&sim.input(layers("a", "a/a", &SIMULCAST))).is_empty());
    sim.input(layers("a", "a/v", &SIMULCAST));
    // A newcomer's forwarder starts on the first layer: it is told the right one with its
    // subscription.
    let out = sim.join("c", "t/r");
    assert_eq!(selected(&out), [("c".into(), Some(0))]);
    // A restarted receiving connection: every choice is said again.
    sim.input(Input::Resubscribe { peer: "c".into() });
    let out = sim.advance(std::time::Duration::from_secs(3));
    let out: Vec<_> = out
        .into_iter()
        .chain(sim.input(Input::Resubscribe { peer: "c".into() }))
        .collect();
    assert_eq!(selected(&out), [("c".into(), Some(0))], "{out:?}");
}

#[test]
fn the_downlink_estimate_bounds_the_layers_audio_first() {
    let mut sim = Sim::room(&["a", "b"]);
    sim.publish("a", TrackKind::Audio, "a/a", 1);
    sim.publish("a", TrackKind::Video, "a/v", 2);
    sim.input(layers("a", "a/v", &SIMULCAST));
    let estimate = |bps: f64| Input::Estimate {
        subscriber: "b".into(),
        bps,
        congested: true,
    };
    // 85 % of 1 Mbit/s, less b's audio, leaves room for 640x360 but not 1280x720.
    assert_eq!(
        selected(&sim.input(estimate(1_000_000.0))),
        [("b".into(), Some(2))]
    );
    assert_eq!(
        selected(&sim.input(estimate(200_000.0))),
        [("b".into(), Some(1))]
    );
    // Not even the smallest layer beside the audio: the video pauses, the audio goes on,
    // and the subscriber hears why (its page shows a poor connection).
    let out = sim.input(estimate(50_000.0));
    assert_eq!(selected(&out), [("b".into(), None)]);
    assert_eq!(bandwidth_pauses(&out), [("b".into(), "a/v".into(), true)]);
    let out = sim.input(estimate(5_000_000.0));
    assert_eq!(selected(&out), [("b".into(), Some(0))]);
    assert_eq!(bandwidth_pauses(&out), [("b".into(), "a/v".into(), false)]);
    // Nonsense from a broken estimator changes nothing.
    assert!(selected(&sim.input(estimate(f64::NAN))).is_empty());
    assert!(selected(&sim.input(estimate(-1.0))).is_empty());
}

#[test]
fn the_start_of_a_call_is_held_to_the_estimate_before_any_congestion() {
    let mut sim = Sim::room(&["a", "b", "c"]);
    sim.publish("a", TrackKind::Video, "a/v", 1);
    sim.publish("c", TrackKind::Video, "c/v", 2);
    sim.input(layers("a", "a/v", &SIMULCAST));
    // c sends one layer only: before congestion it is never held back.
    sim.input(layers("c", "c/v", &[(0, 1280, 720)]));
    let estimate = |bps: f64, congested: bool| Input::Estimate {
        subscriber: "b".into(),
        bps,
        congested,
    };
    let mut got = selected(&sim.input(estimate(1_000_000.0, false)));
    got.sort();
    assert_eq!(
        got,
        [("b".into(), Some(2))],
        "a's 640x360 fits 85 % of 1 Mbit/s"
    );
    // Four seconds on with no congestion: the estimate only follows what is sent, so the
    // choice is unbounded again.
    let out = sim.advance(std::time::Duration::from_secs(4));
    assert_eq!(selected(&out), [("b".into(), Some(0))], "{out:?}");
    // Congestion from then on: held to the estimate for good (c's single layer, already
    // sent, is kept; a's comes down).
    let out = sim.input(estimate(1_000_000.0, true));
    assert!(
        matches!(selected(&out)[..], [(_, Some(l))] if l != 0),
        "{out:?}"
    );
    assert!(
        sim.advance(std::time::Duration::from_secs(5))
            .iter()
            .all(|o| !matches!(o, Output::SelectLayer { layer: Some(0), .. }))
    );
}
