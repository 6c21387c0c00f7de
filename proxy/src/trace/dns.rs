//! One DNS query through the node's DNS proxy, offline: `policy trace --dns-name`.
//!
//! The verdict is the DNS proxy's own ([`decide`]): L3/L4 policy to the resolver first (a
//! denial drops the query: no answer), then the client's `rules.dns` for that resolver
//! and port (a name they do not allow is answered REFUSED or NXDOMAIN,
//! `NodeConfig.spec.dns.rejectResponse`). The explanation adds the selectors that allowed
//! the name and, for an allowed name, the `toFQDNs` selectors of the client's egress
//! rules that select it — the peers its answer's addresses would become.

use std::sync::Arc;

use serde::Serialize;
use sluice_config::types::FqdnSelector;
use sluice_config::{Config, DnsRejectResponse};
use sluice_identity::policy::{L7Kind, L7RuleSet};
use sluice_identity::trace::{FqdnSelectorMatch, TraceResult, to_fqdns_selecting};
use sluice_identity::{CompiledPolicy, Direction, PolicyRef, Protocol, Verdict};
use sluice_l7::dns::{FqdnPattern, MAX_FQDN_LEN, canonical_name};

use super::rule_policies;
use crate::node::dns::policy::{DnsRule, QueryKey, QueryVerdict, RuleCache, decide};

/// The only port the node redirects to its DNS proxy (UDP and TCP).
pub const DNS_PORT: u16 = 53;
/// The longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, thiserror::Error)]
pub enum DnsQueryError {
    #[error(
        "--dns-name needs --port 53/UDP or 53/TCP (the node's DNS proxy takes those), not {port}/{protocol}"
    )]
    NotDnsPort { port: u16, protocol: Protocol },
    #[error("--dns-name {name:?} is not a DNS name: {reason}")]
    BadName { name: String, reason: &'static str },
}

/// The query name as the DNS proxy hands it to policy: lowercase, with the final dot.
/// Names a query could not carry are refused: empty labels (but the root), labels over
/// 63 bytes, names over 255, and characters outside `[-A-Za-z0-9_*]` (which the proxy
/// would escape, so that only an all-stars selector could match them).
pub fn query_name(name: &str, port: u16, protocol: Protocol) -> Result<String, DnsQueryError> {
    if port != DNS_PORT || !matches!(protocol, Protocol::Udp | Protocol::Tcp) {
        return Err(DnsQueryError::NotDnsPort { port, protocol });
    }
    let bad = |reason| DnsQueryError::BadName {
        name: name.to_owned(),
        reason,
    };
    if name == "." {
        return Ok(".".to_owned());
    }
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_FQDN_LEN {
        return Err(bad("it is longer than 255 characters"));
    }
    for label in body.split('.') {
        if label.is_empty() {
            return Err(bad(
                "it has an empty label (two dots in a row, or a leading dot)",
            ));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        {
            return Err(bad("labels carry letters, digits, '-', '_' and '*' only"));
        }
    }
    Ok(canonical_name(name).into_owned())
}

/// What happens to the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsVerdict {
    /// Sent on to the resolver, whose answer the client gets.
    Forwarded,
    /// `rules.dns` do not allow the name: the proxy answers REFUSED or NXDOMAIN.
    Refused,
    /// L3/L4 policy denies the query: no answer at all.
    Dropped,
    /// Policy would drop it; audit mode forwards it.
    Audit,
}

/// How the client's `rules.dns` hold the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsRules {
    /// No DNS rules for this resolver and port (or an allow without them covers it):
    /// every name passes.
    AllowAll,
    /// Names must match a selector.
    Selectors,
    /// L7 rules of another kind on the DNS port: the DNS proxy refuses every name.
    RefuseAll,
}

/// A `rules.dns` selector that allows the name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsSelectorMatch {
    pub policy: Arc<PolicyRef>,
    #[serde(flatten)]
    pub selector: FqdnSelector,
}

/// The trace of one query; see the module documentation.
#[derive(Debug, Clone, Serialize)]
pub struct DnsTrace {
    /// The name as policy sees it (lowercase, final dot).
    pub query: String,
    pub verdict: DnsVerdict,
    /// The proxy's own answer (`REFUSED`, `NXDOMAIN`); null when forwarded (the resolver
    /// answers) or dropped (nothing answers).
    pub answer: Option<&'static str>,
    /// The side whose L3/L4 policy drops the query (or would, in audit mode).
    pub dropped_by: Option<Direction>,
    /// How `rules.dns` hold it; null when L3/L4 policy decided before them.
    pub rules: Option<DnsRules>,
    /// The `rules.dns` selectors that allow the name.
    pub allowed_by: Vec<DnsSelectorMatch>,
    /// The policies whose `rules.dns` do not allow the name, when refused.
    pub refused_by: Vec<Arc<PolicyRef>>,
    /// For a name that may be asked: the `toFQDNs` selectors of the client's egress
    /// rules that select it (its answer's addresses become those peers).
    pub to_fqdns: Vec<FqdnSelectorMatch>,
}

