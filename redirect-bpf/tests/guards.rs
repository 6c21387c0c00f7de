//! Where the datapath refuses to attach.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use sluice_bpf::{Datapath, Error, LoadOptions};

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
