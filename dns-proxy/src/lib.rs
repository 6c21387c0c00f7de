//! The transparent DNS proxy of the FQDN egress gatekeeper (spec §14).
//!
//! The kernel redirect delivers workload DNS queries to the proxy's listeners (UDP and TCP,
//! one port). Per query the proxy:
//!
//! 1. parses and validates it ([`wire::parse_query`]): exactly one question, opcode QUERY,
//!    bounded record counts, well-formed names — hostile packets end here with FORMERR,
//!    NOTIMP or silence, and an event saying why;
//! 2. finds where it was going ([`OriginalDst`], or the configured fixed upstream);
//! 3. asks the node's [`DnsPolicy`]; a denial is answered REFUSED or NXDOMAIN
//!    ([`RejectResponse`]) without forwarding, a drop (L3/L4 policy) gets no answer at all,
//!    an audit is forwarded and reported as such;
//! 4. forwards the query's **original bytes** (0x20 case, EDNS0 untouched) over the
//!    client's transport — over UDP on a socket shared with other queries to the same
//!    upstream, with an ID of the proxy's choosing (random, put back in the answer; see
//!    `shared_udp`) — and checks that the answer matches (ID, question);
//! 5. follows the answer's CNAME chain to the asked name's A/AAAA records and hands them
//!    to the node's [`AnswerHook`], which installs the allow, **before** the client sees the
//!    answer; a hook that fails or overruns its bound turns the answer into SERVFAIL;
//! 6. relays the upstream's bytes unchanged. A truncated (TC) UDP answer is relayed as is:
//!    the client retries over TCP, which the proxy serves alike. Whatever whole records a
//!    TC answer holds go through the hook like any answer's; one cut mid-record teaches
//!    nothing and is relayed all the same;
//! 7. records a [`DnsEvent`] for every query, whatever became of it.
//!
//! The proxy holds no policy and no cache of its own: policy, FQDN identities and kernel
//! maps are the node's, behind the traits in [`hooks`]. [`cache`] is the node's record of
//! what answers taught (names, addresses, expiries), kept here because it is DNS
//! bookkeeping with no policy in it.

pub mod cache;
mod config;
mod event;
mod handler;
pub mod hooks;
mod server;
mod shared_udp;
mod sockets;
mod tcp;
mod upstream;
pub mod wire;

pub use config::{
    DEFAULT_ANSWER_HOOK_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_TCP_CONNECTIONS,
    DEFAULT_MAX_TCP_PIPELINED, DEFAULT_TCP_IDLE_TIMEOUT, DEFAULT_UPSTREAM_TIMEOUT, ProxyConfig,
    RejectResponse,
};
pub use event::{DnsEvent, EventSink, Reason, Verdict};
pub use handler::Handlers;
pub use hickory_proto::op::ResponseCode;
pub use hickory_proto::rr::RecordType;
pub use hooks::{
    AnswerHook, ClientInfo, DnsPolicy, HookError, NoOriginalDst, Origin, OriginalDst, PolicyAnswer,
    ResolvedAnswer, Transport,
};
pub use server::{BindError, DnsProxy};
pub use shared_udp::ROTATE_AFTER as UDP_SOCKET_QUERIES;
pub use sockets::Sockets;
pub use wire::ResolvedIp;
