//! Port tables: for one (endpoint, direction, peer), what each port and protocol gets.
//!
//! Contributions (one per rule entry and port) are swept into disjoint segments per
//! protocol; each segment holds the merged verdict of every contribution covering it,
//! so a lookup is one binary search.

use std::sync::Arc;

use serde::Serialize;
use sluice_config::types::{FqdnSelector, HttpRule, KafkaRule};

use super::PolicyRef;
use super::verdict::AuthMode;
use crate::ports::{PortRange, Protocol};

/// The L7 parser a port's rules call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum L7Kind {
    Http,
    Kafka,
    Dns,
}

impl L7Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Kafka => "kafka",
            Self::Dns => "dns",
        }
    }
}

/// The L7 rules of one port rule, as the user wrote them, with their policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct L7Rule {
    pub policy: Arc<PolicyRef>,
    #[serde(flatten)]
    pub rules: L7RuleSet,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum L7RuleSet {
    Http(Vec<HttpRule>),
    Kafka(Vec<KafkaRule>),
    Dns(Vec<FqdnSelector>),
}

impl L7RuleSet {
    pub fn kind(&self) -> L7Kind {
        match self {
            Self::Http(_) => L7Kind::Http,
            Self::Kafka(_) => L7Kind::Kafka,
            Self::Dns(_) => L7Kind::Dns,
        }
    }
}

/// The L7 policy of a port for a peer: the union of the rules of every allow that
/// covers it (spec §8). `wildcard`: some allow for this peer and port has no L7 rules
/// (or comes from a rule without default deny), so every request passes, still
/// through the proxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct L7Policy {
    pub kind: L7Kind,
    pub wildcard: bool,
    pub rules: Vec<Arc<L7Rule>>,
}

/// One rule entry's contribution to a port range.
#[derive(Debug, Clone)]
pub(crate) struct Contribution {
    pub deny: bool,
    pub origin: Arc<PolicyRef>,
    pub l7: Option<Arc<L7Rule>>,
    /// From a rule with `enableDefaultDeny: false`: its L7 rules must not 403 others.
    pub implicit_l7_wildcard: bool,
    pub auth: Option<AuthMode>,
}

/// The merged verdict of one port segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PortVerdict {
    pub denied_by: Vec<Arc<PolicyRef>>,
    pub allowed_by: Vec<Arc<PolicyRef>>,
    /// An allow without L7 rules covers this segment.
    pub l4_only_allow: bool,
    pub l7: Option<L7Policy>,
    pub auth: Option<AuthMode>,
}

/// Two L7 parsers on one port.
#[derive(Debug, Clone)]
pub(crate) struct L7Conflict {
    pub first: (L7Kind, Arc<PolicyRef>),
    pub second: (L7Kind, Arc<PolicyRef>),
}

