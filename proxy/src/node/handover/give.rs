//! The predecessor's side: answer a successor's request while serving on, then step
//! down without tearing anything down, finishing what it holds within the drain time.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_bpf::RedirectPorts;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::Sockets;
use super::wire::{Conn, FdRole, Message, PROTOCOL, PodState, State};
use crate::admin::{HandoverOffer, SocketFile};
use crate::node::dns::DnsService;
use crate::node::pods::{OwnedCgroup, Pod};
use crate::node::proxy::Shared;
use crate::node::state::Snapshot;
use crate::node::{Enrolled, KernelMaps};

/// How long the successor may take from receiving everything to serving beside us.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the drain looks whether the connections it holds are done.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// What a running node offers a successor.
pub struct Giver<'a> {
    pub node_lock: &'a File,
    pub shared: &'a Shared,
    pub sockets: &'a Sockets,
    pub pods: &'a [Pod],
    /// Each pod's command, in the order of `pods`.
    pub commands: &'a [Vec<String>],
}

/// How an offer ended.
pub enum Offer {
    /// The successor serves beside us and waits for us to let go ([`step_down`]).
    Accepted {
        conn: Conn,
        drain: Duration,
        successor: u32,
    },
    /// Refused, or the successor gave up: this node keeps serving. `touched`: the
    /// successor had everything, and may have written the kernel maps ([`reassert`]).
    Kept { touched: bool },
}

/// Answers a successor's request: sends the descriptors and the state, then waits
/// (bounded) for the successor to serve. Nothing is released here.
pub async fn offer(offer: HandoverOffer, giver: &Giver<'_>) -> Offer {
    let HandoverOffer { request, stream } = offer;
    let successor = request.pid;
    let mut conn = Conn::new(stream);
    if request.protocol != PROTOCOL {
        let reason = format!(
            "this node speaks handover protocol {PROTOCOL}, the successor {}",
            request.protocol
        );
        refuse(&mut conn, successor, &reason).await;
        return Offer::Kept { touched: false };
    }
    let (roles, fds) = match handed_over(giver) {
        Ok(found) => found,
        Err(reason) => {
            refuse(&mut conn, successor, &reason).await;
            return Offer::Kept { touched: false };
        }
    };
    let state = State {
        pid: std::process::id(),
        bpf_object: sluice_bpf::object_digest(),
        pods: giver
            .pods
            .iter()
            .zip(giver.commands)
            .map(|(pod, command)| PodState {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                address: pod.address,
                command: command.clone(),
                command_pid: pod.command_pid(),
            })
            .collect(),
        fds: roles,
    };
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let sent = conn.send_fds(&borrowed).await;
    // Our duplicates: the successor has its own now (or nothing, if sending failed).
    drop(borrowed);
    drop(fds);
    if let Err(e) = sent {
        warn!(successor, error = %e, "handover: sending the descriptors failed; keeping on serving");
        return Offer::Kept { touched: false };
    }
    if let Err(e) = conn.send(&Message::State(Box::new(state))).await {
        warn!(successor, error = %e, "handover: sending the state failed; keeping on serving");
        return Offer::Kept { touched: false };
    }
    info!(
        successor,
        "handover: the successor has everything; serving on until it serves too"
    );
    match tokio::time::timeout(READY_TIMEOUT, conn.recv()).await {
        Ok(Ok(Some(Message::Ready {}))) => Offer::Accepted {
            conn,
            drain: Duration::from_secs(request.drain_seconds),
            successor,
        },
        Ok(Ok(Some(Message::Abort { reason }))) => {
            warn!(successor, %reason, "handover: the successor gave up; keeping on serving");
            eprintln!("sluice: takeover by pid {successor} abandoned ({reason}); still serving");
            Offer::Kept { touched: true }
        }
        Ok(Ok(other)) => {
            warn!(successor, answer = ?other, "handover: the successor went away; keeping on serving");
            Offer::Kept { touched: true }
        }
        Ok(Err(e)) => {
            warn!(successor, error = %e, "handover: the successor went away; keeping on serving");
            Offer::Kept { touched: true }
        }
        Err(_) => {
            let reason = format!("not serving within {}s", READY_TIMEOUT.as_secs());
            warn!(successor, %reason, "handover: giving up on the successor; keeping on serving");
            let _ = conn.send(&Message::Error(reason)).await;
            Offer::Kept { touched: true }
        }
    }
}

