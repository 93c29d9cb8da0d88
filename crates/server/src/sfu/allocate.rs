//! What one subscriber receives within its downlink estimate, decided without IO: audio first
//! and never starved, then screen shares, then the active speaker's camera, then everyone
//! else; each video at the smallest layer that covers the size it is drawn at, lower where the
//! budget says so, paused (never starving audio) where not even its lowest layer fits. A
//! hidden video receives nothing. Pure: the SFU's core asks it whenever an input changes.

/// One layer a publisher sends of a video, as the subscriber's leg would carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    pub width: u32,
    pub height: u32,
    /// What it costs, bits per second (as measured or announced).
    pub bitrate: u32,
}

/// Why a video is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paused {
    /// The subscriber draws it nowhere (a hidden tile).
    Hidden,
    /// The downlink cannot carry even its lowest layer (the page shows a poor connection).
    Bandwidth,
    /// The publisher sends no layer of it.
    NoLayers,
}

/// What a video gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The index of the layer, lowest first.
    Layer(usize),
    Paused(Paused),
}

/// Who comes first when the budget is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Screen,
    Speaker,
    Other,
}

/// One video a subscriber may receive.
#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub priority: Priority,
    /// The layers sent, lowest first.
    pub layers: Vec<Layer>,
    /// The size it is drawn at (`None`: not said, so the top layer; `(0, 0)`: hidden).
    pub drawn: Option<(u32, u32)>,
}

/// An upgrade is taken only with this much of its cost to spare, so a budget hovering at a
/// layer's cost does not switch layers (and ask for keyframes) back and forth.
const HEADROOM: f64 = 1.1;
/// What of its lowest layer's cost a video already on it needs to keep it.
const KEEP: f64 = 0.75;

impl Video {
    /// The layer it should get with bandwidth to spare.
    fn wanted(&self) -> Option<usize> {
        let top = self.layers.len().checked_sub(1)?;
        let Some((w, h)) = self.drawn else {
            return Some(top);
        };
        Some(
            self.layers
                .iter()
                .position(|l| l.width >= w && l.height >= h)
                .unwrap_or(top),
        )
    }
}

