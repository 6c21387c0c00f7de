//! The successor's side (`sluice up --takeover`): ask the running node, check that what
//! it runs is what this configuration and this binary would run, adopt it piece by piece
//! (everything released, so failing here leaves the predecessor whole), then commit.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sluice_bpf::{Datapath, HandoverFds, LoadOptions};
use tokio::net::UnixStream;
use tracing::{info, warn};

use super::wire::{Conn, FdRole, Message, Opening, PROTOCOL, PodState, State};
use crate::admin::{AdminServer, HandoverRequest, Request, SocketFile};
use crate::node::pods::{OwnedCgroup, Pod};
use crate::node::proxy::Shared;
use crate::node::state::Snapshot;

/// How long the running node may take to answer the request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the running node may take to let go once we serve.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// A takeover in progress: what the running node handed over, not yet claimed.
pub struct Takeover {
    conn: Conn,
    predecessor: u32,
    fds: Vec<(FdRole, OwnedFd)>,
}

/// What the successor adopted, to own once the predecessor let go.
pub struct Adopted<'a> {
    pub pods: &'a mut [Pod],
    pub parent: &'a mut OwnedCgroup,
    pub shared: &'a Shared,
    pub admin_file: &'a SocketFile,
}

impl Takeover {
    /// Asks the node answering on `socket` to hand over, and checks what it runs against
    /// `snapshot` (the configuration this node would run) and this binary.
    pub async fn begin(
        socket: &Path,
        snapshot: &Snapshot,
        drain: Duration,
    ) -> anyhow::Result<Self> {
        let stream = match UnixStream::connect(socket).await {
            Ok(stream) => stream,
            Err(e) => match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => bail!(
                    "no sluice node answers on {}: there is nothing to take over; start one with \
                     `sluice up` (without --takeover)",
                    socket.display()
                ),
                _ => {
                    return Err(e).with_context(|| {
                        format!("connecting to the running node on {}", socket.display())
                    });
                }
            },
        };
        let mut conn = Conn::new(stream);
        let request = Request::Handover(HandoverRequest {
            protocol: PROTOCOL,
            pid: std::process::id(),
            drain_seconds: drain.as_secs(),
        });
        conn.send_json(&request)
            .await
            .context("asking the running node to hand over")?;
        let opening = tokio::time::timeout(ANSWER_TIMEOUT, conn.recv_opening())
            .await
            .context("the running node did not answer the takeover request in time")?
            .context("receiving what the running node hands over")?;
        let fds = match opening {
            Opening::Fds(fds) => fds,
            Opening::Message(Message::Error(e)) if e.contains("unknown variant") => bail!(
                "the running node does not support a live restart (it answered: {e}); stop it, \
                 then start this one"
            ),
            Opening::Message(Message::Error(e)) => {
                bail!("the running node refused the takeover: {e}")
            }
            Opening::Message(other) => bail!("the running node answered {other:?}"),
        };
        let state = match tokio::time::timeout(ANSWER_TIMEOUT, conn.recv()).await {
            Ok(Ok(Some(Message::State(state)))) => *state,
            Ok(Ok(other)) => bail!("the running node sent {other:?} instead of its state"),
            Ok(Err(e)) => return Err(e).context("reading the running node's state"),
            Err(_) => bail!("the running node did not send its state in time"),
        };
        if state.fds.len() != fds.len() {
            let reason = format!(
                "{} descriptors arrived for {} announced",
                fds.len(),
                state.fds.len()
            );
            abort(&mut conn, &reason).await;
            bail!("the running node's handover is inconsistent: {reason}");
        }
        if let Err(reason) = compatible(&state, snapshot) {
            abort(&mut conn, &reason).await;
            bail!("{reason}");
        }
        info!(
            predecessor = state.pid,
            pods = state.pods.len(),
            "taking over the running node"
        );
        Ok(Self {
            conn,
            predecessor: state.pid,
            fds: state.fds.into_iter().zip(fds).collect(),
        })
    }

    fn take(&mut self, wanted: impl Fn(&FdRole) -> bool) -> Option<OwnedFd> {
        let at = self.fds.iter().position(|(role, _)| wanted(role))?;
        Some(self.fds.swap_remove(at).1)
    }

    /// The node lock the running node holds (the same lock: it is never free).
    pub fn node_lock(&mut self, path: &Path) -> anyhow::Result<File> {
        let file = self
            .take(|r| *r == FdRole::NodeLock)
            .map(File::from)
            .context("the running node handed over no node lock")?;
        // Locking again succeeds at once only on the open file that holds the lock.
        file.try_lock().map_err(|_| {
            anyhow::anyhow!(
                "the node lock handed over is not the one held on {}",
                path.display()
            )
        })?;
        let same = match (file.metadata(), std::fs::metadata(path)) {
            (Ok(held), Ok(current)) => held.ino() == current.ino() && held.dev() == current.dev(),
            _ => false,
        };
        if !same {
            bail!(
                "the node lock handed over is not {} (was it removed?)",
                path.display()
            );
        }
        Ok(file)
    }

    /// The node's cgroup, left as it is.
    pub fn parent(&self, path: PathBuf) -> anyhow::Result<OwnedCgroup> {
        OwnedCgroup::adopt(path).context("adopting the node's cgroup")
    }

    /// A pod the running node runs (checked equal to the configuration's at `begin`).
    pub fn pod(
        &self,
        namespace: &str,
        name: &str,
        address: IpAddr,
        parent: &Path,
    ) -> anyhow::Result<Pod> {
        let IpAddr::V4(address) = address else {
            bail!("pod {namespace}/{name}: only IPv4 pod addresses are supported");
        };
        Pod::adopt(namespace, name, address, parent)
            .with_context(|| format!("adopting pod {namespace}/{name} from the running node"))
    }

    /// The running datapath: its maps and locks, and its programs through their pins.
    pub fn datapath(&mut self, options: &LoadOptions) -> anyhow::Result<Datapath> {
        let mut fds = HandoverFds {
            maps: Vec::new(),
            locks: Vec::new(),
        };
        let mut rest = Vec::new();
        for (role, fd) in self.fds.drain(..) {
            match role {
                FdRole::Map { name } => fds.maps.push((name, fd)),
                FdRole::CgroupLock { cgroup } => fds.locks.push((cgroup, fd)),
                other => rest.push((other, fd)),
            }
        }
        self.fds = rest;
        Datapath::adopt(options, fds).context("adopting the running node's BPF datapath")
    }

    /// The proxy listener the running node serves on `addr`, if it has one.
    pub fn proxy_listener(
        &mut self,
        addr: SocketAddr,
    ) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        let Some(fd) = self.take(|r| *r == FdRole::ProxyListener { addr }) else {
            return Ok(None);
        };
        let listener = std::net::TcpListener::from(fd);
        let adopted = (|| {
            if listener.local_addr()? != addr {
                return Err(std::io::Error::other("bound elsewhere"));
            }
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)
        })()
        .with_context(|| format!("adopting the proxy listener on {addr}"))?;
        Ok(Some(adopted))
    }

    /// The DNS proxy's sockets the running node serves on `addr` (any port when
    /// `addr`'s is 0), if it has them.
    pub fn dns_sockets(&mut self, addr: SocketAddr) -> Option<sluice_dns::Sockets> {
        let matches =
            |a: &SocketAddr| a.ip() == addr.ip() && (addr.port() == 0 || a.port() == addr.port());
        let udp = self.take(|r| matches!(r, FdRole::DnsUdp { addr: a } if matches(a)))?;
        let tcp = self.take(|r| matches!(r, FdRole::DnsTcp { addr: a } if matches(a)))?;
        Some(sluice_dns::Sockets {
            udp: udp.into(),
            tcp: tcp.into(),
        })
    }

    /// The admin socket the running node serves (the one this node was asked through).
    pub fn admin(&mut self, path: &Path) -> anyhow::Result<AdminServer> {
        let fd = self
            .take(|r| *r == FdRole::Admin)
            .context("the running node handed over no admin socket")?;
        let listener = std::os::unix::net::UnixListener::from(fd);
        AdminServer::from_listener(listener, path).context("adopting the admin socket")
    }

    /// Tells the running node that this one serves, waits for it to let go, then owns
    /// what was adopted. Fails (owning nothing) when the running node keeps serving.
    pub async fn commit(mut self, adopted: Adopted<'_>) -> anyhow::Result<u32> {
        let unclaimed = adopted.shared.datapath().unclaimed_cgroups();
        if !unclaimed.is_empty() {
            let list: Vec<String> = unclaimed.iter().map(|p| p.display().to_string()).collect();
            let reason = format!(
                "the running node enrolls cgroups this configuration does not ({}): a live \
                 restart cannot detach them; stop the node, then start this one",
                list.join(", ")
            );
            abort(&mut self.conn, &reason).await;
            bail!("{reason}");
        }
        for (role, _) in &self.fds {
            info!(
                ?role,
                "not used by this configuration; closed when the running node exits"
            );
        }
        self.conn
            .send(&Message::Ready {})
            .await
            .context("telling the running node that this one serves")?;
        let predecessor = self.predecessor;
        match tokio::time::timeout(RELEASE_TIMEOUT, self.conn.recv()).await {
            Ok(Ok(Some(Message::Released {}))) => {}
            Ok(Ok(Some(Message::Error(reason) | Message::Abort { reason }))) => {
                bail!("the running node keeps serving: {reason}")
            }
            Ok(Ok(None) | Err(_)) if !alive(predecessor) => {
                warn!(
                    predecessor,
                    "the running node died during the takeover; taking over what it left"
                );
            }
            Ok(other) => bail!(
                "the running node (pid {predecessor}) did not let go ({other:?}); it keeps serving"
            ),
            Err(_) => bail!(
                "the running node (pid {predecessor}) did not let go within {}s; it keeps serving",
                RELEASE_TIMEOUT.as_secs()
            ),
        }
        for pod in adopted.pods.iter_mut() {
            pod.own();
        }
        adopted.parent.own();
        adopted.shared.datapath().own();
        adopted.admin_file.own();
        Ok(predecessor)
    }
}

