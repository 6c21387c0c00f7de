//! The node: `sluice up`.
//!
//! Load config → compile policy → create the pods of `run` workloads under a cgroup
//! sluice owns → load and attach the BPF programs to that cgroup → fill the maps →
//! serve the proxy port on the pods' gateway address, the admin socket, and flows.
//! SIGHUP reloads the configuration; Ctrl-C / SIGTERM removes everything created.
//! `--takeover` adopts all of it from the running node instead ([`handover`]).

pub(crate) mod dns;
mod events;
pub mod fqdn;
pub mod handover;
pub(crate) mod http;
pub mod pods;
pub mod proxy;
mod splice;
pub mod state;
pub mod workers;

use std::collections::HashSet;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use ipnet::IpNet;
use sluice_bpf::{
    Action, CgroupId, Datapath, LoadOptions, PolicyEntry, RedirectPorts, WorkloadEntry,
    WorkloadFlags,
};
use sluice_identity::policy::{KernelAction, KernelPolicy};
use sluice_identity::{Direction, Identity, Protocol};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use self::pods::{GATEWAY, OwnedCgroup, PROXY_SOURCE, Pod};
use self::proxy::Shared;
use self::state::{PolicyState, Snapshot, compile};
use crate::flow::FlowRing;

/// Where cgroup v2 is mounted on this kind of machine (hybrid mode) or on a pure v2 one.
const CGROUP2_MOUNTS: [&str; 2] = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"];
/// The node's own cgroup (programs attach here; pods live below it).
const NODE_CGROUP: &str = "sluice";
const RUN_DIR: &str = "/run/sluice";
const BPFFS: &str = "/sys/fs/bpf";

/// Options of `sluice up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub config: Vec<PathBuf>,
    pub print_flows: bool,
    /// Take over from the running node (live restart), which then finishes what it
    /// holds within this time; `None`: start a node of its own.
    pub takeover: Option<std::time::Duration>,
    /// Connection threads ([`workers`]); at least one.
    pub workers: usize,
}

/// Finds the cgroup v2 mount.
pub fn cgroup2_root() -> anyhow::Result<PathBuf> {
    for m in CGROUP2_MOUNTS {
        if Path::new(m).join("cgroup.controllers").exists() {
            return Ok(PathBuf::from(m));
        }
    }
    bail!(
        "no cgroup v2 hierarchy found at {}",
        CGROUP2_MOUNTS.join(" or ")
    )
}

/// The cgroup sluice's pods live under.
pub fn node_cgroup() -> anyhow::Result<PathBuf> {
    Ok(cgroup2_root()?.join(NODE_CGROUP))
}

