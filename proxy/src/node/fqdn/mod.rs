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
pub mod labels;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use sluice_bpf::Datapath;
use sluice_config::FqdnSettings;
use sluice_dns::cache::{CacheLimits, FqdnCache, Lookup, UnixMillis};
use sluice_dns::{ClientInfo, ResolvedAnswer, ResolvedIp};
use sluice_identity::universe::Universe;
use sluice_identity::{CompiledPolicy, Identity, LabelSet};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use self::hook::FqdnLearning;
use self::labels::{IdentityBook, Selectors};
use super::proxy::Shared;
use super::state::Snapshot;
use super::{Enrolled, KernelMaps};
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
        client: &ClientInfo,
        answer: &ResolvedAnswer,
    ) -> Result<(), FqdnError> {
        let started = Instant::now();
        let mut inner = self.inner();
        let snapshot = shared.state.load();
        let endpoint = endpoint_name(snapshot.policy.universe(), client.peer.ip());
        let names: Vec<&str> = std::iter::once(answer.qname.as_str())
            .chain(answer.cnames.iter().map(String::as_str))
            .collect();
        let ips: Vec<ResolvedIp> = answer
            .ips
            .iter()
            .map(|ip| ResolvedIp {
                addr: ip.addr.to_canonical(),
                ttl: ip.ttl,
            })
            .filter(|ip| labels::learnable(ip.addr))
            .collect();
        let changed = inner
            .cache
            .learn(&endpoint, &names, &ips, UnixMillis::now());
        inner.dirty = true;
        self.changed.notify_one();
        let addresses: BTreeSet<IpAddr> = ips.iter().map(|ip| ip.addr).collect();
        let installed = self.apply(&mut inner, shared, &changed, &addresses);
        drop(inner);
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
            write_state(&path, &lookups);
        }
    }

    /// Labels the addresses whose names changed and installs the result; makes sure the
    /// kernel holds `ensure` (an answer's addresses) as the snapshot says.
    fn apply(
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
struct Summary {
    opened: Vec<(IpAddr, Identity)>,
    closed: Vec<IpAddr>,
    new_identities: Vec<Identity>,
}

impl Summary {
    fn changed(&self) -> bool {
        !(self.opened.is_empty() && self.closed.is_empty() && self.new_identities.is_empty())
    }
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

/// The expiry timer and the state writer; aborted at shutdown (then [`FqdnEngine::save`]).
pub fn spawn_tasks(shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let expiry = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let s = Arc::clone(&shared);
                let done = tokio::task::spawn_blocking(move || s.fqdn.expire(&s)).await;
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        warn!(%error, "closing expired FQDN addresses failed; retrying")
                    }
                    Err(error) => warn!(%error, "FQDN expiry task failed"),
                }
            }
        })
    };
    let writer = tokio::spawn(async move {
        loop {
            shared.fqdn.changed.notified().await;
            tokio::time::sleep(PERSIST_DELAY).await;
            if let Some((path, lookups)) = shared.fqdn.take_dirty() {
                let _ = tokio::task::spawn_blocking(move || write_state(&path, &lookups)).await;
            }
        }
    });
    vec![expiry, writer]
}

/// The admin socket's view of the cache (`sluice fqdn cache list`).
pub struct AdminView(pub Arc<Shared>);

impl crate::admin::FqdnSource for AdminView {
    fn fqdn_cache(&self) -> Vec<FqdnCacheEntry> {
        self.0.fqdn.list(&self.0.state.load())
    }
}

fn write_state(path: &std::path::Path, lookups: &[Lookup]) {
    match store::write(path, lookups) {
        Ok(()) => debug!(path = %path.display(), entries = lookups.len(), "FQDN cache written"),
        Err(error) => {
            warn!(%error, "writing the FQDN cache failed; a restart would forget what it learned since")
        }
    }
}

fn limits(settings: &FqdnSettings) -> CacheLimits {
    CacheLimits {
        min_ttl: settings.min_ttl,
        max_ips_per_name: usize::try_from(settings.max_ips_per_hostname).unwrap_or(usize::MAX),
    }
}

/// The endpoint an answer is recorded for: `namespace/name` of the workload at the
/// client's address (the per-endpoint cap and the listing use it), else the address.
fn endpoint_name(universe: &Universe, client: IpAddr) -> String {
    universe
        .endpoint_at(client)
        .map_or_else(|| client.to_string(), |e| e.display_name())
}
