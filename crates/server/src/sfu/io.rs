//! What goes into the SFU's core and what comes out of it.

use super::layers::LayerInfo;
use between_protocol::{ServerMessage, TrackInfo, TrackKind};

/// Something that happened, for the core to decide on.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<M> {
    /// The registry admitted `peer` to `room` (a fresh join, not a resume).
    Joined { peer: String, room: String },
    /// `peer` came back on a new socket: an offer it may have missed goes again.
    Resumed { peer: String },
    /// The registry removed `peer` for good.
    Left { peer: String },
    /// `peer`'s publishing connection carries a track (a new one, or a restarted one under
    /// an ID already published). `track_id` follows [`TrackInfo::subscription_id`].
    Published {
        peer: String,
        kind: TrackKind,
        track_id: String,
        media: M,
    },
    /// `peer` stopped sending `track_id` (a share ended, or its track ended).
    Unpublished { peer: String, track_id: String },
    /// The driver made offer `offer` for `peer`'s receiving connection.
    OfferReady {
        peer: String,
        offer: u64,
        sdp: String,
    },
    /// The driver could not make offer `offer`.
    OfferFailed { peer: String, offer: u64 },
    /// The client answered offer `offer` (`None`: a client that does not number its
    /// answers, taken as the answer to the offer waiting).
    Answered {
        peer: String,
        offer: Option<u64>,
        sdp: String,
    },
    /// The driver could not give `peer` a receiving connection or a sender on it: its
    /// connection starts over, a little later.
    SubscribeFailed { peer: String },
    /// The driver applied (or failed to apply) the answer to `offer`.
    AnswerApplied {
        peer: String,
        offer: u64,
        error: Option<String>,
    },
    /// The client asks for its receiving connection to be built again (it never came up).
    Resubscribe { peer: String },
    /// `subscriber` reported `fraction_lost` (of 256) on its copy of `publisher`'s track.
    ReceiverReport {
        subscriber: String,
        publisher: String,
        track_id: String,
        fraction_lost: u8,
    },
    /// `subscriber` needs a keyframe of `publisher`'s `track_id`: it asked, or (`fresh`) it
    /// just became ready to receive the track (bound and connected).
    KeyframeWanted {
        publisher: String,
        track_id: String,
        subscriber: String,
        fresh: bool,
        /// The simulcast layer it needs a keyframe of (`None`: any, every one).
        layer: Option<u8>,
    },
    /// The layers `peer` now sends of its video `track_id` (by the reader's measure).
    Layers {
        peer: String,
        track_id: String,
        layers: Vec<LayerInfo>,
    },
    /// `subscriber` draws `track_id` at `size` pixels (`(0, 0)`: hidden, send nothing).
    Drawn {
        subscriber: String,
        track_id: String,
        size: (u32, u32),
    },
    /// The send-side estimate of `subscriber`'s receiving connection, bits per second;
    /// `congested`: its path has shown congestion (before, the estimate only follows what is
    /// sent).
    Estimate {
        subscriber: String,
        bps: f64,
        congested: bool,
    },
}

/// Something for the drivers (or the signaling layer) to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<M> {
    /// Add a sender of `track` to `subscriber`'s receiving connection (making that connection
    /// if it has none); `media` is what the publish input carried.
    Subscribe {
        subscriber: String,
        track: TrackInfo,
        media: M,
    },
    /// Remove the sender of `track_id` from `subscriber`'s receiving connection.
    Unsubscribe {
        subscriber: String,
        track_id: String,
    },
    /// Make offer number `offer` of `subscriber`'s receiving connection as it now is, and
    /// report it with [`Input::OfferReady`] or [`Input::OfferFailed`].
    MakeOffer { subscriber: String, offer: u64 },
    /// Apply the client's answer to `offer`, then report [`Input::AnswerApplied`].
    ApplyAnswer {
        subscriber: String,
        offer: u64,
        sdp: String,
    },
    /// Close `subscriber`'s receiving connection and drop its senders; the next
    /// [`Output::Subscribe`] makes a new connection.
    ResetSubscriber { subscriber: String },
    /// A message for a participant's signaling connection.
    Signal { peer: String, msg: ServerMessage },
    /// Ask `publisher` for a keyframe of `track_id`, of simulcast layer `layer` (`None`:
    /// every layer).
    RequestKeyframe {
        publisher: String,
        track_id: String,
        layer: Option<u8>,
    },
    /// Tell `publisher` the worst loss its subscribers report for `track_id`.
    RelayLoss {
        publisher: String,
        track_id: String,
        fraction_lost: u8,
    },
    /// From now on `subscriber` gets layer `layer` of `track_id` (`None`: paused).
    SelectLayer {
        subscriber: String,
        track_id: String,
        layer: Option<u8>,
        /// Stop the old layer now instead of at the new one's keyframe (down for the
        /// budget).
        urgent: bool,
    },
    /// `peer` is gone: close all its connections.
    Close { peer: String },
}
