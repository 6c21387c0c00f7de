//! Which identity a learned address should have, and the numbers FQDN identities get.
//! Pure: no kernel, no clock; tested with Cilium's semantics below.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use sluice_identity::allocator::{IdentityRange, allocate_one};
use sluice_identity::fqdn::{AddressBase, FqdnIdentity};
use sluice_identity::universe::Universe;
use sluice_identity::{Identity, LabelSet};
use sluice_l7::dns::{DnsPatternSet, FqdnPattern};
use tracing::warn;

use crate::node::pods::{GATEWAY, PROXY_SOURCE};

/// The `toFQDNs` selectors of a policy, compiled for matching names.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    selectors: Arc<[String]>,
    set: DnsPatternSet,
}

impl Selectors {
    /// `selectors` as `CompiledPolicy::fqdn_selectors` lists them (lowercased). A
    /// `matchName` has no `*`, so as a pattern it matches exactly what it matches as a
    /// name; every selector is compiled as a pattern.
    pub fn new(selectors: &[String]) -> Self {
        let mut kept = Vec::new();
        let mut patterns = Vec::new();
        for s in selectors {
            match FqdnPattern::match_pattern(s) {
                Ok(p) => {
                    kept.push(s.clone());
                    patterns.push(p);
                }
                // Validation rejected such a selector already; never label with it.
                Err(errors) => warn!(selector = %s, ?errors, "toFQDNs selector ignored"),
            }
        }
        Self {
            selectors: kept.into(),
            set: DnsPatternSet::new(patterns),
        }
    }

    pub fn as_slice(&self) -> &[String] {
        &self.selectors
    }

    /// The selectors that select any of `names` (`toFQDNs` semantics).
    pub fn matching<'a, 'n>(
        &'a self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> BTreeSet<&'a str> {
        let mut hits = Vec::new();
        for name in names {
            self.set.matches_canonical_into(name, &mut hits);
        }
        hits.into_iter()
            .filter_map(|i| self.selectors.get(i).map(String::as_str))
            .collect()
    }
}

/// Whether an address from an answer may get an FQDN identity at all. Not the node's
/// own addresses (the pods' gateway and the proxy's source are `host`, and an answer
/// must never make them anything else), nor loopback, unspecified or multicast ones.
pub fn learnable(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip == IpAddr::V4(GATEWAY)
        || ip == IpAddr::V4(PROXY_SOURCE))
}

/// What `ip` should be labelled, learned for `names`: its base labels plus one
/// `fqdn:<selector>` per matching selector. `None` when it keeps the identity it has:
/// no selector matches (nothing to open), or it is an endpoint's (spec §14: "IPs of
/// in-cluster endpoints keep their own identity").
pub fn desired<'n>(
    universe: &Universe,
    selectors: &Selectors,
    ip: IpAddr,
    names: impl IntoIterator<Item = &'n str>,
) -> Option<(LabelSet, IpNet)> {
    if !learnable(ip) {
        return None;
    }
    let matching = selectors.matching(names);
    if matching.is_empty() {
        return None;
    }
    let base = AddressBase::of(universe, ip)?;
    Some((base.with_selectors(matching), base.prefix))
}

/// The label sets made for every selector ahead of any answer: the selector alone over
/// world, per family. Most learned addresses are in the world and match one selector,
/// so their identity and its kernel policy exist before the first answer, and learning
/// them is an ipcache write.
pub fn preallocated(selectors: &Selectors) -> Vec<(LabelSet, IpNet)> {
    let mut out = Vec::new();
    for s in selectors.as_slice() {
        for family in [
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        ] {
            let base = AddressBase::world(family);
            out.push((base.with_selectors([s.as_str()]), base.prefix));
        }
    }
    out
}

/// The numbers of FQDN identities, by label set.
///
/// A number, once given in a policy generation, keeps its label set until the next
/// generation, even when no address uses it any more: kernel verdicts, the POLICY map and
/// the proxies' rule caches are keyed by it, and a new meaning would inherit the old
/// one's verdicts. A reload (a new generation, every kernel verdict invalidated) forgets
/// the numbers nothing uses ([`IdentityBook::retain`]).
#[derive(Debug, Clone, Default)]
pub struct IdentityBook {
    by_labels: BTreeMap<LabelSet, FqdnIdentity>,
    ids: BTreeSet<Identity>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("every node-local identity is in use; no FQDN identity left for {labels}")]
pub struct Exhausted {
    pub labels: String,
}

impl IdentityBook {
    pub fn get(&self, labels: &LabelSet) -> Option<Identity> {
        self.by_labels.get(labels).map(|f| f.id)
    }