/// Runs the node until Ctrl-C or SIGTERM.
pub async fn up(options: UpOptions) -> anyhow::Result<()> {
    raise_open_file_limit();
    fs::create_dir_all(RUN_DIR).with_context(|| format!("creating {RUN_DIR}"))?;
    let lock_path = Path::new(RUN_DIR).join("node.lock");
    let mut generation = 1;
    let mut snapshot = compile(&options.config, generation).context("loading the configuration")?;
    // A takeover is refused before anything is touched when the configuration does not
    // load, or differs from what runs in what a live restart keeps (pods, programs).
    let mut takeover = match options.takeover {
        Some(drain) => Some(
            handover::Takeover::begin(&snapshot.config.node.admin_socket, &snapshot, drain).await?,
        ),
        None => None,
    };
    let lock = match takeover.as_mut() {
        Some(t) => t.node_lock(&lock_path)?,
        None => {
            let lock = File::create(&lock_path)
                .with_context(|| format!("opening {}", lock_path.display()))?;
            if lock.try_lock().is_err() {
                bail!(
                    "another sluice node is running on this machine (it holds {}); stop it \
                     first, or take it over with `sluice up --takeover`",
                    lock_path.display()
                );
            }
            lock
        }
    };

    for d in &snapshot.config.diagnostics {
        warn!(diagnostic = %d, "policy rejected; the endpoints it selects fail closed");
    }
    let node = snapshot.config.node.clone();
    let node_name = node.node_name.clone().unwrap_or_else(hostname);

    // Everything below is removed when these values drop (in reverse order). Adopted in
    // a takeover, they are left alone until the running node has let go.
    let mut parent = match &takeover {
        Some(t) => t.parent(node_cgroup()?)?,
        None => OwnedCgroup::create(node_cgroup()?)?,
    };
    let mut pods = Vec::new();
    for doc in &snapshot.config.workloads {
        let w = &doc.resource;
        let ns = w
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let Some(run) = &w.spec.run else { continue };
        let address: IpAddr = w
            .spec
            .addresses
            .first()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| pods::PodError::NoAddress {
                pod: format!("{ns}/{}", w.metadata.name),
            })?;
        let pod = match &takeover {
            Some(t) => t.pod(&ns, &w.metadata.name, address, parent.path())?,
            None => Pod::create(&ns, &w.metadata.name, address, parent.path())?,
        };
        pods.push((pod, run.command.clone()));
    }

    // Pinned links keep the redirects in place if this process dies: the pods' connects
    // then fail (nothing listens on the proxy port) instead of going out unenforced.
    let link_dir = bpffs_dir()?;
    let load_options = LoadOptions::new(parent.path())
        .lock_dir(RUN_DIR)
        .pin_links_under(&link_dir);
    let mut datapath = match takeover.as_mut() {
        Some(t) => {
            let datapath = t.datapath(&load_options)?;
            // The running node's verdicts stop counting with this node's first write.
            generation = datapath.generation()?.wrapping_add(1).max(1);
            snapshot.generation = generation;
            datapath
        }
        None => Datapath::load(&load_options).context("loading the BPF datapath")?,
    };
    let (mut pods, commands): (Vec<Pod>, Vec<Vec<String>>) = pods.into_iter().unzip();
    let mut enrolled = pods
        .iter()
        .map(Enrolled::pod)
        .collect::<Result<Vec<_>, _>>()
        .context("reading the pods' cgroup ids")?;
    let host_workloads = enroll_cgroups(&mut datapath, &snapshot)?;
    let host_cgroups: HashSet<CgroupId> = host_workloads
        .iter()
        .flat_map(|e| e.cgroups.iter().copied())
        .collect();
    enrolled.extend(host_workloads);
    // What an earlier run learned from DNS is in force before anything runs.
    let fqdn = fqdn::FqdnEngine::new(&node.fqdn, enrolled.clone(), snapshot.policy.universe());
    let snapshot = {
        let mut guard = fqdn.lock();
        let prepared = guard
            .prepare(snapshot, None)
            .context("labelling the addresses learned from DNS (toFQDNs)")?;
        guard.commit(prepared.pending);
        prepared.snapshot
    };
    datapath.set_generation(generation)?;
    let kernel = KernelMaps::compute(&snapshot, &enrolled)?;
    kernel.write(&mut datapath, generation)?;
    let http_rules = http::rules::RuleCache::prepare(&snapshot, &kernel.endpoints);
    drop(kernel);
    // DNS is redirected once the DNS proxy listens (below); until then it is plain UDP
    // and TCP, and no pod runs yet. (In a takeover the running node serves DNS.)
    if takeover.is_none() {
        datapath.set_redirect_ports(RedirectPorts {
            proxy: node.proxy_port,
            dns_proxy: 0,
        })?;
    }
    let events = datapath.take_event_reader();
    let dns_original_dst = datapath.take_dns_orig_dsts();

    // Pods reach the proxy on their gateway; workloads in the host's netns on loopback.
    let mut listeners = Vec::new();
    let proxy_addrs = proxy_addrs_for(&pods, &host_cgroups)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, node.proxy_port));
    for addr in proxy_addrs {
        let adopted = match takeover.as_mut() {
            Some(t) => t.proxy_listener(addr)?,
            None => None,
        };
        let listener = match adopted {
            Some(l) => l,
            None => proxy_listener(addr).with_context(|| format!("binding the proxy on {addr}"))?,
        };
        listeners.push(listener);
    }
    let ring = Arc::new(FlowRing::default());
    let shared = Arc::new(Shared {
        state: PolicyState::new(snapshot),
        datapath: Mutex::new(datapath),
        ring: ring.clone(),
        node_name: node_name.into(),
        print_flows: options.print_flows,
        local_pods: pods.iter().map(|p| IpAddr::V4(p.address)).collect(),
        http: Default::default(),
        host_cgroups,
        fqdn,
    });
    shared.http.rules.install(http_rules);
    let fqdn_tasks = fqdn::spawn_tasks(shared.clone());
    let stop_events = Arc::new(AtomicBool::new(false));
    // DNS is redirected where the proxy is: the gateway for pods, loopback for
    // workloads in the host's netns.
    let dns_addrs: Vec<SocketAddr> = proxy_addrs_for(&pods, &shared.host_cgroups)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, node.dns_proxy_port))
        .collect();
    let dns = match dns_original_dst.filter(|_| !dns_addrs.is_empty()) {
        Some(original_dst) => {
            let listen = dns_addrs
                .iter()
                .map(|addr| (*addr, takeover.as_mut().and_then(|t| t.dns_sockets(*addr))))
                .collect();
            let dns = dns::DnsService::start(
                shared.clone(),
                original_dst,
                listen,
                node.dns_reject_response,
                node.dns_upstream,
            )
            .await
            .with_context(|| format!("binding the DNS proxy on {dns_addrs:?}"))?;
            shared.datapath().set_redirect_ports(RedirectPorts {
                proxy: node.proxy_port,
                dns_proxy: dns.port(),
            })?;
            Some(dns)
        }
        None => None,
    };
    let mut admin = match takeover.as_mut() {
        Some(t) => t.admin(&node.admin_socket)?,
        None => crate::admin::AdminServer::bind(&node.admin_socket)?,
    };
    let (handover_tx, mut handovers) = tokio::sync::mpsc::channel(1);
    admin.accept_handovers(handover_tx);
    let admin_file = admin.socket_file();
    let sockets = handover::Sockets::collect(&listeners, dns.as_ref(), &admin)
        .context("keeping the listening sockets for a later takeover")?;
    let conn_workers = Arc::new(
        workers::ConnWorkers::start(options.workers).context("starting the connection threads")?,
    );
    let proxy_tasks: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(proxy::serve(l, shared.clone(), conn_workers.clone())))
        .collect();
    let fqdn_view: Arc<dyn crate::admin::FqdnSource> = Arc::new(fqdn::AdminView(shared.clone()));
    let admin_task = tokio::spawn(async move {
        if let Err(e) = admin.run_with(ring, Some(fqdn_view)).await {
            warn!(error = %e, "admin socket stopped");
        }
    });
    match takeover.take() {
        // Serving beside the running node: it lets go, then everything is ours.
        Some(t) => {
            let predecessor = t
                .commit(handover::Adopted {
                    pods: &mut pods,
                    parent: &mut parent,
                    shared: &shared,
                    admin_file: &admin_file,
                })
                .await?;
            info!(predecessor, "took over the running node");
            let adopter = shared.clone();
            match tokio::task::spawn_blocking(move || adopter.fqdn.adopt_saved(&adopter)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "installing the predecessor's last FQDN entries failed")
                }
                Err(e) => {
                    warn!(error = %e, "installing the predecessor's last FQDN entries failed")
                }
            }
            eprintln!("sluice: took over from pid {predecessor}");
        }
        // Enrolled, redirected and served: only now may the workloads run.
        None => {
            for (pod, command) in pods.iter_mut().zip(&commands) {
                pod.start(command)?;
            }
        }
    }
    // One reader of the kernel's event ring at a time: a predecessor stopped its own.
    let mut events_thread =
        events.map(|r| events::spawn_reader(r, shared.clone(), stop_events.clone()));
    info!(
        pods = pods.len(),
        proxy = %SocketAddr::new(IpAddr::V4(GATEWAY), node.proxy_port),
        admin = %node.admin_socket.display(),
        "sluice node up"
    );
    eprintln!("sluice: node up with {} pod(s); Ctrl-C to stop", pods.len());

    let mut hup = signal(SignalKind::hangup())?;
    let (changed_tx, mut changed) = tokio::sync::mpsc::channel::<()>(1);
    let _watcher = watch(&options.config, changed_tx);
    let mut term = signal(SignalKind::terminate())?;
    let mut successor = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            Some(offer) = handovers.recv() => {
                let giver = handover::Giver {
                    node_lock: &lock,
                    shared: &shared,
                    sockets: &sockets,
                    pods: &pods,
                    commands: &commands,
                };
                match handover::offer(offer, &giver).await {
                    handover::Offer::Accepted { conn, drain, successor: pid } => {
                        successor = Some((conn, drain, pid));
                        break;
                    }
                    handover::Offer::Kept { touched: false } => {}
                    handover::Offer::Kept { touched: true } => {
                        let ports = RedirectPorts {
                            proxy: node.proxy_port,
                            dns_proxy: dns.as_ref().map_or(0, dns::DnsService::port),
                        };
                        generation = handover::reassert(&shared, &enrolled, generation, ports);
                    }
                }
            }
            _ = hup.recv() => {
                generation += 1;
                reload(shared.clone(), options.config.clone(), generation, enrolled.clone()).await;
            }
            Some(()) = changed.recv() => {
                // Editors write in several steps: let the burst settle, then reload once.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                while changed.try_recv().is_ok() {}
                generation += 1;
                reload(shared.clone(), options.config.clone(), generation, enrolled.clone()).await;
            }
        }
    }
    if let Some((conn, drain, pid)) = successor {
        // Everything goes on in the successor: nothing is removed.
        let serving = handover::Serving {
            proxy_tasks,
            admin_task,
            admin_file,
            dns,
            stop_events,
            events_thread: events_thread.take(),
            pending: handovers,
            node_lock: lock,
            sockets,
            fqdn_tasks,
            conn_workers,
        };
        return handover::step_down(conn, drain, pid, serving, shared, pods, parent).await;
    }
    eprintln!("sluice: stopping; removing pods, cgroups and BPF programs");
    // Stop the tasks first so that the datapath (held through `shared`) is dropped,
    // and its programs detached, before the pods and cgroups go.
    for task in proxy_tasks
        .into_iter()
        .chain([admin_task])
        .chain(fqdn_tasks)
    {
        task.abort();
        let _ = task.await;
    }
    // The connections still served go too, releasing the shared state they hold.
    workers::ConnWorkers::stop(conn_workers).await;
    if let Some(dns) = dns {
        dns.stop().await;
    }
    // What was learned survives the restart (spec.dns.stateFile).
    shared.fqdn.save();
    stop_events.store(true, Ordering::Relaxed);
    if let Some(t) = events_thread {
        let _ = t.join();
    }
    drop(shared);
    drop(pods);
    drop(parent);
    drop(lock);
    let _ = fs::remove_file(lock_path);
    Ok(())
}

