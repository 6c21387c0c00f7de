//! The DNS proxy's flows: every query's [`DnsEvent`] becomes Hubble L7 DNS records, and
//! an L3/L4 drop (reported at decision time, when the decision is at hand) the policy
//! verdict and drop records the L4 proxy writes for a connection.
//!
//! The query's task hands its event to [`FlowSink`] after the answer was sent; the sink
//! looks up the two endpoints (remembered per policy) and pushes the records *lazily*:
//! the event is kept as it is and turned into Hubble's records only when somebody reads
//! them (`FlowRing::push_lazy`). Formatting them per query cost about a tenth of the DNS
//! proxy's CPU per query, and on a busy node most are overwritten unread.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use sluice_dns::{DnsEvent, EventSink, Reason, Transport, Verdict as DnsVerdict};
use sluice_identity::{CompiledPolicy, Identity, Protocol};

use super::policy::{learned_resolver_identity, query_client_identity};
use crate::flow::{DnsAnswerInfo, DnsQueryEvent, Endpoint, Flow, FlowVerdict, Timestamp};
use crate::node::proxy::{Shared, endpoint_of, push_lazy};

/// Endpoints remembered at most; past it the memory starts over.
const MAX_ENDPOINTS: usize = 1024;

/// Where the DNS proxy's events go: the node's flow ring.
pub struct FlowSink {
    shared: Arc<Shared>,
    listen: SocketAddr,
    endpoints: Mutex<Endpoints>,
}

impl FlowSink {
    pub fn new(shared: Arc<Shared>, listen: SocketAddr) -> Self {
        Self {
            shared,
            listen,
            endpoints: Mutex::new(Endpoints::default()),
        }
    }
}

impl EventSink for FlowSink {
    fn record(&self, event: DnsEvent) {
        // A panic while holding the lock leaves at worst a half-filled map of endpoints.
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        record_event(&self.shared, &mut endpoints, event, self.listen);
    }
}

/// The flow endpoints of the clients and resolvers seen lately, for the policy they were
/// made with. Making one looks the address up and formats every label of its identity
/// (3–4 % of the DNS proxy's CPU per query), and the same few pods ask the same few
/// resolvers over and over. A new policy (a reload, a learned identity) starts over.
#[derive(Default)]
pub struct Endpoints {
    policy: Option<Arc<CompiledPolicy>>,
    known: HashMap<(Identity, IpAddr), Arc<Endpoint>>,
}

impl Endpoints {
    fn get(&mut self, policy: &Arc<CompiledPolicy>, id: Identity, ip: IpAddr) -> Arc<Endpoint> {
        // Holding the policy keeps its address from being reused by another one.
        let same = self.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy));
        if !same || self.known.len() >= MAX_ENDPOINTS {
            self.known.clear();
            self.policy = Some(Arc::clone(policy));
        }
        self.known
            .entry((id, ip))
            .or_insert_with(|| endpoint_of(policy.universe(), id, ip))
            .clone()
    }
}

/// The flow verdict of a query's L7 records, and whether a response record follows.
/// `None`: the query has L3/L4 records instead (or none).
fn l7_verdict(event: &DnsEvent) -> Option<(FlowVerdict, bool)> {
    Some(match (&event.verdict, &event.reason) {
        // Reported as an L3/L4 drop when policy decided it.
        (_, Reason::PolicyDropped) => return None,
        (DnsVerdict::Forwarded, Reason::PolicyAudit) => (FlowVerdict::Audit, true),
        (DnsVerdict::Forwarded, _) => (FlowVerdict::Forwarded, true),
        // Cilium reports a refused query as a DROPPED request, without a response.
        (DnsVerdict::Refused, _) => (FlowVerdict::Dropped, false),
        // The proxy could not serve it: the upstream or the answer hook failed.
        (
            DnsVerdict::Dropped,
            Reason::UpstreamTimeout
            | Reason::Upstream(_)
            | Reason::BadAnswer(_)
            | Reason::HookTimeout
            | Reason::HookFailed(_),
        ) => (FlowVerdict::Error, false),
        // Unreadable, nowhere to go, or over the in-flight limit: dropped.
        (DnsVerdict::Dropped, _) => (FlowVerdict::Dropped, false),
    })
}

/// What the records of one query are built from, when they are read.
struct QueryFlows {
    node_name: Arc<str>,
    source: Arc<Endpoint>,
    destination: Arc<Endpoint>,
    server: SocketAddr,
    listen: SocketAddr,
    verdict: FlowVerdict,
    event: DnsEvent,
}

