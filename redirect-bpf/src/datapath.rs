//! Loading the object, attaching every program to one cgroup, and the typed map
//! handles the proxy drives.
//!
//! The `Datapath` owns the aya `Ebpf` (whose programs hold the cgroup links) and the
//! instance lock: dropping it detaches every program and releases the lock. Pinned
//! maps, when asked for, outlive it until [`Datapath::remove_pins`]. A running
//! datapath can also be handed to a successor process without detaching ([`handover`]).

mod handover;

pub use handover::{HandoverFds, object_digest};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, SockOps};
use aya::{Ebpf, EbpfLoader};
use ipnet::IpNet;
use sluice_identity::ports::PortRange;
use sluice_identity::{Direction, Identity, Protocol};
use tracing::{debug, info};

use crate::Error;
use crate::cgroup::{AttachCgroup, DEFAULT_LOCK_DIR, InstanceLock};
use crate::events::EventReader;
use crate::maps as raw;
use crate::types::{
    Action, CgroupId, Counters, OrigDst, PolicyEntry, VerdictKey, WorkloadEntry, client_key,
    ip_to_raw, proto_number,
};

/// The object built from src/bpf/sluice.bpf.c by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sluice.bpf.o"));

/// The programs of the object, by function name.
pub const PROGRAMS: [&str; 9] = [
    "sluice_connect4",
    "sluice_connect6",
    "sluice_sendmsg4",
    "sluice_sendmsg6",
    "sluice_recvmsg4",
    "sluice_recvmsg6",
    "sluice_sockops",
    "sluice_ingress",
    "sluice_dns_egress",
];

/// bpffs's `statfs` magic number.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Where and how to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The cgroup every program attaches to; workloads are enrolled below it. Never
    /// the root of the hierarchy.
    pub cgroup: PathBuf,
    /// Pin the maps under this bpffs directory (reusing maps already pinned there).
    /// `None`: maps live as long as the `Datapath`.
    pub pin_dir: Option<PathBuf>,
    /// Directory of the per-cgroup instance locks.
    pub lock_dir: PathBuf,
    /// Pin the cgroup links under this bpffs directory, so the programs stay attached
    /// if the process dies without cleaning up: redirected connections then fail
    /// (nothing listens on the proxy port) instead of going through unenforced.
    /// Links a killed predecessor left there are detached first. Dropping the
    /// `Datapath` unpins and detaches. `None`: the links live as long as the process.
    pub link_pin_dir: Option<PathBuf>,
}

impl LoadOptions {
    pub fn new(cgroup: impl Into<PathBuf>) -> Self {
        Self {
            cgroup: cgroup.into(),
            pin_dir: None,
            lock_dir: PathBuf::from(DEFAULT_LOCK_DIR),
            link_pin_dir: None,
        }
    }

    pub fn pin_maps_under(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pin_dir = Some(dir.into());
        self
    }

    pub fn pin_links_under(mut self, dir: impl Into<PathBuf>) -> Self {
        self.link_pin_dir = Some(dir.into());
        self
    }

    pub fn lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = dir.into();
        self
    }
}

/// Node-wide redirect targets. Ports are where the proxy and the DNS proxy listen on
/// each workload's proxy address ([`WorkloadEntry::proxy_v4`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedirectPorts {
    /// 0: not ready, redirected connects fail (closed).
    pub proxy: u16,
    /// 0: DNS is not redirected (UDP to port 53 is then like any other UDP).
    pub dns_proxy: u16,
}

