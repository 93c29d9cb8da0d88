//! What every driver shares: where connections bind, how SDP crosses the one-port edge, and
//! the packet counters.

use super::edge;
use between_transport::{Built, MediaAddress, TransportError, advertise_public_address, build};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use webrtc::peer_connection::PeerConnection;

/// Packet counters for `/metrics` and `between bench sfu`.
#[derive(Default)]
pub(crate) struct RtpCounters {
    pub received: AtomicU64,
    /// Written to a subscriber's connection.
    pub forwarded: AtomicU64,
    /// Not sendable on a subscriber's leg (a codec it did not negotiate).
    pub refused: AtomicU64,
    /// Not sent for a passing reason: the subscriber's leg not negotiated yet, the
    /// subscriber behind, its connection closing.
    pub dropped: AtomicU64,
}

impl RtpCounters {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub(crate) struct Env {
    media: MediaAddress,
    /// The one-port edge, when configured: connections then bind on loopback behind it.
    pub edge: Option<edge::Edge>,
    pub counters: RtpCounters,
    /// Media connections open now, for metrics.
    open: AtomicUsize,
}

impl Env {
    pub fn new(media: MediaAddress, edge: Option<edge::Edge>) -> Self {
        Self {
            media,
            edge,
            counters: RtpCounters::default(),
            open: AtomicUsize::new(0),
        }
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A new connection: behind the edge on loopback, or on the media address.
    pub async fn connect(&self) -> Result<Built, TransportError> {
        let address = match &self.edge {
            Some(_) => MediaAddress {
                peer_reflexive_only: true,
                ..MediaAddress::from(edge::INTERNAL_IP)
            },
            None => self.media,
        };
        let built = build(address).await?;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(built)
    }

    /// Closes a connection and, behind the edge, its route.
    pub async fn close(&self, pc: &Arc<dyn PeerConnection>) {
        if let Some(edge) = &self.edge
            && let Some(local) = pc.local_description().await
        {
            edge.forget(&local.sdp);
        }
        let _ = pc.close().await;
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Our local description as the participant must see it.
    pub fn outgoing_sdp(&self, local_sdp: &str) -> Result<String, String> {
        match &self.edge {
            Some(edge) => edge.expose(local_sdp),
            None => Ok(advertise_public_address(local_sdp, self.media)),
        }
    }

    /// A participant's description as our connection should see it.
    pub fn incoming_sdp(&self, remote_sdp: String) -> String {
        match &self.edge {
            Some(_) => edge::sdp::without_candidates(&remote_sdp),
            None => remote_sdp,
        }
    }
}
