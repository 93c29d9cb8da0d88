//! Who else is in the call, in join order. Pure: the signaling session feeds it the server's
//! snapshots and changes, and it says which `peerJoined`/`peerLeft` events follow. After a
//! reconnect the server's snapshot is compared with what the page was told, so the page
//! sees exactly the difference, whether or not the identity was resumed.

use crate::peer::Peer;
use between_protocol::PeerInfo;

#[derive(Debug, Default)]
pub struct Roster {
    peers: Vec<Peer>,
}

/// What a snapshot changed.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub joined: Vec<Peer>,
    pub left: Vec<String>,
}

impl Roster {
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    pub fn get(&self, id: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id() == id)
    }

    /// Adds a peer; `None` if it was already known.
    pub fn add(&mut self, info: PeerInfo) -> Option<Peer> {
        if self.get(&info.id).is_some() {
            return None;
        }
        let peer = Peer::new(info);
        self.peers.push(peer.clone());
        Some(peer)
    }

    /// Removes a peer; `false` if it was not known.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.peers.len();
        self.peers.retain(|p| p.id() != id);
        self.peers.len() != before
    }

    /// Replaces the roster with the server's list. Peers known before keep their handles (and
    /// so their volume).
    pub fn replace(&mut self, snapshot: Vec<PeerInfo>) -> Changes {
        let left = self
            .peers
            .iter()
            .filter(|p| !snapshot.iter().any(|s| s.id == p.id()))
            .map(|p| p.id().to_string())
            .collect();
        let mut joined = Vec::new();
        let mut next = Vec::with_capacity(snapshot.len());
        for info in snapshot {
            match self.get(&info.id) {
                Some(known) => next.push(known.clone()),
                None => {
                    let peer = Peer::new(info);
                    joined.push(peer.clone());
                    next.push(peer);
                }
            }
        }
        self.peers = next;
        Changes { joined, left }
    }

    pub fn clear(&mut self) -> Vec<String> {
        self.peers.drain(..).map(|p| p.id().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> PeerInfo {
        PeerInfo {
            id: id.into(),
            extra_data: format!("{{\"name\":\"{id}\"}}"),
        }
    }

    fn ids(peers: &[Peer]) -> Vec<&str> {
        peers.iter().map(Peer::id).collect()
    }

    #[test]
    fn add_and_remove_are_idempotent() {
        let mut r = Roster::default();
        assert!(r.add(info("a")).is_some());
        assert!(r.add(info("a")).is_none());
        assert!(r.remove("a"));
        assert!(!r.remove("a"));
    }

    #[test]
    fn replace_reports_the_difference_and_keeps_handles() {
        let mut r = Roster::default();
        let a = r.add(info("a")).expect("new");
        a.set_volume(0.5).expect("volume");
        r.add(info("b"));
        let changes = r.replace(vec![info("a"), info("c")]);
        assert_eq!(ids(&changes.joined), vec!["c"]);
        assert_eq!(changes.left, vec!["b".to_string()]);
        assert_eq!(ids(r.peers()), vec!["a", "c"]);
        assert_eq!(r.get("a").expect("kept").volume(), 0.5);
    }

    #[test]
    fn replace_with_the_same_list_changes_nothing() {
        let mut r = Roster::default();
        r.replace(vec![info("a"), info("b")]);
        assert_eq!(r.replace(vec![info("a"), info("b")]), Changes::default());
    }
}
