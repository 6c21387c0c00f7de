//! The kernel half of sluice: BPF programs attached to a cgroup that steer the
//! connects of enrolled workloads into the proxy (or deny or bypass them per the
//! kernel verdicts), send their DNS to the DNS proxy, and enforce L3/L4 ingress;
//! plus the loader and typed handles on the maps that are the contract with the proxy.
//!
//! This crate moves decisions; it never makes them: identities, verdicts and
//! generations come from the policy engine through [`Datapath`].
//!
//! - `src/bpf/maps.h` / [`maps`]: every key and value, defined once per side.
//! - `src/bpf/*.c`: the programs (`sluice_connect4/6`, `sluice_sendmsg4/6`,
//!   `sluice_recvmsg4/6`, `sluice_sockops`, `sluice_ingress`, `sluice_dns_egress`).
//! - [`Datapath`]: load, attach, fill maps, read counters and events.

pub mod cgroup;
mod datapath;
mod error;
mod events;
pub mod maps;
mod types;

pub use cgroup::AttachCgroup;
pub use datapath::{
    Datapath, DnsOrigDsts, HandoverFds, IpCache, LoadOptions, PROGRAMS, Policy, RedirectPorts,
    Verdicts, Workloads, object_digest, port_prefixes,
};
pub use error::Error;
pub use events::EventReader;
pub use types::{
    Action, CgroupId, Counters, EventVerdict, Hook, KernelDropReason, KernelEvent, OrigDst,
    PolicyEntry, VerdictKey, WorkloadEntry, WorkloadFlags,
};
