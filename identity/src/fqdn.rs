//! FQDN identities: the identities of addresses learned from DNS answers (`toFQDNs`).
//!
//! An address the DNS proxy saw in an allowed answer carries, besides what it already
//! was, one label `fqdn:<selector>` for every `toFQDNs` selector that matches one of the
//! names it was learned for (spec §14). "What it already was" matters: the address is
//! still in the world, and still inside whatever prefix a `toCIDR` rule names, so the
//! FQDN identity keeps the labels of the identity the ipcache gave the address before
//! (`reserved:world-ipv4`, or the `cidr:` and world labels of the longest policy prefix
//! holding it). Rules that selected it by entity or by CIDR keep applying; that is how
//! Cilium merges the labels of overlapping prefixes.
//!
//! Addresses of endpoints (workloads, the host) keep their own identity: a name that
//! resolves to a pod does not turn the pod into something else.
//!
//! The node chooses the numbers (they must not change while the kernel holds verdicts
//! keyed by them) and hands the set to [`crate::CompiledPolicy::compile_with_fqdn`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::identity::Identity;
use crate::labels::{Label, LabelSet, LabelSource};
use crate::universe::{IdentityKind, Universe};

/// One FQDN identity, as the node allocated it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FqdnIdentity {
    pub id: Identity,
    /// The `fqdn:` labels and the labels of [`Self::base`]'s identity.
    pub labels: LabelSet,
    /// The prefix whose identity the addresses had before they were learned: a policy
    /// prefix (`toCIDR` and friends), or the whole address family for world. CIDR
    /// selectors select the FQDN identity exactly when they select this prefix.
    pub base: IpNet,
}

/// What an address is to the ipcache before anything is learned about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressBase {
    /// See [`FqdnIdentity::base`].
    pub prefix: IpNet,
    /// The labels of the identity the address has now (world or CIDR).
    pub labels: LabelSet,
}

impl AddressBase {
    /// The base of `addr` in `universe`; `None` when the address belongs to an endpoint
    /// or a reserved identity other than world, which keep their own identity.
    pub fn of(universe: &Universe, addr: IpAddr) -> Option<Self> {
        let (id, _) = universe.ipcache().lookup(addr);
        let info = universe.identity(id);
        let prefix = match info.map(|i| &i.kind) {
            Some(IdentityKind::Cidr(net)) => *net,
            _ if id == Identity::WORLD_IPV4 => IpNet::V4(Default::default()),
            _ if id == Identity::WORLD_IPV6 => IpNet::V6(Default::default()),
            _ => return None,
        };
        let labels = match info {
            Some(i) => i.labels.clone(),
            None => crate::identity::reserved_labels(id).into_iter().collect(),
        };
        Some(Self { prefix, labels })
    }

    /// The world of one address family, as the base of an address nothing else claims.
    pub fn world(family_of: IpAddr) -> Self {
        let (prefix, id) = match family_of {
            IpAddr::V4(_) => (IpNet::V4(Default::default()), Identity::WORLD_IPV4),
            IpAddr::V6(_) => (IpNet::V6(Default::default()), Identity::WORLD_IPV6),
        };
        Self {
            prefix,
            labels: crate::identity::reserved_labels(id).into_iter().collect(),
        }
    }

    /// The labels of an address with this base learned for names matching `selectors`.
    pub fn with_selectors<'a>(&self, selectors: impl IntoIterator<Item = &'a str>) -> LabelSet {
        let mut labels = self.labels.clone();
        for s in selectors {
            labels.insert(fqdn_label(s));
        }
        labels
    }
}

/// The label a `toFQDNs` selector selects (`PeerSelector::Fqdn`): `fqdn:<selector>`, the
/// selector lowercased as policy translation keeps it.
pub fn fqdn_label(selector: &str) -> Label {
    Label::new(LabelSource::Fqdn, selector.to_ascii_lowercase(), "")
}

/// The `toFQDNs` selectors a label set carries.
pub fn selectors_of(labels: &LabelSet) -> BTreeSet<&str> {
    labels
        .iter()
        .filter(|l| l.key.source == LabelSource::Fqdn)
        .map(|l| l.key.key.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_the_base_and_add_one_label_per_selector() {
        let base = AddressBase::world("192.0.2.1".parse().unwrap());
        let labels = base.with_selectors(["API.stripe.com", "*.stripe.com"]);
        let strings: BTreeSet<String> = labels.to_strings().into_iter().collect();
        assert_eq!(
            strings,
            BTreeSet::from(
                [
                    "fqdn:*.stripe.com",
                    "fqdn:api.stripe.com",
                    "reserved:world-ipv4"
                ]
                .map(String::from)
            )
        );
        assert_eq!(
            selectors_of(&labels),
            BTreeSet::from(["*.stripe.com", "api.stripe.com"])
        );
        let v6 = AddressBase::world("2001:db8::1".parse().unwrap());
        assert_eq!(v6.prefix, "::/0".parse::<IpNet>().unwrap());
        assert_eq!(v6.labels.to_strings(), ["reserved:world-ipv6"]);
    }
}