/// The loaded and attached datapath.
pub struct Datapath {
    // Field order is drop order: programs (and their cgroup links) go before the lock
    // is released, so a successor never attaches beside a still-attached instance.
    links: Links,
    /// `None` for a datapath adopted from a predecessor ([`Datapath::adopt`]): its
    /// programs run, attached through the pinned links, but this process cannot attach
    /// them anywhere else.
    ebpf: Option<Ebpf>,
    workloads: HashMap<MapData, u64, raw::Workload>,
    ipcache: LpmTrie<MapData, raw::IpcacheKeyData, raw::IpcacheEntry>,
    verdicts: HashMap<MapData, raw::VerdictKey, raw::Verdict>,
    policy: LpmTrie<MapData, raw::PolicyKeyData, raw::Verdict>,
    config: Array<MapData, raw::Config>,
    orig_dst_by_client: HashMap<MapData, raw::ClientKey, raw::OrigDst>,
    dns_orig_by_client: Option<DnsOrigDsts>,
    counters: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    /// Cgroups enrolled beside the main one (workloads that exist outside it), each
    /// with its links and its instance lock; detached before the main cgroup.
    extra: Vec<ExtraCgroup>,
    cgroup: AttachCgroup,
    pin_dir: Option<PathBuf>,
    link_pin_dir: Option<PathBuf>,
    lock_dir: PathBuf,
    /// Duplicates of the descriptors of the maps user space drives, for a successor
    /// ([`Datapath::handover_fds`]); the typed handles above may have been taken out.
    map_fds: Vec<(&'static str, std::os::fd::OwnedFd)>,
    /// Enrolled cgroups a predecessor handed over that this instance has not claimed
    /// (again) with [`Datapath::attach_cgroup`] yet.
    adoptable: Vec<handover::AdoptableCgroup>,
    /// A successor holds the programs ([`Datapath::release`]), or this instance has not
    /// taken them from its predecessor yet ([`Datapath::own`]).
    released: bool,
    lock: InstanceLock,
}

/// One more cgroup the programs are attached to. Field order is drop order: the
/// links detach before the lock is released.
struct ExtraCgroup {
    links: Links,
    cgroup: AttachCgroup,
    lock: InstanceLock,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("cgroup", &self.cgroup.path())
            .field("pin_dir", &self.pin_dir)
            .finish_non_exhaustive()
    }
}

impl Datapath {
    /// Loads the programs and maps and attaches every program to `options.cgroup`.
    pub fn load(options: &LoadOptions) -> Result<Self, Error> {
        let cgroup = AttachCgroup::new(&options.cgroup)?;
        let lock = InstanceLock::acquire(&options.lock_dir, &cgroup)?;

        let mut loader = EbpfLoader::new();
        let pin_paths: Vec<(&'static str, PathBuf)> = match &options.pin_dir {
            Some(dir) => {
                check_pin_dir(dir)?;
                raw::ALL_MAPS.iter().map(|m| (*m, dir.join(m))).collect()
            }
            None => Vec::new(),
        };
        for (map, path) in &pin_paths {
            loader.map_pin_path(map, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT).map_err(Error::LoadObject)?;

        if let Some(dir) = &options.link_pin_dir {
            check_pin_dir(dir)?;
            detach_stale_links(dir)?;
        }
        let links = attach_all(&mut ebpf, &cgroup, options.link_pin_dir.as_deref())?;
        info!(cgroup = %cgroup.path().display(), pinned = options.pin_dir.is_some(), "sluice datapath attached");

        let mut datapath = Self {
            links,
            workloads: take_map(&mut ebpf, raw::MAP_WORKLOADS)?,
            ipcache: take_map(&mut ebpf, raw::MAP_IPCACHE)?,
            verdicts: take_map(&mut ebpf, raw::MAP_VERDICTS)?,
            policy: take_map(&mut ebpf, raw::MAP_POLICY)?,
            config: take_map(&mut ebpf, raw::MAP_CONFIG)?,
            orig_dst_by_client: take_map(&mut ebpf, raw::MAP_ORIG_DST_BY_CLIENT)?,
            dns_orig_by_client: Some(DnsOrigDsts(take_map(
                &mut ebpf,
                raw::MAP_DNS_ORIG_BY_CLIENT,
            )?)),
            counters: take_map(&mut ebpf, raw::MAP_COUNTERS)?,
            events: Some(take_map(&mut ebpf, raw::MAP_EVENTS)?),
            ebpf: Some(ebpf),
            map_fds: Vec::new(),
            extra: Vec::new(),
            adoptable: Vec::new(),
            cgroup,
            pin_dir: options.pin_dir.clone(),
            link_pin_dir: options.link_pin_dir.clone(),
            lock_dir: options.lock_dir.clone(),
            released: false,
            lock,
        };
        datapath.map_fds = datapath.dup_map_fds()?;
        Ok(datapath)
    }

    /// Attaches every program to one more cgroup: a workload that lives outside the
    /// datapath's own cgroup (a systemd unit, a container runtime's cgroup). Refused:
    /// the root, a cgroup inside or around the datapath's own one (the programs would
    /// run twice, or steer everything below), one that holds this process (its own
    /// connections would be redirected to itself), and one another instance holds.
    /// Links are pinned like the main ones, under a directory named by the cgroup id.
    ///
    /// An adopted datapath ([`Datapath::adopt`]) cannot attach programs: it takes over
    /// the cgroups its predecessor enrolled, and refuses any other.
    pub fn attach_cgroup(&mut self, path: &Path) -> Result<CgroupId, Error> {
        let cgroup = AttachCgroup::new(path)?;
        if self.ebpf.is_none() {
            return self.claim_cgroup(cgroup);
        }
        let refused = |reason: &str| Error::CgroupRefused {
            path: cgroup.path().to_owned(),
            reason: reason.to_owned(),
        };
        let main = self.cgroup.path();
        if cgroup.path().starts_with(main) || main.starts_with(cgroup.path()) {
            return Err(refused(
                "it is inside (or contains) the cgroup sluice attaches to already",
            ));
        }
        if self.extra.iter().any(|e| e.cgroup == cgroup) {
            return Err(refused("it is enrolled already"));
        }
        if own_cgroup_within(cgroup.path()) {
            return Err(refused(
                "sluice itself runs in it: its own connections would be redirected to itself",
            ));
        }
        let id = CgroupId::of_path(cgroup.path()).map_err(|source| Error::CgroupOpen {
            path: cgroup.path().to_owned(),
            source,
        })?;
        let lock = InstanceLock::acquire(&self.lock_dir, &cgroup)?;
        let pin_dir = match &self.link_pin_dir {
            Some(dir) => {
                let sub = dir.join(format!("cgroup-{}", id.0));
                check_pin_dir(&sub)?;
                detach_stale_links(&sub)?;
                Some(sub)
            }
            None => None,
        };
        let Some(ebpf) = self.ebpf.as_mut() else {
            return Err(refused(
                "this instance adopted its programs and cannot attach them",
            ));
        };
        let mut links = attach_all(ebpf, &cgroup, pin_dir.as_deref())?;
        links.own_dir = pin_dir;
        info!(cgroup = %cgroup.path().display(), "sluice datapath attached to an enrolled cgroup");
        self.extra.push(ExtraCgroup {
            links,
            cgroup,
            lock,
        });
        Ok(id)
    }

    /// The cgroup the programs are attached to (canonical path).
    pub fn cgroup(&self) -> &Path {
        self.cgroup.path()
    }

    pub fn workloads(&mut self) -> Workloads<'_> {
        Workloads(&mut self.workloads)
    }

