//! Building WebRTC peer connections the Between way (only Opus and H.264, the default
//! interceptors plus keyframe-request delivery, UDP on a chosen address, no STUN), turning
//! their callbacks into channel messages, and the offer/answer steps both sides take. Shared
//! by the engine (client side) and the SFU.

mod runtime;

use between_media::bwe::EstimateHandle;
use between_media::rtp::{RtpSetupError, interceptors, media_engine};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

/// What went wrong with a connection, for the engine's and the SFU's own errors.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Setup(#[from] RtpSetupError),
    /// A step of the WebRTC stack failed (`what` names it: "the offer", "the answer", ...).
    #[error("{what} failed: {source}")]
    WebRtc {
        what: &'static str,
        #[source]
        source: webrtc::error::Error,
    },
    #[error("the connection has no local description")]
    NoLocalDescription,
}

impl TransportError {
    /// For `map_err`: the step `what` of the WebRTC stack failed.
    pub fn webrtc(what: &'static str) -> impl FnOnce(webrtc::error::Error) -> Self {
        move |source| Self::WebRtc { what, source }
    }
}

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
    /// The send-side bandwidth estimate of this connection (transport-wide feedback).
    pub estimate: EstimateHandle,
}

/// Where a connection's media sockets bind, and what address to advertise besides.
#[derive(Debug, Clone, Copy)]
pub struct MediaAddress {
    /// The local address UDP sockets bind to (port chosen by the system).
    pub bind: IpAddr,
    /// An address the machine is reachable at from outside (1:1 NAT, e.g. a cloud VM's public
    /// IP), advertised as an extra candidate next to the local one.
    pub public: Option<IpAddr>,
    /// Also gather ICE-TCP candidates (RFC 6544): a client then reaches a server's ICE-TCP
    /// port when UDP is blocked on its network. Costs a listening socket per connection.
    pub tcp: bool,
    /// Every remote candidate will be peer-reflexive (learnt from incoming checks, as behind
    /// the SFU's one-port edge): nominate such pairs at once instead of after the 1 s ICE
    /// otherwise waits for better candidates (that wait delayed first media by a second).
    pub peer_reflexive_only: bool,
}

impl From<IpAddr> for MediaAddress {
    fn from(bind: IpAddr) -> Self {
        Self {
            bind,
            public: None,
            tcp: false,
            peer_reflexive_only: false,
        }
    }
}

impl MediaAddress {
    /// A client's: UDP on `bind`, and ICE-TCP as a fallback for networks that block UDP.
    pub fn client(bind: IpAddr) -> Self {
        Self {
            bind,
            public: None,
            tcp: true,
            peer_reflexive_only: false,
        }
    }
}

/// A connection with Between's codecs and interceptors, bound as `address` says.
pub async fn build(address: impl Into<MediaAddress>) -> Result<Built, TransportError> {
    let address = address.into();
    let mut engine = media_engine()?;
    let (registry, estimate) = interceptors(&mut engine)?;
    let (gathered_tx, gathered) = watch::channel(false);
    let (events_tx, events) = mpsc::unbounded_channel();
    // No mDNS: candidates carry plain IPs, and nothing binds port 5353 (which fails where
    // there is no multicast route, e.g. in a network namespace, and is not ours to take).
    // Connectivity checks every 100 ms instead of 200 (a call connects sooner); 14 attempts
    // keep the default 1.4 s per candidate pair. 50 ms made connections fail now and then
    // under 10 % loss (the loss test).
    let mut settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(Some(Duration::from_millis(100)), Some(14));
    if address.peer_reflexive_only {
        settings = settings.with_prflx_acceptance_min_wait(Some(Duration::ZERO));
    }
    let settings = settings.build();
    let pc = PeerConnectionBuilder::new()
        .with_runtime(Arc::new(runtime::BufferedRuntime::new()))
        .with_setting_engine(settings)
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            gathered: gathered_tx,
            events: events_tx,
        }))
        .with_udp_addrs(vec![format!("{}:0", address.bind)])
        .with_tcp_addrs(if address.tcp {
            vec![format!("{}:0", address.bind)]
        } else {
            Vec::new()
        })
        .build()
        .await
        .map_err(TransportError::webrtc("creating the connection"))?;
    Ok(Built {
        pc: Arc::new(pc),
        gathered,
        events,
        estimate,
    })
}

