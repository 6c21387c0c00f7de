//! [`Topology`]: owns every namespace, link, rule and cgroup of one test run, and
//! removes them when dropped — also when the test panics.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::addressing::{AddressBlock, MAX_PODS};
use crate::cgroup;
use crate::error::{Error, Result};
use crate::host::HostCgroup;
use crate::naming::{PodId, RunId, check_label};
use crate::net;
use crate::pod::{Pod, PodBuilder, PodParts, PodPlan};
use crate::process::{LogDir, Runner};
use crate::stale::sweep_block;

/// One test's world: pods (netns + veth + cgroup) and host cgroups, under a parent cgroup
/// `sluice-test-<run>` and a /24 of its own.
///
/// ```no_run
/// # fn main() -> sluice_integration::Result<()> {
/// use sluice_integration::Topology;
///
/// let topology = Topology::new("frontend_reaches_backend")?;
/// let frontend = topology.pod("frontend").namespace("production").build()?;
/// let backend = topology.pod("backend").namespace("production").build()?;
/// let _server = backend.serve_http(8080)?;
/// assert!(frontend.curl(&backend.http_url(8080, "/"))?.is_ok());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Topology {
    run: RunId,
    cgroup_root: PathBuf,
    parent_cgroup: PathBuf,
    logs: Arc<LogDir>,
    state: Mutex<State>,
    // Declared last: the lock is released only after `Drop::drop` tore everything down.
    block: AddressBlock,
}

#[derive(Debug, Default)]
struct State {
    /// In creation order; torn down in reverse.
    resources: Vec<Resource>,
    pods: Vec<PodId>,
    host_cgroups: Vec<String>,
}

/// Something the topology created and must remove.
#[derive(Debug)]
enum Resource {
    ScratchDir(PathBuf),
    Cgroup(PathBuf),
    Netns(String),
    Link(String),
    ForwardingGuard(String),
}

impl Topology {
    /// A new, empty topology for `test_name` (pass the test's name: it shows up in
    /// `ip netns` and the cgroup tree). Fails with [`Error::NotRoot`] when not root.
    pub fn new(test_name: &str) -> Result<Self> {
        crate::require_root()?;
        let cgroup_root = cgroup::cgroup2_root()?;
        let run = RunId::new(test_name);
        let block = AddressBlock::claim()?;
        // Whoever held this block before us is gone; its links and rules may not be.
        sweep_block(block.octet())?;
        let scratch = std::env::temp_dir().join(run.dir_name());
        let topology = Self {
            parent_cgroup: cgroup_root.join(run.dir_name()),
            cgroup_root,
            logs: Arc::new(LogDir::new(scratch.clone())),
            run,
            state: Mutex::new(State::default()),
            block,
        };
        // From here on, Drop removes whatever was registered.
        let mut state = topology.state();
        std::fs::create_dir(&scratch).map_err(|e| Error::io("create", &scratch, e))?;
        state.resources.push(Resource::ScratchDir(scratch));
        cgroup::create(&topology.parent_cgroup)?;
        state
            .resources
            .push(Resource::Cgroup(topology.parent_cgroup.clone()));
        drop(state);
        Ok(topology)
    }

