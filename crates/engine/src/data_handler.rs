//! `DataHandler`: sends JSON to everyone else in the call, or to one peer, reliable and in
//! order. Received messages arrive as [`crate::ConferenceEvent::Data`].

use crate::error::BAError;
use crate::link::Link;
use between_protocol::{ErrorCode, MAX_DATA_BYTES};
use serde_json::Value;

#[derive(Clone)]
pub struct DataHandler {
    pub(crate) link: Link,
}

impl DataHandler {
    /// Sends `data` to every other participant, or to `to` alone. Checked here, so a mistake
    /// is an immediate error rather than a message lost on the way. While the socket is
    /// reconnecting, messages wait and go out, in order, once it is back.
    pub fn send(&self, data: Value, to: Option<&str>) -> Result<(), BAError> {
        let size = serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(0);
        if size > MAX_DATA_BYTES {
            return Err(BAError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "The message has {size} bytes; at most {MAX_DATA_BYTES} can be sent at once."
                ),
            ));
        }
        self.link.send_data(data, to)
    }
}
