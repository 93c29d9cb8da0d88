//! The messages themselves. JSON text frames, internally tagged by `type`, fields in camelCase:
//!
//! ```text
//! → {"type":"join","v":1,"apiKey":"…","callId":"team-standup","extraData":{"name":"Ada"}}
//! ← {"type":"joined","v":1,"peerId":"…","peers":[{"id":"…","extraData":"{\"name\":\"Bo\"}"}],"resumeToken":"…","resumed":false}
//! ← {"type":"peerJoined","peer":{"id":"…","extraData":"…"}}
//! → {"type":"data","data":{"text":"hi"},"to":"…"}      (`to` absent: everyone else)
//! ← {"type":"data","from":"…","data":{"text":"hi"}}
//! → {"type":"leave"}
//! ← {"type":"peerLeft","peerId":"…"}
//! ← {"type":"error","code":"invalid_api_key","message":"…","fatal":true}
//! → {"type":"publish","sdp":"v=0…"}                 (offer of the sending connection)
//! ← {"type":"publishAnswer","sdp":"v=0…"}
//! ← {"type":"subscribeOffer","sdp":"v=0…","tracks":[{"peerId":"…","kind":"audio","trackId":"…"}]}
//! → {"type":"subscribeAnswer","sdp":"v=0…"}
//! → {"type":"mediaState","audioMuted":true,"videoMuted":false}
//! → {"type":"unpublish","kind":"screen"}             (stop sending that track, e.g. a share)
//! → {"type":"resubscribe"}                           (the receiving connection never came up)
//! ← {"type":"peerMedia","peerId":"…","audioMuted":true,"videoMuted":false}
//! ```
//!
//! Media goes through the server's SFU on two WebRTC connections per participant: one it
//! publishes on (the client offers; its tracks are named by kind), one it receives everyone
//! else's tracks on (the server offers, again whenever tracks come or go, and lists which peer
//! and kind each track is). ICE candidates travel inside the SDP (gathering completes before an
//! offer or answer is sent), so there is no trickle message.
//!
//! `join` must be the first message and carries the protocol version `v`. A client that lost
//! its socket sends `join` again with `resume` (its old peer ID and the server's resume token)
//! to keep its identity; the server answers `resumed: true` if it still held the slot.
//!
//! Data messages carry sequence numbers in both directions so that none is lost or doubled
//! across a reconnect: the server numbers what it delivers to each participant (`seq`), the
//! client numbers what it sends (`seq`). On resume the client says the last `seq` it
//! received (`lastSeq`) and the server replays what followed; `joined.ackedSeq` says the last
//! client `seq` the server took, and the client resends what followed. Duplicates are dropped
//! by number on both sides.

use crate::limits::{MAX_DATA_BYTES, MAX_EXTRA_DATA_BYTES, MAX_MESSAGE_BYTES, MAX_PEER_ID_CHARS};
use crate::{ErrorCode, ProtocolError, validate_call_id};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this crate speaks, sent in `join` and `joined`.
pub const PROTOCOL_VERSION: u32 = 1;

const MAX_API_KEY_CHARS: usize = 256;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ClientMessage {
    Join {
        v: u32,
        api_key: String,
        call_id: String,
        #[serde(default)]
        extra_data: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Resume>,
    },
    Data {
        data: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// The client's own increasing number for this message, for resends after a resume.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    Leave,
    /// An SDP offer for this participant's sending connection (first, or renegotiated).
    Publish {
        sdp: String,
    },
    /// The answer to the server's latest `subscribeOffer`. `offer` echoes that offer's
    /// number, so an answer to an offer the server replaced is told apart (clients that do
    /// not send it answer whatever offer waits).
    SubscribeAnswer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offer: Option<u64>,
    },
    /// This participant muted or unmuted; the others get `peerMedia`.
    MediaState {
        audio_muted: bool,
        video_muted: bool,
    },
    /// This participant stopped sending a track (a screen share ended): everyone's
    /// subscription to it goes at once, without waiting for the track to time out.
    Unpublish {
        kind: TrackKind,
    },
    /// The receiving connection did not come up (a handshake lost on a bad network): the
    /// server drops it and offers everything again on a new one.
    Resubscribe,
    /// The size this participant draws a video it receives at (`trackId` as its
    /// `subscribeOffer` named it; 0x0: not drawn, send nothing): the server forwards the
    /// smallest simulcast layer that covers it.
    VideoSize {
        track_id: String,
        width: u32,
        height: u32,
    },
}

