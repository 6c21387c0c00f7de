//! Host cgroups: processes in the root netns, in a cgroup of the topology that no pod
//! uses — for "a process outside enrolled cgroups is untouched" checks.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cgroup;
use crate::clients::{CurlOutput, Exchange};
use crate::error::Result;
use crate::process::{EXEC_TIMEOUT, Process, Runner};

/// A cgroup `…/sluice-test-<run>/host.<name>` whose processes run in the root netns.
#[derive(Debug, Clone)]
pub struct HostCgroup {
    name: String,
    path: PathBuf,
    relative: String,
    id: u64,
    runner: Runner,
}

impl HostCgroup {
    pub(crate) fn new(name: &str, path: PathBuf, root: &Path, runner: Runner) -> Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            relative: cgroup::relative(root, &path),
            id: cgroup::id(&path)?,
            path,
            runner,
        })
    }

    /// The name given to [`crate::Topology::host_cgroup`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cgroup directory.
    pub fn cgroup_path(&self) -> &Path {
        &self.path
    }

    /// The cgroup as `/proc/<pid>/cgroup` shows it after `0::`.
    pub fn cgroup_relative(&self) -> &str {
        &self.relative
    }

    /// The cgroup id (inode of the directory).
    pub fn cgroup_id(&self) -> u64 {
        self.id
    }

    /// A `Command` that runs `program` in this cgroup.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.runner.command(program)
    }

    /// Runs `argv` in this cgroup to completion (killed after [`EXEC_TIMEOUT`]).
    pub fn exec<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.runner.exec(argv, EXEC_TIMEOUT)
    }

    /// Starts `argv` in this cgroup in the background.
    pub fn spawn<I, S>(&self, argv: I) -> Result<Process>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.runner.spawn(argv)
    }

    /// The HTTP server of [`crate::Pod::serve_http`], bound to `bind` (e.g. a pod's
    /// host address, for `host` entity tests), answering as `host/<name>`.
    pub fn serve_http(&self, bind: Ipv4Addr, port: u16) -> Result<Process> {
        self.runner
            .serve_http(bind, port, &format!("host/{}", self.name))
    }

    /// `curl <url>` from this cgroup.
    pub fn curl(&self, url: &str) -> Result<CurlOutput> {
        self.runner.curl(&[], url)
    }

    /// Connects to `to`, sends `payload`, half-closes, returns the reply.
    pub fn tcp_exchange(&self, to: SocketAddrV4, payload: &[u8]) -> Result<Exchange> {
        self.runner.tcp_exchange(to, payload)
    }
}
