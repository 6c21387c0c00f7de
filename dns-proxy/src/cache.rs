//! The FQDN cache: which names each endpoint looked up, the addresses the allowed answers
//! gave, and until when each may be used (spec §14).
//!
//! An entry is (endpoint, name, address) with its own expiry, `now + max(TTL, min TTL)`
//! (at least [`MIN_LIFETIME`]). Every name of an answer's CNAME chain gets the chain's
//! addresses, so `www.example.test → edge.cdn.test → 192.0.2.7` teaches 192.0.2.7 under
//! both names. The same address learned for several names (or by several endpoints) keeps
//! each lifetime: it leaves the cache with its last entry. A new answer for an entry that
//! exists keeps the later of the two expiries.
//!
//! Bounds: per endpoint and name at most `max_ips_per_name` addresses (Cilium's
//! `tofqdns-endpoint-max-ip-per-hostname`), and at most [`MAX_ENTRIES`] entries in all;
//! past either, the entries closest to expiry go first, as Cilium's cache evicts.
//!
//! Pure data: the caller passes the time, so the rules are tested without clocks, and the
//! node owns what an address's names mean for policy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wire::ResolvedIp;

/// The shortest life of an entry, whatever the TTL and the configured minimum: an answer
/// with TTL 0 still opens its addresses for the `connect()` that follows it.
pub const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// Entries kept in all, over every endpoint and name: a workload that looks up endless
/// random names must not grow the node without bound.
pub const MAX_ENTRIES: usize = 100_000;

/// Wall-clock time in milliseconds since the Unix epoch: what an expiry is written in, so
/// that it means the same after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// How long from `now` until this time; zero once it has passed.
    pub fn saturating_since(self, now: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(now.0))
    }
}

impl From<SystemTime> for UnixMillis {
    fn from(t: SystemTime) -> Self {
        let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        Self(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An answer the DNS proxy relayed.
    Lookup,
    /// The state file of an earlier run of the node.
    Restored,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lookup => "lookup",
            Self::Restored => "restored",
        }
    }
}

/// The cache's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Seconds: an answer's addresses stay at least this long (`tofqdns-min-ttl`).
    pub min_ttl: u32,
    /// Addresses per endpoint and name (`tofqdns-endpoint-max-ip-per-hostname`), ≥ 1.
    pub max_ips_per_name: usize,
}

/// One (endpoint, name, address) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The endpoint that asked, as the node names it (`namespace/name`).
    pub endpoint: String,
    /// Canonical: lowercase, final dot.
    pub name: String,
    pub ip: IpAddr,
    /// The answer's TTL for this address (the smallest along its CNAME chain).
    pub ttl: u32,
    /// When the answer was learned.
    pub learned: UnixMillis,
    pub expires: UnixMillis,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    ttl: u32,
    learned: UnixMillis,
    expires: UnixMillis,
    source: Source,
}

/// (endpoint, name).
type NameKey = (String, String);

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct FqdnCache {
    limits: CacheLimits,
    entries: BTreeMap<NameKey, BTreeMap<IpAddr, Entry>>,
    /// Address → its names, each with how many endpoints hold it.
    by_ip: HashMap<IpAddr, BTreeMap<String, usize>>,
    /// Every entry by expiry: expiring and evicting take from the front.
    by_expiry: BTreeSet<(UnixMillis, String, String, IpAddr)>,
}

impl FqdnCache {
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            limits,
            entries: BTreeMap::new(),
            by_ip: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// New bounds (a reload): they apply from the next answer on.
    pub fn set_limits(&mut self, limits: CacheLimits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    /// Records an allowed answer of `endpoint`: every name of the chain (`names`, the
    /// asked name first) gets every address. Returns the addresses whose set of names
    /// changed (new ones, and ones evicted to stay within the bounds).
    pub fn learn(
        &mut self,
        endpoint: &str,
        names: &[&str],
        ips: &[ResolvedIp],
        now: UnixMillis,
    ) -> BTreeSet<IpAddr> {
        let mut changed = BTreeSet::new();
        for name in names {
            for ip in ips {
                let lifetime = Duration::from_secs(u64::from(ip.ttl.max(self.limits.min_ttl)))
                    .max(MIN_LIFETIME);
                let entry = Entry {
                    ttl: ip.ttl,
                    learned: now,
                    expires: now.saturating_add(lifetime),
                    source: Source::Lookup,
                };
                if self.upsert(endpoint, name, ip.addr, entry) {
                    changed.insert(ip.addr);
                }
            }
            changed.extend(self.enforce_name_limit(endpoint, name));
        }
        changed.extend(self.enforce_total_limit());
        changed
    }

    /// Puts back an entry of an earlier run, unless it has expired. Returns whether the
    /// address's names changed.
    pub fn restore(&mut self, lookup: &Lookup, now: UnixMillis) -> bool {
        if lookup.expires <= now {
            return false;
        }
        let entry = Entry {
            ttl: lookup.ttl,
            learned: lookup.learned,
            expires: lookup.expires,
            source: Source::Restored,
        };
        let changed = self.upsert(&lookup.endpoint, &lookup.name, lookup.ip, entry);
        let evicted = self.enforce_name_limit(&lookup.endpoint, &lookup.name);
        let evicted_all = self.enforce_total_limit();
        changed || evicted.contains(&lookup.ip) || evicted_all.contains(&lookup.ip)
    }

    /// Removes what expired at `now`; returns the addresses that lost an entry (their
    /// names changed unless another endpoint still holds the same name).
    pub fn expire(&mut self, now: UnixMillis) -> BTreeSet<IpAddr> {
        let mut changed = BTreeSet::new();
        while let Some((expires, ..)) = self.by_expiry.first()
            && *expires <= now
        {
            if let Some((_, endpoint, name, ip)) = self.by_expiry.pop_first() {
                self.remove(&endpoint, &name, ip);
                changed.insert(ip);
            }
        }
        changed
    }

    /// When the next entry expires.
    pub fn next_expiry(&self) -> Option<UnixMillis> {
        self.by_expiry.first().map(|(t, ..)| *t)
    }

    /// The live names of an address, over every endpoint.
    pub fn names_of(&self, ip: IpAddr) -> impl Iterator<Item = &str> {
        self.by_ip
            .get(&ip)
            .into_iter()
            .flat_map(|names| names.keys().map(String::as_str))
    }

    /// Every address the cache holds.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_ip.keys().copied()
    }