/// Every pod's connections queue here: a deep accept backlog keeps a burst of connects
/// from overflowing it (an overflow costs the client a one-second SYN retransmit).
const PROXY_BACKLOG: u32 = 4096;

/// Where workloads reach the node's proxies: the pods' gateway when there are pods,
/// loopback when workloads live in the host's network namespace.
fn proxy_addrs_for(pods: &[Pod], host_cgroups: &HashSet<CgroupId>) -> Vec<IpAddr> {
    let mut addrs = Vec::new();
    if !pods.is_empty() {
        addrs.push(IpAddr::V4(GATEWAY));
    }
    if !host_cgroups.is_empty() {
        addrs.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    addrs
}

fn proxy_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(PROXY_BACKLOG)
}

/// SIGHUP: a bad configuration keeps the last good snapshot. A good one first
/// invalidates every kernel verdict (new generation), then takes effect, so no stale
/// BYPASS outlives the policy that made it.
///
/// Loading, compiling, the kernel map writes and compiling the HTTP rule sets of the new
/// generation all run on a blocking thread: the runtime keeps serving requests on the
/// last good snapshot meanwhile, and the first request after the swap finds its rules
/// compiled (a large rule set takes hundreds of milliseconds to build).
async fn reload(
    shared: Arc<Shared>,
    paths: Vec<PathBuf>,
    generation: u32,
    enrolled: Vec<Enrolled>,
) {
    let done =
        tokio::task::spawn_blocking(move || apply_reload(&shared, &paths, generation, &enrolled))
            .await;
    if let Err(e) = done {
        warn!(error = %e, "reload task failed; the last good configuration stays in force");
    }
}

