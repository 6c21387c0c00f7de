//! Handing a running datapath to a successor: the programs keep steering, the maps keep
//! their entries, the instance lock is never free, and only the owner cleans up.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use common::*;
use sluice_bpf::{
    CgroupId, Datapath, Error, LoadOptions, PROGRAMS, RedirectPorts, WorkloadEntry, WorkloadFlags,
};

/// A bpffs directory and a lock directory of this test, removed on drop.
struct Dirs {
    links: PathBuf,
    locks: PathBuf,
}

impl Dirs {
    /// Per test (tests run in parallel) and per run.
    fn new(test: &str) -> Self {
        let pid = std::process::id();
        let links = PathBuf::from(format!("/sys/fs/bpf/sluice-test-{test}-{pid}"));
        let locks = std::env::temp_dir().join(format!("sluice-{test}-locks-{pid}"));
        Self { links, locks }
    }

    fn options(&self, cgroup: &Path) -> LoadOptions {
        LoadOptions::new(cgroup)
            .lock_dir(&self.locks)
            .pin_links_under(&self.links)
    }

    fn pins(&self) -> usize {
        std::fs::read_dir(&self.links).map_or(0, |d| d.count())
    }

    fn lock_files(&self) -> usize {
        std::fs::read_dir(&self.locks).map_or(0, |d| d.count())
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        for program in PROGRAMS {
            let _ = std::fs::remove_file(self.links.join(program));
        }
        if let Ok(subdirs) = std::fs::read_dir(&self.links) {
            for sub in subdirs.flatten() {
                for program in PROGRAMS {
                    let _ = std::fs::remove_file(sub.path().join(program));
                }
                let _ = std::fs::remove_dir(sub.path());
            }
        }
        let _ = std::fs::remove_dir(&self.links);
        let _ = std::fs::remove_dir_all(&self.locks);
    }
}

fn client_entry() -> WorkloadEntry {
    WorkloadEntry {
        identity: CLIENT_IDENTITY,
        flags: WorkloadFlags::LOOPBACK,
        proxy_v4: Some(Ipv4Addr::LOCALHOST),
        proxy_v6: None,
        proxy_source_v4: Some(Ipv4Addr::LOCALHOST),
        proxy_source_v6: None,
    }
}

#[test]
fn a_successor_adopts_the_running_datapath_and_only_the_owner_cleans_up() {
    let mut cgroup = TestCgroup::new();
    let client = cgroup.child("client");
    let client_id = CgroupId::of_path(&client).unwrap();
    let dirs = Dirs::new("adopt");
    let options = dirs.options(&cgroup.path);

    let mut first = Datapath::load(&options).unwrap_or_else(|e| panic!("load: {e}"));
    first.workloads().insert(client_id, client_entry()).unwrap();
    let proxy = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    first
        .set_redirect_ports(RedirectPorts {
            proxy: proxy.local_addr().unwrap().port(),
            dns_proxy: 0,
        })
        .unwrap();
    first.set_generation(7).unwrap();

    // The predecessor hands over and lets go; it exits (drops) while the successor runs.
    let fds = first.handover_fds().unwrap();
    first.release();
    let mut second = Datapath::adopt(&options, fds).unwrap_or_else(|e| panic!("adopt: {e}"));
    drop(first);
    assert_eq!(dirs.pins(), PROGRAMS.len(), "the links stay pinned");
    assert_eq!(dirs.lock_files(), 1, "the lock file stays");

    // Same maps: what the predecessor wrote is there, and the programs still steer.
    assert_eq!(second.generation().unwrap(), 7);
    assert_eq!(
        second.workloads().get(client_id).unwrap(),
        Some(client_entry())
    );
    let server = answering_listener("direct");
    let child = spawn_python_in(&client, &tcp_client_script(server));
    let (stream, peer) = accept_one(&proxy);
    let orig = second
        .orig_dst_by_client(peer)
        .unwrap()
        .expect("an original destination, read through the adopted map");
    assert_eq!(orig.addr, server);
    answer(stream, "proxied");
    assert_eq!(stdout(&wait_with_timeout(child)), "proxied");

    // The lock was never free: a third instance is refused.
    let err = Datapath::load(&options).expect_err("a third instance must be refused");
    assert!(matches!(err, Error::AlreadyAttached { .. }), "{err}");

    // Not owned yet: a successor that gives up leaves everything to its predecessor.
    let fds = second.handover_fds().unwrap();
    let third = Datapath::adopt(&options, fds).unwrap();
    drop(third);
    assert_eq!(
        dirs.pins(),
        PROGRAMS.len(),
        "an unowned adopter detaches nothing"
    );

    // Owned: dropping it detaches and removes pins and lock files; a fresh load works.
    second.own();
    drop(second);
    assert_eq!(dirs.pins(), 0, "pins removed by the owner");
    assert_eq!(dirs.lock_files(), 0, "lock file removed by the owner");
    let again = Datapath::load(&options).unwrap_or_else(|e| panic!("load after: {e}"));
    drop(again);
}

#[test]
fn a_lock_descriptor_that_does_not_hold_the_lock_is_refused() {
    let cgroup = TestCgroup::new();
    let dirs = Dirs::new("bad-lock");
    let options = dirs.options(&cgroup.path);
    let first = Datapath::load(&options).unwrap_or_else(|e| panic!("load: {e}"));
    let mut fds = first.handover_fds().unwrap();
    // A descriptor of the lock file opened anew is another open file: not the holder.
    let lock_file = std::fs::read_dir(&dirs.locks)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fds.locks[0].1 = std::fs::File::open(lock_file).unwrap().into();
    let err = Datapath::adopt(&options, fds).expect_err("must be refused");
    assert!(matches!(err, Error::Handover { .. }), "{err}");
    drop(first);
    assert_eq!(dirs.pins(), 0);
}

#[test]
fn an_enrolled_cgroup_is_claimed_by_the_successor_and_no_other_is_attached() {
    let cgroup = TestCgroup::new();
    let unit = TestCgroup::new();
    let other = TestCgroup::new();
    let dirs = Dirs::new("enrolled");
    let options = dirs.options(&cgroup.path);
    let mut first = Datapath::load(&options).unwrap_or_else(|e| panic!("load: {e}"));
    let id = first.attach_cgroup(&unit.path).unwrap();
    let unit_pins = dirs.links.join(format!("cgroup-{}", id.0));
    assert_eq!(
        std::fs::read_dir(&unit_pins).unwrap().count(),
        PROGRAMS.len()
    );

    let fds = first.handover_fds().unwrap();
    assert_eq!(fds.locks.len(), 2, "the main cgroup's lock and the unit's");
    first.release();
    let mut second = Datapath::adopt(&options, fds).unwrap_or_else(|e| panic!("adopt: {e}"));
    drop(first);
    assert_eq!(
        second.unclaimed_cgroups(),
        vec![unit.path.canonicalize().unwrap()]
    );
    // The successor claims what its predecessor enrolled; it cannot attach anything new.
    assert_eq!(second.attach_cgroup(&unit.path).unwrap(), id);
    assert!(second.unclaimed_cgroups().is_empty());
    let err = second.attach_cgroup(&other.path).unwrap_err();
    assert!(matches!(err, Error::CgroupRefused { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(&unit_pins).unwrap().count(),
        PROGRAMS.len()
    );

    second.own();
    drop(second);
    assert!(!unit_pins.exists(), "the unit's pins removed by the owner");
    assert_eq!(dirs.lock_files(), 0);
}