    /// The number of `labels`, giving it one when it has none: its hash slot in the
    /// node-local range, or the next one that neither this book nor `universe` uses.
    /// Returns whether it is new.
    pub fn assign(
        &mut self,
        labels: &LabelSet,
        base: IpNet,
        universe: &Universe,
    ) -> Result<(Identity, bool), Exhausted> {
        if let Some(id) = self.get(labels) {
            return Ok((id, false));
        }
        let id = allocate_one(labels, IdentityRange::NODE_LOCAL, |id| {
            self.ids.contains(&id) || universe.identity(id).is_some()
        })
        .ok_or_else(|| Exhausted {
            labels: labels.to_strings().join(","),
        })?;
        self.ids.insert(id);
        self.by_labels.insert(
            labels.clone(),
            FqdnIdentity {
                id,
                labels: labels.clone(),
                base,
            },
        );
        Ok((id, true))
    }

    /// Every identity of the book, for compiling policy.
    pub fn identities(&self) -> Vec<FqdnIdentity> {
        self.by_labels.values().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_labels.is_empty()
    }

    /// Takes back numbers just given that were never published (their install failed).
    pub fn forget(&mut self, sets: &[LabelSet]) {
        for l in sets {
            if let Some(f) = self.by_labels.remove(l) {
                self.ids.remove(&f.id);
            }
        }
    }

