//! Installing what an answer or an expiry changed: labels → identities → policy →
//! snapshot → kernel, in the order that never opens an address before its policy is in
//! place and closes it in the kernel first.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use sluice_bpf::Datapath;
use sluice_identity::universe::Universe;
use sluice_identity::{CompiledPolicy, Identity, LabelSet};

use super::labels::{self, IdentityBook};
use super::{FqdnEngine, FqdnError, Inner};
use crate::node::KernelMaps;
use crate::node::proxy::Shared;
use crate::node::state::Snapshot;

impl FqdnEngine {
    /// Labels the addresses whose names changed and installs the result; makes sure the
    /// kernel holds `ensure` (an answer's addresses) as the snapshot says.
    pub(super) fn apply(
        &self,
        inner: &mut Inner,
        shared: &Shared,
        changed: &BTreeSet<IpAddr>,
        ensure: &BTreeSet<IpAddr>,
    ) -> Result<Summary, FqdnError> {
        let current = shared.state.load();
        let universe = current.policy.universe();
        let mut summary = Summary::default();
        let mut wanted: Vec<(IpAddr, Option<LabelSet>)> = Vec::new();
        let mut fresh: Vec<LabelSet> = Vec::new();
        for &ip in changed {
            let want = labels::desired(universe, &inner.selectors, ip, inner.cache.names_of(ip));
            if let Some((labels, base)) = &want
                && universe.identity_by_labels(labels).is_none()
            {
                let (id, new) = inner.book.assign(labels, *base, universe)?;
                if new {
                    fresh.push(labels.clone());
                }
                if !summary.new_identities.contains(&id) {
                    summary.new_identities.push(id);
                }
            }
            wanted.push((ip, want.map(|(l, _)| l)));
        }
        let policy = if summary.new_identities.is_empty() {
            Arc::clone(&current.policy)
        } else {
            match compile_more(&current, &inner.book) {
                Ok(policy) => Arc::new(policy),
                Err(error) => {
                    // Numbers never published anywhere may be given again.
                    inner.book.forget(&fresh);
                    return Err(error);
                }
            }
        };
        let mut fqdn: HashMap<IpAddr, Identity> = (*current.fqdn).clone();
        let mut opened = Vec::new();
        for (ip, want) in wanted {
            match want.and_then(|l| policy.universe().identity_by_labels(&l)) {
                Some(id) => {
                    if fqdn.insert(ip, id) != Some(id) {
                        opened.push((ip, id));
                    }
                }
                None => {
                    if fqdn.remove(&ip).is_some() {
                        summary.closed.push(ip);
                    }
                }
            }
        }
        // Idempotence: an answer's addresses are written again even when nothing changed
        // (a retry after a failed write heals the kernel).
        let rewrite: Vec<(IpAddr, Identity)> = ensure
            .iter()
            .filter(|ip| !opened.iter().any(|(o, _)| o == *ip))
            .filter_map(|ip| fqdn.get(ip).map(|id| (*ip, *id)))
            .collect();
        let next = Snapshot {
            config: Arc::clone(&current.config),
            policy,
            generation: current.generation,
            denied: current.denied.clone(),
            fqdn: Arc::new(fqdn),
        };
        let new_policy = if summary.new_identities.is_empty() {
            Vec::new()
        } else {
            let kernel = KernelMaps::compute(&next, &self.enrolled)
                .map_err(|e| FqdnError::KernelPolicy(format!("{e:#}")))?;
            let new: BTreeSet<Identity> = summary.new_identities.iter().copied().collect();
            kernel
                .policy
                .into_iter()
                .filter(|e| e.peer.is_some_and(|p| new.contains(&p)))
                .collect()
        };
        let changes_snapshot =
            !summary.new_identities.is_empty() || !opened.is_empty() || !summary.closed.is_empty();
        {
            // Close first; then the new identities' policy, before any address has them.
            let mut dp = shared.datapath();
            unlearn(&mut dp, universe, &summary.closed)?;
            for entry in &new_policy {
                dp.policy().insert(entry, next.generation)?;
            }
        }
        if changes_snapshot {
            shared.state.store(next);
        }
        // Open last: the proxies already know the identity when the kernel sends them a
        // connection to the address.
        let mut dp = shared.datapath();
        for (ip, id) in opened.iter().chain(&rewrite) {
            dp.ipcache().insert(IpNet::from(*ip), *id)?;
        }
        summary.opened = opened;
        Ok(summary)
    }
}

/// `current`'s policy compiled again with every identity of `book`.
fn compile_more(current: &Snapshot, book: &IdentityBook) -> Result<CompiledPolicy, FqdnError> {
    let policy = CompiledPolicy::compile_with_fqdn(&current.config, &book.identities())?;
    let before: Vec<String> = current
        .policy
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    let after: Vec<String> = policy.diagnostics.iter().map(ToString::to_string).collect();
    if before != after {
        // A toFQDNs rule whose L7 rules conflict with another policy's on the same port
        // shows once it selects something new. Changing which policies are in force needs
        // a new generation (a reload); until then the address stays closed.
        return Err(FqdnError::Conflict {
            diagnostics: after.join("; "),
        });
    }
    Ok(policy)
}

/// What one install did, for the log.
#[derive(Debug, Default)]
pub(super) struct Summary {
    pub(super) opened: Vec<(IpAddr, Identity)>,
    pub(super) closed: Vec<IpAddr>,
    pub(super) new_identities: Vec<Identity>,
}

impl Summary {
    pub(super) fn changed(&self) -> bool {
        !(self.opened.is_empty() && self.closed.is_empty() && self.new_identities.is_empty())
    }
}

/// Takes addresses' FQDN entries out of the kernel IPCACHE: an address a policy prefix
/// names exactly (`toCIDR: [x/32]`) gets that prefix's identity back, any other falls
/// back to the prefix or world entry covering it.
pub fn unlearn(dp: &mut Datapath, universe: &Universe, ips: &[IpAddr]) -> Result<(), FqdnError> {
    for ip in ips {
        let host = IpNet::from(*ip);
        match universe.ipcache().lookup(*ip) {
            (id, Some(prefix)) if prefix == host => dp.ipcache().insert(host, id)?,
            _ => {
                dp.ipcache().remove(host)?;
            }
        }
    }
    Ok(())
}
