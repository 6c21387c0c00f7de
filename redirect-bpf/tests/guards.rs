//! Where the datapath refuses to attach.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use std::net::Ipv4Addr;

use sluice_bpf::{CgroupId, Datapath, Error, LoadOptions, WorkloadEntry, WorkloadFlags};
use sluice_identity::Identity;

#[test]
fn the_root_cgroup_is_refused() {
    let err = Datapath::load(&LoadOptions::new(CGROUP2_ROOT)).expect_err("root must be refused");
    assert!(matches!(err, Error::CgroupRefused { .. }), "{err}");
    assert!(err.to_string().contains("root"), "{err}");
}

#[test]
fn a_path_outside_cgroup2_is_refused() {
    for path in ["/tmp", "/sys/fs/cgroup/unified/..", "/sys/fs/cgroup/cpu"] {
        let err = Datapath::load(&LoadOptions::new(path)).expect_err("must be refused");
        assert!(matches!(err, Error::CgroupRefused { .. }), "{path}: {err}");
    }
}

#[test]
fn a_missing_cgroup_is_reported_by_path() {
    let err = Datapath::load(&LoadOptions::new(
        "/sys/fs/cgroup/unified/sluice-does-not-exist",
    ))
    .expect_err("must fail");
    assert!(matches!(err, Error::CgroupOpen { .. }), "{err}");
    assert!(err.to_string().contains("sluice-does-not-exist"), "{err}");
}

#[test]
fn a_second_instance_on_the_same_cgroup_is_refused_until_the_first_is_gone() {
    let cgroup = TestCgroup::new();
    let lock_dir = std::env::temp_dir().join(format!("sluice-locks-{}", std::process::id()));
    let options = LoadOptions::new(&cgroup.path).lock_dir(&lock_dir);
    let first = Datapath::load(&options).unwrap_or_else(|e| panic!("first load: {e}"));

    let err = Datapath::load(&options).expect_err("second instance must be refused");
    assert!(matches!(err, Error::AlreadyAttached { .. }), "{err}");

    drop(first);
    let again = Datapath::load(&options).unwrap_or_else(|e| panic!("load after drop: {e}"));
    drop(again);
    assert_eq!(
        std::fs::read_dir(&lock_dir).map(|d| d.count()).unwrap_or(0),
        0,
        "lock files are removed"
    );
    let _ = std::fs::remove_dir(&lock_dir);
}

/// A workload enrolled from a cgroup outside the datapath's own: the programs are
/// attached there too, and its connects are redirected like any other.
#[test]
fn an_enrolled_cgroup_outside_the_main_one_is_steered_too() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let mut outside = TestCgroup::new();
    let workload = outside.child("unit");
    let id = node.datapath.attach_cgroup(&outside.path).expect("attach");
    assert_eq!(id, CgroupId::of_path(&outside.path).expect("id"));
    let workload_id = CgroupId::of_path(&workload).expect("id");
    node.datapath
        .workloads()
        .insert(
            workload_id,
            WorkloadEntry {
                identity: Identity(3300),
                flags: WorkloadFlags::LOOPBACK,
                proxy_v4: Some(Ipv4Addr::LOCALHOST),
                proxy_v6: None,
                proxy_source_v4: None,
                proxy_source_v6: None,
            },
        )
        .expect("enroll");
    let server = answering_listener("direct");
    let client = spawn_python_in(&workload, &tcp_client_script(server));
    let (stream, peer) = accept_one(&node.proxy);
    let orig = node
        .datapath
        .orig_dst_by_client(peer)
        .expect("map")
        .expect("an original destination");
    answer(stream, "proxied");
    assert_eq!(stdout(&wait_with_timeout(client)), "proxied");
    assert_eq!(orig.addr, server);
    assert_eq!(orig.src_identity, Identity(3300));
    assert_eq!(orig.cgroup, workload_id);

    // Enrolling it twice, or a cgroup inside the main one, is refused.
    let again = node.datapath.attach_cgroup(&outside.path).unwrap_err();
    assert!(again.to_string().contains("enrolled already"), "{again}");
    let inside = node.datapath.attach_cgroup(&node.client).unwrap_err();
    assert!(inside.to_string().contains("inside"), "{inside}");
    // Dropping the datapath (end of `node`) detaches from both; `outside` goes after.
    drop(node);
}
