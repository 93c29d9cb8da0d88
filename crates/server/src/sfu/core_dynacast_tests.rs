//! Dynacast with a fake clock: what each publisher is told its camera must cover, as its
//! subscribers draw it, hide it, come and go.
#![allow(clippy::unwrap_used)]

use super::core_sim::*;
use super::io::{Input, Output};
use between_protocol::{ServerMessage, TrackKind};

fn drawn(subscriber: &str, track_id: &str, size: (u32, u32)) -> Input<u32> {
    Input::Drawn {
        subscriber: subscriber.into(),
        track_id: track_id.into(),
        size,
    }
}

/// What publishers were told: (publisher, max).
fn needed(out: &[Out]) -> Vec<(String, Option<[u32; 2]>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Signal {
                peer,
                msg: ServerMessage::VideoNeeded { kind, max },
            } => {
                assert_eq!(*kind, TrackKind::Video);
                Some((peer.clone(), *max))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_publisher_hears_the_largest_tile_and_nothing_when_none_shows_it() {
    let mut sim = Sim::room(&["a", "b", "c"]);
    let out = sim.publish("a", TrackKind::Video, "a/v", 1);
    assert!(
        needed(&out).is_empty(),
        "every layer, as it starts: {out:?}"
    );
    // b says a size, c has not: c may draw it at any size.
    assert!(needed(&sim.input(drawn("b", "a/v", (320, 180)))).is_empty());
    assert_eq!(
        needed(&sim.input(drawn("c", "a/v", (640, 360)))),
        [("a".into(), Some([640, 360]))]
    );
    // Smaller than the largest: nothing new for a.
    assert!(needed(&sim.input(drawn("b", "a/v", (200, 100)))).is_empty());
    assert_eq!(
        needed(&sim.input(drawn("c", "a/v", (0, 0)))),
        [("a".into(), Some([200, 100]))]
    );
    assert_eq!(
        needed(&sim.input(drawn("b", "a/v", (0, 0)))),
        [("a".into(), Some([0, 0]))],
        "drawn nowhere: nothing to encode"
    );
    // A newcomer that has said nothing yet: everything again.
    let out = sim.join("d", "t/r");
    assert_eq!(needed(&out), [("a".into(), None)]);
    // It leaves: back to what the others draw.
    let out = sim.input(Input::Left { peer: "d".into() });
    assert_eq!(needed(&out), [("a".into(), Some([0, 0]))]);
}

#[test]
fn only_cameras_are_told_and_a_leaving_subscriber_stops_counting() {
    let mut sim = Sim::room(&["a", "b", "c"]);
    sim.publish("a", TrackKind::Screen, "a/s", 1);
    sim.publish("b", TrackKind::Video, "b/v", 2);
    assert!(needed(&sim.input(drawn("a", "b/v", (1280, 720)))).is_empty());
    assert!(needed(&sim.input(drawn("b", "a/s", (0, 0)))).is_empty());
    assert!(needed(&sim.input(drawn("c", "a/s", (0, 0)))).is_empty());
    assert_eq!(
        needed(&sim.input(drawn("c", "b/v", (320, 180)))),
        [("b".into(), Some([1280, 720]))]
    );
    // The big tile's owner leaves.
    let out = sim.input(Input::Left { peer: "a".into() });
    assert_eq!(needed(&out), [("b".into(), Some([320, 180]))]);
}
