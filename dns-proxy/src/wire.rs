//! The DNS wire format, as far as the proxy needs it: validating queries, checking answers,
//! reading the addresses they teach, and writing the proxy's own answers.
//!
//! Pure functions over byte slices (hickory-proto underneath), no I/O, so every hostile
//! packet can be tested and fuzzed without sockets. Nothing here panics on any input.

mod answer;
mod name;
mod query;
mod record;
mod reply;

pub use answer::{AnswerError, DnsAnswer, ResolvedIp, parse_answer};
pub use name::canonical;
pub use query::{
    DnsQuery, HEADER_LEN, MAX_QUERY_ADDITIONALS, MAX_QUERY_AUTHORITIES, QueryEdns, QueryError,
    Section, parse_query,
};
pub use record::{MAX_POINTER_HOPS, NameError, RecordError};
pub use reply::{REPLY_UDP_PAYLOAD, header_reply, synthesize};

#[cfg(test)]
mod tests;