impl DnsTrace {
    pub fn final_verdict(&self) -> Verdict {
        match self.verdict {
            DnsVerdict::Forwarded => Verdict::Allowed,
            DnsVerdict::Refused | DnsVerdict::Dropped => Verdict::Denied,
            DnsVerdict::Audit => Verdict::Audit,
        }
    }
}

/// Decides the query for `qname` (from [`query_name`]) on the connection `connection`
/// traced with `policy`, from its source to its destination (the resolver).
pub fn trace_dns(
    config: &Config,
    policy: &CompiledPolicy,
    connection: &TraceResult,
    qname: &str,
) -> DnsTrace {
    let key = QueryKey {
        client: connection.source.identity,
        resolver: connection.destination.identity,
        proto: connection.protocol,
        port: connection.port,
    };
    // The DNS proxy's decision, on a cache of its own: one query, one compilation.
    let verdict = decide(policy, 0, &RuleCache::default(), key, qname);
    let mut trace = DnsTrace {
        query: qname.to_owned(),
        verdict: DnsVerdict::Forwarded,
        answer: None,
        dropped_by: None,
        rules: None,
        allowed_by: Vec::new(),
        refused_by: Vec::new(),
        to_fqdns: Vec::new(),
    };
    match verdict {
        QueryVerdict::Drop { direction } => {
            trace.verdict = DnsVerdict::Dropped;
            trace.dropped_by = Some(direction);
            return trace;
        }
        QueryVerdict::Audit {
            l4: Some(direction),
        } => {
            trace.verdict = DnsVerdict::Audit;
            trace.dropped_by = Some(direction);
        }
        QueryVerdict::Audit { l4: None } => trace.verdict = DnsVerdict::Audit,
        QueryVerdict::Refuse => {
            trace.verdict = DnsVerdict::Refused;
            trace.answer = Some(match config.node.dns_reject_response {
                DnsRejectResponse::Refused => "REFUSED",
                DnsRejectResponse::NxDomain => "NXDOMAIN",
            });
        }
        QueryVerdict::Forward => {}
    }
    // rules.dns are the client's egress rules for the resolver (the proxy's own lookup).
    let egress = policy.decide(
        key.client,
        Direction::Egress,
        key.resolver,
        key.proto,
        key.port,
    );
    let l7 = egress.l7.as_ref();
    trace.rules = Some(match DnsRule::compile(l7) {
        DnsRule::AllowAll => DnsRules::AllowAll,
        DnsRule::Patterns(_) => DnsRules::Selectors,
        DnsRule::RefuseAll => DnsRules::RefuseAll,
    });
    if trace.verdict == DnsVerdict::Refused {
        trace.refused_by = rule_policies(l7);
        return trace;
    }
    if let Some(l7) = l7.filter(|l7| l7.kind == L7Kind::Dns && !l7.wildcard) {
        for rule in &l7.rules {
            let L7RuleSet::Dns(selectors) = &rule.rules else {
                continue;
            };
            for selector in selectors {
                let allows = FqdnPattern::from_selector(
                    selector.match_name.as_deref(),
                    selector.match_pattern.as_deref(),
                )
                .is_ok_and(|p| p.allows_query(qname));
                if allows {
                    trace.allowed_by.push(DnsSelectorMatch {
                        policy: rule.policy.clone(),
                        selector: selector.clone(),
                    });
                }
            }
        }
    }
    trace.to_fqdns = to_fqdns_selecting(config, policy, key.client, qname);
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names as the DNS proxy hands them to policy (sluice-dns `wire::canonical`, spec §14:
    /// lowercase with the final dot), and the names a query could not carry.
    #[test]
    fn query_names_are_canonical_or_refused() {
        let ok: &[(&str, &str)] = &[
            ("api.stripe.com", "api.stripe.com."),
            ("API.Stripe.COM.", "api.stripe.com."),
            ("_sip._tcp.example.com", "_sip._tcp.example.com."),
            (".", "."),
        ];
        for (name, want) in ok {
            assert_eq!(
                query_name(name, 53, Protocol::Udp).ok().as_deref(),
                Some(*want),
                "{name}"
            );
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = ["abcdefghi"; 26].join(".");
        for bad in ["", "a..b", ".a", "a b.com", "a/b", &long_label, &long_name] {
            assert!(
                matches!(
                    query_name(bad, 53, Protocol::Tcp),
                    Err(DnsQueryError::BadName { .. })
                ),
                "{bad:?} should be refused"
            );
        }
        for (port, proto) in [
            (5353, Protocol::Udp),
            (53, Protocol::Sctp),
            (80, Protocol::Tcp),
        ] {
            assert!(
                matches!(
                    query_name("a.test", port, proto),
                    Err(DnsQueryError::NotDnsPort { .. })
                ),
                "{port}/{proto}"
            );
        }
    }
}
