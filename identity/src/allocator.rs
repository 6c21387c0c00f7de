//! Deterministic identity allocation.
//!
//! Identities must be stable across reloads of the same configuration (verdicts in the
//! kernel and flows on screen are keyed by them), and should move as little as possible
//! when unrelated workloads come and go. Each label set gets a home slot from a hash of
//! its labels (FNV-1a: fixed, not seeded per process); collisions probe linearly, and
//! label sets are placed in sorted order so the outcome never depends on file order.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::Identity;
use crate::labels::LabelSet;

/// The identity range allocations are made in (inclusive).
#[derive(Debug, Clone, Copy)]
pub struct IdentityRange {
    pub first: u32,
    pub last: u32,
}

impl IdentityRange {
    /// Cluster-local pod identities (cluster id 0): 256..=65535.
    pub const CLUSTER_LOCAL: Self = Self {
        first: Identity::FIRST_CLUSTER_LOCAL,
        last: Identity::LAST_CLUSTER_LOCAL,
    };
    /// Node-local identities (CIDR, FQDN): bit 24 set, first is 16777217.
    pub const NODE_LOCAL: Self = Self {
        first: Identity::LOCAL_SCOPE_BIT + 1,
        last: Identity::LOCAL_SCOPE_BIT + 0x00ff_ffff,
    };

    fn size(self) -> u64 {
        u64::from(self.last - self.first) + 1
    }
}

#[derive(Debug, thiserror::Error)]
#[error("identity range {first}..={last} exhausted: {wanted} label sets do not fit")]
pub struct RangeExhausted {
    pub first: u32,
    pub last: u32,
    pub wanted: usize,
}

/// Allocates one identity per distinct label set.
pub fn allocate(
    label_sets: impl IntoIterator<Item = LabelSet>,
    range: IdentityRange,
) -> Result<BTreeMap<LabelSet, Identity>, RangeExhausted> {
    allocate_avoiding(label_sets, range, &BTreeSet::new())
}

/// [`allocate`], leaving out identities that are already in use (`reserved`: the FQDN
/// identities a node allocated at run time, which CIDR identities must not take).
///
/// Reserving identities never moves a label set that [`allocate`] placed without them,
/// as long as the reserved identities were themselves picked among the slots that
/// allocation left free (as [`allocate_one`] does): every slot on a set's probe path is
/// held by a set sorted before it, never by a reserved identity.
pub fn allocate_avoiding(
    label_sets: impl IntoIterator<Item = LabelSet>,
    range: IdentityRange,
    reserved: &BTreeSet<Identity>,
) -> Result<BTreeMap<LabelSet, Identity>, RangeExhausted> {
    let sets: BTreeSet<LabelSet> = label_sets.into_iter().collect();
    let mut taken: BTreeSet<u64> = reserved
        .iter()
        .filter(|id| (range.first..=range.last).contains(&id.0))
        .map(|id| u64::from(id.0 - range.first))
        .collect();
    if (sets.len() + taken.len()) as u64 > range.size() {
        return Err(RangeExhausted {
            first: range.first,
            last: range.last,
            wanted: sets.len() + taken.len(),
        });
    }
    let mut out = BTreeMap::new();
    for set in sets {
        let slot = probe(&set, range, |slot| taken.contains(&slot));
        taken.insert(slot);
        out.insert(set, slot_identity(range, slot));
    }
    Ok(out)
}

/// One identity for `set` that `in_use` does not report taken: its hash slot, or the
/// next free one after it. The same label set gets the same identity whenever its slot
/// is free, so a node that forgets and relearns it (a restart) usually finds the old
/// number. `None` when every identity of the range is in use.
pub fn allocate_one(
    set: &LabelSet,
    range: IdentityRange,
    in_use: impl Fn(Identity) -> bool,
) -> Option<Identity> {
    let mut slot = fnv1a(set) % range.size();
    for _ in 0..range.size() {
        let id = slot_identity(range, slot);
        if !in_use(id) {
            return Some(id);
        }
        slot = (slot + 1) % range.size();
    }
    None
}

/// The first slot from `set`'s hash on that `taken` does not hold. The caller makes sure
/// a free slot exists.
fn probe(set: &LabelSet, range: IdentityRange, taken: impl Fn(u64) -> bool) -> u64 {
    let mut slot = fnv1a(set) % range.size();
    while taken(slot) {
        slot = (slot + 1) % range.size();
    }
    slot
}

