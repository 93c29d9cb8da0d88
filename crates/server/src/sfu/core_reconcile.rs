//! The routing rule applied: what each participant receives made to match what its room
//! publishes, with the subscribe/unsubscribe outputs and the renegotiation that follow.

use super::Core;
use crate::sfu::io::Output;
use crate::sfu::route::{self, Party};
use between_protocol::TrackInfo;
use std::collections::BTreeMap;

impl<M: Clone> Core<M> {
    pub(super) fn reconcile_room(&mut self, room: &str) {
        let members = self.rooms.get(room).cloned().unwrap_or_default();
        for id in members {
            self.reconcile(&id);
        }
    }

    /// Brings what `peer` receives in line with the routing rule: subscribes it to what it
    /// should get and does not, unsubscribes it from what it should no longer get, and
    /// renegotiates its receiving connection if anything changed.
    pub(super) fn reconcile(&mut self, peer: &str) {
        let Some(me) = self.members.get(peer) else {
            return;
        };
        let subscriber = Party {
            id: peer,
            room: &me.room,
        };
        let mut wanted: BTreeMap<&str, (TrackInfo, &M)> = BTreeMap::new();
        for id in self.rooms.get(&me.room).into_iter().flatten() {
            let Some(other) = self.members.get(id) else {
                continue;
            };
            let publisher = Party {
                id,
                room: &other.room,
            };
            for (track_id, p) in &other.published {
                if route::receives(subscriber, publisher, p.kind) {
                    let info = TrackInfo {
                        peer_id: id.clone(),
                        kind: p.kind,
                        track_id: track_id.clone(),
                    };
                    wanted.insert(track_id, (info, &p.media));
                }
            }
        }
        let gone: Vec<String> = me
            .subscriptions
            .keys()
            .filter(|id| !wanted.contains_key(id.as_str()))
            .cloned()
            .collect();
        let new: Vec<(TrackInfo, M)> = wanted
            .into_iter()
            .filter(|(id, _)| !me.subscriptions.contains_key(*id))
            .map(|(_, (info, media))| (info, media.clone()))
            .collect();
        if gone.is_empty() && new.is_empty() {
            return;
        }
        let Some(me) = self.members.get_mut(peer) else {
            return;
        };
        let mut forget = Vec::new();
        for track_id in gone {
            if let Some(info) = me.subscriptions.remove(&track_id) {
                forget.push(info);
            }
            me.drawn.remove(&track_id);
            me.choices.remove(&track_id);
            me.selected.remove(&track_id);
            self.out.push_back(Output::Unsubscribe {
                subscriber: peer.to_string(),
                track_id,
            });
        }
        for (track, media) in new {
            me.choices.remove(&track.track_id);
            me.selected.remove(&track.track_id);
            me.subscriptions
                .insert(track.track_id.clone(), track.clone());
            self.out.push_back(Output::Subscribe {
                subscriber: peer.to_string(),
                track,
                media,
            });
        }
        // Its feedback about the tracks it no longer receives counts no more.
        for info in forget {
            if let Some(p) = self
                .members
                .get_mut(&info.peer_id)
                .and_then(|m| m.published.get_mut(&info.track_id))
            {
                p.forget(peer);
            }
        }
        if let Some(me) = self.members.get_mut(peer) {
            let subscriptions = &me.subscriptions;
            me.drawn.retain(|id, _| subscriptions.contains_key(id));
        }
        self.renegotiate(peer);
        self.allocate(peer);
        if let Some(room) = self.members.get(peer).map(|m| m.room.clone()) {
            self.needs(&room);
        }
    }

    /// `peer`'s receiving connection changed: offer it now, or after the exchange under way.
    pub(super) fn renegotiate(&mut self, peer: &str) {
        let Some(m) = self.members.get_mut(peer) else {
            return;
        };
        let subscriptions = &m.subscriptions;
        if let Some(offer) = m
            .negotiation
            .changed(|| subscriptions.values().cloned().collect())
        {
            self.out.push_back(Output::MakeOffer {
                subscriber: peer.to_string(),
                offer,
            });
        }
    }
}
