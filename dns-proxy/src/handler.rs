//! One query, start to end: validate, resolve the upstream, ask policy, forward the
//! original bytes, check the answer, let the hook install what it teaches, relay.
//!
//! Transport-neutral: the UDP and TCP listeners hand in a packet and get back the bytes to
//! send (if any) and the query's event. Every exit path produces exactly one event.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::SystemTime;

use hickory_proto::op::ResponseCode;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::ProxyConfig;
use crate::event::{DnsEvent, EventSink, Reason, Verdict};
use crate::hooks::{
    AnswerHook, ClientInfo, DnsPolicy, OriginalDst, PolicyAnswer, ResolvedAnswer, Transport,
};
use crate::shared_udp::UdpUpstreams;
use crate::upstream::{UpstreamError, exchange_tcp};
use crate::wire::{AnswerError, DnsQuery, QueryError, header_reply, parse_query, synthesize};

/// The node's side of the proxy: the four things it plugs in.
pub struct Handlers<H> {
    pub policy: Arc<dyn DnsPolicy>,
    pub original_dst: Arc<dyn OriginalDst>,
    pub answer_hook: Arc<H>,
    pub events: Arc<dyn EventSink>,
}

// By hand: a derive would ask `H: Clone`, and only the `Arc` is cloned.
impl<H> Clone for Handlers<H> {
    fn clone(&self) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
            original_dst: Arc::clone(&self.original_dst),
            answer_hook: Arc::clone(&self.answer_hook),
            events: Arc::clone(&self.events),
        }
    }
}

/// What the listeners share.
pub(crate) struct Shared<H> {
    pub(crate) config: ProxyConfig,
    /// The bound address (port resolved), to refuse forwarding to ourselves.
    pub(crate) local_addr: SocketAddr,
    pub(crate) handlers: Handlers<H>,
    /// UDP queries in flight.
    pub(crate) in_flight: Arc<Semaphore>,
    /// The sockets UDP queries are forwarded on.
    pub(crate) udp_upstreams: UdpUpstreams,
}

/// The bytes to send back (if any) and the query's event.
pub(crate) struct Handled {
    pub(crate) reply: Option<Vec<u8>>,
    pub(crate) event: DnsEvent,
}

impl Handled {
    /// Policy dropped the query: a TCP connection carrying it is closed.
    pub(crate) fn closes_connection(&self) -> bool {
        self.event.reason == Reason::PolicyDropped
    }
}

/// An event under construction: what is known so far about the query.
struct Pending {
    started: Instant,
    event: DnsEvent,
}

impl Pending {
    fn new(peer: SocketAddr, transport: Transport) -> Self {
        Self {
            started: Instant::now(),
            event: DnsEvent {
                time: SystemTime::now(),
                latency: std::time::Duration::ZERO,
                peer,
                transport,
                server: None,
                client_identity: None,
                upstream: None,
                id: None,
                qname: None,
                qtype: None,
                rcode: None,
                truncated: false,
                ips: Vec::new(),
                cnames: Vec::new(),
                verdict: Verdict::Dropped,
                reason: Reason::Allowed,
            },
        }
    }

    fn query(mut self, query: &DnsQuery) -> Self {
        self.event.id = Some(query.id);
        self.event.qname = Some(query.qname.clone());
        self.event.qtype = Some(query.qtype());
        self
    }

    fn finish(
        mut self,
        reply: Option<Vec<u8>>,
        rcode: Option<ResponseCode>,
        verdict: Verdict,
        reason: Reason,
    ) -> Handled {
        self.event.latency = self.started.elapsed();
        self.event.rcode = rcode;
        self.event.verdict = verdict;
        self.event.reason = reason;
        Handled {
            reply,
            event: self.event,
        }
    }

    /// The proxy's own answer to a valid query.
    fn answer_self(
        self,
        query: &DnsQuery,
        rcode: ResponseCode,
        verdict: Verdict,
        reason: Reason,
    ) -> Handled {
        self.finish(Some(synthesize(query, rcode)), Some(rcode), verdict, reason)
    }
}

