//! The addressing scheme, and the lock that keeps two live topologies from sharing
//! addresses or interface names.
//!
//! ```text
//! 10.200.0.0/16      the test space: pods live here, and forwarded pod traffic may go
//!                    nowhere else (see `net::guard_forwarding`)
//! 10.200.0.0/17      pod addresses a test names itself (`.address("10.200.1.2")`)
//! 10.200.128.0/17    128 blocks of /24, one per live topology, locked with flock(2)
//!   block 10.200.B.0/24, pod slot i (0..=62):
//!     10.200.B.(4i+1)   host side of the pod's veth (`pod.host_address()`)
//!     10.200.B.(4i+2)   the pod, unless the test names an address
//! ```
//!
//! Every address is a /32 with explicit device routes, so a named pod address need not
//! share a subnet with its host side: the pod has `host/32 dev eth0 scope link` and
//! `default via host`; the root netns has `pod/32 dev slt<B>p<i>`.
//!
//! Why a lock instead of a counter: tests of several crates (several processes) share
//! one kernel. flock(2) locks die with their process, so a crashed run never leaks a
//! block; its leftover links and rules are swept when the block is claimed again.

use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::naming::LINK_PREFIX;

/// Where block locks live (`block-<octet>.lock`).
pub const LOCK_DIR: &str = "/run/sluice-test";

/// Pods per topology: slot i uses 10.200.B.(4i+1) and .(4i+2); 4·62+2 = 250 < 255.
pub const MAX_PODS: usize = 63;

/// Third octet of the first auto block.
const FIRST_BLOCK: u8 = 128;

/// Number of auto blocks (10.200.128.0/24 … 10.200.255.0/24).
pub(crate) const BLOCKS: usize = 128;

/// Whether `address` lies in the test space 10.200.0.0/16.
pub fn in_test_space(address: Ipv4Addr) -> bool {
    let [a, b, _, _] = address.octets();
    (a, b) == (10, 200)
}

/// Whether a test may name `address` for a pod: in 10.200.0.0/17, not a network or
/// broadcast-looking .0/.255.
pub fn is_nameable_pod_address(address: Ipv4Addr) -> bool {
    let [_, _, c, d] = address.octets();
    in_test_space(address) && c < FIRST_BLOCK && d != 0 && d != 255
}

/// One claimed /24 of 10.200.128.0/17, held for the life of a topology.
#[derive(Debug)]
pub(crate) struct AddressBlock {
    octet: u8,
    // Held, never read: closing it releases the flock.
    _lock: File,
}

impl AddressBlock {
    /// Claims the lowest free block.
    pub(crate) fn claim() -> Result<Self> {
        let dir = Path::new(LOCK_DIR);
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        for octet in FIRST_BLOCK..=u8::MAX {
            if let Some(lock) = try_lock_block(octet)? {
                return Ok(Self { octet, _lock: lock });
            }
        }
        Err(Error::NoFreeBlock { blocks: BLOCKS })
    }

    /// The third octet: 10.200.<octet>.0/24.
    pub(crate) fn octet(&self) -> u8 {
        self.octet
    }

    /// Host side of slot `slot`.
    pub(crate) fn host_address(&self, slot: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.octet, slot_octet(slot, 1))
    }

    /// Default pod address of slot `slot`.
    pub(crate) fn pod_address(&self, slot: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.octet, slot_octet(slot, 2))
    }

    /// Host-side veth name of slot `slot`: `slt<octet>p<slot>`.
    pub(crate) fn link_name(&self, slot: usize) -> String {
        link_name(self.octet, slot)
    }
}

fn slot_octet(slot: usize, offset: usize) -> u8 {
    debug_assert!(slot < MAX_PODS, "slot {slot} out of range");
    u8::try_from(4 * slot + offset).unwrap_or(u8::MAX)
}

pub(crate) fn link_name(octet: u8, slot: usize) -> String {
    format!("{LINK_PREFIX}{octet}p{slot}")
}

/// The block octet of a harness link name (`slt<octet>p<slot>`), if it is one.
pub(crate) fn link_block(name: &str) -> Option<u8> {
    let (octet, slot) = name.strip_prefix(LINK_PREFIX)?.split_once('p')?;
    let octet: u8 = octet.parse().ok()?;
    let slot: usize = slot.parse().ok()?;
    (octet >= FIRST_BLOCK && slot < MAX_PODS && name == link_name(octet, slot)).then_some(octet)
}

/// Locks block `octet` if no live topology holds it.
pub(crate) fn try_lock_block(octet: u8) -> Result<Option<File>> {
    let path = lock_path(octet);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open lock file", &path, e))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::io("lock", path, e.into())),
    }
}

fn lock_path(octet: u8) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("block-{octet}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_pair_a_host_and_a_pod_address_without_overlap() {
        let block = AddressBlock {
            octet: 131,
            _lock: File::open("/dev/null").unwrap(),
        };
        assert_eq!(block.host_address(0), Ipv4Addr::new(10, 200, 131, 1));
        assert_eq!(block.pod_address(0), Ipv4Addr::new(10, 200, 131, 2));
        assert_eq!(block.host_address(1), Ipv4Addr::new(10, 200, 131, 5));
        assert_eq!(
            block.pod_address(MAX_PODS - 1),
            Ipv4Addr::new(10, 200, 131, 250)
        );
        assert_eq!(block.link_name(MAX_PODS - 1), "slt131p62");
        assert!(block.link_name(MAX_PODS - 1).len() <= 15);
    }

    #[test]
    fn link_names_parse_back_only_when_they_are_ours() {
        assert_eq!(link_block("slt131p0"), Some(131));
        assert_eq!(link_block("slt255p62"), Some(255));
        for foreign in [
            "slt127p0",
            "slt131p63",
            "slt131p01",
            "slt131",
            "sltx",
            "eth0",
            "slt0131p1",
        ] {
            assert_eq!(link_block(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn tests_may_name_only_the_lower_half_of_the_test_space() {
        assert!(is_nameable_pod_address(Ipv4Addr::new(10, 200, 1, 2)));
        assert!(!is_nameable_pod_address(Ipv4Addr::new(10, 200, 128, 2)));
        assert!(!is_nameable_pod_address(Ipv4Addr::new(10, 201, 1, 2)));
        assert!(!is_nameable_pod_address(Ipv4Addr::new(10, 200, 1, 0)));
        assert!(!is_nameable_pod_address(Ipv4Addr::new(192, 168, 1, 2)));
    }
}
