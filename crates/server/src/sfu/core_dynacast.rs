//! Dynacast: each publisher hears the largest size anyone draws its camera at, so it encodes
//! only the simulcast layers someone can be given (none when nobody draws it). Subscribers'
//! choices stay within what is sent: each gets the smallest layer covering its own tile, and
//! the publisher encodes up to the one covering the largest.

use super::Core;
use between_protocol::{ServerMessage, TrackKind};

/// What a publisher's camera must cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Someone draws it without saying a size (or nobody receives it yet): every layer.
    All,
    /// The largest drawn width and height (`(0, 0)`: drawn nowhere).
    Max(u32, u32),
}

impl<M: Clone> Core<M> {
    /// Tells every camera publisher in `room` what its subscribers now need, where it changed.
    pub(super) fn needs(&mut self, room: &str) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        let mut told = Vec::new();
        for publisher in members {
            let Some(p) = self.members.get(publisher) else {
                continue;
            };
            for (track_id, published) in &p.published {
                if published.kind != TrackKind::Video {
                    continue;
                }
                let mut need: Option<Need> = None;
                for id in members {
                    let Some(s) = self.members.get(id) else {
                        continue;
                    };
                    if !s.subscriptions.contains_key(track_id) {
                        continue;
                    }
                    need = Some(match (need, s.drawn.get(track_id)) {
                        (_, None) | (Some(Need::All), _) => Need::All,
                        (None, Some(&(w, h))) => Need::Max(w, h),
                        (Some(Need::Max(mw, mh)), Some(&(w, h))) => Need::Max(mw.max(w), mh.max(h)),
                    });
                }
                // Nobody receives it: as at the start, everything, so a joiner's first
                // picture does not wait for a message to reach the publisher.
                let need = need.unwrap_or(Need::All);
                // The publisher starts with every layer: say nothing until that changes.
                if published.needed.unwrap_or(Need::All) != need {
                    told.push((publisher.clone(), track_id.clone(), need));
                }
            }
        }
        for (publisher, track_id, need) in told {
            if let Some(p) = self
                .members
                .get_mut(&publisher)
                .and_then(|m| m.published.get_mut(&track_id))
            {
                p.needed = Some(need);
            }
            self.out.push_back(super::Output::Signal {
                peer: publisher,
                msg: ServerMessage::VideoNeeded {
                    kind: TrackKind::Video,
                    max: match need {
                        Need::All => None,
                        Need::Max(w, h) => Some([w, h]),
                    },
                },
            });
        }
    }
}
