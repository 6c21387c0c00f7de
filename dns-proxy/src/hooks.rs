//! What the node plugs into the proxy: where a query was going, whether it may go there,
//! and what to do with the addresses an answer teaches before the workload sees them.
//!
//! The proxy holds no policy of its own (DESIGN.md): every decision comes through these
//! traits, so the node can back them with its compiled policy, its kernel maps and its
//! ipcache, and tests can back them with a few lines.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;

use hickory_proto::rr::RecordType;

use crate::wire::ResolvedIp;

/// The transport a query arrived on. The proxy forwards over the same one: a client that
/// retries over TCP after a truncated UDP answer gets TCP all the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        })
    }
}

/// Who asked, and whom they asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientInfo {
    /// The workload's socket, as the proxy sees it (the kernel redirect keeps it).
    pub peer: SocketAddr,
    /// The DNS server the workload addressed: its original destination, or the configured
    /// fixed upstream when the original is unknown. Policy selects on this server's identity
    /// and port (spec §14: the DNS server's identity must be selected).
    pub server: SocketAddr,
    pub transport: Transport,
    /// The client's identity as the redirect recorded it ([`Origin::client_identity`]);
    /// `None` when there is no record.
    pub client_identity: Option<u32>,
}

/// What the redirect recorded for a client socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Where the query was originally going.
    pub server: SocketAddr,
    /// The identity of the workload whose socket it is, when the redirect decided it. The
    /// node needs it for clients whose address says nothing of who they are (workloads in
    /// the host's network namespace ask from loopback); the proxy only passes it on.
    pub client_identity: u32,
}

/// Where a redirected query was originally going. The node answers from the kernel map the
/// redirect programs fill (`cgroup/sendmsg4,6` for UDP, `connect4,6` for TCP).
pub trait OriginalDst: Send + Sync {
    /// `None` when the redirect left no record for this client socket; the query is then
    /// sent to the fixed upstream if one is configured, and refused otherwise.
    fn original_dst(&self, client: SocketAddr, transport: Transport) -> Option<Origin>;
}

/// For deployments where every query goes to the configured fixed upstream.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOriginalDst;

impl OriginalDst for NoOriginalDst {
    fn original_dst(&self, _: SocketAddr, _: Transport) -> Option<Origin> {
        None
    }
}

/// A policy decision on one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyAnswer {
    /// Forward the query.
    Allow,
    /// Forward the query although policy would deny it: audit mode. The event says so
    /// ([`crate::Reason::PolicyAudit`]), for the node to report it.
    Audit,
    /// Answer it without forwarding, with the configured reject code (REFUSED or NXDOMAIN):
    /// what `rules.dns` does to a name it does not allow.
    Deny,
    /// Neither forward nor answer, as a datapath drops a packet: what L3/L4 policy does to
    /// DNS it does not allow (Cilium drops such a query before any proxy sees it). Over TCP
    /// the connection is closed too: every query on it has the same client, server and
    /// port, so every one would be dropped.
    Drop,
}

/// `rules.dns` enforcement. Called once per valid query, synchronously on the query's task:
/// it must not block (read the compiled policy through an `ArcSwap`, match names with a
/// `sluice_l7::dns::DnsPatternSet`).
pub trait DnsPolicy: Send + Sync {
    /// `qname` is canonical: lowercase, presentation format, final dot; bytes outside label
    /// characters are escaped (`\.`, `\032`), so only a match-all selector matches them.
    fn check(&self, client: &ClientInfo, qname: &str, qtype: RecordType) -> PolicyAnswer;
}

/// The addresses an allowed answer gives for the asked name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAnswer {
    /// The asked name, canonical.
    pub qname: String,
    pub qtype: RecordType,
    /// A and AAAA for the asked name, the CNAME chain followed, each with the smallest TTL
    /// along its chain. Never empty when the hook is called.
    pub ips: Vec<ResolvedIp>,
    /// The CNAME chain's targets, canonical, in order. Every one maps to `ips` too.
    pub cnames: Vec<String>,
}

/// Whatever went wrong in the node's hook; its `Display` lands in the query's event.
pub type HookError = Box<dyn Error + Send + Sync>;

/// Runs before an answer that teaches addresses is released to the client: the node
/// installs the allow for those addresses (ipcache, FQDN identities, kernel maps) here, so
/// the workload's first `connect()` to them already passes.
///
/// The proxy waits at most `ProxyConfig::answer_hook_timeout` for the returned future and
/// answers SERVFAIL when it fails or does not finish in time (fail closed, see
/// `ProxyConfig::answer_hook_timeout`). The future runs on a task of its own and is not
/// cancelled at the timeout: the install finishes in the background and serves the client's
/// retry. A retry calls the hook again with the same addresses, so it must be idempotent,
/// and it must end eventually: one that never returns holds a task per answer forever.
pub trait AnswerHook: Send + Sync + 'static {
    fn on_answer(
        &self,
        client: &ClientInfo,
        answer: &ResolvedAnswer,
    ) -> impl Future<Output = Result<(), HookError>> + Send;
}