/// The blocking part of [`reload`], the swap included. A refused configuration is said in
/// the log and on stderr, and changes nothing.
fn apply_reload(shared: &Shared, paths: &[PathBuf], generation: u32, enrolled: &[Enrolled]) {
    let snapshot = match compile(paths, generation) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "reload rejected; the last good configuration stays in force");
            eprintln!("sluice: reload rejected, keeping the last good configuration:\n{e}");
            return;
        }
    };
    // Held to the end: no DNS answer installs between the new labels and the store.
    let mut fqdn = shared.fqdn.lock();
    let fqdn::Prepared {
        snapshot,
        stale: unlearned,
        pending,
    } = match fqdn.prepare(snapshot, Some(&shared.state.load())) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "reload rejected; the last good configuration stays in force");
            eprintln!("sluice: reload rejected, keeping the last good configuration:\n{e}");
            return;
        }
    };
    let kernel = match KernelMaps::compute(&snapshot, enrolled) {
        Ok(k) => k,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "reload rejected; the last good configuration stays in force");
            eprintln!("sluice: reload rejected, keeping the last good configuration:\n{e:#}");
            return;
        }
    };
    let rules = http::rules::RuleCache::prepare(&snapshot, &kernel.endpoints);
    let mut dp = shared.datapath();
    // From here on no verdict or policy entry of the old generation counts. Until the
    // new entries are in (a few map writes), new UDP flows and inbound connection
    // requests of workloads with default deny are refused: closed, never open.
    if let Err(e) = dp.set_generation(generation) {
        warn!(error = %e, "invalidating kernel verdicts failed");
    }
    if let Err(e) = kernel.write(&mut dp, generation) {
        warn!(error = %format!("{e:#}"), "updating the kernel maps failed");
    }
    // Addresses whose names no selector of the new policy matches are closed.
    if let Err(e) = fqdn::unlearn(&mut dp, snapshot.policy.universe(), &unlearned) {
        warn!(error = %e, "closing addresses the new policy no longer opens failed");
    }
    // Prefixes the old policy named and the new one does not stop giving their identity
    // (safe here: no DNS answer installs while the FQDN engine is held).
    let keep: Vec<IpNet> = kernel.ipcache.iter().map(|(net, _)| *net).collect();
    match dp.ipcache().retain(&keep) {
        Ok(0) => {}
        Ok(removed) => info!(
            removed,
            "IPCACHE prefixes the new policy no longer names removed"
        ),
        Err(e) => {
            warn!(error = %e, "removing IPCACHE prefixes the new policy no longer names failed")
        }
    }
    drop(dp);
    drop(kernel);
    shared.http.rules.install(rules);
    shared.state.store(snapshot);
    fqdn.commit(pending);
    drop(fqdn);
    info!(generation, "configuration reloaded");
    eprintln!("sluice: configuration reloaded (generation {generation})");
}

