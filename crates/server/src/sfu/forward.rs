//! What one forwarded packet becomes on one subscriber's leg, decided without IO.
//!
//! Payload types and header-extension IDs are numbers each leg negotiates for itself: a
//! browser publishing H.264 as payload type 108 with transport-cc as extension 3 reaches a
//! subscriber whose leg calls them 102 and 4, and the subscriber's sender refuses a packet
//! carrying the publisher's numbers. So each subscription has a [`Translation`] from the
//! publisher leg's numbering to its own (what LiveKit calls translation parameters), built
//! when either leg (re)negotiates, and a [`Forwarder`] applies it with the subscription's own
//! SSRC and continuous sequence numbers and timestamps ([`Rewriter`]) per packet, after its
//! [`LayerSwitch`] let through only the simulcast layer chosen for the subscriber.

use super::rewrite::Rewriter;
use super::switch::LayerSwitch;
use between_media::rtp::RtpPacket;
use rtc::rtp::header::{EXTENSION_PROFILE_ONE_BYTE, EXTENSION_PROFILE_TWO_BYTE};
use rtc::rtp_transceiver::rtp_sender::RTCRtpParameters;

/// Header extensions that describe one hop, not the media: each leg writes its own (or none),
/// so the publisher's values never go on. transport-cc numbers the packets of one transport,
/// abs-send-time stamps when this sender sent, and mid/rid name the publisher's sections.
const HOP_BY_HOP: [&str; 5] = [
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
];

/// One codec as a leg negotiated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegCodec {
    pub payload_type: u8,
    /// Lowercase, e.g. `video/h264`.
    pub mime: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
}

/// A leg's negotiated numbering: its codecs and header extensions. No codecs: the
/// subscriber declined the track (its answer turned the section down).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegParams {
    pub codecs: Vec<LegCodec>,
    /// `(id, uri)`.
    pub extensions: Vec<(u8, String)>,
}

impl LegParams {
    pub fn from_rtc(params: &RTCRtpParameters) -> Self {
        Self {
            codecs: params
                .codecs
                .iter()
                .map(|c| LegCodec {
                    payload_type: c.payload_type,
                    mime: c.rtp_codec.mime_type.to_ascii_lowercase(),
                    clock_rate: c.rtp_codec.clock_rate,
                    channels: c.rtp_codec.channels,
                    fmtp: c.rtp_codec.sdp_fmtp_line.clone(),
                })
                .collect(),
            extensions: params
                .header_extensions
                .iter()
                .filter_map(|e| Some((u8::try_from(e.id).ok()?, e.uri.clone())))
                .collect(),
        }
    }
}

/// The `packetization-mode` of an H.264 fmtp line (0 when absent, as RFC 6184 says).
fn packetization_mode(fmtp: &str) -> &str {
    fmtp.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("packetization-mode"))
        .map_or("0", |(_, v)| v.trim())
}

/// Whether a sink codec can carry a source codec's packets unchanged.
fn same_codec(a: &LegCodec, b: &LegCodec) -> bool {
    a.mime == b.mime
        && a.clock_rate == b.clock_rate
        && a.channels == b.channels
        && (a.mime != "video/h264" || packetization_mode(&a.fmtp) == packetization_mode(&b.fmtp))
}

/// No mapping: the payload type or extension has no counterpart on the sink leg.
const NONE: u8 = 0;

/// The publisher leg's numbers → the subscriber leg's, as lookup tables (a packet costs two
/// array reads per field, nothing allocated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// By source payload type: the sink's payload type + 1 (0: none).
    payload_types: [u8; 128],
    /// By source extension ID: the sink's ID (0: removed).
    extensions: [u8; 256],
    /// The sink leg takes nothing: the subscriber declined the track.
    declined: bool,
}

impl Translation {
    pub fn new(source: &LegParams, sink: &LegParams) -> Self {
        let mut payload_types = [NONE; 128];
        for s in &source.codecs {
            // The sink's codec with the same fmtp if there is one, else any that carries it.
            let to = sink
                .codecs
                .iter()
                .find(|k| same_codec(s, k) && k.fmtp == s.fmtp)
                .or_else(|| sink.codecs.iter().find(|k| same_codec(s, k)));
            if let Some(to) = to
                && let Some(slot) = payload_types.get_mut(usize::from(s.payload_type))
                && to.payload_type < 128
            {
                *slot = to.payload_type + 1;
            }
        }
        let mut extensions = [NONE; 256];
        for (id, uri) in &source.extensions {
            if HOP_BY_HOP.contains(&uri.as_str()) {
                continue;
            }
            if let Some((to, _)) = sink.extensions.iter().find(|(_, u)| u == uri) {
                extensions[usize::from(*id)] = *to;
            }
        }
        Self {
            payload_types,
            extensions,
            declined: sink.codecs.is_empty(),
        }
    }

