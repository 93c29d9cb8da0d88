//! Media for one call: publishing local tracks to the SFU and playing out everyone else's.
//!
//! A session runs as one driver task per call. It offers a *publisher* connection with the
//! local tracks (audio: Opus, video: H.264), answers the server's offers on a *subscriber*
//! connection, and starts a task per remote track. Remote audio goes into a per-peer jitter
//! buffer; one playout task pops all of them every 20 ms, decodes (with FEC and concealment),
//! hands each peer's audio to the tap and the mix to the speaker. Remote video is reassembled,
//! decoded and published as the latest frame of a [`RemoteVideo`]; lost packets or an
//! undecodable picture ask the sender for a keyframe.

//!
//! Parts, each importing only what is below it: [`shared`] (the options and sources behind
//! locks), [`video`] (remote pictures), [`local`] (`LocalParticipant`), [`tasks`]; then
//! [`publish`], [`receive`], [`playout`], [`share`], and [`session`] over them all. They reach
//! the call through a [`crate::link::Link`] and emit through the call's event hub; none of
//! them knows the call itself.

pub(crate) mod drawn;
pub(crate) mod local;
mod playout;
mod publish;
mod receive;
mod send_video;
pub(crate) mod session;
pub(crate) mod share;
pub(crate) mod shared;
pub mod sources;
mod tasks;
mod track;
pub(crate) mod video;

pub use drawn::DrawnTile;
pub use local::LocalParticipant;
pub use shared::MediaOptions;
pub use video::{RemoteVideo, VideoFrame};