    pub fn ipcache(&mut self) -> IpCache<'_> {
        IpCache(&mut self.ipcache)
    }

    pub fn verdicts(&mut self) -> Verdicts<'_> {
        Verdicts(&mut self.verdicts)
    }

    pub fn policy(&mut self) -> Policy<'_> {
        Policy(&mut self.policy)
    }

    /// Audit mode: what policy would drop in the kernel passes, reported as AUDIT.
    pub fn set_audit(&mut self, audit: bool) -> Result<(), Error> {
        let mut config = self.read_config()?;
        if audit {
            config.flags |= raw::CFG_F_AUDIT;
        } else {
            config.flags &= !raw::CFG_F_AUDIT;
        }
        self.write_config(config)
    }

    /// Where redirected connections and DNS go. Until this is called the proxy port
    /// is 0 and every connect that would be redirected fails (closed).
    pub fn set_redirect_ports(&mut self, ports: RedirectPorts) -> Result<(), Error> {
        let mut config = self.read_config()?;
        config.proxy_port = ports.proxy;
        config.dns_proxy_port = ports.dns_proxy;
        self.write_config(config)
    }

    /// The current policy generation: verdicts of any other generation are ignored
    /// from this call on, so one write invalidates every stale verdict at once.
    pub fn set_generation(&mut self, generation: u32) -> Result<(), Error> {
        let mut config = self.read_config()?;
        config.generation = generation;
        self.write_config(config)
    }

    pub fn generation(&self) -> Result<u32, Error> {
        Ok(self.read_config()?.generation)
    }

    /// The original destination of a redirected TCP connection whose client is
    /// `peer` (the accepted socket's peer address), removed from the map: each
    /// connection is claimed once.
    pub fn orig_dst_by_client(&mut self, peer: SocketAddr) -> Result<Option<OrigDst>, Error> {
        let key = client_key(peer, Protocol::Tcp)?;
        let map = raw::MAP_ORIG_DST_BY_CLIENT;
        let entry = match self.orig_dst_by_client.get(&key, 0) {
            Ok(entry) => entry,
            Err(aya::maps::MapError::KeyNotFound) => return Ok(None),
            Err(e) => return Err(Error::map(map)(e)),
        };
        match self.orig_dst_by_client.remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(Error::map(map)(e)),
        }
        Ok(OrigDst::from_raw(entry))
    }

    /// The reader of the DNS proxy's original destinations. It reads through its own
    /// map descriptor, so the DNS proxy's per-query lookups share no lock with the
    /// rest of the datapath. There is one: the second call returns `None`.
    pub fn take_dns_orig_dsts(&mut self) -> Option<DnsOrigDsts> {
        self.dns_orig_by_client.take()
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, Error> {
        let read = |index: u32| -> Result<u64, Error> {
            let values = self
                .counters
                .get(&index, 0)
                .map_err(Error::map(raw::MAP_COUNTERS))?;
            Ok(values.iter().sum())
        };
        Ok(Counters {
            redirected: read(raw::CTR_REDIRECTED)?,
            bypassed: read(raw::CTR_BYPASSED)?,
            denied: read(raw::CTR_DENIED)?,
            dns_redirected: read(raw::CTR_DNS_REDIRECTED)?,
            dns_replies_rewritten: read(raw::CTR_DNS_REPLIES_REWRITTEN)?,
            ingress_dropped: read(raw::CTR_INGRESS_DROPPED)?,
            not_ready: read(raw::CTR_NOT_READY)?,
            events_lost: read(raw::CTR_EVENTS_LOST)?,
            map_full: read(raw::CTR_MAP_FULL)?,
            stale_verdicts: read(raw::CTR_STALE_VERDICT)?,
            audited: read(raw::CTR_AUDITED)?,
            udp_flow_hits: read(raw::CTR_UDP_CT_HIT)?,
        })
    }

    /// The reader of kernel decisions. There is one ring buffer and one reader: the
    /// second call returns `None`.
    pub fn take_event_reader(&mut self) -> Option<EventReader> {
        self.events.take().map(EventReader::new)
    }

    /// Removes the pin files of every map (the maps live on while this `Datapath`
    /// holds them). Nothing to do when the maps are not pinned.
    pub fn remove_pins(&self) -> Result<(), Error> {
        let Some(dir) = &self.pin_dir else {
            return Ok(());
        };
        for map in raw::ALL_MAPS {
            let path = dir.join(map);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Unpin { path, source }),
            }
        }
        Ok(())
    }

    fn read_config(&self) -> Result<raw::Config, Error> {
        self.config.get(&0, 0).map_err(Error::map(raw::MAP_CONFIG))
    }

    fn write_config(&mut self, config: raw::Config) -> Result<(), Error> {
        self.config
            .set(0, config, 0)
            .map_err(Error::map(raw::MAP_CONFIG))
    }
}

