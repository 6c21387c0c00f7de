//! Handing a running datapath to a successor process (the node's live restart).
//!
//! What must survive the switch is kernel state: the programs stay attached through
//! their pinned links, and the maps stay the same maps, with what they hold (the DNS
//! original destinations of queries in flight, UDP flows, verdicts). The predecessor
//! sends duplicates of the descriptors of the maps user space drives and of its
//! instance locks; an `flock` belongs to the open file, so the successor holds the very
//! same lock and there is no moment at which a third instance could take it. The
//! successor opens the pinned links itself.
//!
//! Neither side loads or attaches a program: the programs that keep running are the
//! predecessor's. A successor built with a different object ([`object_digest`]) must not
//! adopt them; the node refuses such a takeover.
//!
//! Ownership moves explicitly. The predecessor calls [`Datapath::release`]: dropping it
//! then leaves the links attached and the lock files in place. An adopted datapath
//! starts released, and the successor calls [`Datapath::own`] once the predecessor has
//! let go; a successor that fails before that drops without touching what still serves.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::maps::{IterableMap, Map, MapData};
use aya::programs::links::PinnedLink;
use tracing::info;

use super::{DnsOrigDsts, ExtraCgroup, Links, OBJECT, PROGRAMS};
use crate::Error;
use crate::cgroup::{AttachCgroup, InstanceLock};
use crate::maps as raw;
use crate::types::CgroupId;
use crate::{Datapath, LoadOptions};

/// The maps user space drives, handed over by name. The others (original destinations
/// by socket cookie, UDP flows) are only used by the programs, which hold them.
const HANDED_OVER: [&str; 9] = [
    raw::MAP_WORKLOADS,
    raw::MAP_IPCACHE,
    raw::MAP_VERDICTS,
    raw::MAP_POLICY,
    raw::MAP_CONFIG,
    raw::MAP_ORIG_DST_BY_CLIENT,
    raw::MAP_DNS_ORIG_BY_CLIENT,
    raw::MAP_COUNTERS,
    raw::MAP_EVENTS,
];

/// The kernel keeps this many bytes of a map's name (`BPF_OBJ_NAME_LEN` less the NUL).
const KERNEL_NAME_LEN: usize = 15;

/// What a running datapath hands to its successor: duplicates of its descriptors.
#[derive(Debug)]
pub struct HandoverFds {
    /// The maps user space drives, by name (`sluice_bpf::maps::MAP_*`).
    pub maps: Vec<(String, OwnedFd)>,
    /// The instance locks, by cgroup path: the main cgroup's and each enrolled one's.
    pub locks: Vec<(PathBuf, OwnedFd)>,
}

/// An enrolled cgroup a predecessor handed over, until the successor claims it.
pub(super) struct AdoptableCgroup {
    cgroup: AttachCgroup,
    lock: File,
}

/// A digest of the BPF object this binary carries: a successor adopts its
/// predecessor's programs only when both carry the same object.
pub fn object_digest() -> String {
    // FNV-1a: a fingerprint, not a defence (both binaries are the operator's own).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in OBJECT {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}-{}", OBJECT.len())
}

fn handover_err(reason: impl Into<String>) -> Error {
    Error::Handover {
        reason: reason.into(),
    }
}

fn dup(name: &str, fd: impl AsFd) -> Result<OwnedFd, Error> {
    fd.as_fd()
        .try_clone_to_owned()
        .map_err(|e| handover_err(format!("duplicating the descriptor of map {name}: {e}")))
}

impl Datapath {
    /// Duplicates of the handed-over maps' descriptors, taken while every typed handle
    /// is still in place (at load).
    pub(super) fn dup_map_fds(&self) -> Result<Vec<(&'static str, OwnedFd)>, Error> {
        let events = self
            .events
            .as_ref()
            .ok_or_else(|| handover_err("the event ring was taken before it was recorded"))?;
        let dns = self
            .dns_orig_by_client
            .as_ref()
            .ok_or_else(|| handover_err("the DNS map was taken before it was recorded"))?;
        Ok(vec![
            (
                raw::MAP_WORKLOADS,
                dup(raw::MAP_WORKLOADS, self.workloads.map().fd())?,
            ),
            (
                raw::MAP_IPCACHE,
                dup(raw::MAP_IPCACHE, self.ipcache.map().fd())?,
            ),
            (
                raw::MAP_VERDICTS,
                dup(raw::MAP_VERDICTS, self.verdicts.map().fd())?,
            ),
            (
                raw::MAP_POLICY,
                dup(raw::MAP_POLICY, self.policy.map().fd())?,
            ),
            (
                raw::MAP_CONFIG,
                dup(raw::MAP_CONFIG, self.config.map().fd())?,
            ),
            (
                raw::MAP_ORIG_DST_BY_CLIENT,
                dup(
                    raw::MAP_ORIG_DST_BY_CLIENT,
                    self.orig_dst_by_client.map().fd(),
                )?,
            ),
            (
                raw::MAP_DNS_ORIG_BY_CLIENT,
                dup(raw::MAP_DNS_ORIG_BY_CLIENT, dns.0.map().fd())?,
            ),
            (
                raw::MAP_COUNTERS,
                dup(raw::MAP_COUNTERS, self.counters.map().fd())?,
            ),
            (raw::MAP_EVENTS, dup(raw::MAP_EVENTS, events)?),
        ])
    }