/// Adds, for every host candidate on `address.bind`, the same candidate on `address.public`
/// (same port: a 1:1 NAT forwards it), so clients outside reach us while clients on the same
/// network keep the direct path. (The webrtc crate stores a 1:1 NAT setting but does not use
/// it, so the SDP is amended here.)
pub fn advertise_public_address(sdp: &str, address: MediaAddress) -> String {
    let Some(public) = address.public else {
        return sdp.to_string();
    };
    let bind = format!(" {} ", address.bind);
    let mut out = String::with_capacity(sdp.len() + 256);
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        let body = line.trim_end_matches(['\r', '\n']);
        if body.starts_with("a=candidate:") && body.contains(&bind) && body.contains(" typ host") {
            // A foundation of its own, and a priority just below the original's.
            let mut fields: Vec<String> = body.split(' ').map(str::to_string).collect();
            if fields.len() > 5 {
                fields[0] = format!("{}9", fields[0]);
                if let Ok(p) = fields[3].parse::<u32>() {
                    fields[3] = p.saturating_sub(1).to_string();
                }
                fields[4] = public.to_string();
                out.push_str(&fields.join(" "));
                out.push_str("\r\n");
            }
        }
    }
    out
}

/// Takes the passive ICE-TCP candidates out of a remote description, for
/// [`add_tcp_candidates`]: the webrtc crate dials a passive candidate only when it arrives
/// through `add_ice_candidate`, never when it sits inside a description.
pub fn split_tcp_candidates(sdp: &str) -> (String, Vec<RTCIceCandidateInit>) {
    let mut rest = String::with_capacity(sdp.len());
    let mut taken = Vec::new();
    let mut mline: Option<u16> = None;
    let mut mid: Option<String> = None;
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_end_matches(['\r', '\n']);
        if body.starts_with("m=") {
            mline = Some(mline.map_or(0, |m| m + 1));
            // The section's mid, wherever it sits in the section.
            mid = lines[i + 1..]
                .iter()
                .map(|l| l.trim_end_matches(['\r', '\n']))
                .take_while(|l| !l.starts_with("m="))
                .find_map(|l| l.strip_prefix("a=mid:"))
                .map(str::to_string);
        }
        if let Some(candidate) = body.strip_prefix("a=")
            && candidate.starts_with("candidate:")
            && candidate
                .split(' ')
                .nth(2)
                .is_some_and(|t| t.eq_ignore_ascii_case("tcp"))
            && candidate.contains("tcptype passive")
        {
            taken.push(RTCIceCandidateInit {
                candidate: candidate.to_string(),
                sdp_mid: mid.clone(),
                sdp_mline_index: mline,
                ..Default::default()
            });
            continue;
        }
        rest.push_str(line);
    }
    (rest, taken)
}

/// Adds the remote ICE-TCP candidates this connection has not been given yet (`known`
/// remembers them across renegotiations, which repeat them): each is dialled once.
pub async fn add_tcp_candidates(
    pc: &Arc<dyn PeerConnection>,
    candidates: Vec<RTCIceCandidateInit>,
    known: &mut HashSet<String>,
) {
    for c in candidates {
        if known.contains(&c.candidate) {
            continue;
        }
        known.insert(c.candidate.clone());
        if let Err(e) = pc.add_ice_candidate(c).await {
            tracing::debug!(error = %e, "remote ICE-TCP candidate not taken");
        }
    }
}

/// Our offer of the connection as it now is, with its candidates: the SDP to send.
pub async fn make_offer(
    pc: &Arc<dyn PeerConnection>,
    gathered_rx: &mut watch::Receiver<bool>,
) -> Result<String, TransportError> {
    let offer = pc
        .create_offer(None)
        .await
        .map_err(TransportError::webrtc("creating the offer"))?;
    pc.set_local_description(offer)
        .await
        .map_err(TransportError::webrtc("applying our offer"))?;
    local_sdp(pc, gathered_rx).await
}

/// Applies the other side's offer and makes our answer, with its candidates. `tcp`: dial the
/// offer's passive ICE-TCP candidates, remembering which (a client's; see
/// [`split_tcp_candidates`]).
pub async fn make_answer(
    pc: &Arc<dyn PeerConnection>,
    gathered_rx: &mut watch::Receiver<bool>,
    offer: String,
    tcp: Option<&mut HashSet<String>>,
) -> Result<String, TransportError> {
    set_remote(pc, offer, true, tcp).await?;
    let answer = pc
        .create_answer(None)
        .await
        .map_err(TransportError::webrtc("creating the answer"))?;
    pc.set_local_description(answer)
        .await
        .map_err(TransportError::webrtc("applying our answer"))?;
    local_sdp(pc, gathered_rx).await
}