const CLIENT_TYPES: &[&str] = &[
    "join",
    "data",
    "leave",
    "publish",
    "subscribeAnswer",
    "mediaState",
    "unpublish",
    "resubscribe",
    "videoSize",
];

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackKind {
    Audio,
    Video,
    Screen,
}

impl TrackKind {
    /// The track ID a publisher gives this kind in its SDP (`msid`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Screen => "screen",
        }
    }

    /// The kind a publisher's track ID names: the kind itself, optionally followed by `#` and
    /// anything (each screen share is a new track, `screen#2`: WebRTC stacks tell remote
    /// tracks apart by ID, and a reused ID would look like the old track).
    pub fn of_published(track_id: &str) -> Option<Self> {
        Self::parse(track_id.split_once('#').map_or(track_id, |(kind, _)| kind))
    }

    /// The kind of a track a publisher sends, from its SDP media section (`audio`: an audio
    /// section) and its track ID: video is a screen share when its ID names one (`screen`,
    /// `screen#N`, as the engine sends it) and a camera otherwise, whatever the ID (browsers
    /// make random ones).
    pub fn of_media(audio: bool, track_id: &str) -> Self {
        match (audio, Self::of_published(track_id)) {
            (true, _) => Self::Audio,
            (false, Some(Self::Screen)) => Self::Screen,
            (false, _) => Self::Video,
        }
    }

    pub fn parse(track_id: &str) -> Option<Self> {
        match track_id {
            "audio" => Some(Self::Audio),
            "video" => Some(Self::Video),
            "screen" => Some(Self::Screen),
            _ => None,
        }
    }
}

/// One track of a subscriber connection: whose it is and what it carries. `track_id` is the
/// track's ID in the SDP (`msid`), unique within the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    pub peer_id: String,
    pub kind: TrackKind,
    pub track_id: String,
}

impl TrackInfo {
    /// The ID of `publisher`'s `kind` track on a subscriber's connection: `{publisher}-audio`,
    /// `{publisher}-video`, `{publisher}-screen#{ssrc}`. A camera or microphone keeps its ID
    /// when its stream restarts (subscribers see one continuous track); each screen share is
    /// a track of its own, because WebRTC stacks know remote tracks by ID and would take a new
    /// share under an old ID for the old, ended one.
    pub fn subscription_id(publisher: &str, kind: TrackKind, ssrc: u32) -> String {
        match kind {
            TrackKind::Screen => format!("{publisher}-screen#{ssrc}"),
            TrackKind::Audio | TrackKind::Video => format!("{publisher}-{}", kind.as_str()),
        }
    }

    /// The publisher and kind a subscription ID names (see [`TrackInfo::subscription_id`]).
    pub fn parse_subscription_id(track_id: &str) -> Option<(&str, TrackKind)> {
        let (publisher, kind) = track_id.rsplit_once('-')?;
        if publisher.is_empty() {
            return None;
        }
        Some((publisher, TrackKind::of_published(kind)?))
    }
}

/// Proof that a reconnecting client is the participant it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    pub peer_id: String,
    pub token: String,
    /// The last data `seq` this client received from the server.
    #[serde(default)]
    pub last_seq: u64,
}

