//! Answers the proxy writes itself: refusals, SERVFAIL, FORMERR and NOTIMP.

use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};

use super::query::{DnsQuery, HEADER_LEN};

/// The UDP payload size the proxy advertises in its own answers' OPT record: the DNS Flag
/// Day 2020 value, safe from fragmentation on any path.
pub const REPLY_UDP_PAYLOAD: u16 = 1232;

/// An answer to `query` with `rcode` and no records: same ID, the question echoed as sent
/// (case included, so 0x20-checking resolvers accept it), RD copied, and an OPT record when
/// the query had one (RFC 6891 §6.1.1).
///
/// RA is set when RD was: the proxy stands in for the recursive resolver the workload asked,
/// and stub resolvers (dig among them) warn about answers that deny recursion. Cilium's
/// proxy leaves RA clear; nothing depends on the difference.
pub fn synthesize(query: &DnsQuery, rcode: ResponseCode) -> Vec<u8> {
    let mut message = Message::error_msg(query.id, OpCode::Query, rcode);
    message.metadata.recursion_desired = query.recursion_desired;
    message.metadata.recursion_available = query.recursion_desired;
    message.metadata.checking_disabled = query.checking_disabled;
    message.add_query(query.question.clone());
    if let Some(edns) = query.edns {
        let mut opt = Edns::new();
        opt.set_max_payload(REPLY_UDP_PAYLOAD);
        opt.set_dnssec_ok(edns.dnssec_ok);
        message.set_edns(opt);
    }
    match message.to_vec() {
        Ok(bytes) => bytes,
        // A validated question always encodes; if it ever did not, a bare header still
        // tells the client the outcome.
        Err(e) => {
            tracing::warn!(error = %e, id = query.id, "cannot encode a synthesised answer");
            bare_header(query.id, 0, query.recursion_desired, rcode).to_vec()
        }
    }
}

/// A header-only answer to a packet that is not a valid query but has a header: its ID,
/// opcode and RD echoed, no sections. `None` when there is no header to answer.
///
/// Never larger than the packet it answers, so it cannot amplify a spoofed request.
pub fn header_reply(packet: &[u8], rcode: ResponseCode) -> Option<[u8; HEADER_LEN]> {
    let header = packet.get(..HEADER_LEN)?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    let opcode = (header[2] >> 3) & 0x0f;
    let recursion_desired = header[2] & 0x01 != 0;
    Some(bare_header(id, opcode, recursion_desired, rcode))
}

fn bare_header(
    id: u16,
    opcode: u8,
    recursion_desired: bool,
    rcode: ResponseCode,
) -> [u8; HEADER_LEN] {
    let [id_high, id_low] = id.to_be_bytes();
    let qr = 0x80;
    let flags = qr | (opcode << 3) | u8::from(recursion_desired);
    // Only the low four bits fit the header; every code the proxy sends fits them.
    let rcode = rcode.low() & 0x0f;
    [id_high, id_low, flags, rcode, 0, 0, 0, 0, 0, 0, 0, 0]
}
