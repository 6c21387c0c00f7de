//! `toFQDNs`: the addresses in allowed DNS answers become FQDN identities, in the
//! ipcache and in the kernel, before the workload sees the answer (spec §14).
//!
//! # What happens to an answer
//!
//! The DNS proxy hands every allowed answer with addresses to [`FqdnLearning`] and holds
//! it until the hook returns (at most [`ANSWER_HOLD`], then SERVFAIL: fail closed). The
//! hook, on a blocking thread, under the engine's one lock (installs never race):
//!
//! 1. records (endpoint, name, address, expiry) for every name of the CNAME chain in the
//!    [`FqdnCache`] (`expiry = now + max(TTL, minTTL)`, at most `maxIPsPerHostname`
//!    addresses per endpoint and name);
//! 2. labels every address whose names changed: its base identity's labels (world, or
//!    the policy prefix holding it) plus `fqdn:<selector>` for every `toFQDNs` selector
//!    matching one of its live names, over every endpoint ([`labels::desired`]);
//! 3. finds the label set's identity. The sets "one selector over world" exist from the
//!    start ([`labels::preallocated`]): their policy is in the kernel already, and
//!    learning such an address is one IPCACHE write. Any other set (an address of several
//!    selectors' names, or inside a `toCIDR` prefix) gets a number from the
//!    [`IdentityBook`], policy is compiled again with it, and its POLICY entries are
//!    written for every enrolled endpoint (they are new keys: nothing in force changes,
//!    no generation is spent, no verdict is lost);
//! 4. publishes the snapshot (policy and the address → identity map the proxies read),
//!    then writes the address's IPCACHE entry. Only then is the answer released.
//!
//! # Expiry
//!
//! A timer ([`EXPIRY_TICK`]) takes expired entries out. An address with no live name
//! left loses its FQDN identity: its IPCACHE entry goes first (new connects are decided
//! as world or by CIDR again, and `connect()` fails in the kernel where nothing else
//! allows it), then the snapshot. Established connections are not touched.
//!
//! # Reloads and restarts
//!
//! A reload labels every cached address again for the new policy (a selector that is
//! gone opens nothing any more) under a new generation, keeping the numbers of label
//! sets still in use. The cache is written to `spec.dns.stateFile` ([`store`]) a second
//! after a change and at shutdown, and read back at start, before the DNS proxy and the
//! pods run.

mod hook;
mod install;
pub mod labels;
mod prepare;
pub mod store;
mod tasks;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use sluice_config::FqdnSettings;
use sluice_dns::cache::{CacheLimits, FqdnCache, Lookup, UnixMillis};
use sluice_dns::{ResolvedAnswer, ResolvedIp};
use sluice_identity::universe::Universe;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

pub use self::hook::FqdnLearning;
pub use self::install::unlearn;
use self::labels::{IdentityBook, Selectors};
pub use self::prepare::{Pending, Prepared};
pub use self::tasks::{AdminView, spawn_tasks};
use super::Enrolled;
use super::proxy::Shared;
use super::state::Snapshot;
use crate::admin::{FqdnCacheEntry, FqdnCacheIp};
use crate::flow::Timestamp;

/// How long the DNS proxy holds an answer for the install (Cilium's
/// `tofqdns-proxy-response-max-delay` is 100 ms). Learning an address whose identity
/// exists is a few map writes (80 µs measured, release build); a new identity compiles
/// policy again: 0.2–0.3 ms for a configuration of the examples' size, 190–210 ms for
/// 5,000 workloads and 1,000 policies on two busy cores. The bound covers the second
/// with room; an install that overruns it answers SERVFAIL and finishes anyway, for
/// the retry.
pub const ANSWER_HOLD: Duration = Duration::from_millis(500);

/// How often expired entries are looked for: an address closes at most this late.
pub const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// How long after a change the cache is written: a burst of answers is one write.
const PERSIST_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FqdnError {
    #[error(transparent)]
    Exhausted(#[from] labels::Exhausted),
    #[error("compiling policy with the learned identities: {0}")]
    Compile(#[from] sluice_identity::policy::CompileError),
    #[error(
        "a learned identity would make policies conflict ({diagnostics}); not installed until the configuration is fixed"
    )]
    Conflict { diagnostics: String },
    #[error("computing the kernel policy of the learned identities: {0}")]
    KernelPolicy(String),
    #[error("writing the learned addresses into the kernel: {0}")]
    Kernel(#[from] sluice_bpf::Error),
}

/// The node's `toFQDNs` state: the cache, the identities' numbers, and the settings.
pub struct FqdnEngine {
    inner: Mutex<Inner>,
    /// Workloads in the kernel: the new identities' POLICY entries are theirs.
    enrolled: Vec<Enrolled>,
    /// Wakes the state writer.
    changed: Notify,
}

struct Inner {
    cache: FqdnCache,
    book: IdentityBook,
    selectors: Selectors,
    settings: FqdnSettings,
    /// The cache changed since it was last written.
    dirty: bool,
}

/// The engine, locked: what a reload does under the lock so that no install interleaves.
pub struct FqdnGuard<'a> {
    inner: MutexGuard<'a, Inner>,
}