async fn abort(conn: &mut Conn, reason: &str) {
    let _ = conn
        .send(&Message::Abort {
            reason: reason.to_owned(),
        })
        .await;
}

/// Whether what the running node runs is what this binary and this configuration
/// would run: the same BPF object (its programs keep running) and the same pods (they
/// keep running). Policy may differ: it is written as a new generation.
fn compatible(state: &State, snapshot: &Snapshot) -> Result<(), String> {
    let ours = sluice_bpf::object_digest();
    if state.bpf_object != ours {
        return Err(format!(
            "the running node's BPF programs ({}) differ from this binary's ({ours}): a live \
             restart keeps the running programs and cannot replace them; stop the node, then \
             start this one",
            state.bpf_object
        ));
    }
    let differences = pod_differences(&state.pods, &configured_pods(snapshot));
    if !differences.is_empty() {
        return Err(format!(
            "a live restart keeps the running pods as they are, and {}; stop the node, then \
             start this one to apply that",
            differences.join("; ")
        ));
    }
    Ok(())
}

/// (namespace, name) → (address, command) of the configuration's pods (`spec.run`).
type PodKey = (String, String);

fn configured_pods(snapshot: &Snapshot) -> BTreeMap<PodKey, (Option<Ipv4Addr>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for doc in &snapshot.config.workloads {
        let w = &doc.resource;
        let Some(run) = &w.spec.run else { continue };
        let namespace = w
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let address = w.spec.addresses.first().and_then(|a| a.parse().ok());
        out.insert(
            (namespace, w.metadata.name.clone()),
            (address, run.command.clone()),
        );
    }
    out
}