/// Applies the other side's answer to our last offer (`tcp` as for [`make_answer`]).
pub async fn apply_answer(
    pc: &Arc<dyn PeerConnection>,
    answer: String,
    tcp: Option<&mut HashSet<String>>,
) -> Result<(), TransportError> {
    set_remote(pc, answer, false, tcp).await
}

/// Applies the other side's description (`offer`, or an answer), then dials its passive
/// ICE-TCP candidates if `tcp` keeps track of them.
async fn set_remote(
    pc: &Arc<dyn PeerConnection>,
    sdp: String,
    offer: bool,
    tcp: Option<&mut HashSet<String>>,
) -> Result<(), TransportError> {
    let (sdp, candidates) = match tcp {
        Some(_) => split_tcp_candidates(&sdp),
        None => (sdp, Vec::new()),
    };
    let (what, applying) = match offer {
        true => ("the offer", "applying the offer"),
        false => ("the answer", "applying the answer"),
    };
    let description = match offer {
        true => RTCSessionDescription::offer(sdp),
        false => RTCSessionDescription::answer(sdp),
    }
    .map_err(TransportError::webrtc(what))?;
    pc.set_remote_description(description)
        .await
        .map_err(TransportError::webrtc(applying))?;
    if let Some(known) = tcp {
        add_tcp_candidates(pc, candidates, known).await;
    }
    Ok(())
}

/// The local description once gathering is done (candidates inside).
async fn local_sdp(
    pc: &Arc<dyn PeerConnection>,
    gathered_rx: &mut watch::Receiver<bool>,
) -> Result<String, TransportError> {
    gathered(gathered_rx).await;
    pc.local_description()
        .await
        .map(|d| d.sdp)
        .ok_or(TransportError::NoLocalDescription)
}

/// Waits until ICE gathering has finished (candidates are then inside the local SDP), at
/// most a few seconds: host candidates gather at once.
pub async fn gathered(rx: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|done| *done)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_tcp_candidates_are_taken_out_with_their_section() {
        let sdp = "v=0\r\nm=audio 9 X 111\r\na=candidate:1 1 udp 5 10.0.0.5 4000 typ host\r\na=candidate:2 1 tcp 4 10.0.0.5 4000 typ host tcptype passive\r\na=mid:0\r\nm=video 9 X 102\r\na=mid:1\r\na=candidate:3 1 tcp 4 10.0.0.5 9 typ host tcptype active\r\n";
        let (rest, taken) = split_tcp_candidates(sdp);
        assert_eq!(taken.len(), 1);
        assert_eq!(
            taken[0].candidate,
            "candidate:2 1 tcp 4 10.0.0.5 4000 typ host tcptype passive"
        );
        assert_eq!(taken[0].sdp_mid.as_deref(), Some("0"));
        assert_eq!(taken[0].sdp_mline_index, Some(0));
        assert!(!rest.contains("tcptype passive"));
        assert!(rest.contains("udp 5 10.0.0.5"));
        assert!(rest.contains("tcptype active"));
    }

    #[test]
    fn public_candidates_follow_their_host_twins() {
        let sdp = "v=0\r\na=candidate:123 1 udp 2130706431 10.0.0.5 40000 typ host\r\na=candidate:7 1 udp 99 192.168.1.2 5 typ host\r\na=end\r\n";
        let address = MediaAddress {
            bind: "10.0.0.5".parse().expect("ip"),
            public: Some("203.0.113.7".parse().expect("ip")),
            tcp: false,
            peer_reflexive_only: false,
        };
        let out = advertise_public_address(sdp, address);
        assert!(out.contains("a=candidate:123 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"));
        assert!(out.contains("a=candidate:1239 1 udp 2130706430 203.0.113.7 40000 typ host\r\n"));
        assert_eq!(
            out.matches("203.0.113.7").count(),
            1,
            "only candidates on the bind address"
        );
        assert!(out.ends_with("a=end\r\n"));
        let none = MediaAddress {
            public: None,
            ..address
        };
        assert_eq!(advertise_public_address(sdp, none), sdp);
    }
}