impl KernelMaps<'_> {
    /// IPCACHE as `snapshot`'s generation has it, in the order it is written.
    fn ipcache_of(snapshot: &Snapshot) -> Vec<(IpNet, Identity)> {
        let universe = snapshot.policy.universe();
        let mut entries: Vec<(IpNet, Identity)> = universe.ipcache().entries().collect();
        for own in [GATEWAY, PROXY_SOURCE] {
            entries.push((IpNet::from(IpAddr::V4(own)), Identity::HOST));
        }
        // What nothing claims is world, per family, as the policy engine sees it (the
        // kernel's own default is plain `world`, and verdicts would never match).
        entries.push((IpNet::V4(Default::default()), Identity::WORLD_IPV4));
        entries.push((IpNet::V6(Default::default()), Identity::WORLD_IPV6));
        // Addresses learned from DNS last: a learned address a policy prefix names
        // exactly (`toCIDR: [x/32]`) has its FQDN identity while the name lives.
        entries.extend(snapshot.fqdn.iter().map(|(ip, id)| (IpNet::from(*ip), *id)));
        entries
    }
}

/// What the kernel maps hold for one policy generation, computed before anything is
/// written so that a configuration too large for the maps is refused whole.
struct KernelMaps<'a> {
    snapshot: &'a Snapshot,
    /// The enrolled workloads' identities (each once).
    endpoints: Vec<Identity>,
    workloads: Vec<(CgroupId, WorkloadEntry)>,
    policy: Vec<PolicyEntry>,
    /// IPCACHE, in the order it is written.
    ipcache: Vec<(IpNet, Identity)>,
}