    /// Duplicates of everything a successor needs to adopt this datapath. Refused when
    /// the links are not pinned: they would detach when this process exits.
    pub fn handover_fds(&self) -> Result<HandoverFds, Error> {
        if self.link_pin_dir.is_none() || !self.links.held.is_empty() {
            return Err(handover_err(
                "its links are not pinned, so its programs detach when it exits",
            ));
        }
        let maps = self
            .map_fds
            .iter()
            .map(|(name, fd)| Ok(((*name).to_owned(), dup(name, fd)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let lock_fd = |cgroup: &AttachCgroup, lock: &InstanceLock| {
            lock.try_clone_file()
                .map(|f| (cgroup.path().to_owned(), OwnedFd::from(f)))
                .map_err(|e| {
                    handover_err(format!(
                        "duplicating the instance lock of {}: {e}",
                        cgroup.path().display()
                    ))
                })
        };
        let mut locks = vec![lock_fd(&self.cgroup, &self.lock)?];
        for extra in &self.extra {
            locks.push(lock_fd(&extra.cgroup, &extra.lock)?);
        }
        Ok(HandoverFds { maps, locks })
    }

    /// A successor holds the programs now: dropping this datapath leaves its links
    /// attached (and pinned) and its lock files in place, and only closes descriptors.
    /// The instance locks are let go of at once (the successor holds them), so they are
    /// free as soon as the successor is gone. Final: the maps stay usable, but this
    /// instance cannot own or hand over the datapath again.
    pub fn release(&mut self) {
        self.set_released(true);
        self.lock.close();
        for extra in &mut self.extra {
            extra.lock.close();
        }
    }

    /// This instance is the one that cleans up again: dropping it detaches the programs
    /// and removes the pins and lock files. An adopted datapath calls it once its
    /// predecessor has let go (never after [`Datapath::release`]).
    pub fn own(&mut self) {
        self.set_released(false);
    }

    fn set_released(&mut self, released: bool) {
        self.released = released;
        self.links.released = released;
        self.lock.released = released;
        for extra in &mut self.extra {
            extra.links.released = released;
            extra.lock.released = released;
        }
    }

    /// Adopts the datapath a running predecessor handed over: its maps (from `fds`),
    /// its instance locks, and its programs through the links pinned under
    /// `options.link_pin_dir`. Nothing is loaded or attached. The cgroups the
    /// predecessor enrolled besides the main one are claimed with
    /// [`Datapath::attach_cgroup`]. Starts released (see [`Datapath::own`]).
    pub fn adopt(options: &LoadOptions, fds: HandoverFds) -> Result<Self, Error> {
        let cgroup = AttachCgroup::new(&options.cgroup)?;
        let link_dir = options
            .link_pin_dir
            .as_deref()
            .ok_or_else(|| handover_err("a datapath is adopted through its pinned links"))?;
        let HandoverFds { maps, locks } = fds;
        let mut main_lock = None;
        let mut adoptable = Vec::new();
        for (path, fd) in locks {
            let lock_cgroup = AttachCgroup::new(&path)?;
            if lock_cgroup == cgroup {
                main_lock = Some(File::from(fd));
            } else {
                adoptable.push(AdoptableCgroup {
                    cgroup: lock_cgroup,
                    lock: File::from(fd),
                });
            }
        }
        let main_lock = main_lock.ok_or_else(|| {
            handover_err(format!(
                "the predecessor holds no lock on {}",
                cgroup.path().display()
            ))
        })?;
        let lock = InstanceLock::adopt(&options.lock_dir, &cgroup, main_lock)?;
        let links = adopt_links(link_dir)?;
        let mut maps = AdoptedMaps::new(maps)?;
        let datapath = Self {
            links,
            ebpf: None,
            workloads: maps.take(raw::MAP_WORKLOADS)?,
            ipcache: maps.take(raw::MAP_IPCACHE)?,
            verdicts: maps.take(raw::MAP_VERDICTS)?,
            policy: maps.take(raw::MAP_POLICY)?,
            config: maps.take(raw::MAP_CONFIG)?,
            orig_dst_by_client: maps.take(raw::MAP_ORIG_DST_BY_CLIENT)?,
            dns_orig_by_client: Some(DnsOrigDsts(maps.take(raw::MAP_DNS_ORIG_BY_CLIENT)?)),
            counters: maps.take(raw::MAP_COUNTERS)?,
            events: Some(maps.take(raw::MAP_EVENTS)?),
            map_fds: maps.fds,
            extra: Vec::new(),
            adoptable,
            cgroup,
            pin_dir: options.pin_dir.clone(),
            link_pin_dir: options.link_pin_dir.clone(),
            lock_dir: options.lock_dir.clone(),
            released: true,
            lock,
        };
        info!(cgroup = %datapath.cgroup.path().display(), "sluice datapath adopted from the running node");
        Ok(datapath)
    }

    /// The enrolled cgroups a predecessor handed over that this instance has not
    /// claimed: a successor that leaves one unclaimed would leave its programs attached
    /// with no owner.
    pub fn unclaimed_cgroups(&self) -> Vec<PathBuf> {
        self.adoptable
            .iter()
            .map(|a| a.cgroup.path().to_owned())
            .collect()
    }

    /// [`Datapath::attach_cgroup`] for an adopted datapath: takes over a cgroup the
    /// predecessor enrolled (its lock and pinned links).
    pub(super) fn claim_cgroup(&mut self, cgroup: AttachCgroup) -> Result<CgroupId, Error> {
        let Some(at) = self.adoptable.iter().position(|a| a.cgroup == cgroup) else {
            return Err(Error::CgroupRefused {
                path: cgroup.path().to_owned(),
                reason: "the running node had not enrolled it, and a node that took over \
                         from a running one cannot attach programs (restart the node: stop, \
                         then start, to enroll it)"
                    .to_owned(),
            });
        };
        let AdoptableCgroup { cgroup, lock } = self.adoptable.swap_remove(at);
        let id = CgroupId::of_path(cgroup.path()).map_err(|source| Error::CgroupOpen {
            path: cgroup.path().to_owned(),
            source,
        })?;
        let mut lock = InstanceLock::adopt(&self.lock_dir, &cgroup, lock)?;
        let dir = self
            .link_pin_dir
            .as_deref()
            .map(|d| d.join(format!("cgroup-{}", id.0)))
            .ok_or_else(|| handover_err("a datapath is adopted through its pinned links"))?;
        let mut links = adopt_links(&dir)?;
        links.own_dir = Some(dir);
        lock.released = self.released;
        links.released = self.released;
        info!(cgroup = %cgroup.path().display(), "enrolled cgroup adopted from the running node");
        self.extra.push(ExtraCgroup {
            links,
            cgroup,
            lock,
        });
        Ok(id)
    }
}

/// Opens the links a predecessor pinned under `dir`, one per program; released.
fn adopt_links(dir: &Path) -> Result<Links, Error> {
    let mut links = Links::default();
    links.released = true;
    for program in PROGRAMS {
        let path = dir.join(program);
        let link = PinnedLink::from_pin(&path).map_err(|e| {
            handover_err(format!(
                "opening the pinned link {}: {e} (was the running node started with pinned links?)",
                path.display()
            ))
        })?;
        links.pinned.push(link);
    }
    Ok(links)
}

/// The maps received, checked by name as they are taken (key and value sizes and the
/// map type are checked by aya's typed handles).
struct AdoptedMaps {
    received: Vec<(String, OwnedFd)>,
    /// Duplicates kept for the next handover.
    fds: Vec<(&'static str, OwnedFd)>,
}

impl AdoptedMaps {
    fn new(received: Vec<(String, OwnedFd)>) -> Result<Self, Error> {
        for name in HANDED_OVER {
            if !received.iter().any(|(n, _)| n == name) {
                return Err(Error::MissingMap { map: name });
            }
        }
        Ok(Self {
            received,
            fds: Vec::new(),
        })
    }

    fn take<M>(&mut self, name: &'static str) -> Result<M, Error>
    where
        M: TryFrom<Map, Error = aya::maps::MapError>,
    {
        let at = self
            .received
            .iter()
            .position(|(n, _)| n == name)
            .ok_or(Error::MissingMap { map: name })?;
        let (_, fd) = self.received.swap_remove(at);
        self.fds.push((name, dup(name, &fd)?));
        let data = MapData::from_fd(fd).map_err(Error::map(name))?;
        let info = data.info().map_err(Error::map(name))?;
        let expected = &name.as_bytes()[..name.len().min(KERNEL_NAME_LEN)];
        if info.name() != expected {
            return Err(handover_err(format!(
                "the descriptor handed over as map {name} is map {:?}",
                String::from_utf8_lossy(info.name())
            )));
        }
        let map = Map::from_map_data(data).map_err(Error::map(name))?;
        M::try_from(map).map_err(Error::map(name))
    }
}