/// Chooses a layer (or a pause) for each of `videos` within `budget` bits per second, of which
/// `audio` go to audio first. `previous` (same order, or empty) keeps upgrades from flapping.
pub fn allocate(budget: f64, audio: f64, videos: &[Video], previous: &[Choice]) -> Vec<Choice> {
    let mut left = budget - audio;
    let mut choices: Vec<Choice> = videos
        .iter()
        .map(|v| match (v.drawn, v.wanted()) {
            (_, None) => Choice::Paused(Paused::NoLayers),
            (Some((0, _)) | Some((_, 0)), _) => Choice::Paused(Paused::Hidden),
            _ => Choice::Paused(Paused::Bandwidth),
        })
        .collect();
    let mut order: Vec<usize> = (0..videos.len()).collect();
    order.sort_by_key(|i| videos[*i].priority);
    let wanted = |i: usize| {
        matches!(choices[i], Choice::Paused(Paused::Bandwidth))
            .then(|| videos[i].wanted())
            .flatten()
    };
    let wanted: Vec<Option<usize>> = (0..videos.len()).map(wanted).collect();
    let cost = |i: usize, layer: usize| f64::from(videos[i].layers[layer].bitrate);
    let had =
        |i: usize, layer: usize| matches!(previous.get(i), Some(Choice::Layer(l)) if *l >= layer);
    // Everyone drawn gets their lowest layer first, in priority order.
    for &i in &order {
        if wanted[i].is_none() {
            continue;
        }
        // A video kept on its lowest layer is paused only when the budget is well short of
        // it: estimates swing by a fifth, and each pause and resume is a freeze and a
        // keyframe.
        let need = cost(i, 0) * if had(i, 0) { KEEP } else { HEADROOM };
        if need <= left {
            left -= cost(i, 0);
            choices[i] = Choice::Layer(0);
        }
    }
    // Then up towards the layer each should get, in priority order.
    for &i in &order {
        let (Some(want), Choice::Layer(mut at)) = (wanted[i], choices[i]) else {
            continue;
        };
        while at < want {
            let step = cost(i, at + 1) - cost(i, at);
            let need = step * if had(i, at + 1) { 1.0 } else { HEADROOM };
            if need > left {
                break;
            }
            left -= step;
            at += 1;
        }
        choices[i] = Choice::Layer(at);
    }
    choices
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera in three layers: 320x180 at 150 kbit/s, 640x360 at 500, 1280x720 at 1500.
    fn camera(priority: Priority, drawn: Option<(u32, u32)>) -> Video {
        Video {
            priority,
            layers: vec![
                Layer {
                    width: 320,
                    height: 180,
                    bitrate: 150_000,
                },
                Layer {
                    width: 640,
                    height: 360,
                    bitrate: 500_000,
                },
                Layer {
                    width: 1280,
                    height: 720,
                    bitrate: 1_500_000,
                },
            ],
            drawn,
        }
    }

    fn screen() -> Video {
        Video {
            priority: Priority::Screen,
            layers: vec![
                Layer {
                    width: 960,
                    height: 540,
                    bitrate: 300_000,
                },
                Layer {
                    width: 1920,
                    height: 1080,
                    bitrate: 1_200_000,
                },
            ],
            drawn: None,
        }
    }

    const AUDIO: f64 = 3.0 * 40_000.0;

    #[test]
    fn plenty_gives_each_the_layer_its_tile_needs() {
        let videos = [
            camera(Priority::Other, Some((570, 320))),
            camera(Priority::Other, Some((200, 112))),
            camera(Priority::Other, None),
        ];
        let got = allocate(10e6, AUDIO, &videos, &[]);
        assert_eq!(
            got,
            vec![Choice::Layer(1), Choice::Layer(0), Choice::Layer(2)],
            "570x320 takes 640x360; 200x112 the smallest; unsaid, the top"
        );
    }

    #[test]
    fn a_hidden_tile_gets_nothing_and_costs_nothing() {
        let videos = [
            camera(Priority::Other, Some((0, 0))),
            camera(Priority::Other, Some((1280, 720))),
        ];
        let budget = AUDIO + 1_500_000.0 * HEADROOM;
        let got = allocate(budget, AUDIO, &videos, &[]);
        assert_eq!(got[0], Choice::Paused(Paused::Hidden));
        assert_eq!(
            got[1],
            Choice::Layer(2),
            "the budget all goes to the visible one"
        );
    }

    #[test]
    fn a_short_budget_goes_to_the_screen_then_the_speaker_then_the_rest() {
        let videos = [
            camera(Priority::Other, Some((640, 360))),
            camera(Priority::Speaker, Some((1280, 720))),
            screen(),
        ];
        // Lowest layers (300 + 150 + 150 k) with headroom, then 900 k for upgrades.
        let got = allocate(AUDIO + 1_700_000.0, AUDIO, &videos, &[]);
        assert_eq!(got[2], Choice::Layer(1), "the screen at full size first");
        assert_eq!(
            got[1],
            Choice::Layer(0),
            "what is left does not lift the speaker"
        );
        assert_eq!(got[0], Choice::Layer(0));
    }

    #[test]
    fn video_pauses_before_audio_is_touched() {
        let videos = [
            camera(Priority::Speaker, None),
            camera(Priority::Other, None),
        ];
        // Room for one lowest layer besides the audio.
        let got = allocate(AUDIO + 200_000.0, AUDIO, &videos, &[]);
        assert_eq!(
            got,
            vec![Choice::Layer(0), Choice::Paused(Paused::Bandwidth)]
        );
        // Less than the audio itself: every video paused, the audio still goes (it is not
        // the allocator's to drop).
        let got = allocate(AUDIO / 2.0, AUDIO, &videos, &[]);
        assert!(got.iter().all(|c| *c == Choice::Paused(Paused::Bandwidth)));
    }

    #[test]
    fn an_upgrade_needs_headroom_but_a_held_layer_does_not() {
        let videos = [camera(Priority::Other, None)];
        // Exactly enough for 640x360: not taken fresh, kept if already there.
        let budget = AUDIO + 500_000.0;
        assert_eq!(
            allocate(budget, AUDIO, &videos, &[]),
            vec![Choice::Layer(0)]
        );
        assert_eq!(
            allocate(budget, AUDIO, &videos, &[Choice::Layer(1)]),
            vec![Choice::Layer(1)]
        );
        // Below it: down it goes, whatever it had.
        assert_eq!(
            allocate(budget - 10_000.0, AUDIO, &videos, &[Choice::Layer(1)]),
            vec![Choice::Layer(0)]
        );
    }

    #[test]
    fn a_video_without_layers_is_said_so() {
        let mut v = camera(Priority::Other, None);
        v.layers.clear();
        assert_eq!(
            allocate(10e6, AUDIO, &[v], &[]),
            vec![Choice::Paused(Paused::NoLayers)]
        );
    }
}
