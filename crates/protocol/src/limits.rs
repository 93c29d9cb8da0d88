//! Size limits. They bound what one participant can make the server hold or relay, so a
//! misbehaving client costs the others nothing.

/// Largest signaling message (one WebSocket text frame), in bytes. Room for a full
/// [`MAX_DATA_BYTES`] payload plus its envelope.
pub const MAX_MESSAGE_BYTES: usize = 72 * 1024;

/// Largest `dataHandler` payload, as serialized JSON (the API promises 64 KiB per message).
pub const MAX_DATA_BYTES: usize = 64 * 1024;

/// Largest `extraData`, as serialized JSON. Every peer receives it for every other peer, so it
/// is kept small: enough for a name, an avatar URL and a user ID.
pub const MAX_EXTRA_DATA_BYTES: usize = 4 * 1024;

/// Longest call ID, in characters.
pub const MAX_CALL_ID_CHARS: usize = 128;

/// Longest peer ID a client may name (server-generated IDs are much shorter).
pub const MAX_PEER_ID_CHARS: usize = 64;