    /// Renumbers `packet` for the sink leg, or says why it cannot go there.
    pub fn apply(&self, packet: &mut RtpPacket) -> Result<(), Refusal> {
        if self.declined {
            return Err(Refusal::Declined);
        }
        let h = &mut packet.header;
        let pt = self
            .payload_types
            .get(usize::from(h.payload_type))
            .copied()
            .unwrap_or(NONE);
        if pt == NONE {
            return Err(Refusal::PayloadType(h.payload_type));
        }
        h.payload_type = pt - 1;
        if !h.extension {
            return Ok(());
        }
        let known_profile = h.extension_profile == EXTENSION_PROFILE_ONE_BYTE
            || h.extension_profile == EXTENSION_PROFILE_TWO_BYTE;
        if known_profile {
            h.extensions.retain_mut(|e| {
                e.id = self.extensions[usize::from(e.id)];
                e.id != NONE
            });
        } else {
            // An RFC 3550 block names no extension: nothing to map it to.
            h.extensions.clear();
        }
        if h.extensions.is_empty() {
            h.extension = false;
            h.extension_profile = 0;
            h.extensions_padding = 0;
        } else {
            if h.extensions
                .iter()
                .any(|e| e.id > 14 || e.payload.is_empty())
            {
                // One-byte headers carry IDs 1-14 with 1-16 bytes; beyond that, two-byte ones.
                h.extension_profile = EXTENSION_PROFILE_TWO_BYTE;
            }
            // Padding to the next 32-bit word, as rtp's own bookkeeping (set_extension)
            // expects of a header it is handed.
            h.extensions_padding = (4 - h.get_extension_payload_len() % 4) % 4;
        }
        Ok(())
    }
}

/// Why a packet did not go to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The subscriber's leg has not been negotiated yet (its answer is not in).
    Unbound,
    /// The subscriber's answer turned the track down (an audio-only peer and a video track).
    Declined,
    /// The publisher's payload type has no codec on the subscriber's leg.
    PayloadType(u8),
    /// A simulcast layer the subscriber does not get (not chosen, or paused): not a fault.
    NotSelected,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unbound => write!(f, "the subscriber's connection is not negotiated yet"),
            Self::Declined => write!(f, "the subscriber declined the track"),
            Self::PayloadType(pt) => write!(
                f,
                "payload type {pt} has no matching codec on the subscriber's connection"
            ),
            Self::NotSelected => write!(f, "another layer goes to the subscriber"),
        }
    }
}

/// One packet of a published track as its fan-out carries it: which simulcast layer it
/// belongs to (the publisher's own numbering of them; 0 without simulcast).
#[derive(Debug, Clone)]
pub struct LayerPacket {
    pub layer: u8,
    pub packet: RtpPacket,
}

/// One subscription's per-packet state: its layer, its numbering and the current translation.
pub struct Forwarder {
    rewriter: Rewriter,
    translation: Option<Translation>,
    switch: LayerSwitch,
    /// Layers switch only at keyframes (audio has one layer).
    video: bool,
}

impl Forwarder {
    /// `ssrc` is the subscription's own; `gap_ticks` the timestamp step assumed across a
    /// publisher's restart or a layer switch (one frame).
    pub fn new(ssrc: u32, gap_ticks: u32, video: bool) -> Self {
        Self {
            rewriter: Rewriter::new(ssrc, gap_ticks),
            translation: None,
            switch: LayerSwitch::default(),
            video,
        }
    }

    /// The layer this subscriber needs a keyframe of.
    pub fn keyframe_layer(&self) -> Option<u8> {
        self.switch.keyframe_layer()
    }

    /// The layer chosen for the subscriber (`None`: paused; `urgent`: the old layer stops
    /// now). True when the switch needs a keyframe of that layer.
    pub fn select(&mut self, layer: Option<u8>, urgent: bool) -> bool {
        self.switch.set_target(layer, urgent)
    }

    /// Whether a chosen layer waits for its keyframe.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.switch.waiting()
    }

    /// Both legs' numbering as now negotiated (`None`: the sink leg not yet).
    pub fn set_legs(&mut self, source: &LegParams, sink: Option<&LegParams>) {
        self.translation = sink.map(|sink| Translation::new(source, sink));
    }

    /// The decision for one packet: renumbered in place for the subscriber, or refused (the
    /// subscriber then sees a gap in the sequence, as for a packet lost on the way).
    pub fn forward(&mut self, layer: u8, packet: &mut RtpPacket) -> Result<(), Refusal> {
        let translation = self.translation.as_ref().ok_or(Refusal::Unbound)?;
        if !self.switch.admit(layer, &packet.payload, self.video) {
            return Err(Refusal::NotSelected);
        }
        translation.apply(packet)?;
        self.rewriter.rewrite(packet);
        Ok(())
    }
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
