//! The node-shared transparent proxy, L3/L4 path: per redirected connection, recover
//! the original destination and source identity from the kernel, decide with the
//! current policy (egress of the source, ingress of the destination), then splice to
//! the destination or reset. L4-only decisions are written back into VERDICTS so the
//! next connection of that kind never leaves the kernel.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_bpf::{Action, Datapath, VerdictKey};
use sluice_identity::policy::Decision;
use sluice_identity::universe::Universe;
use sluice_identity::{Direction, DropReason, Identity, Protocol, Verdict};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::pods::{GATEWAY, PROXY_SOURCE};
use super::state::{PolicyState, Snapshot};
use super::workers::ConnWorkers;
use crate::flow::{
    Endpoint, Flow, FlowRing, FlowVerdict, L4Event, Layer4, PolicyMatchType, Timestamp,
};

/// How long an upstream connect may take: the L4 path then resets the client, the HTTP
/// engine answers 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection task shares.
pub struct Shared {
    pub state: PolicyState,
    pub datapath: Mutex<Datapath>,
    pub ring: Arc<FlowRing>,
    pub node_name: Arc<str>,
    /// Print each flow (compact) on stdout, as `sluice up` does.
    pub print_flows: bool,
    /// Addresses of the pods this node runs: connections to them leave from
    /// [`PROXY_SOURCE`], which their ingress program trusts.
    pub local_pods: HashSet<IpAddr>,
    /// Compiled HTTP rules and upstream pools of the HTTP engine.
    pub http: super::http::Engine,
    /// Cgroups of workloads in the host's network namespace (`spec.cgroup`). Their
    /// connections always come to the proxy: a BYPASS would reach pods from the host's
    /// address, which the pods' ingress sees as `host`, not as the workload.
    pub host_cgroups: HashSet<sluice_bpf::CgroupId>,
    /// `toFQDNs`: what DNS answers taught, and the identities of the learned addresses.
    pub fqdn: super::fqdn::FqdnEngine,
}