async fn refuse(conn: &mut Conn, successor: u32, reason: &str) {
    warn!(successor, %reason, "handover refused");
    let _ = conn.send(&Message::Error(reason.to_owned())).await;
}

/// Duplicates of every descriptor a successor needs, and what each one is.
fn handed_over(giver: &Giver<'_>) -> Result<(Vec<FdRole>, Vec<OwnedFd>), String> {
    let mut roles = Vec::new();
    let mut fds = Vec::new();
    let lock = giver
        .node_lock
        .try_clone()
        .map_err(|e| format!("duplicating the node lock: {e}"))?;
    roles.push(FdRole::NodeLock);
    fds.push(OwnedFd::from(lock));
    let datapath = giver
        .shared
        .datapath()
        .handover_fds()
        .map_err(|e| e.to_string())?;
    for (cgroup, fd) in datapath.locks {
        roles.push(FdRole::CgroupLock { cgroup });
        fds.push(fd);
    }
    for (name, fd) in datapath.maps {
        roles.push(FdRole::Map { name });
        fds.push(fd);
    }
    let dup = |fd: BorrowedFd<'_>, what: &str| {
        fd.try_clone_to_owned()
            .map_err(|e| format!("duplicating the {what}: {e}"))
    };
    for (addr, fd) in &giver.sockets.proxy {
        roles.push(FdRole::ProxyListener { addr: *addr });
        fds.push(dup(fd.as_fd(), "proxy listener")?);
    }
    for (addr, dns) in &giver.sockets.dns {
        roles.push(FdRole::DnsUdp { addr: *addr });
        fds.push(dup(dns.udp.as_fd(), "DNS proxy's UDP socket")?);
        roles.push(FdRole::DnsTcp { addr: *addr });
        fds.push(dup(dns.tcp.as_fd(), "DNS proxy's TCP listener")?);
    }
    if let Some(admin) = &giver.sockets.admin {
        roles.push(FdRole::Admin);
        fds.push(dup(admin.as_fd(), "admin socket")?);
    }
    Ok((roles, fds))
}

/// After a successor gave up holding everything: it may have written the kernel maps
/// for its own configuration. Writes this node's policy again, as a new generation, and
/// this node's redirect ports. Returns the generation now current.
pub(in crate::node) fn reassert(
    shared: &Shared,
    enrolled: &[Enrolled],
    generation: u32,
    ports: RedirectPorts,
) -> u32 {
    let current = shared.state.load();
    let mut dp = shared.datapath();
    let next = generation.max(dp.generation().unwrap_or(generation)) + 1;
    let snapshot = Snapshot {
        config: Arc::clone(&current.config),
        policy: Arc::clone(&current.policy),
        generation: next,
        denied: current.denied.clone(),
        fqdn: Arc::clone(&current.fqdn),
    };
    let written = KernelMaps::compute(&snapshot, enrolled).and_then(|kernel| {
        dp.set_generation(next)?;
        kernel.write(&mut dp, next)?;
        dp.set_redirect_ports(ports)?;
        Ok(())
    });
    if let Err(e) = written {
        error!(error = %format!("{e:#}"), "rewriting the kernel maps after an abandoned takeover failed");
    }
    drop(dp);
    shared.state.store(snapshot);
    info!(
        generation = next,
        "kernel maps rewritten after an abandoned takeover"
    );
    next
}