/// Another participant as this one sees it. `extra_data` is a string, as the API promises: the
/// string the peer gave, or the JSON text of any other value it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub id: String,
    pub extra_data: String,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    Joined {
        v: u32,
        peer_id: String,
        peers: Vec<PeerInfo>,
        resume_token: String,
        resumed: bool,
        /// On resume: the last client data `seq` the server took; the client resends later ones.
        #[serde(default)]
        acked_seq: u64,
    },
    PeerJoined {
        peer: PeerInfo,
    },
    PeerLeft {
        peer_id: String,
    },
    Data {
        from: String,
        data: Value,
        /// Numbered per recipient, from 1, so a resumed client can say what it has.
        seq: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
        /// The server closes the socket after a fatal error; the client must not rejoin with
        /// the same request.
        fatal: bool,
    },
    PublishAnswer {
        sdp: String,
    },
    SubscribeOffer {
        sdp: String,
        tracks: Vec<TrackInfo>,
        /// This offer's number, to echo in the answer.
        #[serde(default)]
        offer: u64,
        /// Which receiving connection it is for: a new number means the server made a new
        /// one (the client's must be new too), and an offer for a connection the client gave
        /// up (it asked to `resubscribe`) is stale.
        #[serde(default)]
        connection: u64,
    },
    PeerMedia {
        peer_id: String,
        audio_muted: bool,
        video_muted: bool,
    },
    /// Dynacast: the largest size anyone draws this participant's `kind` video at. `max`
    /// absent: someone draws it without saying a size (so at full size); `[0, 0]`: nobody
    /// draws it. The publisher encodes only the simulcast layers up to the smallest one that
    /// covers `max`; none for `[0, 0]`.
    VideoNeeded {
        kind: TrackKind,
        #[serde(default)]
        max: Option<[u32; 2]>,
    },
    /// The server stopped (`paused`) or resumed forwarding the video `trackId` to this
    /// participant because its link cannot carry even the smallest layer beside the audio:
    /// the page shows a poor connection rather than a frozen picture.
    BandwidthPause {
        track_id: String,
        paused: bool,
    },
}

const SERVER_TYPES: &[&str] = &[
    "joined",
    "peerJoined",
    "peerLeft",
    "data",
    "error",
    "publishAnswer",
    "subscribeOffer",
    "peerMedia",
    "videoNeeded",
    "bandwidthPause",
];

impl ServerMessage {
    pub fn error(err: &ProtocolError, fatal: bool) -> Self {
        Self::Error {
            code: err.code,
            message: err.message.clone(),
            fatal,
        }
    }
}

/// Serializes a message. Our message types always serialize (string keys, no custom impls).
pub fn encode<M: Serialize>(msg: &M) -> String {
    serde_json::to_string(msg).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","code":"internal","message":"encode: {e}","fatal":false}}"#)
    })
}

/// The string peers receive for a participant's `extraData`.
pub fn extra_data_to_string(extra_data: &Value) -> String {
    match extra_data {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Decodes and validates a client message: size, JSON, known type, field types, every limit.
pub fn decode_client(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value = parse_envelope(text, CLIENT_TYPES)?;
    if value.get("type").and_then(Value::as_str) == Some("join") {
        check_version(&value)?;
    }
    let msg: ClientMessage = serde_json::from_value(value).map_err(|e| {
        ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!("Malformed message: {e}."),
        )
    })?;
    validate_client(&msg)?;
    Ok(msg)
}

/// Decodes a server message (the client's side). Only size, JSON and shape are checked: the
/// client trusts the server's content but must not crash on a newer or broken one.
pub fn decode_server(text: &str) -> Result<ServerMessage, ProtocolError> {
    let value = parse_envelope(text, SERVER_TYPES)?;
    serde_json::from_value(value).map_err(|e| {
        ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!("Malformed server message: {e}."),
        )
    })
}

