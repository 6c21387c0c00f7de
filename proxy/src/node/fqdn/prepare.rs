//! A start or a reload: every cached address labelled again for a new configuration.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use sluice_config::FqdnSettings;
use sluice_identity::{CompiledPolicy, Identity, LabelSet};
use tracing::info;

use super::labels::{self, IdentityBook, Selectors};
use super::{FqdnError, FqdnGuard, limits};
use crate::node::state::Snapshot;

/// A snapshot labelled for `toFQDNs` ([`FqdnGuard::prepare`]).
pub struct Prepared {
    pub snapshot: Snapshot,
    /// Addresses that had an FQDN identity and have none now: out of the kernel.
    pub stale: Vec<IpAddr>,
    /// The engine's state for that snapshot, for [`FqdnGuard::commit`].
    pub pending: Pending,
}

/// See [`Prepared::pending`].
pub struct Pending {
    book: IdentityBook,
    selectors: Selectors,
    settings: FqdnSettings,
}

impl FqdnGuard<'_> {
    /// Labels the cached addresses for `snapshot` (just compiled from the configuration,
    /// for a new generation) and compiles it again with their FQDN identities. `previous`
    /// is the snapshot in force, whose learned addresses not kept are `stale`. Nothing
    /// changes until [`FqdnGuard::commit`]: a reload that fails later keeps the engine as
    /// it was.
    pub fn prepare(
        &self,
        snapshot: Snapshot,
        previous: Option<&Snapshot>,
    ) -> Result<Prepared, FqdnError> {
        let inner = &*self.inner;
        let settings = snapshot.config.node.fqdn.clone();
        let selectors = Selectors::new(snapshot.policy.fqdn_selectors());
        let universe = snapshot.policy.universe();
        let mut wanted: BTreeMap<IpAddr, (LabelSet, IpNet)> = BTreeMap::new();
        for ip in inner.cache.ips() {
            if let Some(w) = labels::desired(universe, &selectors, ip, inner.cache.names_of(ip)) {
                wanted.insert(ip, w);
            }
        }
        let mut live: Vec<(LabelSet, IpNet)> = labels::preallocated(&selectors);
        live.extend(wanted.values().cloned());
        let keep: BTreeSet<&LabelSet> = live.iter().map(|(l, _)| l).collect();
        let mut book = inner.book.clone();
        book.retain(|l| keep.contains(l));
        for (labels, base) in &live {
            book.assign(labels, *base, universe)?;
        }
        let policy = if book.is_empty() {
            Arc::clone(&snapshot.policy)
        } else {
            Arc::new(CompiledPolicy::compile_with_fqdn(
                &snapshot.config,
                &book.identities(),
            )?)
        };
        let fqdn: HashMap<IpAddr, Identity> = wanted
            .iter()
            .filter_map(|(ip, (l, _))| policy.universe().identity_by_labels(l).map(|id| (*ip, id)))
            .collect();
        let stale = previous
            .map(|p| {
                p.fqdn
                    .keys()
                    .filter(|ip| !fqdn.contains_key(ip))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        info!(
            selectors = selectors.as_slice().len(),
            identities = book.identities().len(),
            addresses = fqdn.len(),
            cached = inner.cache.len(),
            "FQDN identities labelled for the configuration"
        );
        Ok(Prepared {
            snapshot: Snapshot {
                config: snapshot.config,
                policy,
                generation: snapshot.generation,
                denied: snapshot.denied,
                fqdn: Arc::new(fqdn),
            },
            stale,
            pending: Pending {
                book,
                selectors,
                settings,
            },
        })
    }

    /// Makes a prepared configuration the engine's (once its snapshot is in force).
    pub fn commit(&mut self, pending: Pending) {
        let inner = &mut *self.inner;
        inner.cache.set_limits(limits(&pending.settings));
        inner.book = pending.book;
        inner.selectors = pending.selectors;
        inner.settings = pending.settings;
    }
}
