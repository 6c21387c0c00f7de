//! The DNS proxy inside the node: the kernel redirects every pod's DNS (UDP and TCP to
//! port 53) to it on the pods' gateway address, and it enforces L3/L4 policy and
//! `rules.dns` per query before forwarding to the resolver the pod asked (or to the
//! NodeConfig `spec.dns.upstream`).
//!
//! sluice-dns does the protocol; this module plugs the node into it:
//!
//! - [`KernelOriginalDst`]: where a query was going, from the kernel's
//!   `DNS_ORIG_BY_CLIENT` map (keyed by the client's address and port);
//! - [`NodeDnsPolicy`]: the decision ([`policy`]) on the current policy snapshot, and the
//!   L3/L4 flows of queries policy drops;
//! - [`flows`]: every query's event as Hubble DNS flows;
//! - [`FqdnLearning`](super::fqdn::FqdnLearning): what an allowed answer teaches the node
//!   (`toFQDNs`), installed before the client sees the answer.

pub mod flows;
pub mod policy;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sluice_bpf::DnsOrigDsts;
use sluice_config::DnsRejectResponse;
use sluice_dns::{
    BindError, ClientInfo, DnsPolicy, DnsProxy, Handlers, Origin, OriginalDst, PolicyAnswer,
    ProxyConfig, RecordType, RejectResponse, Transport,
};
use sluice_identity::Direction;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use self::policy::{
    QueryKey, QueryVerdict, RuleCache, learned_resolver_identity, query_client_identity,
};
use super::fqdn::{ANSWER_HOLD, FqdnLearning};
use super::pods::PROXY_SOURCE;
use super::proxy::Shared;

/// The running DNS proxy: one listener pair (UDP and TCP) per address workloads are
/// redirected to — the pods' gateway, and loopback for workloads in the host's network
/// namespace (`spec.cgroup`) — all on the same port, with the same policy and hook.
pub struct DnsService {
    port: u16,
    instances: Vec<Instance>,
}

struct Instance {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    serve: JoinHandle<()>,
    /// Duplicates of the listening sockets, for a successor (`super::handover`).
    sockets: sluice_dns::Sockets,
}

impl DnsService {
    /// Binds the DNS proxy on every address of `listen` (UDP and TCP; all must have the
    /// same, non-zero port), or serves the sockets a predecessor bound there (`adopted`,
    /// per address), and serves them. Queries to a local pod leave from
    /// [`PROXY_SOURCE`], the address pods' ingress trusts as the proxy's. With `upstream`
    /// (`spec.dns.upstream`) every query is forwarded there; policy is still decided on
    /// the resolver the workload addressed.
    pub async fn start(
        shared: Arc<Shared>,
        original_dst: DnsOrigDsts,
        listen: Vec<(SocketAddr, Option<sluice_dns::Sockets>)>,
        reject: DnsRejectResponse,
        upstream: Option<SocketAddr>,
    ) -> Result<Self, BindError> {
        let Some(&(first, _)) = listen.first() else {
            return Err(BindError::Udp {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "no address to serve DNS on",
                ),
            });
        };
        let port = first.port();
        let handlers = Handlers {
            policy: Arc::new(NodeDnsPolicy {
                shared: Arc::clone(&shared),
                cache: RuleCache::default(),
                proxy_port: port,
            }),
            original_dst: Arc::new(KernelOriginalDst(original_dst)),
            answer_hook: Arc::new(FqdnLearning::new(Arc::clone(&shared))),
            events: Arc::new(flows::FlowSink::new(Arc::clone(&shared), first)),
        };
        let mut instances = Vec::with_capacity(listen.len());
        for (listen, adopted) in listen {
            let mut config = ProxyConfig::new(listen);
            config.fixed_upstream = upstream;
            config.reject_response = match reject {
                DnsRejectResponse::Refused => RejectResponse::Refused,
                DnsRejectResponse::NxDomain => RejectResponse::NameError,
            };
            config.answer_hook_timeout = ANSWER_HOLD;
            config.upstream_sources = shared
                .local_pods
                .iter()
                .map(|pod| (*pod, IpAddr::V4(PROXY_SOURCE)))
                .collect::<BTreeMap<_, _>>();
            let bound = match adopted {
                Some(sockets) => DnsProxy::from_sockets(config, handlers.clone(), sockets),
                None => DnsProxy::bind(config, handlers.clone()).await,
            };
            let ready = bound.and_then(|proxy| {
                let sockets = proxy.try_clone_sockets().map_err(|source| BindError::Udp {
                    addr: listen,
                    source,
                })?;
                Ok((proxy, sockets))
            });
            let (proxy, sockets) = match ready {
                Ok(ready) => ready,
                Err(e) => {
                    // Nothing half-started stays behind.
                    Self { port, instances }.stop().await;
                    return Err(e);
                }
            };
            let addr = proxy.local_addr();
            let (stop, stopped) = oneshot::channel::<()>();
            let serve = tokio::spawn(proxy.serve(async move {
                let _ = stopped.await;
            }));
            info!(%addr, "DNS proxy serving");
            instances.push(Instance {
                addr,
                stop,
                serve,
                sockets,
            });
        }
        Ok(Self { port, instances })
    }

    /// The listening sockets (duplicates) and their addresses, for a successor.
    pub fn sockets(&self) -> impl Iterator<Item = (SocketAddr, &sluice_dns::Sockets)> {
        self.instances.iter().map(|i| (i.addr, &i.sockets))
    }

    /// Stops reading the sockets (a successor serves them now) and returns once what was
    /// read is answered, TCP connections closed (see `DnsProxy::serve`), so that the FQDN
    /// state saved next holds every answer this node gave.
    pub async fn release(self) {
        self.stop().await;
    }

    /// The port workloads' DNS is redirected to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting queries and waits, bounded, until what was read is answered (see
    /// `DnsProxy::serve`); clients whose queries were not read retry against whatever
    /// serves the port next (or fail closed).
    pub async fn stop(self) {
        for instance in self.instances {
            let _ = instance.stop.send(());
            let _ = instance.serve.await;
        }
    }
}

