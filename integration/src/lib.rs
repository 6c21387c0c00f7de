//! Topology harness for sluice's end-to-end tests: pods made of network namespaces,
//! veth pairs and cgroups, and real clients and servers to run in them.
//!
//! ```no_run
//! # fn main() -> sluice_integration::Result<()> {
//! use sluice_integration::Topology;
//!
//! let topology = Topology::new("frontend_reaches_backend")?;
//! let frontend = topology.pod("frontend").namespace("production").address("10.200.1.2").build()?;
//! let backend = topology.pod("backend").namespace("production").address("10.200.1.3").build()?;
//! let _server = backend.serve_http(8080)?;
//! let reply = frontend.curl("http://10.200.1.3:8080/")?;
//! assert_eq!(reply.status, Some(200));
//! // A node enrolls `frontend.cgroup_id()` and redirects to `frontend.host_address()`.
//! # Ok(()) }
//! ```
//!
//! # What a pod is
//!
//! - a netns `sluice-test-<test>.<pid>.<n>.<namespace>.<name>` with `lo` up and `eth0`,
//!   the peer of a host-side veth `slt<B>p<i>` in the root netns;
//! - a cgroup `<cgroup2>/sluice-test-<test>.<pid>.<n>/pod.<namespace>.<name>`; its id
//!   (the directory's inode) is what `bpf_get_current_cgroup_id()` returns there;
//! - commands run with the cgroup joined first, then the netns entered (KERNEL.md).
//!
//! # Addressing
//!
//! All /32s with device routes, so pods of any address share one host:
//!
//! | what | address |
//! |---|---|
//! | a topology's block | 10.200.B.0/24, B in 128..=255, one per live topology (flock in `/run/sluice-test/`) |
//! | host side of pod slot i | 10.200.B.(4i+1) — the pod's gateway and a node's redirect target |
//! | pod of slot i | 10.200.B.(4i+2), or what `.address(..)` names in 10.200.0.0/17 |
//!
//! The host forwards between pods by turning on `forwarding` for its pod-facing veths
//! only (IPv4 checks the input device), so `net.ipv4.ip_forward` stays as it was. Two
//! policy rules per veth keep forwarded pod traffic inside 10.200.0.0/16; anything else
//! is answered "unreachable" (traffic to the host's own addresses is delivered locally).
//!
//! # Cleanup
//!
//! [`Topology`] removes every netns, link, rule, cgroup and log it created when dropped,
//! panics included: processes are killed through `cgroup.kill` (or SIGKILL per pid) first.
//! [`cleanup_stale`] removes leftovers of runs that died without unwinding (SIGKILL,
//! abort). The harness refuses to kill or remove any cgroup outside `sluice-test-*`.
//!
//! Everything needs root. Without it, [`Topology::new`] fails with [`Error::NotRoot`]:
//! tests fail loudly instead of skipping. The tools it runs: `ip` (iproute2), `sh`,
//! `python3`, `curl`.

mod addressing;
mod cgroup;
mod clients;
mod error;
mod host;
mod naming;
mod net;
mod pod;
mod process;
mod stale;
mod topology;

pub use addressing::{LOCK_DIR, MAX_PODS, in_test_space};
pub use cgroup::cgroup2_root;
pub use clients::{CurlOutput, Exchange};
pub use error::{Error, Result};
pub use host::HostCgroup;
pub use naming::{LINK_PREFIX, PREFIX, PodId, RunId};
pub use net::{NETNS_DIR, POD_INTERFACE, link_exists, netns_path};
pub use pod::{Pod, PodBuilder};
pub use process::{EXEC_TIMEOUT, LISTEN_TIMEOUT, Process};
pub use stale::cleanup_stale;
pub use topology::Topology;

/// Fails with [`Error::NotRoot`] unless the effective uid is 0.
pub fn require_root() -> Result<()> {
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot {
            euid: euid.as_raw(),
        })
    }
}