impl Shared {
    /// The datapath, for one short map operation. A panic elsewhere while it was held
    /// leaves the maps usable (each operation is one syscall), so poisoning is ignored.
    pub fn datapath(&self) -> std::sync::MutexGuard<'_, Datapath> {
        match self.datapath.lock() {
            Ok(dp) => dp,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Accepts redirected connections until the listener fails. Each is decided here; those
/// for the HTTP engine are then served on one of the connection threads.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, workers: Arc<ConnWorkers>) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                let shared = shared.clone();
                let workers = workers.clone();
                tokio::spawn(async move { handle(client, peer, &shared, &workers).await });
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(client: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, workers: &ConnWorkers) {
    let orig = { shared.datapath().orig_dst_by_client(peer) };
    let orig = match orig {
        Ok(Some(o)) => o,
        // Not a connection the kernel redirected (or its entry is gone): nothing says
        // what it may reach, so it reaches nothing.
        Ok(None) => {
            debug!(%peer, "connection without an original destination; reset");
            reset(client);
            return;
        }
        Err(e) => {
            warn!(%peer, error = %e, "reading the original destination failed; reset");
            reset(client);
            return;
        }
    };
    let snapshot = shared.state.load();
    let dst = orig.addr;
    let src_id = orig.src_identity;
    let Some(dst_id) = destination_identity(&snapshot, dst.ip()) else {
        // A pod asking for 127.0.0.x would reach the node's own loopback through us.
        warn!(%peer, destination = %dst, "refusing a redirected connection to loopback");
        record(
            shared,
            &snapshot,
            (peer, dst),
            (src_id, Identity::HOST),
            Protocol::Tcp,
            Direction::Egress,
            &denied_loopback(),
            snapshot.config.node.proxy_port,
        );
        reset(client);
        return;
    };
    let port = dst.port();
    let egress = snapshot
        .policy
        .decide(src_id, Direction::Egress, dst_id, Protocol::Tcp, port);
    let mut ingress =
        snapshot
            .policy
            .decide(dst_id, Direction::Ingress, src_id, Protocol::Tcp, port);
    let mut egress = egress;
    // Mutual authentication (SPIFFE mTLS between nodes) has not landed: a connection
    // that policy allows only once authenticated is dropped with 189, never let through.
    for d in [&mut egress, &mut ingress] {
        require_authentication(d, snapshot.policy.audit_mode());
    }
    // The packet leaves the source first: its egress drop is the one reported.
    let (direction, decision) = if egress.verdict == Verdict::Denied {
        (Direction::Egress, &egress)
    } else if ingress.verdict == Verdict::Denied
        || ingress.enforced
        || !ingress.allowed_by.is_empty()
    {
        (Direction::Ingress, &ingress)
    } else {
        (Direction::Egress, &egress)
    };
    record(
        shared,
        &snapshot,
        (peer, dst),
        (src_id, dst_id),
        Protocol::Tcp,
        direction,
        decision,
        snapshot.config.node.proxy_port,
    );
    let may_bypass = !shared.host_cgroups.contains(&orig.cgroup);
    write_back(
        shared, &snapshot, src_id, dst_id, port, &egress, &ingress, may_bypass,
    );
    if decision.verdict == Verdict::Denied {
        reset(client);
        return;
    }
    let source = shared
        .local_pods
        .contains(&dst.ip())
        .then_some(IpAddr::V4(PROXY_SOURCE));
    if super::http::wants_http(&egress, &ingress) {
        let info = super::http::ConnInfo {
            peer,
            destination: dst,
            key: super::http::rules::ConnKey {
                source: src_id,
                destination: dst_id,
                port,
            },
            bind: source,
        };
        // On a connection thread: its requests, upstream connection and timers together
        // (a spliced connection has nothing to gain from the move and stays here).
        let shared = shared.clone();
        let moved = workers.dispatch(client, move |client| async move {
            super::http::serve(client, info, shared, &snapshot, &egress, &ingress).await;
        });
        if let Err(e) = moved {
            warn!(%peer, error = %e, "an HTTP connection could not be handed to a connection thread; closed");
        }
        return;
    }
    splice(client, dst, source).await;
}

/// A decision that needs authentication the node cannot do yet becomes a 189 drop
/// (audited in audit mode, like every other policy drop): never let through.
fn require_authentication(d: &mut Decision, audit: bool) {
    if d.verdict != Verdict::Allowed || d.authentication.is_none() {
        return;
    }
    if audit {
        d.verdict = Verdict::Audit;
        d.audit_drop_reason = Some(DropReason::AuthRequired);
    } else {
        d.verdict = Verdict::Denied;
        d.drop_reason = Some(DropReason::AuthRequired);
    }
}

/// The identity of a destination: the node's own addresses are `host`; loopback is
/// refused (None); an address learned from DNS has its FQDN identity.
fn destination_identity(snapshot: &Snapshot, ip: IpAddr) -> Option<Identity> {
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    if ip == IpAddr::V4(GATEWAY) || ip == IpAddr::V4(PROXY_SOURCE) {
        return Some(Identity::HOST);
    }
    Some(snapshot.identity_of(ip))
}

/// A verdict that did not come from policy: a pod's connection to the node's loopback.
fn denied_loopback() -> Decision {
    Decision {
        verdict: Verdict::Denied,
        drop_reason: Some(DropReason::PolicyDenied),
        audit_drop_reason: None,
        kind: sluice_identity::policy::DecisionKind::DefaultDeny,
        enforced: true,
        allowed_by: Vec::new(),
        denied_by: Vec::new(),
        rejected: Vec::new(),
        l7: None,
        authentication: None,
    }
}

/// L4-only decisions go into the kernel: BYPASS when both directions allow without L7
/// or authentication, DENY when a direction denies. Audited connections keep coming to
/// the proxy, so every one of them is reported as AUDIT.
#[allow(clippy::too_many_arguments)]
fn write_back(
    shared: &Shared,
    snapshot: &Snapshot,
    src: Identity,
    dst: Identity,
    port: u16,
    egress: &Decision,
    ingress: &Decision,
    may_bypass: bool,
) {
    let key = VerdictKey {
        src,
        dst,
        port,
        proto: Protocol::Tcp,
        direction: Direction::Egress,
    };
    // An authentication drop is not written: it will depend on the handshake.
    if [egress, ingress]
        .iter()
        .any(|d| d.drop_reason == Some(DropReason::AuthRequired))
    {
        return;
    }
    let l4_only = |d: &Decision| d.l7.is_none() && d.authentication.is_none();
    let action = match (egress.verdict, ingress.verdict) {
        (Verdict::Denied, _) => {
            Action::Deny(egress.drop_reason.unwrap_or(DropReason::PolicyDenied))
        }
        (_, Verdict::Denied) => {
            Action::Deny(ingress.drop_reason.unwrap_or(DropReason::PolicyDenied))
        }
        (Verdict::Allowed, Verdict::Allowed)
            if may_bypass && l4_only(egress) && l4_only(ingress) =>
        {
            Action::Bypass
        }
        _ => return,
    };
    if let Err(e) = shared
        .datapath()
        .verdicts()
        .insert(key, action, snapshot.generation)
    {
        warn!(error = %e, "writing a verdict into the kernel failed; the proxy keeps deciding");
    }
}

/// Records one L3/L4 decision (the proxy's for TCP, the DNS proxy's for a query) as
/// Hubble does: the policy-verdict flow, and a drop flow beside a drop. Both are built
/// when first read (`FlowRing::push_lazy`), not on the connection's path: until then they
/// hold the decision's policy references and the compiled policy it was made on, for
/// the endpoints' names and labels (the ring's capacity bounds how many flows wait).
#[allow(clippy::too_many_arguments)]
pub fn record(
    shared: &Shared,
    snapshot: &Snapshot,
    (src, dst): (SocketAddr, SocketAddr),
    (src_id, dst_id): (Identity, Identity),
    proto: Protocol,
    direction: Direction,
    decision: &Decision,
    proxy_port: u16,
) {
    let (verdict, drop_reason) = FlowVerdict::from_decision(decision, false);
    let decided = Arc::new(Decided {
        time: Timestamp::now(),
        node_name: Arc::clone(&shared.node_name),
        policy: Arc::clone(&snapshot.policy),
        revision: snapshot.generation,
        addrs: (src, dst),
        identities: (src_id, dst_id),
        proto,
        direction,
        verdict,
        drop_reason,
        allowed_by: decision.allowed_by.clone(),
        denied_by: decision.denied_by.clone(),
        auth: decision.authentication,
        proxy_port,
    });
    let verdict_flow = Arc::clone(&decided);
    push_lazy(
        shared,
        Box::new(move || Flow::policy_verdict(&verdict_flow.event())),
    );
    // `Flow::drop_event`'s own condition, known before the event is built.
    if verdict == FlowVerdict::Dropped && drop_reason.is_some() {
        push_lazy(
            shared,
            Box::new(move || {
                let ev = decided.event();
                Flow::drop_event(&ev).unwrap_or_else(|| Flow::policy_verdict(&ev))
            }),
        );
    }
}

/// What a decision's flows are built from, owned until they are read.
struct Decided {
    time: Timestamp,
    node_name: Arc<str>,
    policy: Arc<sluice_identity::policy::CompiledPolicy>,
    revision: u32,
    addrs: (SocketAddr, SocketAddr),
    identities: (Identity, Identity),
    proto: Protocol,
    direction: Direction,
    verdict: FlowVerdict,
    drop_reason: Option<DropReason>,
    allowed_by: Vec<Arc<sluice_identity::PolicyRef>>,
    denied_by: Vec<Arc<sluice_identity::PolicyRef>>,
    auth: Option<sluice_identity::policy::AuthMode>,
    proxy_port: u16,
}

impl Decided {
    fn event(&self) -> L4Event<'_> {
        let universe = self.policy.universe();
        let ((src, dst), (src_id, dst_id)) = (self.addrs, self.identities);
        L4Event {
            time: self.time,
            node_name: &self.node_name,
            source: endpoint_of(universe, src_id, src.ip()),
            destination: endpoint_of(universe, dst_id, dst.ip()),
            source_ip: src.ip(),
            destination_ip: dst.ip(),
            l4: Layer4::connection(self.proto, src.port(), dst.port()),
            direction: self.direction,
            verdict: self.verdict,
            drop_reason: self.drop_reason,
            match_type: l3l4_match(&self.allowed_by),
            allowed_by: &self.allowed_by,
            denied_by: &self.denied_by,
            policy_revision: u64::from(self.revision),
            auth: self.auth,
            proxy_port: Some(self.proxy_port),
            socket_cookie: None,
            cgroup_id: None,
        }
    }
}

/// An L3/L4 decision's match type: L3_L4 when some policy allowed it.
pub fn l3l4_match(allowed_by: &[Arc<sluice_identity::PolicyRef>]) -> PolicyMatchType {
    if allowed_by.is_empty() {
        PolicyMatchType::None
    } else {
        PolicyMatchType::L3L4
    }
}

/// The policy-verdict flow of an L3/L4 event, and its drop flow when it is a drop.
pub fn push_l4(shared: &Shared, ev: &L4Event<'_>) {
    push(shared, Flow::policy_verdict(ev));
    if let Some(drop) = Flow::drop_event(ev) {
        push(shared, drop);
    }
}

pub fn push(shared: &Shared, flow: Flow) {
    if shared.print_flows {
        println!(
            "{}",
            crate::flow::printer::compact(&flow, &Default::default())
        );
    }
    shared.ring.push(flow);
}

/// Records a flow that is built only when somebody reads it (see `FlowRing::push_lazy`);
/// built at once when the node prints its flows.
pub fn push_lazy(shared: &Shared, render: crate::flow::Render) {
    if shared.print_flows {
        push(shared, render());
        return;
    }
    shared.ring.push_lazy(render);
}

/// A flow endpoint for an identity seen at `ip`: the workload when one has that
/// address, else the identity alone (with its labels when it is a CIDR or FQDN
/// identity, as Hubble shows `cidr:…` and `fqdn:…` labels).
pub fn endpoint_of(universe: &Universe, id: Identity, ip: IpAddr) -> Arc<Endpoint> {
    let cluster = &universe.cluster_name;
    let none = sluice_identity::LabelSet::default();
    let labels = universe.identity(id).map_or(&none, |i| &i.labels);
    Arc::new(
        match universe
            .endpoint_at(ip)
            .filter(|e| e.identity == id)
            .or_else(|| universe.endpoints_of(id).next())
        {
            Some(ep) if !ep.is_host() => Endpoint::workload(
                id,
                cluster,
                ep.namespace.as_deref().unwrap_or_default(),
                &ep.name,
                labels,
            ),
            _ => {
                let mut endpoint = Endpoint::from_identity(id);
                if let Some(info) = universe.identity(id).filter(|i| {
                    matches!(
                        i.kind,
                        sluice_identity::universe::IdentityKind::Cidr(_)
                            | sluice_identity::universe::IdentityKind::Fqdn(_)
                    )
                }) {
                    endpoint.labels = info.labels.to_strings();
                    endpoint.labels.sort();
                }
                endpoint
            }
        },
    )
}

/// Connects upstream (from `source`, when given) and relays until both sides end.
async fn splice(client: TcpStream, dst: SocketAddr, source: Option<IpAddr>) {
    let upstream = match connect(dst, source).await {
        Ok(s) => s,
        Err(e) => {
            debug!(destination = %dst, error = %e, "upstream connect failed");
            reset(client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Err(e) = super::splice::relay(&client, &upstream).await {
        debug!(destination = %dst, error = %e, "connection ended with an error");
    }
}

/// Dials an upstream for every engine of the node (from `source`, when given), giving up
/// after [`CONNECT_TIMEOUT`] with a `TimedOut` error that names the destination.
pub(crate) async fn connect(dst: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = match dst {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(dst))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {dst} timed out after {CONNECT_TIMEOUT:?}"),
            )
        })?
}

/// Closes with a RST, so the client sees "connection reset" rather than a clean end.
fn reset(client: TcpStream) {
    if let Ok(std) = client.into_std() {
        let sock = socket2::SockRef::from(&std);
        let _ = sock.set_linger(Some(Duration::ZERO));
    }
}