/// DNS_ORIG_BY_CLIENT: the resolver a redirected DNS query was sent to, by the client's
/// address and port as the DNS proxy sees them (UDP: keyed per datagram by
/// `cgroup_skb/egress`; TCP: per connection by `sockops`).
pub struct DnsOrigDsts(HashMap<MapData, raw::ClientKey, raw::OrigDst>);

impl std::fmt::Debug for DnsOrigDsts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsOrigDsts")
    }
}

impl DnsOrigDsts {
    /// The original destination of the DNS query (UDP) or connection (TCP) from
    /// `client`. Read, not removed: a socket sends many queries, and each datagram or
    /// connection rewrites its entry (stale ones age out of the LRU map).
    pub fn get(&self, client: SocketAddr, proto: Protocol) -> Result<Option<OrigDst>, Error> {
        let key = client_key(client, proto)?;
        match self.0.get(&key, 0) {
            Ok(entry) => Ok(OrigDst::from_raw(entry)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(Error::map(raw::MAP_DNS_ORIG_BY_CLIENT)(e)),
        }
    }
}

/// WORKLOADS: which cgroups are enrolled, as what.
pub struct Workloads<'a>(&'a mut HashMap<MapData, u64, raw::Workload>);

impl Workloads<'_> {
    pub fn insert(&mut self, cgroup: CgroupId, entry: WorkloadEntry) -> Result<(), Error> {
        self.0
            .insert(cgroup.0, entry.to_raw(), 0)
            .map_err(Error::map(raw::MAP_WORKLOADS))
    }

    pub fn get(&self, cgroup: CgroupId) -> Result<Option<WorkloadEntry>, Error> {
        match self.0.get(&cgroup.0, 0) {
            Ok(w) => Ok(Some(WorkloadEntry::from_raw(w))),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(Error::map(raw::MAP_WORKLOADS)(e)),
        }
    }

    /// Un-enrolls a cgroup: its new sockets are no longer touched. `false` when it was
    /// not enrolled.
    pub fn remove(&mut self, cgroup: CgroupId) -> Result<bool, Error> {
        absent_is_false(self.0.remove(&cgroup.0), raw::MAP_WORKLOADS)
    }
}

