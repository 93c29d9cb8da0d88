//! A published track as the data plane shares it (the core's `M`): what a subscriber's driver
//! needs to send it on.

use super::forward::{LayerPacket, LegParams};
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

#[derive(Debug)]
pub(crate) struct PublishedMedia {
    pub codec: RTCRtpCodec,
    pub fanout: broadcast::Sender<LayerPacket>,
    /// The publisher leg's numbering for the track (a restart may change it).
    pub source: watch::Receiver<Arc<LegParams>>,
}

pub(crate) type Media = Arc<PublishedMedia>;
