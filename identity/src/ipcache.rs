//! The ipcache: longest-prefix match from an address to its identity.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use crate::identity::Identity;

/// Address → identity, longest prefix wins. Addresses nothing claims are `world`
/// (world-ipv4 / world-ipv6, as a dual-stack Cilium reports them).
///
/// A `except` block of a CIDR rule is a longer prefix with an identity of its own, so
/// the longest-prefix match is what subtracts it from the rule.
#[derive(Debug, Clone, Default)]
pub struct IpCache {
    v4: PrefixMap<Ipv4Net, Identity>,
    v6: PrefixMap<Ipv6Net, Identity>,
}

impl IpCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps a prefix to an identity, replacing what the same prefix mapped to.
    pub fn insert(&mut self, prefix: IpNet, identity: Identity) -> Option<Identity> {
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.insert(p, identity),
            IpNet::V6(p) => self.v6.insert(p, identity),
        }
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<Identity> {
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.remove(&p),
            IpNet::V6(p) => self.v6.remove(&p),
        }
    }

    /// The identity of an address and the prefix that gave it (`None` for world).
    pub fn lookup(&self, addr: IpAddr) -> (Identity, Option<IpNet>) {
        match addr {
            IpAddr::V4(a) => match self.v4.get_lpm(&Ipv4Net::from(a)) {
                Some((p, id)) => (*id, Some(IpNet::V4(p))),
                None => (Identity::WORLD_IPV4, None),
            },
            IpAddr::V6(a) => match self.v6.get_lpm(&Ipv6Net::from(a)) {
                Some((p, id)) => (*id, Some(IpNet::V6(p))),
                None => (Identity::WORLD_IPV6, None),
            },
        }
    }

    /// Every (prefix, identity) entry, IPv4 first.
    pub fn entries(&self) -> impl Iterator<Item = (IpNet, Identity)> + '_ {
        self.v4
            .iter()
            .map(|(p, id)| (IpNet::V4(p), *id))
            .chain(self.v6.iter().map(|(p, id)| (IpNet::V6(p), *id)))
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_except_carves_out() {
        // spec §4: "the result is the prefix minus the excepts (longest prefix wins)".
        let mut cache = IpCache::new();
        cache.insert(net("10.0.0.0/8"), Identity(16_777_217));
        cache.insert(net("10.96.0.0/12"), Identity(16_777_218));
        cache.insert(net("10.200.1.2/32"), Identity(300));
        cache.insert(net("2001:db8::/32"), Identity(16_777_219));
        let cases = [
            ("10.1.2.3", Identity(16_777_217)),
            ("10.96.0.10", Identity(16_777_218)),
            ("10.200.1.2", Identity(300)),
            ("192.0.2.1", Identity::WORLD_IPV4),
            ("2001:db8::1", Identity(16_777_219)),
            ("2001:db9::1", Identity::WORLD_IPV6),
        ];
        for (addr, expected) in cases {
            assert_eq!(cache.lookup(addr.parse().unwrap()).0, expected, "{addr}");
        }
    }

    #[test]
    fn host_bits_are_ignored_on_insert() {
        let mut cache = IpCache::new();
        cache.insert(net("10.1.2.3/8"), Identity(16_777_217));
        assert_eq!(
            cache.lookup("10.9.9.9".parse().unwrap()).0,
            Identity(16_777_217)
        );
    }
}