fn pod_differences(
    running: &[PodState],
    configured: &BTreeMap<PodKey, (Option<Ipv4Addr>, Vec<String>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for pod in running {
        let key = (pod.namespace.clone(), pod.name.clone());
        let name = format!("{}/{}", pod.namespace, pod.name);
        match configured.get(&key) {
            None => out.push(format!("pod {name} is no longer configured")),
            Some((address, _)) if *address != Some(pod.address) => out.push(format!(
                "pod {name} runs with address {}, configured {}",
                pod.address,
                address.map_or_else(|| "none".to_owned(), |a| a.to_string())
            )),
            Some((_, command)) if *command != pod.command => out.push(format!(
                "pod {name} runs {:?}, configured {command:?}",
                pod.command
            )),
            Some(_) => {}
        }
        seen.insert(key);
    }
    for (namespace, name) in configured.keys() {
        if !seen.contains(&(namespace.clone(), name.clone())) {
            out.push(format!("pod {namespace}/{name} is new"));
        }
    }
    out
}

/// Whether a process is alive (a zombie is not: it exited, unreaped).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state …`; comm may hold anything, the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| !matches!(state, "Z" | "X"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(name: &str, address: [u8; 4], command: &[&str]) -> PodState {
        PodState {
            namespace: "e2e".into(),
            name: name.into(),
            address: Ipv4Addr::from(address),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            command_pid: None,
        }
    }

    fn configured(
        pods: &[(&str, [u8; 4], &[&str])],
    ) -> BTreeMap<PodKey, (Option<Ipv4Addr>, Vec<String>)> {
        pods.iter()
            .map(|(name, address, command)| {
                (
                    ("e2e".to_owned(), (*name).to_owned()),
                    (
                        Some(Ipv4Addr::from(*address)),
                        command.iter().map(|s| (*s).to_owned()).collect(),
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn every_pod_difference_is_named() {
        let now = [
            running("same", [10, 0, 0, 1], &["sleep", "1"]),
            running("moved", [10, 0, 0, 2], &["sleep", "1"]),
            running("changed", [10, 0, 0, 3], &["sleep", "1"]),
            running("gone", [10, 0, 0, 4], &["sleep", "1"]),
        ];
        let want = configured(&[
            ("same", [10, 0, 0, 1], &["sleep", "1"]),
            ("moved", [10, 0, 0, 9], &["sleep", "1"]),
            ("changed", [10, 0, 0, 3], &["sleep", "2"]),
            ("new", [10, 0, 0, 5], &["sleep", "1"]),
        ]);
        let diff = pod_differences(&now, &want);
        assert_eq!(diff.len(), 4, "{diff:?}");
        for (needle, what) in [
            (
                "e2e/moved runs with address 10.0.0.2, configured 10.0.0.9",
                "address",
            ),
            ("e2e/changed runs", "command"),
            ("e2e/gone is no longer configured", "removed"),
            ("e2e/new is new", "added"),
        ] {
            assert!(diff.iter().any(|d| d.contains(needle)), "{what}: {diff:?}");
        }
        assert!(
            pod_differences(
                &now[..1],
                &configured(&[("same", [10, 0, 0, 1], &["sleep", "1"])])
            )
            .is_empty()
        );
    }

    #[test]
    fn this_process_is_alive_and_a_missing_one_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
