//! What may happen to one DNS query: L3/L4 policy first, then `rules.dns`.
//!
//! A query from a client to a resolver on port 53 is a packet like any other first: the
//! client's egress and the resolver's ingress must allow it at L3/L4 (as for a TCP
//! connection through the proxy, both sides are asked). An L3/L4 denial is a **drop**:
//! Cilium's datapath drops such a query before any proxy sees it, so the client gets no
//! answer, and the flow is a policy drop (133, 181, 189), not an L7 one. Only then do the
//! client's `rules.dns` for that resolver and port apply: a name they do not allow is
//! **refused** (REFUSED or NXDOMAIN, `NodeConfig.spec.dns.rejectResponse`), an L7 verdict
//! that Hubble reports as a DROPPED DNS request. Audit mode forwards what L3/L4 policy
//! would drop (reported AUDIT) and keeps refusing names, as Cilium keeps enforcing L7
//! rules in audit mode.
//!
//! # The compiled `rules.dns`
//!
//! A [`DnsPatternSet`] is built once per (client identity, resolver identity, protocol,
//! port) and policy generation and kept in a [`RuleCache`]: the per-query path is two
//! `outcome` lookups (no allocation), one lock-free cache read and one match. The cache is
//! copy-on-write behind an `ArcSwap`: a miss (the first query of a kind after a start or
//! reload) clones the map to insert, which is cheap for the few hundred kinds a node sees
//! and keeps every hit free of locks. A reload starts an empty map for the new generation,
//! so no compiled set outlives the policy it came from.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sluice_identity::policy::{
    AuthMode, CompiledPolicy, Decision, L7Kind, L7Policy, L7RuleSet, Outcome,
};
use sluice_identity::universe::Universe;
use sluice_identity::{Direction, DropReason, Identity, Protocol, Verdict};
use sluice_l7::dns::{DnsPatternSet, FqdnPattern};
use tracing::warn;

use crate::node::pods::{GATEWAY, PROXY_SOURCE};
use crate::node::state::Snapshot;

/// A query's endpoints, as policy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryKey {
    pub client: Identity,
    pub resolver: Identity,
    pub proto: Protocol,
    /// The resolver's port (53, as the redirect only takes port 53).
    pub port: u16,
}

/// What to do with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryVerdict {
    /// Allowed: forward it.
    Forward,
    /// `rules.dns` do not allow the name: answer with the reject code, do not forward.
    Refuse,
    /// L3/L4 policy denies it on the `direction` side: no answer at all.
    Drop { direction: Direction },
    /// Policy would refuse or drop it; audit mode forwards it. `l4` names the side whose
    /// L3/L4 policy would have dropped it, when that is the reason (else `rules.dns` is).
    Audit { l4: Option<Direction> },
}

/// The identity of a query's client, from its address.
pub fn client_identity(universe: &Universe, ip: IpAddr) -> Identity {
    universe.ipcache().lookup(ip).0
}

/// The identity of a query's client: a pod is known by its address; a workload in the
/// host's network namespace asks from loopback, which says nothing about who it is, so
/// its identity is the one the redirect recorded for its socket (`recorded`, from
/// `sluice_dns::Origin`).
pub fn query_client_identity(
    universe: &Universe,
    peer: std::net::SocketAddr,
    recorded: Option<u32>,
) -> Identity {
    match recorded {
        Some(id) if peer.ip().is_loopback() => Identity(id),
        _ => client_identity(universe, peer.ip()),
    }
}

/// The identity of the resolver a query was going to: the node's own addresses are
/// `host`. `None` for loopback and unspecified addresses, which a pod cannot mean (its
/// own loopback never leaves it) and which from the node would reach the node itself.
pub fn resolver_identity(universe: &Universe, ip: IpAddr) -> Option<Identity> {
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    if ip == IpAddr::V4(GATEWAY) || ip == IpAddr::V4(PROXY_SOURCE) {
        return Some(Identity::HOST);
    }
    Some(universe.ipcache().lookup(ip).0)
}

/// [`resolver_identity`] on the node's snapshot: a resolver whose address was learned
/// from DNS (`toFQDNs` naming a public resolver) has its FQDN identity.
pub fn learned_resolver_identity(snapshot: &Snapshot, ip: IpAddr) -> Option<Identity> {
    resolver_identity(snapshot.policy.universe(), ip)
        .map(|id| snapshot.fqdn.get(&ip).copied().unwrap_or(id))
}

/// Decides one query. Pure: the caller reports what needs reporting.
pub fn decide(
    policy: &CompiledPolicy,
    generation: u32,
    cache: &RuleCache,
    key: QueryKey,
    qname: &str,
) -> QueryVerdict {
    let audit = policy.audit_mode();
    let egress = with_authentication(
        policy.outcome(
            key.client,
            Direction::Egress,
            key.resolver,
            key.proto,
            key.port,
        ),
        audit,
    );
    let ingress = with_authentication(
        policy.outcome(
            key.resolver,
            Direction::Ingress,
            key.client,
            key.proto,
            key.port,
        ),
        audit,
    );
    // The packet leaves the client first: its egress drop is the one reported.
    if egress.verdict == Verdict::Denied {
        return QueryVerdict::Drop {
            direction: Direction::Egress,
        };
    }
    if ingress.verdict == Verdict::Denied {
        return QueryVerdict::Drop {
            direction: Direction::Ingress,
        };
    }
    let l4_audit = [(Direction::Egress, egress), (Direction::Ingress, ingress)]
        .into_iter()
        .find(|(_, o)| o.verdict == Verdict::Audit)
        .map(|(d, _)| d);
    if let Some(direction) = l4_audit {
        return QueryVerdict::Audit {
            l4: Some(direction),
        };
    }
    // rules.dns are egress rules (validation refuses them on ingress); the resolver's
    // ingress has no say over names.
    if !egress.needs_l7 {
        return QueryVerdict::Forward;
    }
    let rule = cache.get(generation, key, || {
        let decision = policy.decide(
            key.client,
            Direction::Egress,
            key.resolver,
            key.proto,
            key.port,
        );
        DnsRule::compile(decision.l7.as_ref())
    });
    // L7 rules keep enforcing in audit mode, as in Cilium: audit covers L3/L4 only.
    if rule.allows(qname) {
        QueryVerdict::Forward
    } else {
        QueryVerdict::Refuse
    }
}

