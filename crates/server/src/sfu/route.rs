//! Who receives what: the SFU's one routing rule. Everything that decides whether a
//! subscriber gets a track (a join, a publish, a resubscribe) asks [`receives`], so a new
//! rule (grants, onsite rooms, layers) changes one function and its tests.

use between_protocol::TrackKind;

/// A participant as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Party<'a> {
    pub id: &'a str,
    /// The room's key, unique across tenants.
    pub room: &'a str,
}

/// Does `subscriber` receive `publisher`'s track of `kind`? Today: everyone in the same
/// room except the publisher itself, every kind.
pub fn receives(subscriber: Party<'_>, publisher: Party<'_>, _kind: TrackKind) -> bool {
    subscriber.room == publisher.room && subscriber.id != publisher.id
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [TrackKind; 3] = [TrackKind::Audio, TrackKind::Video, TrackKind::Screen];

    fn party<'a>(id: &'a str, room: &'a str) -> Party<'a> {
        Party { id, room }
    }

    #[test]
    fn others_in_the_room_receive_every_kind() {
        for kind in KINDS {
            assert!(receives(party("b", "t/r"), party("a", "t/r"), kind));
        }
    }

    #[test]
    fn nobody_receives_their_own_tracks() {
        for kind in KINDS {
            assert!(!receives(party("a", "t/r"), party("a", "t/r"), kind));
        }
    }

    #[test]
    fn rooms_and_tenants_are_apart() {
        assert!(!receives(
            party("b", "t/r2"),
            party("a", "t/r"),
            TrackKind::Audio
        ));
        // The same call ID under another tenant is another room.
        assert!(!receives(
            party("b", "u/r"),
            party("a", "t/r"),
            TrackKind::Video
        ));
    }
}
