//! One event per query, whatever became of it, for the node to turn into Hubble DNS flows
//! and metrics.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::sync::mpsc;

use crate::hooks::Transport;
use crate::wire::{AnswerError, QueryError, ResolvedIp};

/// What happened to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Allowed, sent upstream, and the upstream's answer relayed to the client.
    Forwarded,
    /// Denied by policy: the proxy answered with the reject code and did not forward.
    Refused,
    /// Anything else: dropped by L3/L4 policy, an invalid packet, an internal error, no
    /// (usable) upstream answer, or an answer the hook could not make safe to release.
    /// `DnsEvent::rcode` says what the client got instead, if anything.
    Dropped,
}

/// Why the query ended as it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("allowed by policy")]
    Allowed,
    #[error("denied by policy")]
    PolicyDenied,
    /// Forwarded although policy denies it (audit mode); the verdict is `Forwarded`.
    #[error("denied by policy, forwarded in audit mode")]
    PolicyAudit,
    /// Dropped without an answer by L3/L4 policy ([`crate::PolicyAnswer::Drop`]).
    #[error("dropped by L3/L4 policy")]
    PolicyDropped,
    #[error("invalid query: {0}")]
    InvalidQuery(QueryError),
    #[error("original destination unknown and no fixed upstream configured")]
    NoOriginalDst,
    #[error("upstream {0} is the proxy itself")]
    ForwardingLoop(SocketAddr),
    #[error("too many queries in flight")]
    Overloaded,
    #[error("no answer from upstream in time")]
    UpstreamTimeout,
    #[error("upstream exchange failed: {0}")]
    Upstream(String),
    #[error("bad upstream answer: {0}")]
    BadAnswer(AnswerError),
    #[error("answer hook did not finish in time")]
    HookTimeout,
    #[error("answer hook failed: {0}")]
    HookFailed(String),
}

/// The record of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEvent {
    /// When the query arrived.
    pub time: SystemTime,
    /// From arrival to the answer being ready to send.
    pub latency: Duration,
    pub peer: SocketAddr,
    pub transport: Transport,
    /// The DNS server the client addressed, when known.
    pub server: Option<SocketAddr>,
    /// The client's identity as the redirect recorded it, when it did.
    pub client_identity: Option<u32>,
    /// Where the query was forwarded, if it was.
    pub upstream: Option<SocketAddr>,
    /// The query's ID, when the packet had a header.
    pub id: Option<u16>,
    /// The asked name, canonical; `None` for an invalid query.
    pub qname: Option<String>,
    pub qtype: Option<RecordType>,
    /// The RCODE of the answer the client got; `None`: no answer was sent.
    pub rcode: Option<ResponseCode>,
    /// The upstream answer had TC set (and was relayed as is).
    pub truncated: bool,
    /// The addresses the upstream answer gave for the asked name (relayed to the client only
    /// when `verdict` is `Forwarded`).
    pub ips: Vec<ResolvedIp>,
    pub cnames: Vec<String>,
    pub verdict: Verdict,
    pub reason: Reason,
}

/// Where events go. Called on the query's task after its answer was sent: keep it cheap
/// (hand the event to a channel).
pub trait EventSink: Send + Sync {
    fn record(&self, event: DnsEvent);
}

/// A bounded channel: when the consumer falls behind, events are dropped rather than
/// queries slowed down or memory grown without bound.
impl EventSink for mpsc::Sender<DnsEvent> {
    fn record(&self, event: DnsEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.try_send(event) {
            tracing::debug!(peer = %event.peer, qname = ?event.qname, "DNS event channel full, event dropped");
        }
    }
}

impl<F: Fn(DnsEvent) + Send + Sync> EventSink for F {
    fn record(&self, event: DnsEvent) {
        self(event)
    }
}