impl QueryFlows {
    fn query(&self) -> DnsQueryEvent<'_> {
        let event = &self.event;
        DnsQueryEvent {
            node_name: &self.node_name,
            source: Arc::clone(&self.source),
            destination: Arc::clone(&self.destination),
            source_addr: event.peer,
            destination_addr: self.server,
            transport: protocol(event.transport),
            query: event.qname.as_deref().unwrap_or_default(),
            qtype: event.qtype.map(u16::from),
            proxy_port: Some(self.listen.port()),
        }
    }

    fn request(&self) -> Flow {
        Flow::dns_request(
            &self.query(),
            Timestamp::from(self.event.time),
            self.verdict,
        )
    }

    fn response(&self) -> Flow {
        let event = &self.event;
        let answer = DnsAnswerInfo {
            rcode: event.rcode.map_or(0, u16::from),
            ips: event.ips.iter().map(|ip| ip.addr).collect(),
            ttl: event.ips.iter().map(|ip| ip.ttl).min().unwrap_or(0),
            cnames: event.cnames.clone(),
        };
        let time = Timestamp::from(event.time + event.latency);
        Flow::dns_response(&self.query(), time, self.verdict, event.latency, &answer)
    }
}

/// Records the L7 flows of one query (built when read).
pub fn record_event(
    shared: &Shared,
    endpoints: &mut Endpoints,
    event: DnsEvent,
    listen: SocketAddr,
) {
    let Some((verdict, respond)) = l7_verdict(&event) else {
        return;
    };
    let snapshot = shared.state.load();
    let client_id = query_client_identity(
        snapshot.policy.universe(),
        event.peer,
        event.client_identity,
    );
    // A query with no original destination was, as far as anyone knows, sent to us.
    let server = event.server.unwrap_or(listen);
    let server_id = learned_resolver_identity(&snapshot, server.ip()).unwrap_or(Identity::HOST);
    let flows = Arc::new(QueryFlows {
        node_name: Arc::clone(&shared.node_name),
        source: endpoints.get(&snapshot.policy, client_id, event.peer.ip()),
        destination: endpoints.get(&snapshot.policy, server_id, server.ip()),
        server,
        listen,
        verdict,
        event,
    });
    if respond {
        let response = Arc::clone(&flows);
        push_lazy(shared, Box::new(move || flows.request()));
        push_lazy(shared, Box::new(move || response.response()));
    } else {
        push_lazy(shared, Box::new(move || flows.request()));
    }
}

pub fn protocol(transport: Transport) -> Protocol {
    match transport {
        Transport::Udp => Protocol::Udp,
        Transport::Tcp => Protocol::Tcp,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use sluice_dns::wire::QueryError;

    use super::*;

    fn event(verdict: DnsVerdict, reason: Reason) -> DnsEvent {
        DnsEvent {
            time: SystemTime::UNIX_EPOCH,
            latency: Duration::ZERO,
            peer: ([10, 1, 0, 1], 40000).into(),
            transport: Transport::Udp,
            server: Some(([10, 1, 0, 53], 53).into()),
            client_identity: None,
            upstream: None,
            id: Some(1),
            qname: Some("a.test.".into()),
            qtype: None,
            rcode: None,
            truncated: false,
            ips: Vec::new(),
            cnames: Vec::new(),
            verdict,
            reason,
        }
    }

    /// What each outcome of a query becomes (spec §7: an L7 denial is a DROPPED L7
    /// record, not a packet drop; Cilium's proxy reports upstream failures as ERROR).
    /// An outcome and its flows: the verdict, and whether a response record follows.
    type Case = (DnsVerdict, Reason, Option<(FlowVerdict, bool)>);

    #[test]
    fn every_outcome_has_its_flow_verdict() {
        let cases: &[Case] = &[
            (
                DnsVerdict::Forwarded,
                Reason::Allowed,
                Some((FlowVerdict::Forwarded, true)),
            ),
            (
                DnsVerdict::Forwarded,
                Reason::PolicyAudit,
                Some((FlowVerdict::Audit, true)),
            ),
            (
                DnsVerdict::Refused,
                Reason::PolicyDenied,
                Some((FlowVerdict::Dropped, false)),
            ),
            (DnsVerdict::Dropped, Reason::PolicyDropped, None),
            (
                DnsVerdict::Dropped,
                Reason::UpstreamTimeout,
                Some((FlowVerdict::Error, false)),
            ),
            (
                DnsVerdict::Dropped,
                Reason::HookTimeout,
                Some((FlowVerdict::Error, false)),
            ),
            (
                DnsVerdict::Dropped,
                Reason::NoOriginalDst,
                Some((FlowVerdict::Dropped, false)),
            ),
            (
                DnsVerdict::Dropped,
                Reason::InvalidQuery(QueryError::TooShort { len: 3 }),
                Some((FlowVerdict::Dropped, false)),
            ),
        ];
        for (verdict, reason, want) in cases {
            assert_eq!(
                l7_verdict(&event(*verdict, reason.clone())),
                *want,
                "{verdict:?} {reason:?}"
            );
        }
    }
}
