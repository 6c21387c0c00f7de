//! Checking an upstream answer against the query it answers, and reading the addresses it
//! teaches for the asked name.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::name::canonical;
use super::query::{DnsQuery, HEADER_LEN, read_question};
use super::record::{RawRecord, RecordData, read_record};

/// An address the answer gives for the asked name, and how long it may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResolvedIp {
    pub addr: IpAddr,
    /// Seconds: the smallest TTL along the CNAME chain that led to the address, the
    /// address record's own included. Raising it to a floor (`tofqdns-min-ttl`) is the
    /// caller's business.
    pub ttl: u32,
}

/// An upstream answer that belongs to the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    pub id: u16,
    /// TC: the answer did not fit; the client is expected to ask again over TCP.
    pub truncated: bool,
    /// The full RCODE, extended bits from the OPT record included.
    pub rcode: ResponseCode,
    /// Addresses for the asked name, the CNAME chain followed; empty unless NOERROR.
    pub ips: Vec<ResolvedIp>,
    /// The chain's targets in order, canonical (`qname → cnames[0] → cnames[1] …`).
    pub cnames: Vec<String>,
}

/// Why an upstream packet is not a usable answer to the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("{len} bytes, shorter than a DNS header")]
    TooShort { len: usize },
    #[error("not a response (QR clear)")]
    NotAResponse,
    #[error("response opcode {0} is not QUERY")]
    Opcode(u8),
    #[error("response ID {got} does not match query ID {expected}")]
    IdMismatch { expected: u16, got: u16 },
    #[error("response question {got} does not match the query's {expected}")]
    QuestionMismatch { expected: String, got: String },
    #[error("malformed answer{}: {detail}", if *.truncated { " (truncated)" } else { "" })]
    Malformed { truncated: bool, detail: String },
}

impl AnswerError {
    /// Whether the packet is simply not the answer to this query (stray, late, spoofed), as
    /// opposed to the answer, broken. Over UDP the proxy keeps waiting after a mismatch.
    pub fn is_mismatch(&self) -> bool {
        !matches!(self, Self::Malformed { .. })
    }
}

/// Checks that `packet` answers `query` (a response, same ID, same question) and reads the
/// addresses it gives for the asked name.
///
/// A response without a question section is accepted when its RCODE is an error: servers
/// answer FORMERR, NOTIMP or REFUSED that way.
pub fn parse_answer(packet: &[u8], query: &DnsQuery) -> Result<DnsAnswer, AnswerError> {
    if packet.len() < HEADER_LEN {
        return Err(AnswerError::TooShort { len: packet.len() });
    }
    let mut decoder = BinDecoder::new(packet);
    let header =
        Header::read(&mut decoder).map_err(|_| AnswerError::TooShort { len: packet.len() })?;
    if header.message_type != MessageType::Response {
        return Err(AnswerError::NotAResponse);
    }
    if header.id != query.id {
        return Err(AnswerError::IdMismatch {
            expected: query.id,
            got: header.id,
        });
    }
    if header.op_code != OpCode::Query {
        return Err(AnswerError::Opcode(header.op_code.into()));
    }
    let truncated = header.truncation;
    let malformed = |detail: String| AnswerError::Malformed { truncated, detail };
    let expected = || format!("{} {}", query.qname, query.qtype());

    match header.counts.queries {
        0 if header.response_code != ResponseCode::NoError => {}
        1 => {
            let question = read_question(&mut decoder).map_err(|e| malformed(e.to_string()))?;
            let same = canonical(question.name()) == query.qname
                && question.query_type() == query.qtype()
                && question.query_class() == query.question.query_class();
            if !same {
                return Err(AnswerError::QuestionMismatch {
                    expected: expected(),
                    got: format!("{} {}", canonical(question.name()), question.query_type()),
                });
            }
        }
        n => {
            return Err(AnswerError::QuestionMismatch {
                expected: expected(),
                got: format!("{n} questions"),
            });
        }
    }

    let mut answers = Vec::new();
    let mut rcode_high = 0;
    let counts = header.counts;
    for (section, count) in [
        ("answer", counts.answers),
        ("authority", counts.authorities),
        ("additional", counts.additionals),
    ] {
        for _ in 0..count {
            let record = read_record(&mut decoder)
                .map_err(|e| malformed(format!("{section} record: {e}")))?;
            match section {
                "answer" => answers.push(record),
                "additional" if record.data == RecordData::Opt => {
                    // The OPT TTL field: extended RCODE (upper 8 bits), version, flags.
                    rcode_high = (record.ttl >> 24) as u8;
                }
                _ => {}
            }
        }
    }

    let rcode = ResponseCode::from(rcode_high, header.response_code.low());
    let (ips, cnames) = if rcode == ResponseCode::NoError {
        follow_chain(&query.qname, &answers)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(DnsAnswer {
        id: header.id,
        truncated,
        rcode,
        ips,
        cnames,
    })
}

/// Follows the CNAME chain from `qname` through `records` and collects the A and AAAA
/// records of every name on it (spec §14: every name in the chain maps to the final IPs).
///
/// Records are matched by owner name, not by position, so the order the server chose does
/// not matter; records for names off the chain are ignored (an upstream cannot attach
/// addresses to the asked name by listing them under another). A chain that loops ends at
/// the first repeated name. Only class IN counts.
fn follow_chain(qname: &str, records: &[RawRecord]) -> (Vec<ResolvedIp>, Vec<String>) {
    let is_in = |r: &RawRecord| DNSClass::from(r.class) == DNSClass::IN;
    let owners: Vec<String> = records.iter().map(|r| canonical(&r.name)).collect();
    // Owner → its first CNAME (a name has at most one, RFC 1034 §3.6.2).
    let mut cname_of: HashMap<&str, (&Name, u32)> = HashMap::new();
    for (record, owner) in records.iter().zip(&owners) {
        if let RecordData::Cname(target) = &record.data
            && is_in(record)
        {
            cname_of.entry(owner).or_insert((target, record.ttl));
        }
    }

    let mut on_chain: HashSet<String> = HashSet::from([qname.to_owned()]);
    let mut cnames = Vec::new();
    let mut chain_ttl = u32::MAX;
    let mut current = qname.to_owned();
    while let Some(&(target, ttl)) = cname_of.get(current.as_str()) {
        let target = canonical(target);
        if !on_chain.insert(target.clone()) {
            break;
        }
        chain_ttl = chain_ttl.min(ttl);
        cnames.push(target.clone());
        current = target;
    }

    let mut ips: Vec<ResolvedIp> = Vec::new();
    let mut position: HashMap<IpAddr, usize> = HashMap::new();
    for (record, owner) in records.iter().zip(&owners) {
        let addr = match record.data {
            RecordData::A(a) if is_in(record) => IpAddr::V4(a),
            RecordData::Aaaa(a) if is_in(record) => IpAddr::V6(a),
            _ => continue,
        };
        if !on_chain.contains(owner) {
            continue;
        }
        let ttl = record.ttl.min(chain_ttl);
        match position.get(&addr) {
            Some(&at) => ips[at].ttl = ips[at].ttl.min(ttl),
            None => {
                position.insert(addr, ips.len());
                ips.push(ResolvedIp { addr, ttl });
            }
        }
    }
    (ips, cnames)
}