impl<H: AnswerHook> Shared<H> {
    pub(crate) async fn handle(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        transport: Transport,
    ) -> Handled {
        let pending = Pending::new(peer, transport);
        let query = match parse_query(packet) {
            Ok(query) => query,
            Err(error) => return invalid(pending, packet, error),
        };
        let mut pending = pending.query(&query);
        tracing::debug!(%peer, %transport, id = query.id, qname = %query.qname, qtype = %query.qtype(), "DNS query");

        // Where it was going, and where it goes.
        let original = self.handlers.original_dst.original_dst(peer, transport);
        let client_identity = original.map(|o| o.client_identity);
        pending.event.client_identity = client_identity;
        let Some(server) = original.map(|o| o.server).or(self.config.fixed_upstream) else {
            tracing::warn!(%peer, %transport, qname = %query.qname, "no original destination for a DNS query; refusing it");
            return pending.answer_self(
                &query,
                ResponseCode::Refused,
                Verdict::Dropped,
                Reason::NoOriginalDst,
            );
        };
        pending.event.server = Some(server);
        let upstream = self.config.fixed_upstream.unwrap_or(server);
        if self.is_self(upstream) {
            tracing::warn!(%peer, %upstream, "DNS query addressed to the proxy itself; is the redirect excluding the proxy's own sockets?");
            return pending.answer_self(
                &query,
                ResponseCode::Refused,
                Verdict::Dropped,
                Reason::ForwardingLoop(upstream),
            );
        }

        let client = ClientInfo {
            peer,
            server,
            transport,
            client_identity,
        };
        let allowed = match self
            .handlers
            .policy
            .check(&client, &query.qname, query.qtype())
        {
            PolicyAnswer::Allow => Reason::Allowed,
            PolicyAnswer::Audit => {
                tracing::debug!(%peer, qname = %query.qname, "DNS query denied by policy, forwarded in audit mode");
                Reason::PolicyAudit
            }
            PolicyAnswer::Deny => {
                tracing::debug!(%peer, qname = %query.qname, "DNS query denied by policy");
                return pending.answer_self(
                    &query,
                    self.config.reject_response.rcode(),
                    Verdict::Refused,
                    Reason::PolicyDenied,
                );
            }
            PolicyAnswer::Drop => {
                tracing::debug!(%peer, %server, qname = %query.qname, "DNS query dropped by L3/L4 policy");
                return pending.finish(None, None, Verdict::Dropped, Reason::PolicyDropped);
            }
        };

        pending.event.upstream = Some(upstream);
        let deadline = Instant::now() + self.config.upstream_timeout;
        let source = self.config.upstream_sources.get(&upstream.ip()).copied();
        let exchanged = match transport {
            Transport::Udp => {
                self.udp_upstreams
                    .exchange(upstream, source, packet, &query, deadline)
                    .await
            }
            Transport::Tcp => exchange_tcp(upstream, source, packet, &query, deadline).await,
        };
        let exchanged = match exchanged {
            Ok(exchanged) => exchanged,
            Err(UpstreamError::Timeout) => {
                // As Cilium: no answer, the client's own timeout and retry take over.
                tracing::debug!(%upstream, qname = %query.qname, "DNS upstream timed out");
                return pending.finish(None, None, Verdict::Dropped, Reason::UpstreamTimeout);
            }
            Err(UpstreamError::Io(error)) => {
                tracing::warn!(%upstream, qname = %query.qname, %error, "DNS upstream exchange failed");
                return pending.answer_self(
                    &query,
                    ResponseCode::Refused,
                    Verdict::Dropped,
                    Reason::Upstream(error.to_string()),
                );
            }
            Err(UpstreamError::Answer { error, packet }) => {
                if let AnswerError::Malformed {
                    truncated: true, ..
                } = error
                {
                    // A truncated answer may be cut mid-record. It teaches nothing (the
                    // client must ask again over TCP, where the hook runs on the full
                    // answer), so it is relayed as the upstream sent it.
                    pending.event.truncated = true;
                    let rcode = packet.get(3).map(|&b| ResponseCode::from_low(b & 0x0f));
                    return pending.finish(Some(packet), rcode, Verdict::Forwarded, allowed);
                }
                tracing::warn!(%upstream, qname = %query.qname, %error, "bad DNS answer from upstream");
                return pending.answer_self(
                    &query,
                    ResponseCode::ServFail,
                    Verdict::Dropped,
                    Reason::BadAnswer(error),
                );
            }
        };

        let answer = exchanged.answer;
        pending.event.truncated = answer.truncated;
        pending.event.ips = answer.ips.clone();
        pending.event.cnames = answer.cnames.clone();
        if !answer.ips.is_empty() {
            let resolved = ResolvedAnswer {
                qname: query.qname.clone(),
                qtype: query.qtype(),
                ips: answer.ips,
                cnames: answer.cnames,
            };
            if let Err(reason) = self.run_hook(client, resolved).await {
                tracing::warn!(%peer, qname = %query.qname, %reason, "answer withheld: SERVFAIL");
                return pending.answer_self(
                    &query,
                    ResponseCode::ServFail,
                    Verdict::Dropped,
                    reason,
                );
            }
        }
        pending.finish(
            Some(exchanged.packet),
            Some(answer.rcode),
            Verdict::Forwarded,
            allowed,
        )
    }