impl PortVerdict {
    fn add(&mut self, c: &Contribution) -> Result<(), L7Conflict> {
        if c.deny {
            push_unique(&mut self.denied_by, &c.origin);
            return Ok(());
        }
        push_unique(&mut self.allowed_by, &c.origin);
        self.auth = self.auth.max(c.auth);
        match &c.l7 {
            None => self.l4_only_allow = true,
            Some(rule) => {
                let kind = rule.rules.kind();
                match &mut self.l7 {
                    None => {
                        self.l7 = Some(L7Policy {
                            kind,
                            wildcard: c.implicit_l7_wildcard,
                            rules: vec![rule.clone()],
                        })
                    }
                    Some(existing) if existing.kind != kind => {
                        return Err(L7Conflict {
                            first: (existing.kind, existing.rules[0].policy.clone()),
                            second: (kind, c.origin.clone()),
                        });
                    }
                    Some(existing) => {
                        existing.wildcard |= c.implicit_l7_wildcard;
                        if !existing.rules.iter().any(|r| Arc::ptr_eq(r, rule)) {
                            existing.rules.push(rule.clone());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Merges two verdicts covering the same port for the same peer (a peer-specific
    /// one and an any-peer one). An L4-only allow on either side makes the other side's
    /// L7 rules a wildcard (spec §8.1, §8.3).
    pub fn merge(a: Option<&Self>, b: Option<&Self>) -> Option<Self> {
        match (a, b) {
            (None, None) => None,
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (Some(a), Some(b)) => {
                let mut out = a.clone();
                for p in &b.denied_by {
                    push_unique(&mut out.denied_by, p);
                }
                for p in &b.allowed_by {
                    push_unique(&mut out.allowed_by, p);
                }
                out.l4_only_allow |= b.l4_only_allow;
                out.auth = out.auth.max(b.auth);
                out.l7 = match (out.l7.take(), &b.l7) {
                    (None, None) => None,
                    (Some(l), None) => Some(l),
                    (None, Some(l)) => Some(l.clone()),
                    // Conflicting parsers were rejected at compile time; keep the first.
                    (Some(mut l), Some(r)) => {
                        if l.kind == r.kind {
                            l.wildcard |= r.wildcard;
                            for rule in &r.rules {
                                if !l.rules.iter().any(|x| Arc::ptr_eq(x, rule)) {
                                    l.rules.push(rule.clone());
                                }
                            }
                        }
                        Some(l)
                    }
                };
                Some(out)
            }
        }
    }

    /// The L7 policy in force, with L4-only allows turned into a wildcard.
    pub fn effective_l7(&self) -> Option<L7Policy> {
        self.l7.as_ref().map(|l| L7Policy {
            kind: l.kind,
            wildcard: l.wildcard || self.l4_only_allow,
            rules: l.rules.clone(),
        })
    }
}

fn push_unique(list: &mut Vec<Arc<PolicyRef>>, p: &Arc<PolicyRef>) {
    if !list.iter().any(|x| x == p) {
        list.push(p.clone());
    }
}

#[derive(Debug, Clone)]
struct Segment {
    range: PortRange,
    verdict: Arc<PortVerdict>,
}

/// Disjoint port segments per protocol.
#[derive(Debug, Clone, Default)]
pub struct PortTable {
    by_protocol: [Vec<Segment>; Protocol::COUNT],
}

impl PortTable {
    /// Builds a table from `(protocol, range, contribution)` items.
    pub(crate) fn build(
        items: &[(Protocol, PortRange, Arc<Contribution>)],
    ) -> Result<Self, L7Conflict> {
        let mut table = Self::default();
        for proto in Protocol::ALL {
            let mut ranged: Vec<(PortRange, &Contribution)> = items
                .iter()
                .filter(|(p, _, _)| *p == proto)
                .map(|(_, r, c)| (*r, c.as_ref()))
                .collect();
            if ranged.is_empty() {
                continue;
            }
            ranged.sort_by_key(|(r, _)| (r.lo, r.hi));
            let segments = &mut table.by_protocol[proto.index()];
            let mut err = None;
            sweep(&ranged, |range, active| {
                if err.is_some() {
                    return;
                }
                let mut verdict = PortVerdict::default();
                for c in active {
                    if let Err(e) = verdict.add(c) {
                        err = Some(e);
                        return;
                    }
                }
                match segments.last_mut() {
                    // Coalesce neighbours with the same verdict.
                    Some(last)
                        if u32::from(last.range.hi) + 1 == u32::from(range.lo)
                            && *last.verdict == verdict =>
                    {
                        last.range.hi = range.hi;
                    }
                    _ => segments.push(Segment {
                        range,
                        verdict: Arc::new(verdict),
                    }),
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(table)
    }

    pub fn lookup(&self, proto: Protocol, port: u16) -> Option<&PortVerdict> {
        let segments = &self.by_protocol[proto.index()];
        let i = segments.partition_point(|s| s.range.hi < port);
        segments
            .get(i)
            .filter(|s| s.range.contains(port))
            .map(|s| s.verdict.as_ref())
    }

    /// The table's segments for one protocol, in port order.
    pub fn segments(&self, proto: Protocol) -> impl Iterator<Item = (PortRange, &PortVerdict)> {
        self.by_protocol[proto.index()]
            .iter()
            .map(|s| (s.range, s.verdict.as_ref()))
    }

    #[cfg(test)]
    fn segment_count(&self) -> usize {
        self.by_protocol.iter().map(Vec::len).sum()
    }
}

/// Calls `f` for every maximal port range over which the set of covering items is
/// constant and non-empty. `items` must be sorted by range start.
pub(crate) fn sweep<T>(items: &[(PortRange, T)], mut f: impl FnMut(PortRange, &[&T])) {
    // Boundaries: every start, and every end + 1.
    let mut bounds: Vec<u32> = items
        .iter()
        .flat_map(|(r, _)| [u32::from(r.lo), u32::from(r.hi) + 1])
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut next = 0;
    // Active items, with their end; ended ones are removed lazily.
    let mut active: Vec<(u32, &T)> = Vec::new();
    for w in bounds.windows(2) {
        let (lo, hi_excl) = (w[0], w[1]);
        while next < items.len() && u32::from(items[next].0.lo) <= lo {
            active.push((u32::from(items[next].0.hi), &items[next].1));
            next += 1;
        }
        active.retain(|(end, _)| *end >= lo);
        if active.is_empty() {
            continue;
        }
        let covering: Vec<&T> = active.iter().map(|(_, t)| *t).collect();
        // Both bounds come from u16 ports (hi_excl - 1 <= 65535).
        let range = PortRange {
            lo: u16::try_from(lo).unwrap_or(u16::MAX),
            hi: u16::try_from(hi_excl - 1).unwrap_or(u16::MAX),
        };
        f(range, &covering);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contrib(name: &str, deny: bool) -> Arc<Contribution> {
        Arc::new(Contribution {
            deny,
            origin: Arc::new(PolicyRef {
                kind: "CiliumNetworkPolicy",
                namespace: Some("ns".into()),
                name: name.into(),
            }),
            l7: None,
            implicit_l7_wildcard: false,
            auth: None,
        })
    }

    #[test]
    fn overlapping_ranges_split_into_segments() {
        let items = vec![
            (
                Protocol::Tcp,
                PortRange { lo: 80, hi: 90 },
                contrib("a", false),
            ),
            (Protocol::Tcp, PortRange::single(85), contrib("b", true)),
            (Protocol::Udp, PortRange::ALL, contrib("c", false)),
        ];
        let t = PortTable::build(&items).unwrap();
        let names = |v: &PortVerdict| {
            (
                v.allowed_by
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>(),
                v.denied_by
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>(),
            )
        };
        assert!(t.lookup(Protocol::Tcp, 79).is_none());
        assert_eq!(
            names(t.lookup(Protocol::Tcp, 80).unwrap()),
            (vec!["a".into()], vec![])
        );
        assert_eq!(
            names(t.lookup(Protocol::Tcp, 85).unwrap()),
            (vec!["a".into()], vec!["b".into()])
        );
        assert_eq!(
            names(t.lookup(Protocol::Tcp, 90).unwrap()),
            (vec!["a".into()], vec![])
        );
        assert!(t.lookup(Protocol::Tcp, 91).is_none());
        assert!(t.lookup(Protocol::Udp, 0).is_some());
        assert!(t.lookup(Protocol::Udp, 65535).is_some());
        assert!(t.lookup(Protocol::Sctp, 80).is_none());
        // 80-84, 85, 86-90 on TCP; 0-65535 on UDP.
        assert_eq!(t.segment_count(), 4);
    }
}