/// Authentication (mutual TLS between identities) has not landed: an allow that needs it
/// is a 189 drop, audited in audit mode, as the L4 proxy does. Never let through.
fn with_authentication(mut o: Outcome, audit: bool) -> Outcome {
    if o.verdict == Verdict::Allowed && o.auth.is_some_and(|a| a != AuthMode::Disabled) {
        o.verdict = if audit {
            Verdict::Audit
        } else {
            Verdict::Denied
        };
        o.drop_reason = Some(DropReason::AuthRequired);
    }
    o
}

/// [`with_authentication`] for a full decision (the one a flow reports).
pub fn decision_with_authentication(mut d: Decision, audit: bool) -> Decision {
    if d.verdict != Verdict::Allowed || d.authentication.is_none() {
        return d;
    }
    if audit {
        d.verdict = Verdict::Audit;
        d.audit_drop_reason = Some(DropReason::AuthRequired);
    } else {
        d.verdict = Verdict::Denied;
        d.drop_reason = Some(DropReason::AuthRequired);
    }
    d
}

/// The compiled `rules.dns` for one [`QueryKey`].
#[derive(Debug)]
pub enum DnsRule {
    /// An allow without DNS rules covers the port (an L7 wildcard), or a rule's list is
    /// empty: every name passes (spec §14).
    AllowAll,
    /// Names any of these selectors allows.
    Patterns(Box<DnsPatternSet>),
    /// L7 rules of another kind (HTTP, Kafka) on the DNS port: the DNS proxy cannot
    /// apply them, so nothing passes (fail closed).
    RefuseAll,
}

impl DnsRule {
    pub fn compile(l7: Option<&L7Policy>) -> Self {
        let Some(l7) = l7 else {
            return Self::AllowAll;
        };
        if l7.kind != L7Kind::Dns {
            warn!(
                kind = l7.kind.as_str(),
                "L7 rules of another kind on a DNS port; its queries are refused"
            );
            return Self::RefuseAll;
        }
        if l7.wildcard {
            return Self::AllowAll;
        }
        let mut patterns = Vec::new();
        for rule in &l7.rules {
            let L7RuleSet::Dns(selectors) = &rule.rules else {
                continue;
            };
            if selectors.is_empty() {
                return Self::AllowAll;
            }
            for s in selectors {
                match FqdnPattern::from_selector(
                    s.match_name.as_deref(),
                    s.match_pattern.as_deref(),
                ) {
                    Ok(p) => patterns.push(p),
                    // Validation refuses such a policy; if one got here it allows nothing.
                    Err(errors) => {
                        warn!(policy = %rule.policy, ?errors, "invalid DNS selector skipped")
                    }
                }
            }
        }
        Self::Patterns(Box::new(DnsPatternSet::new(patterns)))
    }

    /// `qname` as the DNS proxy hands it over: lowercase, with the final dot.
    pub fn allows(&self, qname: &str) -> bool {
        match self {
            Self::AllowAll => true,
            Self::Patterns(set) => set.allows_query(qname),
            Self::RefuseAll => false,
        }
    }
}

/// The compiled `rules.dns` of one policy generation, by [`QueryKey`].
#[derive(Debug, Default)]
pub struct RuleCache {
    current: ArcSwap<CacheGeneration>,
}

#[derive(Debug, Default)]
struct CacheGeneration {
    generation: u32,
    rules: HashMap<QueryKey, Arc<DnsRule>>,
}

impl RuleCache {
    /// The rule for `key` in `generation`, compiled by `compile` on a miss.
    pub fn get(
        &self,
        generation: u32,
        key: QueryKey,
        compile: impl FnOnce() -> DnsRule,
    ) -> Arc<DnsRule> {
        {
            let current = self.current.load();
            if current.generation == generation
                && let Some(rule) = current.rules.get(&key)
            {
                return Arc::clone(rule);
            }
        }
        let rule = Arc::new(compile());
        // A query that read the snapshot just before a reload may finish after it: it
        // gets its rule, but must not put the old generation back.
        self.current.rcu(|current| {
            if current.generation > generation {
                return Arc::clone(current);
            }
            let mut rules = if current.generation == generation {
                current.rules.clone()
            } else {
                HashMap::new()
            };
            rules.insert(key, Arc::clone(&rule));
            Arc::new(CacheGeneration { generation, rules })
        });
        rule
    }

    /// Compiled rules held for `generation`.
    #[cfg(test)]
    pub fn len(&self, generation: u32) -> usize {
        let current = self.current.load();
        if current.generation == generation {
            current.rules.len()
        } else {
            0
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