/// A cgroup set enrolled as one workload: a pod's cgroup, or an existing cgroup
/// (`spec.cgroup`) and the cgroups below it.
#[derive(Clone)]
struct Enrolled {
    namespace: String,
    name: String,
    cgroups: Vec<CgroupId>,
    /// In the host's network namespace (`spec.cgroup`), not a pod.
    host_netns: bool,
}

impl Enrolled {
    fn pod(pod: &Pod) -> Result<Self, pods::PodError> {
        Ok(Self {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            cgroups: vec![CgroupId(pod.cgroup.id()?)],
            host_netns: false,
        })
    }
}

/// Attaches the datapath to the cgroups of `spec.cgroup` workloads and lists them with
/// the cgroups below them at this moment (sockets carry their process's own cgroup).
fn enroll_cgroups(datapath: &mut Datapath, snapshot: &Snapshot) -> anyhow::Result<Vec<Enrolled>> {
    let root = cgroup2_root()?;
    let mut out = Vec::new();
    for doc in &snapshot.config.workloads {
        let w = &doc.resource;
        let (None, Some(cgroup)) = (&w.spec.run, &w.spec.cgroup) else {
            continue;
        };
        let namespace = w
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = w.metadata.name.clone();
        let path = root.join(cgroup.trim_start_matches('/'));
        if !path.is_dir() {
            bail!(
                "workload {namespace}/{name}: cgroup {cgroup} does not exist under {}; start it first, or remove spec.cgroup",
                root.display()
            );
        }
        let top = datapath
            .attach_cgroup(&path)
            .with_context(|| format!("enrolling workload {namespace}/{name} (cgroup {cgroup})"))?;
        let mut cgroups = vec![top];
        for sub in walkdir_cgroups(&path) {
            cgroups.push(
                CgroupId::of_path(&sub).with_context(|| format!("reading {}", sub.display()))?,
            );
        }
        info!(workload = %format!("{namespace}/{name}"), cgroup = %cgroup, cgroups = cgroups.len(), "cgroup enrolled");
        out.push(Enrolled {
            namespace,
            name,
            cgroups,
            host_netns: true,
        });
    }
    Ok(out)
}

/// The cgroup directories below `dir`, depth first.
fn walkdir_cgroups(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(p.clone());
                out.extend(walkdir_cgroups(&p));
            }
        }
    }
    out
}

/// Entries the POLICY map holds (SLUICE_MAX_POLICY in the BPF object).
const POLICY_CAPACITY: usize = 262_144;

impl<'a> KernelMaps<'a> {
    fn compute(snapshot: &'a Snapshot, enrolled: &[Enrolled]) -> anyhow::Result<Self> {
        let policy = &snapshot.policy;
        let universe = policy.universe();
        let mut workloads = Vec::new();
        let mut entries = Vec::new();
        let mut done = std::collections::HashSet::new();
        for e in enrolled {
            let Some(ep) = universe.endpoint(&e.namespace, &e.name) else {
                warn!(workload = %format!("{}/{}", e.namespace, e.name), "workload no longer in the configuration; its traffic fails closed");
                continue;
            };
            // What never reaches the proxy: connection requests and UDP arriving from
            // outside the proxy's path, and the workload's own UDP.
            let ingress = policy.kernel_policy(
                ep.identity,
                Direction::Ingress,
                &[Protocol::Tcp, Protocol::Udp],
            );
            let egress = policy.kernel_policy(ep.identity, Direction::Egress, &[Protocol::Udp]);
            // A workload in the host's netns shares the host's addresses: the kernel
            // cannot tell the proxy's connections to it from anyone else's, so its
            // ingress is enforced by the proxy only (connections from pods).
            let mut flags = if e.host_netns {
                WorkloadFlags::NONE
            } else if ingress.default_deny {
                WorkloadFlags::INGRESS | WorkloadFlags::INGRESS_DEFAULT_DENY
            } else {
                WorkloadFlags::INGRESS
            };
            if egress.default_deny {
                flags = flags | WorkloadFlags::EGRESS_DEFAULT_DENY;
            }
            if done.insert(ep.identity) {
                push_entries(&mut entries, ep.identity, Direction::Ingress, &ingress);
                push_entries(&mut entries, ep.identity, Direction::Egress, &egress);
            }
            let entry = if e.host_netns {
                WorkloadEntry {
                    identity: ep.identity,
                    flags,
                    proxy_v4: Some(Ipv4Addr::LOCALHOST),
                    proxy_v6: None,
                    proxy_source_v4: None,
                    proxy_source_v6: None,
                }
            } else {
                WorkloadEntry {
                    identity: ep.identity,
                    flags,
                    proxy_v4: Some(GATEWAY),
                    proxy_v6: None,
                    proxy_source_v4: Some(PROXY_SOURCE),
                    proxy_source_v6: None,
                }
            };
            workloads.extend(e.cgroups.iter().map(|c| (*c, entry)));
        }
        let prefixes: usize = entries
            .iter()
            .map(|e| sluice_bpf::port_prefixes(e.ports).len())
            .sum();
        if prefixes > POLICY_CAPACITY {
            bail!(
                "the policy needs {prefixes} kernel POLICY entries for {} workloads, more than the map holds ({POLICY_CAPACITY}); select fewer peers or use fewer, aligned port ranges",
                workloads.len()
            );
        }
        Ok(Self {
            snapshot,
            endpoints: done.into_iter().collect(),
            workloads,
            policy: entries,
            ipcache: Self::ipcache_of(snapshot),
        })
    }

