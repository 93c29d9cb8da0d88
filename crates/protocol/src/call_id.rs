//! Call ID rules: 1 to 128 characters from the URL-safe "unreserved" set of RFC 3986, so a call
//! ID can be put in a link, a file name or a log line without escaping. UUIDs and slugs such as
//! `team-standup` fit.

use crate::{ErrorCode, MAX_CALL_ID_CHARS, ProtocolError};

/// The characters a call ID may hold, for error messages and documentation.
pub const CALL_ID_ALPHABET: &str = "letters A-Z a-z, digits 0-9, and - _ . ~";

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')
}

/// Checks a call ID against the rules above.
pub fn validate_call_id(call_id: &str) -> Result<(), ProtocolError> {
    if call_id.is_empty() {
        return Err(ProtocolError::new(
            ErrorCode::InvalidCallId,
            "The call ID is empty. Type a call ID (for example team-standup).",
        ));
    }
    let chars = call_id.chars().count();
    if chars > MAX_CALL_ID_CHARS {
        return Err(ProtocolError::new(
            ErrorCode::InvalidCallId,
            format!("The call ID has {chars} characters; at most {MAX_CALL_ID_CHARS} are allowed."),
        ));
    }
    if let Some(bad) = call_id.chars().find(|c| !allowed(*c)) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidCallId,
            format!("The call ID contains {bad:?}; use only {CALL_ID_ALPHABET}."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs_and_uuids() {
        for id in [
            "a",
            "team-standup",
            "Daily_Sync.2026~1",
            "0b1f3c2e-6f43-4a8c-9a55-2f0d8a9c1e77",
            &"x".repeat(128),
        ] {
            assert!(validate_call_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_empty_long_and_odd_characters() {
        for id in [
            "",
            &"x".repeat(129),
            "with space",
            "slash/y",
            "émoji",
            "a\nb",
            "q?x",
        ] {
            let err = validate_call_id(id).expect_err(id);
            assert_eq!(err.code, ErrorCode::InvalidCallId, "{id}");
        }
    }

    #[test]
    fn length_is_counted_in_characters() {
        // 128 characters is the limit whatever their byte length; all allowed ones are ASCII, so
        // a 129-byte ASCII ID is rejected for length, not for an odd character.
        let err = validate_call_id(&"y".repeat(129)).expect_err("too long");
        assert!(err.message.contains("129 characters"), "{}", err.message);
    }
}
