//! Parsing and validating a query from a workload, before any policy sees it.
//!
//! The rules are those of miekg/dns's default accept function, which Cilium's DNS proxy
//! serves through: a response is ignored (answering it invites ping-pong), an opcode other
//! than QUERY gets NOTIMP, and anything but exactly one question, no answer records, at most
//! one authority and two additional records gets FORMERR. sluice also refuses NOTIFY
//! (Cilium lets it through to the policy) and answers FORMERR, rather than nothing, to a body
//! that does not parse: the reply is a bare header, never larger than the query, so it
//! cannot amplify. A packet shorter than a header gets no reply at all, as in miekg/dns.
//! The Z bit is not checked (miekg/dns refuses it): RFC 6895 §2.1 asks that it be ignored on
//! receipt, and the query reaches the upstream unchanged anyway.

use hickory_proto::op::{Header, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::name::canonical;
use super::record::{RecordData, RecordError, read_name, read_record};

/// Bytes in a DNS header.
pub const HEADER_LEN: usize = 12;
/// Authority records a query may carry (IXFR sends one SOA, RFC 1995 §3).
pub const MAX_QUERY_AUTHORITIES: u16 = 1;
/// Additional records a query may carry: an OPT and a TSIG.
pub const MAX_QUERY_ADDITIONALS: u16 = 2;
/// The OPT bit that asks for DNSSEC records (RFC 3225), in the OPT record's TTL field.
const EDNS_DO_BIT: u32 = 0x8000;

/// A query that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    pub id: u16,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// The question as sent: the name keeps its case (0x20 randomisation).
    pub question: Query,
    /// The question's name in canonical form (lowercase, final dot), for policy and events.
    pub qname: String,
    /// The query's OPT record, if any.
    pub edns: Option<QueryEdns>,
}

impl DnsQuery {
    pub fn qtype(&self) -> RecordType {
        self.question.query_type()
    }
}

/// What a synthesised reply needs to know of the query's EDNS OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryEdns {
    pub udp_payload: u16,
    pub dnssec_ok: bool,
}

/// The section of a message a count or a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Question,
    Answer,
    Authority,
    Additional,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Question => "question",
            Self::Answer => "answer",
            Self::Authority => "authority",
            Self::Additional => "additional",
        })
    }
}

/// Why a packet from a workload is not a query the proxy handles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{len} bytes, shorter than a DNS header ({HEADER_LEN})")]
    TooShort { len: usize },
    #[error("a response (QR set), not a query")]
    NotAQuery,
    #[error("opcode {0} is not QUERY")]
    UnsupportedOpcode(u8),
    #[error("{0} questions; exactly one is accepted")]
    QuestionCount(u16),
    #[error("{count} records in the {section} section; a query may carry at most {max}")]
    TooManyRecords {
        section: Section,
        count: u16,
        max: u16,
    },
    #[error("malformed question: {0}")]
    Question(String),
    #[error("malformed {section} record: {error}")]
    Record {
        section: Section,
        error: RecordError,
    },
    #[error("more than one OPT record")]
    DuplicateOpt,
    #[error("{0} bytes after the last record")]
    TrailingBytes(usize),
}

impl QueryError {
    /// The RCODE the proxy answers with; `None`: no answer at all.
    pub fn reply_rcode(&self) -> Option<ResponseCode> {
        match self {
            Self::TooShort { .. } | Self::NotAQuery => None,
            Self::UnsupportedOpcode(_) => Some(ResponseCode::NotImp),
            _ => Some(ResponseCode::FormErr),
        }
    }
}

/// Parses and validates a query packet (without the TCP length prefix).
pub fn parse_query(packet: &[u8]) -> Result<DnsQuery, QueryError> {
    if packet.len() < HEADER_LEN {
        return Err(QueryError::TooShort { len: packet.len() });
    }
    let mut decoder = BinDecoder::new(packet);
    let header =
        Header::read(&mut decoder).map_err(|_| QueryError::TooShort { len: packet.len() })?;
    if header.message_type != MessageType::Query {
        return Err(QueryError::NotAQuery);
    }
    if header.op_code != OpCode::Query {
        return Err(QueryError::UnsupportedOpcode(header.op_code.into()));
    }
    let counts = header.counts;
    if counts.queries != 1 {
        return Err(QueryError::QuestionCount(counts.queries));
    }
    for (section, count, max) in [
        (Section::Answer, counts.answers, 0),
        (
            Section::Authority,
            counts.authorities,
            MAX_QUERY_AUTHORITIES,
        ),
        (
            Section::Additional,
            counts.additionals,
            MAX_QUERY_ADDITIONALS,
        ),
    ] {
        if count > max {
            return Err(QueryError::TooManyRecords {
                section,
                count,
                max,
            });
        }
    }

    let question = read_question(&mut decoder)?;
    let mut edns = None;
    for (section, count) in [
        (Section::Authority, counts.authorities),
        (Section::Additional, counts.additionals),
    ] {
        for _ in 0..count {
            let record =
                read_record(&mut decoder).map_err(|error| QueryError::Record { section, error })?;
            if record.data == RecordData::Opt {
                if edns.is_some() {
                    return Err(QueryError::DuplicateOpt);
                }
                edns = Some(QueryEdns {
                    // The OPT record's CLASS field is the requestor's UDP payload size.
                    udp_payload: record.class,
                    dnssec_ok: record.ttl & EDNS_DO_BIT != 0,
                });
            }
        }
    }
    if !decoder.is_empty() {
        return Err(QueryError::TrailingBytes(decoder.len()));
    }

    Ok(DnsQuery {
        id: header.id,
        recursion_desired: header.recursion_desired,
        checking_disabled: header.checking_disabled,
        qname: canonical(question.name()),
        question,
        edns,
    })
}

/// The question section's one entry, through hickory (with the pointer bound in front).
pub(super) fn read_question(decoder: &mut BinDecoder<'_>) -> Result<Query, QueryError> {
    let name = read_name(decoder).map_err(|e| QueryError::Question(e.to_string()))?;
    let rest =
        |e: hickory_proto::serialize::binary::DecodeError| QueryError::Question(e.to_string());
    let query_type = RecordType::read(decoder).map_err(rest)?;
    let query_class = hickory_proto::rr::DNSClass::read(decoder).map_err(rest)?;
    let mut query = Query::query(name, query_type);
    query.set_query_class(query_class);
    Ok(query)
}