    /// The answer to a query that arrived while `max_in_flight` others were being handled:
    /// REFUSED at once, without forwarding.
    pub(crate) fn overloaded(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        transport: Transport,
    ) -> Handled {
        let pending = Pending::new(peer, transport);
        match parse_query(packet) {
            Ok(query) => pending.query(&query).answer_self(
                &query,
                ResponseCode::Refused,
                Verdict::Dropped,
                Reason::Overloaded,
            ),
            Err(error) => invalid(pending, packet, error),
        }
    }

    /// Runs the hook and waits for it, at most the configured time.
    async fn run_hook(&self, client: ClientInfo, answer: ResolvedAnswer) -> Result<(), Reason> {
        let hook = Arc::clone(&self.handlers.answer_hook);
        let mut install = Box::pin(async move { hook.on_answer(&client, &answer).await });
        // An install is a few map writes and usually done at its first poll: then it needs
        // no task, no join handle and no timer. A panic there is the hook's failure, as it
        // is in a task.
        let first = std::future::poll_fn(|cx| {
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| install.as_mut().poll(cx)));
            Poll::Ready(polled)
        })
        .await;
        match first {
            Ok(Poll::Ready(result)) => {
                return result.map_err(|e| Reason::HookFailed(e.to_string()));
            }
            Ok(Poll::Pending) => {}
            Err(_) => return Err(Reason::HookFailed("hook task ended: panicked".to_owned())),
        }
        // Not done: a task, not a future polled here, so that at the timeout the install
        // goes on and serves the retry.
        let task = tokio::spawn(install);
        match tokio::time::timeout(self.config.answer_hook_timeout, task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(Reason::HookFailed(error.to_string())),
            Ok(Err(join)) => Err(Reason::HookFailed(format!("hook task ended: {join}"))),
            Err(_) => Err(Reason::HookTimeout),
        }
    }

    fn is_self(&self, upstream: SocketAddr) -> bool {
        let local = self.local_addr;
        upstream == local
            || (upstream.port() == local.port()
                && local.ip().is_unspecified()
                && (upstream.ip().is_loopback() || upstream.ip().is_unspecified()))
    }
}

/// The answer to a packet that is not a valid query: FORMERR or NOTIMP as a bare header, or
/// nothing (see `QueryError::reply_rcode`).
fn invalid(mut pending: Pending, packet: &[u8], error: QueryError) -> Handled {
    tracing::debug!(peer = %pending.event.peer, %error, "invalid DNS query");
    pending.event.id = packet.get(..2).map(|id| u16::from_be_bytes([id[0], id[1]]));
    let rcode = error.reply_rcode();
    let reply = rcode
        .and_then(|rcode| header_reply(packet, rcode))
        .map(Vec::from);
    let rcode = rcode.filter(|_| reply.is_some());
    pending.finish(reply, rcode, Verdict::Dropped, Reason::InvalidQuery(error))
}
