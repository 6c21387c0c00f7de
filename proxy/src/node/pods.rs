//! Pods for workloads the node runs itself (`spec.run`): a network namespace, a veth
//! pair to the host, a cgroup, and the command.
//!
//! Addressing: every pod's host-side veth carries the same link-local address,
//! [`GATEWAY`], as Calico does. The pod routes everything via it, and the host routes
//! each pod address to its veth. One address serves every pod, so the node proxy binds
//! it once and BPF redirects every pod's connections there.
//!
//! Everything a pod creates is removed when it is dropped: the process group is killed,
//! the cgroup emptied and removed, the netns and veth deleted. A live restart hands the
//! pods to a successor instead: the predecessor [`Pod::release`]s them (dropping then
//! leaves them running), and the successor [`Pod::adopt`]s them, released until it
//! [`Pod::own`]s them once the predecessor has let go.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

/// The host side of every pod's veth (and where the node proxy listens for pods).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Also on every pod's host-side veth: the source of the proxy's own connections to
/// pods. The kernel lets those in (the proxy decided them) and polices everything else
/// the host sends, which comes from [`GATEWAY`], as `host`.
pub const PROXY_SOURCE: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 2);

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("running `{command}`: {source} (is iproute2 installed? run scripts/deps)")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pod {pod}: only IPv4 pod addresses are supported for pods sluice runs, got {address}")]
    Unsupported { pod: String, address: IpAddr },
    #[error("pod {pod} has no address; a pod sluice runs needs spec.addresses")]
    NoAddress { pod: String },
}

/// Runs `ip` with arguments, turning a failure into an error that shows its stderr.
pub fn ip(args: &[&str]) -> Result<(), PodError> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), PodError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PodError::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PodError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// A cgroup v2 directory sluice created, removed on drop (after killing what is in it)
/// unless released to another process.
#[derive(Debug)]
pub struct OwnedCgroup {
    path: PathBuf,
    released: bool,
}

impl OwnedCgroup {
    /// Creates `path` (and missing parents are an error: the parent must be ours).
    pub fn create(path: PathBuf) -> Result<Self, PodError> {
        match fs::create_dir(&path) {
            Ok(()) => {}
            // Left over by a node that was killed: take it over, emptied.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                kill_cgroup(&path);
            }
            Err(source) => return Err(PodError::Io { path, source }),
        }
        Ok(Self {
            path,
            released: false,
        })
    }

    /// The cgroup a running predecessor created, left as it is; released.
    pub fn adopt(path: PathBuf) -> Result<Self, PodError> {
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => Ok(Self {
                path,
                released: true,
            }),
            Ok(_) => Err(PodError::Io {
                path,
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a cgroup directory"),
            }),
            Err(source) => Err(PodError::Io { path, source }),
        }
    }

    /// Dropping leaves the cgroup and its processes alone (another process owns them).
    pub fn release(&mut self) {
        self.released = true;
    }

    /// Dropping kills what is in the cgroup and removes it again.
    pub fn own(&mut self) {
        self.released = false;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cgroup id BPF sees (`bpf_get_current_cgroup_id`): the directory's inode.
    pub fn id(&self) -> Result<u64, PodError> {
        cgroup_id(&self.path)
    }
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        kill_cgroup(&self.path);
        remove_cgroup_dir(&self.path);
    }
}