    /// Every entry, by endpoint, name and address.
    pub fn lookups(&self) -> impl Iterator<Item = Lookup> + '_ {
        self.entries.iter().flat_map(|((endpoint, name), ips)| {
            ips.iter().map(move |(ip, e)| Lookup {
                endpoint: endpoint.clone(),
                name: name.clone(),
                ip: *ip,
                ttl: e.ttl,
                learned: e.learned,
                expires: e.expires,
                source: e.source,
            })
        })
    }

    /// Number of (endpoint, name, address) entries.
    pub fn len(&self) -> usize {
        self.by_expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_expiry.is_empty()
    }

    /// Inserts or refreshes an entry; returns whether the address gained a name.
    fn upsert(&mut self, endpoint: &str, name: &str, ip: IpAddr, mut entry: Entry) -> bool {
        let ips = self
            .entries
            .entry((endpoint.to_owned(), name.to_owned()))
            .or_default();
        if let Some(old) = ips.get(&ip).copied() {
            // The workload may use the earlier answer until its own end.
            if old.expires >= entry.expires {
                return false;
            }
            if old.source == Source::Lookup {
                entry.source = Source::Lookup;
            }
            self.by_expiry
                .remove(&(old.expires, endpoint.to_owned(), name.to_owned(), ip));
            ips.insert(ip, entry);
            self.by_expiry
                .insert((entry.expires, endpoint.to_owned(), name.to_owned(), ip));
            return false;
        }
        ips.insert(ip, entry);
        self.by_expiry
            .insert((entry.expires, endpoint.to_owned(), name.to_owned(), ip));
        let holders = self
            .by_ip
            .entry(ip)
            .or_default()
            .entry(name.to_owned())
            .or_insert(0);
        *holders += 1;
        *holders == 1
    }

    /// Removes one entry (it must be out of `by_expiry` already, or is taken out here).
    fn remove(&mut self, endpoint: &str, name: &str, ip: IpAddr) {
        let key = (endpoint.to_owned(), name.to_owned());
        let Some(ips) = self.entries.get_mut(&key) else {
            return;
        };
        let Some(old) = ips.remove(&ip) else {
            return;
        };
        if ips.is_empty() {
            self.entries.remove(&key);
        }
        self.by_expiry.remove(&(old.expires, key.0, key.1, ip));
        if let Some(names) = self.by_ip.get_mut(&ip) {
            if let Some(holders) = names.get_mut(name) {
                *holders -= 1;
                if *holders == 0 {
                    names.remove(name);
                }
            }
            if names.is_empty() {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// Keeps the `max_ips_per_name` addresses of (endpoint, name) that live longest.
    fn enforce_name_limit(&mut self, endpoint: &str, name: &str) -> Vec<IpAddr> {
        let max = self.limits.max_ips_per_name.max(1);
        let key = (endpoint.to_owned(), name.to_owned());
        let Some(ips) = self.entries.get(&key) else {
            return Vec::new();
        };
        if ips.len() <= max {
            return Vec::new();
        }
        let mut by_expiry: Vec<(UnixMillis, IpAddr)> =
            ips.iter().map(|(ip, e)| (e.expires, *ip)).collect();
        by_expiry.sort_unstable();
        let evict: Vec<IpAddr> = by_expiry[..ips.len() - max]
            .iter()
            .map(|(_, ip)| *ip)
            .collect();
        for ip in &evict {
            self.remove(endpoint, name, *ip);
        }
        evict
    }

    /// Keeps the [`MAX_ENTRIES`] entries that live longest.
    fn enforce_total_limit(&mut self) -> Vec<IpAddr> {
        let mut evicted = Vec::new();
        while self.by_expiry.len() > MAX_ENTRIES {
            let Some((_, endpoint, name, ip)) = self.by_expiry.pop_first() else {
                break;
            };
            self.remove(&endpoint, &name, ip);
            evicted.push(ip);
        }
        evicted
    }
}

#[cfg(test)]
mod tests;