    /// A new generation: keeps the label sets `keep` wants (with their numbers), forgets
    /// the others.
    pub fn retain(&mut self, keep: impl Fn(&LabelSet) -> bool) {
        self.by_labels.retain(|l, _| keep(l));
        self.ids = self.by_labels.values().map(|f| f.id).collect();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sluice_identity::CompiledPolicy;

    /// A world address, a policy prefix (with an `except`), and a pod.
    const CONFIG: &str = r#"
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {addresses: ["10.200.1.2"]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: egress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toFQDNs: [{matchName: "API.stripe.com"}, {matchPattern: "*.amazonaws.com"}, {matchPattern: "**.cdn.test"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toCIDRSet: [{cidr: 198.51.100.0/24, except: [198.51.100.128/25]}]
    toPorts: [{ports: [{port: "8443", protocol: TCP}]}]
"#;

    fn policy() -> CompiledPolicy {
        let config = sluice_config::load_str("p.yaml", CONFIG).unwrap();
        CompiledPolicy::compile(&config).unwrap()
    }

    fn labels(set: &Option<(LabelSet, IpNet)>) -> BTreeSet<String> {
        set.as_ref()
            .map(|(l, _)| l.to_strings().into_iter().collect())
            .unwrap_or_default()
    }

    fn strings(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_address_is_labelled_with_every_selector_of_its_names() {
        // spec §14: "Each learned IP gets a local identity labelled fqdn:<selector> for
        // every toFQDNs selector whose pattern matches the name"; matching per
        // pkg/fqdn/matchpattern ("*" within one label, leading "**." any depth).
        let p = policy();
        let sel = Selectors::new(p.fqdn_selectors());
        assert_eq!(
            sel.as_slice(),
            ["**.cdn.test", "*.amazonaws.com", "api.stripe.com"]
        );
        let u = p.universe();
        let world = "192.0.2.10".parse().unwrap();
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["api.stripe.com."],
                &["fqdn:api.stripe.com", "reserved:world-ipv4"],
            ),
            (
                &["sqs.amazonaws.com."],
                &["fqdn:*.amazonaws.com", "reserved:world-ipv4"],
            ),
            // "*" never crosses a dot, and needs a label of its own.
            (&["s3.eu-west-1.amazonaws.com."], &[]),
            (&["amazonaws.com."], &[]),
            (
                &["a.b.cdn.test."],
                &["fqdn:**.cdn.test", "reserved:world-ipv4"],
            ),
            // A CNAME chain: the address belongs to both names, each selector counts.
            (
                &["www.shop.test.", "edge.cdn.test."],
                &["fqdn:**.cdn.test", "reserved:world-ipv4"],
            ),
            (
                &["api.stripe.com.", "x.amazonaws.com."],
                &[
                    "fqdn:*.amazonaws.com",
                    "fqdn:api.stripe.com",
                    "reserved:world-ipv4",
                ],
            ),
            (&["example.com."], &[]),
        ];
        for (names, want) in cases {
            let got = desired(u, &sel, world, names.iter().copied());
            assert_eq!(labels(&got), strings(want), "{names:?}");
        }
    }

    #[test]
    fn an_address_keeps_what_it_was_before() {
        let p = policy();
        let sel = Selectors::new(p.fqdn_selectors());
        let u = p.universe();
        let want = |ip: &str| desired(u, &sel, ip.parse().unwrap(), ["api.stripe.com."]);
        // Inside a policy prefix: its CIDR labels stay, so the toCIDR rule still applies.
        let inside = want("198.51.100.7");
        assert_eq!(
            labels(&inside),
            strings(&[
                "cidr:198.51.100.0/24",
                "fqdn:api.stripe.com",
                "reserved:world-ipv4"
            ])
        );
        assert_eq!(
            inside.unwrap().1,
            "198.51.100.0/24".parse::<IpNet>().unwrap()
        );
        // Inside the except: the except's own prefix is the base.
        assert!(labels(&want("198.51.100.200")).contains("cidr:198.51.100.128/25"));
        // IPv6 world.
        assert_eq!(
            labels(&want("2001:db8::1")),
            strings(&["fqdn:api.stripe.com", "reserved:world-ipv6"])
        );
        // A pod's address keeps its identity (spec §14), and so do the node's own
        // addresses and loopback.
        for ip in [
            "10.200.1.2",
            "169.254.1.1",
            "169.254.1.2",
            "127.0.0.1",
            "::1",
            "0.0.0.0",
        ] {
            assert_eq!(want(ip), None, "{ip}");
        }
    }

    #[test]
    fn numbers_are_node_local_stable_and_never_reused_within_a_generation() {
        let p = policy();
        let u = p.universe();
        let sel = Selectors::new(p.fqdn_selectors());
        let mut book = IdentityBook::default();
        let pre = preallocated(&sel);
        assert_eq!(pre.len(), 6, "three selectors, two families");
        let mut ids = BTreeMap::new();
        for (l, base) in &pre {
            let (id, new) = book.assign(l, *base, u).unwrap();
            assert!(new && id.is_local_scope());
            assert!(
                u.identity(id).is_none(),
                "{id} collides with a CIDR identity"
            );
            ids.insert(l.clone(), id);
        }
        // Asking again gives the same numbers.
        for (l, base) in &pre {
            assert_eq!(book.assign(l, *base, u).unwrap(), (ids[l], false));
        }
        // A new set appears: the others keep their numbers.
        let combo = desired(
            u,
            &sel,
            "192.0.2.1".parse().unwrap(),
            ["api.stripe.com.", "x.amazonaws.com."],
        )
        .unwrap();
        let (combo_id, _) = book.assign(&combo.0, combo.1, u).unwrap();
        assert!(!ids.values().any(|id| *id == combo_id));
        for (l, id) in &ids {
            assert_eq!(book.get(l), Some(*id));
        }
        // A reload forgets what nothing uses; the kept sets keep their numbers, and a
        // fresh book (a restart) finds the same numbers from the label hash.
        book.retain(|l| ids.contains_key(l));
        assert_eq!(book.get(&combo.0), None);
        let mut fresh = IdentityBook::default();
        for (l, base) in &pre {
            assert_eq!(fresh.assign(l, *base, u).unwrap().0, ids[l]);
        }
    }

    #[test]
    fn compiled_with_fqdn_identities_cidr_numbers_do_not_move() {
        // Kernel verdicts are keyed by numbers: adding FQDN identities must leave every
        // existing identity where it was.
        let config = sluice_config::load_str("p.yaml", CONFIG).unwrap();
        let before = CompiledPolicy::compile(&config).unwrap();
        let sel = Selectors::new(before.fqdn_selectors());
        let mut book = IdentityBook::default();
        for (l, base) in preallocated(&sel) {
            book.assign(&l, base, before.universe()).unwrap();
        }
        let after = CompiledPolicy::compile_with_fqdn(&config, &book.identities()).unwrap();
        for info in before.universe().identities() {
            assert_eq!(
                after.universe().identity_by_labels(&info.labels),
                Some(info.id),
                "{:?}",
                info.labels
            );
        }
        // One more identity: the earlier FQDN ones stay too.
        let combo = desired(
            after.universe(),
            &sel,
            "198.51.100.9".parse().unwrap(),
            ["api.stripe.com."],
        )
        .unwrap();
        book.assign(&combo.0, combo.1, after.universe()).unwrap();
        let again = CompiledPolicy::compile_with_fqdn(&config, &book.identities()).unwrap();
        for info in after.universe().identities() {
            assert_eq!(
                again.universe().identity_by_labels(&info.labels),
                Some(info.id)
            );
        }
    }
}
