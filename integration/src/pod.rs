//! Pods: a network namespace with a veth to the host, plus a cgroup of their own.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use crate::addressing::is_nameable_pod_address;
use crate::clients::{CurlOutput, Exchange};
use crate::error::{Error, Result};
use crate::naming::PodId;
use crate::net;
use crate::process::{EXEC_TIMEOUT, Process, Runner};
use crate::topology::Topology;

/// Describes a pod; [`PodBuilder::build`] creates it.
#[derive(Debug)]
#[must_use = "a pod exists only once `.build()` is called"]
pub struct PodBuilder<'t> {
    topology: &'t Topology,
    name: String,
    namespace: String,
    address: Option<String>,
}

/// A validated pod description, handed to the topology.
pub(crate) struct PodPlan {
    pub(crate) id: PodId,
    pub(crate) address: Option<Ipv4Addr>,
}

impl<'t> PodBuilder<'t> {
    pub(crate) fn new(topology: &'t Topology, name: &str) -> Self {
        Self {
            topology,
            name: name.to_owned(),
            namespace: "default".to_owned(),
            address: None,
        }
    }

    /// The Kubernetes-style namespace (default `default`).
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// A fixed pod address in 10.200.0.0/17, for scenarios that read better with one
    /// (`10.200.1.2`). Leave it out in tests that may run in parallel with others using
    /// the same address: the default is unique per topology.
    pub fn address(mut self, address: impl std::fmt::Display) -> Self {
        self.address = Some(address.to_string());
        self
    }

    /// Creates the netns, veth pair, routes and cgroup.
    pub fn build(self) -> Result<Pod> {
        let pod = format!("{}/{}", self.namespace, self.name);
        let id = PodId::new(&self.namespace, &self.name).map_err(|reason| Error::InvalidPod {
            pod: pod.clone(),
            reason,
        })?;
        let address = self
            .address
            .map(|text| {
                text.parse::<Ipv4Addr>()
                    .ok()
                    .filter(|a| is_nameable_pod_address(*a))
                    .ok_or_else(|| Error::InvalidPod {
                        pod,
                        reason: format!(
                            "address {text:?} is not a host address in 10.200.0.0/17 (the test \
                             space 10.200.0.0/16 minus the harness's own 10.200.128.0/17)"
                        ),
                    })
            })
            .transpose()?;
        self.topology.create_pod(PodPlan { id, address })
    }
}

/// Everything a pod is made of; the topology fills it in.
pub(crate) struct PodParts {
    pub(crate) id: PodId,
    pub(crate) address: Ipv4Addr,
    pub(crate) host_address: Ipv4Addr,
    pub(crate) host_link: String,
    pub(crate) netns: String,
    pub(crate) cgroup_path: PathBuf,
    pub(crate) cgroup_relative: String,
    pub(crate) cgroup_id: u64,
    pub(crate) runner: Runner,
}

/// A pod: its own netns (`eth0` with [`Pod::address`], default route via
/// [`Pod::host_address`]) and its own cgroup. A cheap handle: clone it freely. The
/// [`Topology`] owns what it stands for and removes it on drop; after that, commands fail.
#[derive(Debug, Clone)]
pub struct Pod(Arc<PodParts>);

impl std::fmt::Debug for PodParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("id", &self.id.to_string())
            .field("address", &self.address)
            .field("host_address", &self.host_address)
            .field("host_link", &self.host_link)
            .field("netns", &self.netns)
            .field("cgroup", &self.cgroup_relative)
            .finish_non_exhaustive()
    }
}

impl Pod {
    pub(crate) fn new(parts: PodParts) -> Self {
        Self(Arc::new(parts))
    }

    /// `namespace/name`.
    pub fn id(&self) -> &PodId {
        &self.0.id
    }

    /// The pod name.
    pub fn name(&self) -> &str {
        &self.0.id.name
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        &self.0.id.namespace
    }

    /// The pod's address (on its `eth0`).
    pub fn address(&self) -> Ipv4Addr {
        self.0.address
    }

    /// The host side of the pod's veth: the pod's gateway, and where a node redirects
    /// the pod's connections to (127.0.0.1 would be the pod's own loopback).
    pub fn host_address(&self) -> Ipv4Addr {
        self.0.host_address
    }

    /// The host-side veth (`slt<octet>p<slot>`), in the root netns.
    pub fn host_link(&self) -> &str {
        &self.0.host_link
    }

    /// `sluice-test-<run>.<namespace>.<name>`.
    pub fn netns_name(&self) -> &str {
        &self.0.netns
    }

    /// `/run/netns/<netns name>`.
    pub fn netns_path(&self) -> PathBuf {
        net::netns_path(&self.0.netns)
    }

    /// The netns inode, as `/proc/<pid>/ns/net` shows it (`net:[<inode>]`).
    pub fn netns_inode(&self) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let path = self.netns_path();
        std::fs::metadata(&path)
            .map(|m| m.ino())
            .map_err(|e| Error::io("stat", path, e))
    }

    /// The cgroup directory.
    pub fn cgroup_path(&self) -> &Path {
        &self.0.cgroup_path
    }

    /// The cgroup as `/proc/<pid>/cgroup` shows it after `0::`.
    pub fn cgroup_relative(&self) -> &str {
        &self.0.cgroup_relative
    }

    /// The cgroup id (inode of the cgroup directory) = `bpf_get_current_cgroup_id()` of
    /// the pod's processes: the key a node enrolls.
    pub fn cgroup_id(&self) -> u64 {
        self.0.cgroup_id
    }

    /// `http://<address>:<port><path>`.
    pub fn http_url(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.0.address)
    }

    /// `address:port`.
    pub fn socket(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.0.address, port)
    }

    /// A `Command` that runs `program` in the pod (cgroup first, then netns).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.0.runner.command(program)
    }

    /// Runs `argv` in the pod to completion (killed after [`EXEC_TIMEOUT`]).
    pub fn exec<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.0.runner.exec(argv, EXEC_TIMEOUT)
    }

    /// Starts `argv` in the pod in the background (output in the topology's scratch dir).
    pub fn spawn<I, S>(&self, argv: I) -> Result<Process>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.0.runner.spawn(argv)
    }

    /// An HTTP server on `address:port` that answers `<ns>/<name> <METHOD> <path> from
    /// <client ip>` (status 200, or `<code>` for `/status/<code>`); returns once it listens.
    pub fn serve_http(&self, port: u16) -> Result<Process> {
        self.0
            .runner
            .serve_http(self.0.address, port, &self.0.id.to_string())
    }

    /// A TCP echo server on `address:port`; returns once it listens.
    pub fn tcp_listen_echo(&self, port: u16) -> Result<Process> {
        self.0.runner.tcp_listen_echo(self.0.address, port)
    }

    /// `curl <url>` from the pod.
    pub fn curl(&self, url: &str) -> Result<CurlOutput> {
        self.0.runner.curl(&[], url)
    }

    /// `curl <args> <url>` from the pod, e.g. `&["-X", "POST"]`.
    pub fn curl_with(&self, args: &[&str], url: &str) -> Result<CurlOutput> {
        self.0.runner.curl(args, url)
    }

    /// Connects to `to` from the pod, sends `payload`, half-closes, returns the reply.
    pub fn tcp_exchange(&self, to: SocketAddrV4, payload: &[u8]) -> Result<Exchange> {
        self.0.runner.tcp_exchange(to, payload)
    }
}