    /// Starts describing a pod called `name` (namespace `default` unless set).
    pub fn pod(&self, name: &str) -> PodBuilder<'_> {
        PodBuilder::new(self, name)
    }

    /// A cgroup under this topology's parent, in the root netns, for processes that must
    /// stay outside every pod (and outside whatever the node enrolls).
    pub fn host_cgroup(&self, name: &str) -> Result<HostCgroup> {
        let invalid = |reason: String| Error::InvalidPod {
            pod: format!("host/{name}"),
            reason,
        };
        check_label("host cgroup name", name).map_err(invalid)?;
        let mut state = self.state();
        if state.host_cgroups.iter().any(|n| n == name) {
            return Err(invalid(
                "a host cgroup of that name already exists in this topology".to_owned(),
            ));
        }
        let path = self.parent_cgroup.join(format!("host.{name}"));
        cgroup::create(&path)?;
        state.resources.push(Resource::Cgroup(path.clone()));
        state.host_cgroups.push(name.to_owned());
        let runner = Runner::new(format!("host/{name}"), &path, None, Arc::clone(&self.logs));
        HostCgroup::new(name, path, &self.cgroup_root, runner)
    }

    /// `<test>.<pid>.<counter>`.
    pub fn run_id(&self) -> &RunId {
        &self.run
    }

    /// The parent cgroup of everything in this topology (`…/sluice-test-<run>`).
    pub fn cgroup_path(&self) -> &Path {
        &self.parent_cgroup
    }

    /// Where the logs of spawned processes go (removed with the topology).
    pub fn log_dir(&self) -> &Path {
        self.logs.dir()
    }

    /// The cgroup2 mount (e.g. `/sys/fs/cgroup/unified`).
    pub fn cgroup_root(&self) -> &Path {
        &self.cgroup_root
    }

    /// Removes everything now and reports what could not be removed; dropping does the
    /// same but can only print the failures.
    pub fn close(mut self) -> Result<()> {
        let failures = self.teardown();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Teardown(failures))
        }
    }

    /// Creates the pod `plan` describes; every step is registered before the next, so a
    /// failure half-way leaves nothing behind once the topology drops.
    pub(crate) fn create_pod(&self, plan: PodPlan) -> Result<Pod> {
        let mut state = self.state();
        if state.pods.contains(&plan.id) {
            return Err(Error::InvalidPod {
                pod: plan.id.to_string(),
                reason: "a pod of that name already exists in this topology".to_owned(),
            });
        }
        let slot = state.pods.len();
        if slot >= MAX_PODS {
            return Err(Error::InvalidPod {
                pod: plan.id.to_string(),
                reason: format!("a topology holds at most {MAX_PODS} pods"),
            });
        }
        state.pods.push(plan.id.clone());

        let address = plan.address.unwrap_or_else(|| self.block.pod_address(slot));
        let host_address = self.block.host_address(slot);
        let link = self.block.link_name(slot);
        let netns = self.run.netns_name(&plan.id);
        let cgroup_path = self
            .parent_cgroup
            .join(format!("pod.{}.{}", plan.id.namespace, plan.id.name));

        net::add_netns(&netns)?;
        state.resources.push(Resource::Netns(netns.clone()));
        cgroup::create(&cgroup_path)?;
        state.resources.push(Resource::Cgroup(cgroup_path.clone()));
        net::add_veth(&link, &netns)?;
        state.resources.push(Resource::Link(link.clone()));
        state
            .resources
            .push(Resource::ForwardingGuard(link.clone()));
        net::add_forwarding_guard(&link)?;
        net::configure_host_side(&link, host_address)?;
        if !net::route_pod(&link, address)? {
            return Err(Error::AddressInUse {
                pod: plan.id.to_string(),
                address,
            });
        }
        net::configure_pod_side(&netns, address, host_address)?;
        drop(state);

        let runner = Runner::new(
            plan.id.to_string(),
            &cgroup_path,
            Some(netns.clone()),
            Arc::clone(&self.logs),
        );
        Ok(Pod::new(PodParts {
            id: plan.id,
            address,
            host_address,
            host_link: link,
            netns,
            cgroup_relative: cgroup::relative(&self.cgroup_root, &cgroup_path),
            cgroup_id: cgroup::id(&cgroup_path)?,
            cgroup_path,
            runner,
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not stop the cleanup.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn teardown(&mut self) -> Vec<String> {
        let resources = std::mem::take(&mut self.state().resources);
        resources
            .into_iter()
            .rev()
            .filter_map(|resource| {
                self.remove(&resource)
                    .err()
                    .map(|e| format!("{resource:?}: {e}"))
            })
            .collect()
    }

    fn remove(&self, resource: &Resource) -> Result<()> {
        match resource {
            Resource::ScratchDir(dir) => match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io("remove", dir, e))
                }
                _ => Ok(()),
            },
            Resource::Cgroup(path) => cgroup::kill_and_remove(&self.cgroup_root, path),
            Resource::Netns(name) => net::delete_netns(name),
            Resource::Link(name) => net::delete_link(name),
            Resource::ForwardingGuard(link) => net::delete_forwarding_guard(link),
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for failure in self.teardown() {
            eprintln!("sluice-integration: teardown of {}: {failure}", self.run);
        }
    }
}