fn slot_identity(range: IdentityRange, slot: u64) -> Identity {
    // `slot < range.size() <= 2^24`, so the sum fits in u32.
    Identity(range.first + u32::try_from(slot).unwrap_or(0))
}

fn fnv1a(set: &LabelSet) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for label in set.iter() {
        for byte in label.to_string().bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Label;

    fn set(labels: &[&str]) -> LabelSet {
        labels.iter().map(|l| Label::parse(l)).collect()
    }

    #[test]
    fn stable_and_independent_of_order() {
        let a = set(&["k8s:app=a"]);
        let b = set(&["k8s:app=b"]);
        let c = set(&["k8s:app=c"]);
        let first = allocate(
            [a.clone(), b.clone(), c.clone()],
            IdentityRange::CLUSTER_LOCAL,
        )
        .unwrap();
        let second = allocate(
            [c.clone(), a.clone(), b.clone()],
            IdentityRange::CLUSTER_LOCAL,
        )
        .unwrap();
        assert_eq!(first, second);
        // Removing one set leaves the others where they were (no collisions here).
        let third = allocate([a.clone(), c.clone()], IdentityRange::CLUSTER_LOCAL).unwrap();
        assert_eq!(third[&a], first[&a]);
        assert_eq!(third[&c], first[&c]);
        for id in first.values() {
            assert!((256..=65_535).contains(&id.0));
        }
    }

    #[test]
    fn collisions_probe_and_exhaustion_is_an_error() {
        let tiny = IdentityRange {
            first: 300,
            last: 301,
        };
        let got = allocate([set(&["a=1"]), set(&["a=2"])], tiny).unwrap();
        let ids: BTreeSet<_> = got.values().collect();
        assert_eq!(ids.len(), 2);
        assert!(allocate([set(&["a=1"]), set(&["a=2"]), set(&["a=3"])], tiny).is_err());
    }

    #[test]
    fn reserved_identities_are_skipped_and_never_move_the_others() {
        let sets = [set(&["cidr:10.0.0.0/8"]), set(&["cidr:192.0.2.0/24"])];
        let before = allocate(sets.clone(), IdentityRange::NODE_LOCAL).unwrap();
        // A run-time identity takes a slot the CIDR identities left free...
        let taken: BTreeSet<Identity> = before.values().copied().collect();
        let fqdn = allocate_one(
            &set(&["fqdn:api.example.com", "reserved:world-ipv4"]),
            IdentityRange::NODE_LOCAL,
            |id| taken.contains(&id),
        )
        .unwrap();
        assert!(!taken.contains(&fqdn) && fqdn.is_local_scope());
        // ...and the next compile, which reserves it, places the CIDR sets where they were.
        let after =
            allocate_avoiding(sets, IdentityRange::NODE_LOCAL, &BTreeSet::from([fqdn])).unwrap();
        assert_eq!(after, before);
        // A reserved identity on a set's home slot pushes that set to the next one.
        let home = allocate([set(&["a=1"])], IdentityRange::CLUSTER_LOCAL).unwrap()[&set(&["a=1"])];
        let moved = allocate_avoiding(
            [set(&["a=1"])],
            IdentityRange::CLUSTER_LOCAL,
            &BTreeSet::from([home]),
        )
        .unwrap();
        assert_ne!(moved[&set(&["a=1"])], home);
    }

    #[test]
    fn allocate_one_is_stable_and_reports_exhaustion() {
        let tiny = IdentityRange {
            first: 300,
            last: 301,
        };
        let s = set(&["fqdn:a"]);
        let first = allocate_one(&s, tiny, |_| false).unwrap();
        assert_eq!(allocate_one(&s, tiny, |_| false), Some(first));
        let other = allocate_one(&s, tiny, |id| id == first).unwrap();
        assert_ne!(other, first);
        assert_eq!(allocate_one(&s, tiny, |_| true), None);
    }

    #[test]
    fn node_local_identities_have_bit_24() {
        let got = allocate([set(&["cidr:10.0.0.0/8"])], IdentityRange::NODE_LOCAL).unwrap();
        let id = got.values().next().unwrap();
        assert!(id.is_local_scope());
        assert!(id.0 >= 16_777_217);
    }
}