    /// Writes everything for `generation` (the kernel's current one, or about to be),
    /// then removes what older generations left.
    fn write(&self, dp: &mut Datapath, generation: u32) -> anyhow::Result<()> {
        for &(net, id) in &self.ipcache {
            dp.ipcache().insert(net, id)?;
        }
        dp.set_audit(self.snapshot.policy.audit_mode())?;
        let mut written = 0;
        for entry in &self.policy {
            written += dp.policy().insert(entry, generation)?;
        }
        // Flags last: a workload turns to default deny only once its allows are in.
        for (cgroup, entry) in &self.workloads {
            dp.workloads().insert(*cgroup, *entry)?;
        }
        let stale_policy = dp.policy().retain_generation(generation)?;
        let stale_verdicts = dp.verdicts().retain_generation(generation)?;
        info!(
            generation,
            policy_entries = written,
            stale_policy,
            stale_verdicts,
            "kernel maps written"
        );
        Ok(())
    }
}

fn push_entries(
    out: &mut Vec<PolicyEntry>,
    endpoint: Identity,
    direction: Direction,
    k: &KernelPolicy,
) {
    out.extend(k.rules.iter().map(|rule| PolicyEntry {
        endpoint,
        direction,
        peer: rule.peer,
        proto: rule.proto,
        ports: rule.ports,
        action: match rule.action {
            KernelAction::Allow => Action::Bypass,
            KernelAction::Proxy => Action::Redirect,
            KernelAction::Deny(reason) => Action::Deny(reason),
        },
    }));
}

/// Watches the configuration paths; every change sends on `changed` (coalesced: a
/// full channel means a reload is already due). Without a watcher (e.g. inotify limits)
/// SIGHUP still reloads, and the node says so.
fn watch(
    paths: &[PathBuf],
    changed: tokio::sync::mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = changed.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "cannot watch the configuration; reload with SIGHUP");
            return None;
        }
    };
    for path in paths {
        if let Err(e) = watcher.watch(path, RecursiveMode::Recursive) {
            warn!(path = %path.display(), error = %e, "cannot watch; reload with SIGHUP");
        }
    }
    Some(watcher)
}

/// `/sys/fs/bpf/sluice/links`, mounting bpffs first when it is not mounted.
fn bpffs_dir() -> anyhow::Result<PathBuf> {
    let root = Path::new(BPFFS);
    let mounted = fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(BPFFS) && l.split(' ').nth(2) == Some("bpf"))
        })
        .unwrap_or(false);
    if !mounted {
        fs::create_dir_all(root).with_context(|| format!("creating {BPFFS}"))?;
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf", BPFFS])
            .status()
            .context("running mount -t bpf")?;
        if !status.success() {
            bail!("mounting bpffs on {BPFFS} failed");
        }
    }
    let dir = root.join("sluice").join("links");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A proxy holds two descriptors per connection, and the pods inherit the limit: raise
/// the soft limit on open files to the hard one, as servers do.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            warn!(error = %e, "cannot raise the open-file limit; busy nodes may run out of descriptors");
        }
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}