/// IPCACHE: prefixes to identities, longest prefix wins. Addresses it does not know
/// get the reserved identity `world`.
pub struct IpCache<'a>(&'a mut LpmTrie<MapData, raw::IpcacheKeyData, raw::IpcacheEntry>);

impl IpCache<'_> {
    pub fn insert(&mut self, net: IpNet, identity: Identity) -> Result<(), Error> {
        let entry = raw::IpcacheEntry {
            identity: identity.0,
        };
        self.0
            .insert(&lpm_key(net), entry, 0)
            .map_err(Error::map(raw::MAP_IPCACHE))
    }

    pub fn remove(&mut self, net: IpNet) -> Result<bool, Error> {
        absent_is_false(self.0.remove(&lpm_key(net)), raw::MAP_IPCACHE)
    }

    /// Removes every prefix but those of `keep`; returns how many were removed. For a
    /// reload: a prefix the new policy no longer names must stop giving its identity
    /// (addresses under it fall back to the next shorter prefix, or `world`).
    pub fn retain(&mut self, keep: &[IpNet]) -> Result<usize, Error> {
        let raw = |k: &LpmKey<raw::IpcacheKeyData>| {
            let data = k.data();
            (k.prefix_len(), data.family, data.addr)
        };
        let keep: std::collections::HashSet<_> = keep.iter().map(|n| raw(&lpm_key(*n))).collect();
        let stale: Vec<_> = self
            .0
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !keep.contains(&raw(k)))
            .collect();
        remove_keys(stale, raw::MAP_IPCACHE, |k| self.0.remove(k))
    }
}

fn lpm_key(net: IpNet) -> LpmKey<raw::IpcacheKeyData> {
    let net = net.trunc();
    let (family, addr) = ip_to_raw(net.addr());
    // An IPv4-mapped IPv6 prefix is stored as the IPv4 prefix it covers.
    let prefix_len = match (net, family) {
        (IpNet::V6(v6), raw::AF_INET) => u32::from(v6.prefix_len().saturating_sub(96)),
        _ => u32::from(net.prefix_len()),
    };
    LpmKey::new(
        raw::IPCACHE_PREFIX_BASE + prefix_len,
        raw::IpcacheKeyData {
            family,
            _pad: [0; 3],
            addr,
        },
    )
}

/// VERDICTS: kernel-side decisions, valid only for the generation they carry.
pub struct Verdicts<'a>(&'a mut HashMap<MapData, raw::VerdictKey, raw::Verdict>);

impl Verdicts<'_> {
    pub fn insert(
        &mut self,
        key: VerdictKey,
        action: Action,
        generation: u32,
    ) -> Result<(), Error> {
        self.0
            .insert(key.to_raw()?, verdict_value(action, generation), 0)
            .map_err(Error::map(raw::MAP_VERDICTS))
    }

    pub fn remove(&mut self, key: VerdictKey) -> Result<bool, Error> {
        absent_is_false(self.0.remove(&key.to_raw()?), raw::MAP_VERDICTS)
    }

    /// Removes every verdict of another generation (the kernel already ignores them;
    /// this gives their room back). Returns how many were removed.
    pub fn retain_generation(&mut self, generation: u32) -> Result<usize, Error> {
        let stale = stale_keys(self.0.iter(), generation);
        remove_keys(stale, raw::MAP_VERDICTS, |k| self.0.remove(k))
    }
}

