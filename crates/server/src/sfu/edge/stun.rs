//! Just enough STUN to route a first packet: is it an ICE connectivity check, and for which of
//! our connections (the ICE username's first half is the receiver's ufrag, RFC 8445 §7.2.2)?
//! The connection behind the route checks the message integrity itself; this only steers.

const HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;

/// The ufrag a STUN binding request is addressed to, or `None` for anything else (media,
/// DTLS, garbage, a STUN message of another kind or without a username).
pub fn binding_request_ufrag(packet: &[u8]) -> Option<&str> {
    if packet.len() < HEADER || packet[4..8] != MAGIC_COOKIE {
        return None;
    }
    let kind = u16::from_be_bytes([packet[0], packet[1]]);
    if kind != BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let body = packet.get(HEADER..HEADER + length)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let attr = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if attr == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (ours, _theirs) = username.split_once(':')?;
            return (!ours.is_empty()).then_some(ours);
        }
        // Attribute values are padded to a multiple of four bytes.
        let padded = 4 + len.div_ceil(4) * 4;
        rest = rest.get(padded..)?;
    }
    None
}

/// The ICE ufrag of a session description (`a=ice-ufrag:`), the first one if each media
/// section repeats it.
pub fn sdp_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
pub(crate) fn binding_request(username: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    // A PRIORITY attribute first, so the parser has to step over one.
    attrs.extend_from_slice(&0x0024u16.to_be_bytes());
    attrs.extend_from_slice(&4u16.to_be_bytes());
    attrs.extend_from_slice(&[0x6e, 0, 0x1e, 0xff]);
    attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut packet = Vec::new();
    packet.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    packet.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    packet.extend_from_slice(&MAGIC_COOKIE);
    packet.extend_from_slice(&[7; 12]);
    packet.extend_from_slice(&attrs);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_receivers_ufrag() {
        let packet = binding_request("serverUfrag:clientUfrag");
        assert_eq!(binding_request_ufrag(&packet), Some("serverUfrag"));
        // Odd lengths are padded.
        let packet = binding_request("abc:d");
        assert_eq!(binding_request_ufrag(&packet), Some("abc"));
    }

    #[test]
    fn ignores_everything_else() {
        assert_eq!(binding_request_ufrag(b""), None);
        assert_eq!(binding_request_ufrag(&[0u8; 100]), None);
        // A binding *response* to the same username.
        let mut response = binding_request("a:b");
        response[0] = 0x01;
        response[1] = 0x01;
        assert_eq!(binding_request_ufrag(&response), None);
        // No colon, empty receiver part.
        assert_eq!(binding_request_ufrag(&binding_request("nocolon")), None);
        assert_eq!(binding_request_ufrag(&binding_request(":x")), None);
        // A length that runs past the packet, or an attribute that does.
        let mut cut = binding_request("a:b");
        cut.truncate(cut.len() - 4);
        assert_eq!(binding_request_ufrag(&cut), None);
        let mut lying = binding_request("a:b");
        lying[30] = 0xff; // the USERNAME length's high byte
        assert_eq!(binding_request_ufrag(&lying), None);
        // DTLS and RTP look nothing like it.
        assert_eq!(
            binding_request_ufrag(&[
                22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]),
            None
        );
    }

    #[test]
    fn reads_the_sdp_ufrag() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:AbCd\r\na=ice-pwd:x\r\n";
        assert_eq!(sdp_ufrag(sdp), Some("AbCd"));
        assert_eq!(sdp_ufrag("v=0\r\n"), None);
    }
}
