//! What can go wrong while building or tearing down a topology, phrased so that the
//! person reading a failed CI log knows what to check.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// The harness's error. `Debug` prints the same sentence as `Display`, so that a test
/// returning `Result` or calling `unwrap()` shows what to check, not a struct dump.
#[derive(thiserror::Error)]
pub enum Error {
    /// Network namespaces, veth pairs and cgroups need root; tests fail rather than skip.
    #[error(
        "the sluice topology harness must run as root (effective uid is {euid}): it creates \
         network namespaces, veth pairs and cgroups; run the tests as root (CI does), e.g. \
         `sudo -E cargo test -p sluice-integration`"
    )]
    NotRoot {
        /// The effective uid the test runs with.
        euid: u32,
    },

    /// No cgroup2 hierarchy where one was expected.
    #[error(
        "no cgroup2 hierarchy found (looked at {looked_at}); mount one, e.g. \
         `mount -t cgroup2 none /sys/fs/cgroup/unified`"
    )]
    NoCgroup2 {
        /// The places that were checked.
        looked_at: String,
    },

    /// An external command (`ip`, `sh`, a client) could not be run or failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for copy and paste.
        command: String,
        /// Exit status, or why it did not run.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },

    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted ("create cgroup", "read", …).
        action: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A pod description that cannot be built.
    #[error("pod {pod}: {reason}")]
    InvalidPod {
        /// `namespace/name`.
        pod: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The pod address is already routed on this host.
    #[error(
        "pod {pod}: address {address} is already routed on this host: another pod uses it, \
         maybe from a test running in parallel; leave out `.address(..)` to get a unique one"
    )]
    AddressInUse {
        /// `namespace/name`.
        pod: String,
        /// The requested address.
        address: std::net::Ipv4Addr,
    },

    /// Every address block is held by a live topology.
    #[error(
        "no free address block: all {blocks} /24 blocks of 10.200.128.0/17 are held by running \
         topologies (see /run/sluice-test/); drop topologies you no longer need"
    )]
    NoFreeBlock {
        /// How many blocks exist.
        blocks: usize,
    },

    /// Something did not happen in time.
    #[error("{what} did not happen within {timeout:?}{detail}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        timeout: Duration,
        /// Extra context (a log tail), with its own leading separator.
        detail: String,
    },

    /// Teardown could not remove everything; the list names each leftover and why.
    #[error("teardown left resources behind: {}", .0.join("; "))]
    Teardown(Vec<String>),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn command(command: String, status: Option<ExitStatus>, stderr: &[u8]) -> Self {
        Self::Command {
            command,
            status: status.map_or_else(|| "did not run".to_owned(), |s| s.to_string()),
            stderr: String::from_utf8_lossy(stderr).trim().to_owned(),
        }
    }
}

/// The harness's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