/// POLICY: an endpoint's L3/L4 policy precomputed for the kernel, for what never
/// reaches the proxy (UDP, and connection requests arriving from outside the node).
/// Port ranges become LPM prefixes on the port.
pub struct Policy<'a>(&'a mut LpmTrie<MapData, raw::PolicyKeyData, raw::Verdict>);

impl Policy<'_> {
    /// Writes one entry (as many prefixes as its port range needs); returns how many.
    pub fn insert(&mut self, entry: &PolicyEntry, generation: u32) -> Result<usize, Error> {
        let value = verdict_value(entry.action, generation);
        let prefixes = port_prefixes(entry.ports);
        for (port, bits) in &prefixes {
            let key = LpmKey::new(
                raw::POLICY_PREFIX_BASE + u32::from(*bits),
                raw::PolicyKeyData {
                    endpoint: entry.endpoint.0.to_be(),
                    peer: entry.peer.map_or(0, |p| p.0).to_be(),
                    direction: direction_number(entry.direction),
                    proto: proto_number(entry.proto)?,
                    port: port.to_be(),
                },
            );
            self.0
                .insert(&key, value, 0)
                .map_err(Error::map(raw::MAP_POLICY))?;
        }
        Ok(prefixes.len())
    }

    /// Removes every entry of another generation. Returns how many were removed.
    pub fn retain_generation(&mut self, generation: u32) -> Result<usize, Error> {
        let stale = stale_keys(self.0.iter(), generation);
        remove_keys(stale, raw::MAP_POLICY, |k| self.0.remove(k))
    }
}

/// The keys of a verdict map's entries of another generation (collected first: a map
/// is not changed while it is being iterated).
fn stale_keys<K>(
    entries: impl Iterator<Item = Result<(K, raw::Verdict), aya::maps::MapError>>,
    generation: u32,
) -> Vec<K> {
    entries
        .filter_map(Result::ok)
        .filter(|(_, v)| v.generation != generation)
        .map(|(k, _)| k)
        .collect()
}

/// Removes `keys` from `map`; returns how many were still there.
fn remove_keys<K>(
    keys: Vec<K>,
    map: &'static str,
    mut remove: impl FnMut(&K) -> Result<(), aya::maps::MapError>,
) -> Result<usize, Error> {
    let mut removed = 0;
    for key in keys {
        removed += usize::from(absent_is_false(remove(&key), map)?);
    }
    Ok(removed)
}

fn verdict_value(action: Action, generation: u32) -> raw::Verdict {
    let (action, drop_reason) = match action {
        Action::Bypass => (raw::ACTION_BYPASS, 0),
        Action::Deny(reason) => (raw::ACTION_DENY, reason.code()),
        Action::Redirect => (raw::ACTION_REDIRECT, 0),
    };
    raw::Verdict {
        action,
        drop_reason,
        _pad: 0,
        generation,
    }
}

fn direction_number(d: Direction) -> u8 {
    match d {
        Direction::Ingress => raw::DIR_INGRESS,
        Direction::Egress => raw::DIR_EGRESS,
    }
}

/// A port range as the fewest aligned power-of-two blocks: `(first port, prefix bits)`,
/// at most 30 of them.
pub fn port_prefixes(range: PortRange) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let (mut start, end) = (u32::from(range.lo), u32::from(range.hi));
    while start <= end {
        let mut k = start.trailing_zeros().min(16);
        while start + (1 << k) - 1 > end {
            k -= 1;
        }
        // start < 65536 and k <= 16: both fit.
        out.push((start as u16, (16 - k) as u8));
        start += 1 << k;
    }
    out
}

fn absent_is_false(
    result: Result<(), aya::maps::MapError>,
    map: &'static str,
) -> Result<bool, Error> {
    match result {
        Ok(()) => Ok(true),
        Err(aya::maps::MapError::KeyNotFound) => Ok(false),
        Err(e) => Err(Error::map(map)(e)),
    }
}

