//! The proxy's settings, parsed by the node from its own configuration and passed in.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;

/// How long to wait for the upstream's answer. Cilium's `ProxyForwardTimeout`: a UDP client
/// has no way to say it stopped waiting, so the proxy needs its own bound.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an answer may be held for the answer hook. Cilium's default
/// `tofqdns-proxy-response-max-delay`. Installing an allow for an identity that exists is
/// a few map writes, far below this; the node raises it because a new identity costs a
/// policy compile (see `sluice_proxy::node::fqdn::ANSWER_HOLD`).
pub const DEFAULT_ANSWER_HOOK_TIMEOUT: Duration = Duration::from_millis(100);

/// How long a TCP connection may sit without a new query (miekg/dns's default, which
/// Cilium's proxy runs with; RFC 7766 §6.2.3 asks for seconds, not minutes).
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(8);

/// UDP queries being handled at once; past it, new ones are answered REFUSED at once
/// (Cilium's concurrency limit does the same).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// TCP connections served at once; past it, new ones are closed on accept.
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = 1024;

/// Queries of one TCP connection handled at once (RFC 7766 pipelining); past it, the
/// proxy stops reading that connection until one finishes.
pub const DEFAULT_MAX_TCP_PIPELINED: usize = 16;

/// The code a denied query is answered with (`tofqdns-dns-reject-response-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RejectResponse {
    /// REFUSED, Cilium's default (`refused`).
    #[default]
    Refused,
    /// NXDOMAIN (`nameError`): some clients stop retrying sooner.
    NameError,
}

impl RejectResponse {
    pub fn rcode(self) -> ResponseCode {
        match self {
            Self::Refused => ResponseCode::Refused,
            Self::NameError => ResponseCode::NXDomain,
        }
    }
}

/// Settings of one proxy instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Where the UDP and TCP listeners bind (the same port for both; port 0 picks one).
    pub listen: SocketAddr,
    /// Forward every query here instead of to its original destination. Also stands in for
    /// the original destination when the redirect did not record one.
    pub fixed_upstream: Option<SocketAddr>,
    /// The local address to send from, per upstream address; others leave from whatever
    /// address the kernel picks. A node whose workloads only let in the proxy's own
    /// source address (their ingress trusts it: the proxy decided) maps its local
    /// resolvers to that address. Looked up once per forwarded query.
    pub upstream_sources: BTreeMap<IpAddr, IpAddr>,
    pub reject_response: RejectResponse,
    pub upstream_timeout: Duration,
    /// The bound on the answer hook. When it passes (or the hook fails) the client gets
    /// SERVFAIL, not the answer: **fail closed**. Releasing the answer anyway, as Cilium does
    /// after `tofqdns-proxy-response-max-delay`, lets the workload `connect()` before the
    /// allow is in the kernel, and that connection is denied as if policy forbade it — a
    /// confusing failure, and one that depends on timing. SERVFAIL is an ordinary transient
    /// error that resolvers retry, and the install it waited for is still running, so the
    /// retry usually finds it done.
    pub answer_hook_timeout: Duration,
    pub tcp_idle_timeout: Duration,
    pub max_in_flight: usize,
    pub max_tcp_connections: usize,
    pub max_tcp_pipelined: usize,
}

impl ProxyConfig {
    /// Defaults everywhere but the listen address.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            fixed_upstream: None,
            upstream_sources: BTreeMap::new(),
            reject_response: RejectResponse::default(),
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            answer_hook_timeout: DEFAULT_ANSWER_HOOK_TIMEOUT,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_tcp_connections: DEFAULT_MAX_TCP_CONNECTIONS,
            max_tcp_pipelined: DEFAULT_MAX_TCP_PIPELINED,
        }
    }
}
