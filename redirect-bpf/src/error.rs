//! What can go wrong loading and driving the datapath, with what to check.

use std::io;
use std::path::PathBuf;

use sluice_identity::Protocol;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "refusing to attach to cgroup {path}: {reason}; pass a child cgroup that sluice \
         created (e.g. /sys/fs/cgroup/unified/sluice), never the root"
    )]
    CgroupRefused { path: PathBuf, reason: String },

    #[error("cannot open cgroup {path}: {source} (does it exist? is cgroup2 mounted?)")]
    CgroupOpen { path: PathBuf, source: io::Error },

    #[error(
        "another sluice datapath is already attached to cgroup {cgroup} (lock {lock} is \
         held): stop it first, two instances would redirect the same sockets"
    )]
    AlreadyAttached { cgroup: PathBuf, lock: PathBuf },

    #[error("cannot take the instance lock {lock}: {source} (is /run writable? are you root?)")]
    Lock { lock: PathBuf, source: io::Error },

    #[error("pin directory {dir}: {reason} (mount bpffs with `mount -t bpf bpf /sys/fs/bpf`)")]
    PinDir { dir: PathBuf, reason: String },

    #[error("loading the BPF object failed: {0} (are you root? does the kernel have BTF?)")]
    LoadObject(#[source] aya::EbpfError),

    #[error("BPF program {program} is missing from the object or has the wrong type")]
    MissingProgram { program: &'static str },

    #[error("the kernel refused BPF program {program}: {source}")]
    LoadProgram {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error("attaching BPF program {program} to cgroup {cgroup}: {source} (are you root?)")]
    Attach {
        program: &'static str,
        cgroup: PathBuf,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error(
        "program {program} was attached without a BPF link (kernel too old?); sluice needs links to keep programs attached"
    )]
    NoLink { program: &'static str },

    #[error("BPF map {map} is missing from the object")]
    MissingMap { map: &'static str },

    #[error("BPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },

    #[error("removing pinned map {path}: {source}")]
    Unpin { path: PathBuf, source: io::Error },

    #[error(
        "taking over the running datapath: {reason} (stop the running node and start this one instead)"
    )]
    Handover { reason: String },

    #[error("waiting for BPF events: {0}")]
    Events(#[source] io::Error),

    #[error("protocol {0} is not handled by the kernel datapath (TCP and UDP only)")]
    UnsupportedProtocol(Protocol),
}

impl Error {
    pub(crate) fn map(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |source| Self::Map { map, source }
    }
}