/// Original destinations from the kernel (see `sluice_bpf::DnsOrigDsts`).
pub struct KernelOriginalDst(DnsOrigDsts);

impl OriginalDst for KernelOriginalDst {
    fn original_dst(&self, client: SocketAddr, transport: Transport) -> Option<Origin> {
        match self.0.get(client, flows::protocol(transport)) {
            Ok(found) => found.map(|o| Origin {
                server: o.addr,
                client_identity: o.src_identity.0,
            }),
            Err(error) => {
                warn!(%client, %transport, %error, "reading a DNS query's original destination failed; refusing it");
                None
            }
        }
    }
}

/// Policy for the DNS proxy, on the node's current snapshot.
pub struct NodeDnsPolicy {
    shared: Arc<Shared>,
    cache: RuleCache,
    proxy_port: u16,
}

impl DnsPolicy for NodeDnsPolicy {
    fn check(&self, client: &ClientInfo, qname: &str, _: RecordType) -> PolicyAnswer {
        let snapshot = self.shared.state.load();
        let policy = &snapshot.policy;
        let universe = policy.universe();
        let client_id = query_client_identity(universe, client.peer, client.client_identity);
        let proto = flows::protocol(client.transport);
        let Some(resolver) = learned_resolver_identity(&snapshot, client.server.ip()) else {
            warn!(peer = %client.peer, server = %client.server, "DNS query to a loopback resolver; dropped");
            return PolicyAnswer::Drop;
        };
        let key = QueryKey {
            client: client_id,
            resolver,
            proto,
            port: client.server.port(),
        };
        let verdict = policy::decide(policy, snapshot.generation, &self.cache, key, qname);
        // Reasons and policy names are only looked up for what gets an L3/L4 flow.
        let l4 = match verdict {
            QueryVerdict::Drop { direction }
            | QueryVerdict::Audit {
                l4: Some(direction),
            } => Some(direction),
            _ => None,
        };
        if let Some(direction) = l4 {
            let (endpoint, peer) = match direction {
                Direction::Egress => (client_id, resolver),
                Direction::Ingress => (resolver, client_id),
            };
            let decision = policy::decision_with_authentication(
                policy.decide(endpoint, direction, peer, proto, key.port),
                policy.audit_mode(),
            );
            // A query that L3/L4 policy dropped, or would have and audit mode let
            // through: recorded like a connection's decision.
            crate::node::proxy::record(
                &self.shared,
                &snapshot,
                (client.peer, client.server),
                (client_id, resolver),
                flows::protocol(client.transport),
                direction,
                &decision,
                self.proxy_port,
            );
        }
        debug!(peer = %client.peer, server = %client.server, qname, ?verdict, "DNS query decided");
        match verdict {
            QueryVerdict::Forward => PolicyAnswer::Allow,
            QueryVerdict::Refuse => PolicyAnswer::Deny,
            QueryVerdict::Drop { .. } => PolicyAnswer::Drop,
            QueryVerdict::Audit { .. } => PolicyAnswer::Audit,
        }
    }
}
