//! Building WebRTC peer connections the Between way (only Opus and H.264, the default
//! interceptors plus keyframe-request delivery, UDP on a chosen address, no STUN) and turning
//! their callbacks into channel messages. Shared by the engine (client side) and the SFU.

use between_media::rtp::{interceptors, media_engine};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

pub enum PcEvent {
    Track(Arc<dyn TrackRemote>),
    State(RTCPeerConnectionState),
}

struct Handler {
    gathered: watch::Sender<bool>,
    events: mpsc::UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PcEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PcEvent::Track(track));
    }
}

pub struct Built {
    pub pc: Arc<dyn PeerConnection>,
    pub gathered: watch::Receiver<bool>,
    pub events: mpsc::UnboundedReceiver<PcEvent>,
}

/// A connection whose UDP sockets bind to `media_ip` (port chosen by the system).
pub async fn build(media_ip: IpAddr) -> Result<Built, String> {
    let mut engine = media_engine().map_err(|e| e.to_string())?;
    let registry = interceptors(&mut engine).map_err(|e| e.to_string())?;
    let (gathered_tx, gathered) = watch::channel(false);
    let (events_tx, events) = mpsc::unbounded_channel();
    // No mDNS: candidates carry plain IPs, and nothing binds port 5353 (which fails where
    // there is no multicast route, e.g. in a network namespace, and is not ours to take).
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            gathered: gathered_tx,
            events: events_tx,
        }))
        .with_udp_addrs(vec![format!("{media_ip}:0")])
        .build()
        .await
        .map_err(|e| e.to_string())?;
    Ok(Built {
        pc: Arc::new(pc),
        gathered,
        events,
    })
}

/// Waits until ICE gathering has finished (candidates are then inside the local SDP), at
/// most a few seconds: host candidates gather at once.
pub async fn gathered(rx: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|done| *done)).await;
}