fn take_map<M>(ebpf: &mut Ebpf, map: &'static str) -> Result<M, Error>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let data = ebpf.take_map(map).ok_or(Error::MissingMap { map })?;
    M::try_from(data).map_err(Error::map(map))
}

/// Loads and attaches one program; returns its link, taken out of aya's keeping so that
/// the caller holds (or pins) it.
fn attach(
    ebpf: &mut Ebpf,
    program: &'static str,
    cgroup: &AttachCgroup,
    file: &std::fs::File,
) -> Result<FdLink, Error> {
    let missing = || Error::MissingProgram { program };
    // Loaded once, attached to as many cgroups as are enrolled.
    let load = |r: Result<(), aya::programs::ProgramError>| match r {
        Ok(()) | Err(aya::programs::ProgramError::AlreadyLoaded) => Ok(()),
        Err(source) => Err(Error::LoadProgram { program, source }),
    };
    let attach_err = |source| Error::Attach {
        program,
        cgroup: cgroup.path().to_owned(),
        source,
    };
    let prog = ebpf.program_mut(program).ok_or_else(missing)?;
    let mode = CgroupAttachMode::Single;
    match prog {
        aya::programs::Program::CgroupSockAddr(p) => {
            let p: &mut CgroupSockAddr = p;
            load(p.load())?;
            let id = p.attach(file, mode).map_err(attach_err)?;
            let link = p.take_link(id).map_err(attach_err)?;
            debug!(program, cgroup = %cgroup.path().display(), "attached");
            fd_link(program, link)
        }
        aya::programs::Program::SockOps(p) => {
            let p: &mut SockOps = p;
            load(p.load())?;
            let id = p.attach(file, mode).map_err(attach_err)?;
            let link = p.take_link(id).map_err(attach_err)?;
            debug!(program, cgroup = %cgroup.path().display(), "attached");
            fd_link(program, link)
        }
        aya::programs::Program::CgroupSkb(p) => {
            let p: &mut CgroupSkb = p;
            // From the section name (`cgroup_skb/ingress` or `cgroup_skb/egress`).
            let direction = (*p.expected_attach_type()).unwrap_or(CgroupSkbAttachType::Ingress);
            load(p.load())?;
            let id = p.attach(file, direction, mode).map_err(attach_err)?;
            let link = p.take_link(id).map_err(attach_err)?;
            debug!(program, cgroup = %cgroup.path().display(), "attached");
            fd_link(program, link)
        }
        _ => Err(missing()),
    }
}

fn fd_link<L>(program: &'static str, link: L) -> Result<FdLink, Error>
where
    FdLink: TryFrom<L>,
{
    FdLink::try_from(link).map_err(|_| Error::NoLink { program })
}

/// The instance's cgroup links: held (the programs stay attached while the process
/// lives) or pinned (they stay attached until unpinned). Dropping detaches both.
///
/// Released ([`Datapath::release`]): a successor holds the programs, so dropping only
/// closes this process's descriptors and the pinned links stay attached.
#[derive(Default)]
struct Links {
    held: Vec<FdLink>,
    pinned: Vec<PinnedLink>,
    released: bool,
    /// A directory of this instance's own (an enrolled cgroup's), removed once its pins
    /// are.
    own_dir: Option<PathBuf>,
}

impl Drop for Links {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        for link in self.pinned.drain(..) {
            // Unpinning hands back the link; dropping it detaches the program.
            if let Err(e) = link.unpin() {
                tracing::warn!(error = %e, "could not unpin a BPF link");
            }
        }
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Attaches every program to `cgroup`; the links are pinned under `pin_dir` when
/// given, else held.
fn attach_all(
    ebpf: &mut Ebpf,
    cgroup: &AttachCgroup,
    pin_dir: Option<&Path>,
) -> Result<Links, Error> {
    let cgroup_file = cgroup.open()?;
    let mut links = Links::default();
    for program in PROGRAMS {
        let link = attach(ebpf, program, cgroup, &cgroup_file)?;
        match pin_dir {
            Some(dir) => {
                let path = dir.join(program);
                let pinned = link.pin(&path).map_err(|e| Error::Unpin {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                links.pinned.push(pinned);
            }
            None => links.held.push(link),
        }
    }
    Ok(links)
}

/// Whether this process runs in `cgroup` or below it (cgroup v2 line of
/// /proc/self/cgroup, resolved against every cgroup2 mount).
fn own_cgroup_within(cgroup: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return false;
    };
    let mounts = crate::cgroup::cgroup2_mounts().unwrap_or_default();
    cgroup_within(&text, &mounts, cgroup)
}

/// `proc_cgroup` is /proc/<pid>/cgroup: is its cgroup v2 path, under any of `mounts`,
/// `cgroup` or below it?
fn cgroup_within(proc_cgroup: &str, mounts: &[PathBuf], cgroup: &Path) -> bool {
    let Some(own) = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let own = own.trim_start_matches('/');
    mounts.iter().any(|m| m.join(own).starts_with(cgroup))
}

/// Detaches the links a predecessor that died left pinned in `dir`, and in the
/// per-cgroup directories below it (enrolled cgroups).
fn detach_stale_links(dir: &Path) -> Result<(), Error> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let sub = entry.path();
            if sub.is_dir() {
                detach_stale_links(&sub)?;
                let _ = std::fs::remove_dir(&sub);
            }
        }
    }
    for program in PROGRAMS {
        let path = dir.join(program);
        if !path.exists() {
            continue;
        }
        info!(path = %path.display(), "detaching a BPF link left by a previous instance");
        match PinnedLink::from_pin(&path) {
            Ok(link) => {
                let _ = link.unpin();
            }
            Err(_) => {
                std::fs::remove_file(&path).map_err(|source| Error::Unpin { path, source })?;
            }
        }
    }
    Ok(())
}