impl FqdnEngine {
    /// An engine with what `settings.state_file` holds of an earlier run: unexpired
    /// entries of workloads `universe` still has (what a workload that is gone looked up
    /// is nobody's). A file that cannot be read is set aside, and the node starts empty.
    pub(super) fn new(
        settings: &FqdnSettings,
        enrolled: Vec<Enrolled>,
        universe: &Universe,
    ) -> Self {
        let mut cache = FqdnCache::new(limits(settings));
        let now = UnixMillis::now();
        match store::read(&settings.state_file) {
            Ok(lookups) => {
                let total = lookups.len();
                let known = |l: &&Lookup| {
                    l.endpoint
                        .split_once('/')
                        .is_some_and(|(ns, name)| universe.endpoint(ns, name).is_some())
                };
                for l in lookups.iter().filter(known) {
                    cache.restore(l, now);
                }
                if total > 0 {
                    info!(path = %settings.state_file.display(), restored = cache.len(), read = total, "FQDN cache restored (unexpired entries of workloads in the configuration)");
                }
            }
            Err(error) => {
                let aside = store::set_aside(&settings.state_file)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|e| e.to_string());
                warn!(%error, moved_to = %aside, "the FQDN cache of the last run is unreadable; starting with an empty one (learned addresses stay closed until looked up again)");
                eprintln!(
                    "sluice: {error}; starting with an empty FQDN cache (the file was moved to {aside})"
                );
            }
        }
        Self {
            inner: Mutex::new(Inner {
                cache,
                book: IdentityBook::default(),
                selectors: Selectors::default(),
                settings: settings.clone(),
                dirty: false,
            }),
            enrolled,
            changed: Notify::new(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every change to `Inner` is completed before anything that could panic, so a
        // poisoned lock holds consistent state.
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Locks the engine for a start or a reload.
    pub fn lock(&self) -> FqdnGuard<'_> {
        FqdnGuard {
            inner: self.inner(),
        }
    }

    /// An allowed answer (the hook): records it and installs what it opens. Idempotent:
    /// a retry of an answer re-writes the addresses' IPCACHE entries.
    pub fn learn(
        &self,
        shared: &Shared,
        endpoint: &str,
        answer: &ResolvedAnswer,
    ) -> Result<(), FqdnError> {
        let started = Instant::now();
        let mut inner = self.inner();
        self.learn_locked(&mut inner, started, shared, endpoint, answer)
    }

    /// [`Self::learn`] where it is sure to be cheap, on the caller's thread: the engine is
    /// free, no `toFQDNs` selector selects the answer's names and none of its addresses
    /// holds an FQDN identity from an earlier name, so the answer needs no identity and
    /// compiles no policy (its lookup is recorded, which is all most answers do). `None`:
    /// not sure; call [`Self::learn`] on a blocking thread.
    pub fn try_learn_in_place(
        &self,
        shared: &Shared,
        endpoint: &str,
        answer: &ResolvedAnswer,
    ) -> Option<Result<(), FqdnError>> {
        let started = Instant::now();
        let mut inner = match self.inner.try_lock() {
            Ok(g) => g,
            // As in `inner`: a poisoned lock holds consistent state.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        if !inner.selectors.matching(answer_names(answer)).is_empty() {
            return None;
        }
        let learned = &shared.state.load().fqdn;
        if answer
            .ips
            .iter()
            .any(|ip| learned.contains_key(&ip.addr.to_canonical()))
        {
            return None;
        }
        Some(self.learn_locked(&mut inner, started, shared, endpoint, answer))
    }

    /// `learn` once the engine is held; `started` is when the caller began waiting for it.
    fn learn_locked(
        &self,
        inner: &mut Inner,
        started: Instant,
        shared: &Shared,
        endpoint: &str,
        answer: &ResolvedAnswer,
    ) -> Result<(), FqdnError> {
        let names: Vec<&str> = answer_names(answer).collect();
        let ips: Vec<ResolvedIp> = answer
            .ips
            .iter()
            .map(|ip| ResolvedIp {
                addr: ip.addr.to_canonical(),
                ttl: ip.ttl,
            })
            .filter(|ip| labels::learnable(ip.addr))
            .collect();
        let changed = inner.cache.learn(endpoint, &names, &ips, UnixMillis::now());
        inner.dirty = true;
        self.changed.notify_one();
        let addresses: BTreeSet<IpAddr> = ips.iter().map(|ip| ip.addr).collect();
        let installed = self.apply(inner, shared, &changed, &addresses);
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match &installed {
            Ok(summary) if summary.changed() => info!(
                %endpoint, qname = %answer.qname, cnames = ?answer.cnames,
                opened = ?summary.opened, new_identities = ?summary.new_identities,
                elapsed_us, "FQDN addresses learned"
            ),
            Ok(_) => {
                debug!(%endpoint, qname = %answer.qname, ips = ips.len(), elapsed_us, "FQDN answer refreshed")
            }
            Err(error) => {
                warn!(%endpoint, qname = %answer.qname, %error, elapsed_us, "FQDN install failed; the answer is withheld")
            }
        }
        installed.map(|_| ())
    }

    /// After a takeover: merges what the predecessor saved when it let go (what it
    /// learned after this node read the state file) and installs what that opens.
    /// Returns how many addresses changed.
    pub fn adopt_saved(&self, shared: &Shared) -> Result<usize, FqdnError> {
        let mut inner = self.inner();
        let lookups = match store::read(&inner.settings.state_file) {
            Ok(l) => l,
            Err(error) => {
                warn!(%error, "the predecessor's FQDN cache is unreadable; keeping what this node restored");
                return Ok(0);
            }
        };
        let snapshot = shared.state.load();
        let universe = snapshot.policy.universe();
        let now = UnixMillis::now();
        let mut changed = BTreeSet::new();
        for l in &lookups {
            let known = l
                .endpoint
                .split_once('/')
                .is_some_and(|(ns, name)| universe.endpoint(ns, name).is_some());
            if known && inner.cache.restore(l, now) {
                changed.insert(l.ip);
            }
        }
        if changed.is_empty() {
            return Ok(0);
        }
        inner.dirty = true;
        self.changed.notify_one();
        self.apply(&mut inner, shared, &changed, &changed)?;
        info!(
            addresses = changed.len(),
            "FQDN entries the predecessor learned during the takeover adopted"
        );
        Ok(changed.len())
    }

    /// Takes expired entries out and closes what they opened.
    pub fn expire(&self, shared: &Shared) -> Result<(), FqdnError> {
        let mut inner = self.inner();
        let now = UnixMillis::now();
        if inner.cache.next_expiry().is_none_or(|t| t > now) {
            return Ok(());
        }
        let changed = inner.cache.expire(now);
        inner.dirty = true;
        self.changed.notify_one();
        let summary = self.apply(&mut inner, shared, &changed, &BTreeSet::new())?;
        if summary.changed() {
            info!(closed = ?summary.closed, relabelled = ?summary.opened, "FQDN entries expired");
        }
        Ok(())
    }

    /// What the cache holds, for `sluice fqdn cache list`.
    pub fn list(&self, snapshot: &Snapshot) -> Vec<FqdnCacheEntry> {
        let inner = self.inner();
        let now = UnixMillis::now();
        let mut out: BTreeMap<(String, String), FqdnCacheEntry> = BTreeMap::new();
        for l in inner.cache.lookups() {
            let entry = out
                .entry((l.endpoint.clone(), l.name.clone()))
                .or_insert_with(|| FqdnCacheEntry {
                    endpoint: l.endpoint.clone(),
                    name: l.name.clone(),
                    selectors: inner
                        .selectors
                        .matching([l.name.as_str()])
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    ips: Vec::new(),
                });
            entry.ips.push(FqdnCacheIp {
                ip: l.ip,
                identity: snapshot.fqdn.get(&l.ip).map(|id| id.0),
                ttl: l.ttl,
                expires_at: Timestamp::from(
                    std::time::UNIX_EPOCH + Duration::from_millis(l.expires.0),
                )
                .rfc3339(),
                expires_in: l.expires.saturating_since(now).as_secs(),
                source: l.source.as_str().to_owned(),
            });
        }
        out.into_values().collect()
    }

    /// The cache to write, if it changed since the last call.
    fn take_dirty(&self) -> Option<(std::path::PathBuf, Vec<Lookup>)> {
        let mut inner = self.inner();
        if !inner.dirty {
            return None;
        }
        inner.dirty = false;
        Some((
            inner.settings.state_file.clone(),
            inner.cache.lookups().collect(),
        ))
    }

    /// Writes the cache now if it changed (shutdown).
    pub fn save(&self) {
        if let Some((path, lookups)) = self.take_dirty() {
            tasks::write_state(&path, &lookups);
        }
    }
}

fn limits(settings: &FqdnSettings) -> CacheLimits {
    CacheLimits {
        min_ttl: settings.min_ttl,
        max_ips_per_name: usize::try_from(settings.max_ips_per_hostname).unwrap_or(usize::MAX),
    }
}

/// The names an answer teaches addresses for: the asked name and its CNAME chain.
fn answer_names(answer: &ResolvedAnswer) -> impl Iterator<Item = &str> {
    std::iter::once(answer.qname.as_str()).chain(answer.cnames.iter().map(String::as_str))
}