pub fn cgroup_id(path: &Path) -> Result<u64, PodError> {
    fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|source| PodError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Kills every process in a cgroup tree.
fn kill_cgroup(path: &Path) {
    // cgroup.kill (Linux 5.14+) kills the whole subtree atomically.
    if fs::write(path.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    if let Ok(procs) = fs::read_to_string(path.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Removes a cgroup directory and its children, waiting briefly for killed processes
/// to leave (rmdir fails while a cgroup is populated).
fn remove_cgroup_dir(path: &Path) {
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_dir(&e.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) if Instant::now() > deadline => {
                warn!(cgroup = %path.display(), error = %e, "could not remove cgroup");
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Names of a pod's kernel objects, derived from its namespace/name so that
/// `sluice exec` finds them and a restarted node cleans them up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNames {
    pub netns: String,
    pub host_veth: String,
    pub pod_veth: String,
}

impl PodNames {
    pub fn of(namespace: &str, name: &str) -> Self {
        // Interface names are at most 15 bytes: a short hash keeps them unique.
        let h = fnv(&format!("{namespace}/{name}"));
        Self {
            netns: format!("sluice-{namespace}-{name}"),
            host_veth: format!("slh{:08x}", h as u32),
            pod_veth: format!("slp{:08x}", h as u32),
        }
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A pod the node made.
#[derive(Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub address: Ipv4Addr,
    pub names: PodNames,
    pub cgroup: OwnedCgroup,
    child: Option<Child>,
    /// Another process owns the pod: dropping leaves it running.
    released: bool,
}

impl Pod {
    /// Creates the netns, veth and cgroup of a pod under `cgroup_parent` (a cgroup
    /// sluice owns). Nothing runs in it until [`Pod::start`]: the node enrolls the
    /// cgroup in the kernel maps first, so no connection escapes policy.
    pub fn create(
        namespace: &str,
        name: &str,
        address: IpAddr,
        cgroup_parent: &Path,
    ) -> Result<Self, PodError> {
        let pod = format!("{namespace}/{name}");
        let IpAddr::V4(address) = address else {
            return Err(PodError::Unsupported { pod, address });
        };
        let names = PodNames::of(namespace, name);
        remove_stale(&names);
        let ns_dir = cgroup_parent.join(namespace);
        if let Err(source) = fs::create_dir_all(&ns_dir) {
            return Err(PodError::Io {
                path: ns_dir,
                source,
            });
        }
        let cgroup = OwnedCgroup::create(ns_dir.join(name))?;
        let pod = Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            address,
            names,
            cgroup,
            child: None,
            released: false,
        };
        pod.build_network()?;
        info!(pod = %pod.display_name(), address = %address, netns = %pod.names.netns, "pod created");
        Ok(pod)
    }

    /// The pod a running predecessor made (netns, veth, cgroup and running command), left
    /// as it is; released. Fails when a part of it is missing.
    pub fn adopt(
        namespace: &str,
        name: &str,
        address: Ipv4Addr,
        cgroup_parent: &Path,
    ) -> Result<Self, PodError> {
        let names = PodNames::of(namespace, name);
        for path in [
            Path::new("/run/netns").join(&names.netns),
            Path::new("/sys/class/net").join(&names.host_veth),
        ] {
            if let Err(source) = fs::metadata(&path) {
                return Err(PodError::Io { path, source });
            }
        }
        let cgroup = OwnedCgroup::adopt(cgroup_parent.join(namespace).join(name))?;
        info!(pod = %format!("{namespace}/{name}"), address = %address, "pod adopted from the running node");
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            address,
            names,
            cgroup,
            child: None,
            released: true,
        })
    }

    /// Another process owns the pod now: dropping leaves it (and its command) running.
    pub fn release(&mut self) {
        self.released = true;
        self.cgroup.release();
    }

    /// This process owns the pod again: dropping stops and removes it.
    pub fn own(&mut self) {
        self.released = false;
        self.cgroup.own();
    }

    /// The process id of the pod's main command, when this process started it.
    pub fn command_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the pod's main command; the pod stops it when dropped.
    pub fn start(&mut self, command: &[String]) -> Result<(), PodError> {
        self.child = Some(self.spawn(command, Stdio::null(), Stdio::null())?);
        info!(pod = %self.display_name(), "pod command started");
        Ok(())
    }

    fn build_network(&self) -> Result<(), PodError> {
        let n = &self.names;
        let gw = GATEWAY.to_string();
        let addr = format!("{}/32", self.address);
        ip(&["netns", "add", &n.netns])?;
        ip(&[
            "link",
            "add",
            &n.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            &n.pod_veth,
        ])?;
        ip(&["link", "set", &n.pod_veth, "netns", &n.netns])?;
        ip(&["addr", "add", &format!("{gw}/32"), "dev", &n.host_veth])?;
        ip(&[
            "addr",
            "add",
            &format!("{PROXY_SOURCE}/32"),
            "dev",
            &n.host_veth,
        ])?;
        ip(&["link", "set", &n.host_veth, "up"])?;
        // Pod-to-pod traffic that the kernel lets bypass the proxy is routed by the host.
        // IPv4 forwarding is decided by the incoming interface, so switching it on for
        // our own veths alone leaves the rest of the machine as it was.
        let forwarding = format!("/proc/sys/net/ipv4/conf/{}/forwarding", n.host_veth);
        fs::write(&forwarding, "1").map_err(|source| PodError::Io {
            path: PathBuf::from(forwarding),
            source,
        })?;
        ip(&["route", "replace", &addr, "dev", &n.host_veth, "src", &gw])?;
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", n.netns.as_str(), "ip"];
            full.extend_from_slice(args);
            ip(&full)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["link", "set", &n.pod_veth, "name", "eth0"])?;
        inside(&["addr", "add", &addr, "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])?;
        inside(&["route", "add", &gw, "dev", "eth0", "scope", "link"])?;
        inside(&["route", "add", "default", "via", &gw, "dev", "eth0"])?;
        Ok(())
    }

    /// Starts a command inside the pod: first into its cgroup (sockets keep the cgroup
    /// they are created in), then into its netns (`ip netns exec` remounts /sys, which
    /// would hide the cgroup tree if done first).
    pub fn spawn(
        &self,
        command: &[String],
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Child, PodError> {
        let mut cmd = enter_command(self.cgroup.path(), &self.names.netns, command);
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        cmd.spawn().map_err(|source| PodError::Spawn {
            command: command.join(" "),
            source,
        })
    }

    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A command that joins `cgroup`, then `netns`, then runs `command`.
pub fn enter_command(cgroup: &Path, netns: &str, command: &[String]) -> Command {
    let mut cmd = Command::new("sh");
    // $0 = cgroup dir, $1 = netns, the rest = the command (dash has no ${@:2}).
    cmd.arg("-c")
        .arg(r#"echo $$ > "$0/cgroup.procs" && ns="$1" && shift && exec ip netns exec "$ns" "$@""#)
        .arg(cgroup)
        .arg(netns)
        .args(command);
    cmd
}

/// Removes kernel objects left by a node that died without cleaning up.
fn remove_stale(names: &PodNames) {
    if Path::new("/run/netns").join(&names.netns).exists() {
        debug!(netns = %names.netns, "removing stale pod netns");
        let _ = ip(&["netns", "del", &names.netns]);
    }
    if Path::new("/sys/class/net").join(&names.host_veth).exists() {
        let _ = ip(&["link", "del", &names.host_veth]);
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_cgroup(self.cgroup.path());
        // Deleting the netns deletes the pod end of the veth, and with it the host end.
        if let Err(e) = ip(&["netns", "del", &self.names.netns]) {
            warn!(pod = %self.display_name(), error = %e, "could not remove pod netns");
        }
        if Path::new("/sys/class/net")
            .join(&self.names.host_veth)
            .exists()
        {
            let _ = ip(&["link", "del", &self.names.host_veth]);
        }
        info!(pod = %self.display_name(), "pod removed");
    }
}