fn parse_envelope(text: &str, known: &[&str]) -> Result<Value, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "The message has {} bytes; at most {MAX_MESSAGE_BYTES} are allowed.",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!("The message is not valid JSON: {e}."),
        )
    })?;
    let Some(ty) = value.get("type") else {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "The message is not a JSON object with a \"type\" field.",
        ));
    };
    let Some(ty) = ty.as_str() else {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "The message's \"type\" field is not a string.",
        ));
    };
    if !known.contains(&ty) {
        return Err(ProtocolError::new(
            ErrorCode::UnknownMessageType,
            format!(
                "Unknown message type {:?}; known types are {}.",
                truncate(ty, 40),
                known.join(", ")
            ),
        ));
    }
    Ok(value)
}

fn check_version(value: &Value) -> Result<(), ProtocolError> {
    match value.get("v").and_then(Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => Ok(()),
        Some(v) => Err(ProtocolError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "This server speaks protocol version {PROTOCOL_VERSION}, the client sent {v}. Update the app."
            ),
        )),
        None => Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "The join message has no protocol version \"v\".",
        )),
    }
}

fn validate_client(msg: &ClientMessage) -> Result<(), ProtocolError> {
    match msg {
        ClientMessage::Join {
            api_key,
            call_id,
            extra_data,
            resume,
            ..
        } => {
            if api_key.is_empty() || api_key.chars().count() > MAX_API_KEY_CHARS {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidApiKey,
                    "The API key is missing or malformed. Check the key in the settings.",
                ));
            }
            validate_call_id(call_id)?;
            let size = json_len(extra_data);
            if size > MAX_EXTRA_DATA_BYTES {
                return Err(ProtocolError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "extraData has {size} bytes as JSON; at most {MAX_EXTRA_DATA_BYTES} are allowed."
                    ),
                ));
            }
            if let Some(r) = resume {
                validate_peer_id(&r.peer_id)?;
                if r.token.len() > MAX_PEER_ID_CHARS {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidArgument,
                        "The resume token is malformed.",
                    ));
                }
            }
        }
        ClientMessage::Data { data, to, .. } => {
            let size = json_len(data);
            if size > MAX_DATA_BYTES {
                return Err(ProtocolError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "The data message has {size} bytes as JSON; at most {MAX_DATA_BYTES} are allowed."
                    ),
                ));
            }
            if let Some(to) = to {
                validate_peer_id(to)?;
            }
        }
        ClientMessage::Publish { sdp } | ClientMessage::SubscribeAnswer { sdp, .. } => {
            if sdp.trim().is_empty() || !sdp.starts_with("v=") {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidMessage,
                    "The SDP is empty or does not start with v=.",
                ));
            }
        }
        ClientMessage::Unpublish { kind } => {
            // A camera or microphone track is replaced, never withdrawn.
            if *kind != TrackKind::Screen {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidArgument,
                    "Only a screen share can be unpublished; mute the camera or microphone instead.",
                ));
            }
        }
        ClientMessage::VideoSize {
            track_id,
            width,
            height,
        } => {
            // A subscription ID: a peer ID, a dash, a kind and a number.
            if track_id.is_empty() || track_id.len() > MAX_PEER_ID_CHARS + 32 {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidArgument,
                    format!("{:?} is not a track ID.", truncate(track_id, 40)),
                ));
            }
            if *width > 16_384 || *height > 16_384 {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidArgument,
                    format!("A video is drawn at most 16384x16384, not {width}x{height}."),
                ));
            }
        }
        ClientMessage::Leave | ClientMessage::MediaState { .. } | ClientMessage::Resubscribe => {}
    }
    Ok(())
}

fn validate_peer_id(id: &str) -> Result<(), ProtocolError> {
    if id.is_empty() || id.len() > MAX_PEER_ID_CHARS {
        return Err(ProtocolError::new(
            ErrorCode::InvalidArgument,
            format!("{:?} is not a peer ID.", truncate(id, 40)),
        ));
    }
    Ok(())
}

/// The length of a value's JSON text, counted without building the text.
pub(crate) fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail; a value that could not serialize counts as empty.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