/// What a node serves with, which it stops when it steps down.
pub struct Serving {
    pub proxy_tasks: Vec<JoinHandle<()>>,
    pub admin_task: JoinHandle<()>,
    pub admin_file: SocketFile,
    pub dns: Option<DnsService>,
    pub stop_events: Arc<AtomicBool>,
    pub events_thread: Option<std::thread::JoinHandle<()>>,
    /// Takeover requests that arrived while this one was answered.
    pub pending: tokio::sync::mpsc::Receiver<HandoverOffer>,
    /// The node lock and the duplicates of the listening sockets kept for a successor:
    /// closed as soon as the successor has them, so that nothing of the node stays
    /// open (or locked) here should the successor go away during the drain.
    pub node_lock: File,
    pub sockets: Sockets,
    /// The FQDN cache's expiry and save tasks: the successor's own take over.
    pub fqdn_tasks: Vec<JoinHandle<()>>,
    /// The threads serving the connections this node drains: they run until it exits.
    pub conn_workers: Arc<crate::node::workers::ConnWorkers>,
}

/// Lets go: releases everything (nothing this process drops from here on touches what
/// the successor serves), stops accepting and reading, tells the successor, then serves
/// what it holds (queries waiting for their resolver, proxied connections) until they
/// end, `drain` passes, or SIGTERM / Ctrl-C. Returns when the process should exit.
pub async fn step_down(
    mut conn: Conn,
    drain: Duration,
    successor: u32,
    serving: Serving,
    shared: Arc<Shared>,
    mut pods: Vec<Pod>,
    mut parent: OwnedCgroup,
) -> anyhow::Result<()> {
    serving.admin_file.release();
    shared.datapath().release();
    for pod in &mut pods {
        pod.release();
    }
    parent.release();

    // The successor reads the same sockets already: stop taking anything new.
    for task in serving.proxy_tasks {
        task.abort();
        let _ = task.await;
    }
    serving.admin_task.abort();
    let _ = serving.admin_task.await;
    let mut pending = serving.pending;
    pending.close();
    while let Ok(offer) = pending.try_recv() {
        let reason = format!("this node hands over to pid {successor}; take that one over");
        refuse(&mut Conn::new(offer.stream), offer.request.pid, &reason).await;
    }
    if let Some(dns) = serving.dns {
        dns.release().await;
    }
    // What this node learned for toFQDNs since the successor read the state file: the
    // successor merges the file again on `released`.
    for task in serving.fqdn_tasks {
        task.abort();
        let _ = task.await;
    }
    let saver = Arc::clone(&shared);
    let _ = tokio::task::spawn_blocking(move || saver.fqdn.save()).await;
    drop(serving.node_lock);
    drop(serving.sockets);
    // One reader of the kernel's event ring at a time: ours stops before the
    // successor's starts (on `released`).
    serving.stop_events.store(true, Ordering::Relaxed);
    if let Some(thread) = serving.events_thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    if let Err(e) = conn.send(&Message::Released {}).await {
        // The successor died between `ready` and now: nothing serves the node. The
        // programs stay attached (fail closed) and the next `sluice up` takes over.
        error!(successor, error = %e, "the successor is gone after taking over; nothing serves the node now");
        eprintln!(
            "sluice: the successor (pid {successor}) went away after taking over; nothing serves \
             the node: run `sluice up` again"
        );
    }
    drop(conn);

    let held = Arc::strong_count(&shared).saturating_sub(1);
    info!(
        successor,
        held,
        drain_s = drain.as_secs(),
        "handed over; draining what this process holds"
    );
    eprintln!(
        "sluice: handed over to pid {successor}; finishing what {held} task(s) hold (connections, queries; at most {}s)",
        drain.as_secs()
    );
    // A drain too long to represent has no deadline.
    let deadline = Instant::now().checked_add(drain);
    let mut term = signal(SignalKind::terminate())?;
    // Every connection and query task holds the shared state; when only this one is
    // left, everything this process held is done.
    while Arc::strong_count(&shared) > 1 {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let cut = Arc::strong_count(&shared).saturating_sub(1);
            warn!(
                cut,
                "drain time over: closing what this process still holds"
            );
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(DRAIN_POLL) => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // What is left past the drain time is closed here, not cut at exit.
    crate::node::workers::ConnWorkers::stop(serving.conn_workers).await;
    eprintln!("sluice: exiting; pid {successor} keeps the pods, cgroups and BPF programs");
    Ok(())
}