fn check_pin_dir(dir: &Path) -> Result<(), Error> {
    let pin_err = |reason: String| Error::PinDir {
        dir: dir.to_owned(),
        reason,
    };
    let probe = if dir.exists() {
        dir
    } else {
        dir.parent()
            .ok_or_else(|| pin_err("has no parent directory".to_owned()))?
    };
    let stat = rustix::fs::statfs(probe)
        .map_err(|e| pin_err(format!("statfs {}: {e}", probe.display())))?;
    if stat.f_type != BPF_FS_MAGIC {
        return Err(pin_err(format!("{} is not on a bpffs", probe.display())));
    }
    if !dir.exists() {
        std::fs::create_dir(dir).map_err(|e| pin_err(format!("cannot create it: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_this_process_runs_in_is_recognised() {
        let mounts = [PathBuf::from("/sys/fs/cgroup/unified")];
        let proc_cgroup = "12:cpu:/x\n0::/system.slice/sluice.service\n";
        let within = |c: &str| cgroup_within(proc_cgroup, &mounts, Path::new(c));
        assert!(within("/sys/fs/cgroup/unified/system.slice/sluice.service"));
        assert!(within("/sys/fs/cgroup/unified/system.slice"));
        assert!(!within("/sys/fs/cgroup/unified/system.slice/web.service"));
        assert!(!within("/sys/fs/cgroup/unified/user.slice"));
        assert!(!cgroup_within(
            "12:cpu:/x\n",
            &mounts,
            Path::new("/sys/fs/cgroup/unified/a")
        ));
    }

    #[test]
    fn port_ranges_become_the_fewest_aligned_prefixes() {
        type Prefixes = &'static [(u16, u8)];
        let cases: &[((u16, u16), Prefixes)] = &[
            ((80, 80), &[(80, 16)]),
            ((0, 65535), &[(0, 0)]),
            (
                (1024, 65535),
                &[
                    (1024, 6),
                    (2048, 5),
                    (4096, 4),
                    (8192, 3),
                    (16384, 2),
                    (32768, 1),
                ],
            ),
            ((8080, 8083), &[(8080, 14)]),
            ((5, 8), &[(5, 16), (6, 15), (8, 16)]),
            ((65535, 65535), &[(65535, 16)]),
        ];
        for ((lo, hi), want) in cases {
            assert_eq!(
                port_prefixes(PortRange { lo: *lo, hi: *hi }),
                *want,
                "{lo}-{hi}"
            );
        }
        // Every port of a worst-case range is covered exactly once.
        let prefixes = port_prefixes(PortRange { lo: 1, hi: 65534 });
        assert!(prefixes.len() <= 30);
        let covered: u32 = prefixes.iter().map(|(_, bits)| 1u32 << (16 - bits)).sum();
        assert_eq!(covered, 65534);
    }
}
