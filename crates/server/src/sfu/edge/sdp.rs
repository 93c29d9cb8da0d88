//! Candidate surgery on session descriptions for the one-port edge: our connections' own
//! (internal, loopback) candidates are replaced by the edge's, and the client's candidates are
//! dropped so our side only ever answers checks that came through the edge.

use std::net::{IpAddr, SocketAddr};

/// A transport the edge listens on, advertised as a host candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeCandidate {
    Udp(SocketAddr),
    /// ICE-TCP, passive (RFC 6544): clients connect to it.
    Tcp(SocketAddr),
}

/// Host-candidate priorities (RFC 8445 §5.1.2.1): type preference 126 for UDP; ICE-TCP a
/// step below so it is only chosen when UDP does not get through; each extra address one
/// below the previous.
fn priority(candidate: &EdgeCandidate, index: usize) -> u32 {
    let type_pref: u32 = match candidate {
        EdgeCandidate::Udp(_) => 126,
        EdgeCandidate::Tcp(_) => 90,
    };
    let local_pref = 65535u32.saturating_sub(index as u32);
    (type_pref << 24) | (local_pref << 8) | 255
}

fn candidate_line(candidate: &EdgeCandidate, index: usize) -> String {
    let prio = priority(candidate, index);
    match candidate {
        EdgeCandidate::Udp(a) => format!(
            "a=candidate:e{index} 1 udp {prio} {} {} typ host\r\n",
            a.ip(),
            a.port()
        ),
        EdgeCandidate::Tcp(a) => format!(
            "a=candidate:t{index} 1 tcp {prio} {} {} typ host tcptype passive\r\n",
            a.ip(),
            a.port()
        ),
    }
}

/// Our SDP with every candidate replaced by the edge's, in each media section that had any.
pub fn with_edge_candidates(sdp: &str, candidates: &[EdgeCandidate]) -> String {
    let block: String = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| candidate_line(c, i))
        .collect();
    let mut out = String::with_capacity(sdp.len() + block.len() * 2);
    let mut placed = false;
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            placed = false;
        }
        if line.starts_with("a=candidate:") {
            if !placed {
                out.push_str(&block);
                placed = true;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("c=IN ") {
            // The connection line names where media goes: the edge's first address, not the
            // internal socket's.
            if let Some(addr) = candidates.first().map(|c| match c {
                EdgeCandidate::Udp(a) | EdgeCandidate::Tcp(a) => a.ip(),
            }) && rest.starts_with("IP")
            {
                let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
                out.push_str(&format!("c=IN {family} {addr}\r\n"));
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

/// The client's SDP without its candidates: our side learns the client's address from the
/// checks that reach it through the edge (peer-reflexive), never by sending to it directly.
pub fn without_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| !l.starts_with("a=candidate:") && !l.starts_with("a=end-of-candidates"))
        .collect()
}

/// The UDP address our connection's socket is bound to, from its first host candidate on `ip`.
pub fn internal_address(sdp: &str, ip: IpAddr) -> Option<SocketAddr> {
    sdp.lines().find_map(|l| {
        let body = l.trim_end().strip_prefix("a=candidate:")?;
        let fields: Vec<&str> = body.split(' ').collect();
        if fields.len() < 8 || !fields[2].eq_ignore_ascii_case("udp") || fields[7] != "host" {
            return None;
        }
        let addr: IpAddr = fields[4].parse().ok()?;
        let port: u16 = fields[5].parse().ok()?;
        (addr == ip).then_some(SocketAddr::new(addr, port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:u\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=candidate:2 1 udp 2130706431 10.1.1.1 40001 typ host\r\na=end-of-candidates\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=mid:1\r\n";

    #[test]
    fn edge_candidates_replace_ours_in_every_section() {
        let edge = [
            EdgeCandidate::Udp("203.0.113.7:3478".parse().expect("addr")),
            EdgeCandidate::Tcp("203.0.113.7:3478".parse().expect("addr")),
        ];
        let out = with_edge_candidates(SDP, &edge);
        assert!(!out.contains("127.0.0.1"), "{out}");
        assert!(!out.contains("10.1.1.1"), "{out}");
        assert_eq!(out.matches(" udp ").count(), 2, "{out}");
        assert_eq!(out.matches("tcptype passive").count(), 2, "{out}");
        assert!(out.contains("a=candidate:e0 1 udp 2130706431 203.0.113.7 3478 typ host\r\n"));
        assert!(out.contains("c=IN IP4 203.0.113.7\r\n"));
        // UDP is preferred over TCP.
        assert!(priority(&edge[0], 0) > priority(&edge[1], 1));
        assert!(out.contains("a=end-of-candidates\r\n"));
    }

    #[test]
    fn client_candidates_are_dropped() {
        let out = without_candidates(SDP);
        assert!(!out.contains("a=candidate"));
        assert!(!out.contains("end-of-candidates"));
        assert!(out.contains("a=ice-ufrag:u\r\n"));
    }

    #[test]
    fn finds_the_internal_socket() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(
            internal_address(SDP, lo),
            Some("127.0.0.1:40000".parse().expect("addr"))
        );
        assert_eq!(internal_address(SDP, "10.9.9.9".parse().expect("ip")), None);
    }
}
