//! Resolution of translated rules into per-endpoint, per-direction port tables.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sluice_config::{Config, Diagnostic, EnforcementMode, FieldPath};

use super::rules::{Entry, Peers, PeerSelector, PortSpec, Ports, RejectedRule, Rule, Subject, translate};
use super::table::{Contribution, L7Conflict, PortTable, PortVerdict};
use super::verdict::{AuthMode, Decision, DecisionKind, DropReason, Verdict};
use super::{Direction, PolicyRef};
use crate::identity::Identity;
use crate::labels::LabelSet;
use crate::ports::{PortRange, Protocol};
use crate::universe::{IdentityKind, Universe, UniverseError};

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("building identities: {0}")]
    Universe(#[from] UniverseError),
}

/// The policy of one direction of one endpoint identity.
#[derive(Debug, Clone, Default)]
pub struct DirectionPolicy {
    /// Default deny applies (some selecting rule has this direction with default deny,
    /// or enforcement is `always`).
    pub enforced: bool,
    /// Some rule selects the endpoint for this direction.
    pub selected: bool,
    /// Rejected policies selecting the endpoint in this direction: everything fails.
    pub fail_closed: Vec<Arc<PolicyRef>>,
    any_peer: PortTable,
    by_peer: HashMap<Identity, PortTable>,
}

/// Both directions of one endpoint identity.
#[derive(Debug, Clone, Default)]
pub struct EndpointPolicy {
    pub ingress: DirectionPolicy,
    pub egress: DirectionPolicy,
}

impl EndpointPolicy {
    pub fn direction(&self, d: Direction) -> &DirectionPolicy {
        match d {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A configuration's compiled policy: immutable, shared by every lookup.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    universe: Universe,
    endpoints: HashMap<Identity, EndpointPolicy>,
    enforcement: EnforcementMode,
    audit_mode: bool,
    /// Policies rejected while resolving (conflicting L7 parsers or auth modes).
    pub diagnostics: Vec<Diagnostic>,
}

impl CompiledPolicy {
    /// Compiles a configuration.
    pub fn compile(config: &Config) -> Result<Self, CompileError> {
        Self::compile_with(config, &[])
    }

    /// Compiles a configuration with extra hypothetical endpoints (label sets), as
    /// `policy trace --from <labels>` needs.
    pub fn compile_with(config: &Config, extra: &[LabelSet]) -> Result<Self, CompileError> {
        let mut skip = BTreeSet::new();
        let mut diagnostics = Vec::new();
        // Each round rejects at least one more policy or ends, so this terminates.
        loop {
            let translation = translate(config, &skip);
            let universe = Universe::build(config, &translation.cidrs, extra)?;
            let resolver = Resolver::new(config, &universe, &translation.rules, &translation.rejected);
            match resolver.resolve_all() {
                Ok(endpoints) => {
                    return Ok(Self {
                        universe,
                        endpoints,
                        enforcement: config.node.enforcement,
                        audit_mode: config.node.audit_mode,
                        diagnostics,
                    });
                }
                Err(conflict) => {
                    let Some(index) = conflict.policy_index else {
                        // Unattributable conflict: cannot make progress; fail every
                        // policy involved would be wrong, so stop with what we have.
                        break;
                    };
                    if !skip.insert(index) {
                        break;
                    }
                    if let Some(doc) = config.policies.get(index) {
                        diagnostics.push(Diagnostic {
                            file: doc.source.file.clone(),
                            line: doc.source.line,
                            column: 0,
                            field: FieldPath::root().key("spec"),
                            message: conflict.message,
                        });
                    }
                }
            }
        }
        // Unreachable in practice; resolve once more with everything skipped so that
        // the result fails closed rather than open.
        let all: BTreeSet<usize> = (0..config.policies.len()).collect();
        let translation = translate(config, &all);
        let universe = Universe::build(config, &translation.cidrs, extra)?;
        let resolver = Resolver::new(config, &universe, &translation.rules, &translation.rejected);
        let endpoints = resolver.resolve_all().unwrap_or_default();
        Ok(Self {
            universe,
            endpoints,
            enforcement: config.node.enforcement,
            audit_mode: config.node.audit_mode,
            diagnostics,
        })
    }

    pub fn universe(&self) -> &Universe {
        &self.universe
    }

    pub fn endpoint_policy(&self, endpoint: Identity) -> Option<&EndpointPolicy> {
        self.endpoints.get(&endpoint)
    }

    pub fn audit_mode(&self) -> bool {
        self.audit_mode
    }

    /// The decision for one direction of a connection at `endpoint`, with `peer` on the
    /// other side, to destination `port` / `proto` (on ingress the endpoint's own port,
    /// on egress the peer's).
    ///
    /// `endpoint` must be an endpoint identity (a workload's or the host's); anything
    /// else has no policy and is allowed.
    pub fn decide(
        &self,
        endpoint: Identity,
        direction: Direction,
        peer: Identity,
        proto: Protocol,
        port: u16,
    ) -> Decision {
        let allowed = |kind| Decision {
            verdict: Verdict::Allowed,
            drop_reason: None,
            audit_drop_reason: None,
            kind,
            enforced: false,
            allowed_by: Vec::new(),
            denied_by: Vec::new(),
            rejected: Vec::new(),
            l7: None,
            authentication: None,
        };
        if self.enforcement == EnforcementMode::Never {
            return allowed(DecisionKind::EnforcementDisabled);
        }
        let Some(ep) = self.endpoints.get(&endpoint) else {
            return allowed(DecisionKind::NotEnforced);
        };
        let dp = ep.direction(direction);
        let verdict = dp.lookup(peer, proto, port);
        let mut d = allowed(DecisionKind::NotEnforced);
        d.enforced = dp.enforced;
        let deny = |d: &mut Decision, reason: DropReason, kind| {
            d.kind = kind;
            if self.audit_mode {
                d.verdict = Verdict::Audit;
                d.audit_drop_reason = Some(reason);
            } else {
                d.verdict = Verdict::Denied;
                d.drop_reason = Some(reason);
            }
        };
        if !dp.fail_closed.is_empty() {
            d.rejected = dp.fail_closed.clone();
            deny(&mut d, DropReason::PolicyDenied, DecisionKind::FailClosed);
            return d;
        }
        match verdict {
            Some(v) if !v.denied_by.is_empty() => {
                d.denied_by = v.denied_by.clone();
                d.allowed_by = v.allowed_by.clone();
                deny(&mut d, DropReason::PolicyDenyList, DecisionKind::DeniedByRule);
            }
            Some(v) if !v.allowed_by.is_empty() => {
                d.kind = DecisionKind::AllowedByRule;
                d.allowed_by = v.allowed_by.clone();
                d.l7 = v.effective_l7();
                d.authentication = v.auth.filter(|a| *a != AuthMode::Disabled);
            }
            _ if dp.enforced => deny(&mut d, DropReason::PolicyDenied, DecisionKind::DefaultDeny),
            _ => {}
        }
        d
    }
}

impl DirectionPolicy {
    /// The merged verdict for a peer and port, if any rule covers it.
    pub fn lookup(&self, peer: Identity, proto: Protocol, port: u16) -> Option<PortVerdict> {
        let specific = self.by_peer.get(&peer).and_then(|t| t.lookup(proto, port));
        let any = self.any_peer.lookup(proto, port);
        PortVerdict::merge(specific, any)
    }

    /// Number of peers with peer-specific entries.
    pub fn peer_count(&self) -> usize {
        self.by_peer.len()
    }
}

/// A resolve-time conflict, attributed to the later policy.
struct Conflict {
    policy_index: Option<usize>,
    message: String,
}

struct Resolver<'a> {
    config: &'a Config,
    universe: &'a Universe,
    rules: &'a [Rule],
    rejected: &'a [RejectedRule],
    /// Peer identities per selector, computed once for all endpoints.
    peer_cache: std::cell::RefCell<HashMap<PeerSelector, Arc<Vec<Identity>>>>,
    index_of: HashMap<*const PolicyRef, usize>,
}

/// The peers an entry applies to, resolved.
enum PeerSet {
    Any,
    Some(BTreeSet<Identity>),
}

impl<'a> Resolver<'a> {
    fn new(config: &'a Config, universe: &'a Universe, rules: &'a [Rule], rejected: &'a [RejectedRule]) -> Self {
        let index_of = rules
            .iter()
            .map(|r| (Arc::as_ptr(&r.origin), r.policy_index))
            .collect();
        Self {
            config,
            universe,
            rules,
            rejected,
            peer_cache: Default::default(),
            index_of,
        }
    }

    fn resolve_all(&self) -> Result<HashMap<Identity, EndpointPolicy>, Conflict> {
        let ids: BTreeSet<Identity> = self.universe.endpoints().iter().map(|e| e.identity).collect();
        let mut out = HashMap::new();
        for id in ids {
            out.insert(id, self.resolve_endpoint(id)?);
        }
        Ok(out)
    }

    fn subject_matches(&self, subject: &Subject, endpoint: Identity, labels: &LabelSet) -> bool {
        match subject {
            Subject::Endpoints(sel) => endpoint != Identity::HOST && sel.matches(labels),
            Subject::Nodes(sel) => endpoint == Identity::HOST && sel.matches(labels),
        }
    }

    fn resolve_endpoint(&self, endpoint: Identity) -> Result<EndpointPolicy, Conflict> {
        let Some(info) = self.universe.identity(endpoint) else {
            return Ok(EndpointPolicy::default());
        };
        let mut policy = EndpointPolicy::default();
        if self.config.node.enforcement == EnforcementMode::Never {
            return Ok(policy);
        }
        let always = self.config.node.enforcement == EnforcementMode::Always;
        policy.ingress.enforced = always;
        policy.egress.enforced = always;

        let selecting: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| self.subject_matches(&r.subject, endpoint, &info.labels))
            .collect();
        for r in self.rejected {
            if self.subject_matches(&r.subject, endpoint, &info.labels) {
                if r.ingress {
                    push_unique(&mut policy.ingress.fail_closed, &r.origin);
                }
                if r.egress {
                    push_unique(&mut policy.egress.fail_closed, &r.origin);
                }
            }
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            let dp = match direction {
                Direction::Ingress => &mut policy.ingress,
                Direction::Egress => &mut policy.egress,
            };
            let mut any_items = Vec::new();
            let mut peer_items: BTreeMap<Identity, Vec<(Protocol, PortRange, Arc<Contribution>)>> = BTreeMap::new();
            let mut all_items = Vec::new();
            for rule in &selecting {
                let section = match direction {
                    Direction::Ingress => rule.ingress.as_ref(),
                    Direction::Egress => rule.egress.as_ref(),
                };
                let Some(section) = section else { continue };
                dp.selected = true;
                dp.enforced |= section.default_deny;
                for entry in &section.entries {
                    self.contribute(
                        rule,
                        section.default_deny,
                        entry,
                        endpoint,
                        direction,
                        &mut any_items,
                        &mut peer_items,
                        &mut all_items,
                    );
                }
            }
            self.check_conflicts(&all_items)?;
            dp.any_peer = PortTable::build(&any_items).map_err(|c| self.l7_conflict(c))?;
            for (peer, items) in peer_items {
                let table = PortTable::build(&items).map_err(|c| self.l7_conflict(c))?;
                dp.by_peer.insert(peer, table);
            }
        }
        Ok(policy)
    }

    #[allow(clippy::too_many_arguments)]
    fn contribute(
        &self,
        rule: &Rule,
        default_deny: bool,
        entry: &Entry,
        endpoint: Identity,
        direction: Direction,
        any_items: &mut Vec<(Protocol, PortRange, Arc<Contribution>)>,
        peer_items: &mut BTreeMap<Identity, Vec<(Protocol, PortRange, Arc<Contribution>)>>,
        all_items: &mut Vec<(Protocol, PortRange, Arc<Contribution>, Option<PeerSelectorKey>)>,
    ) {
        let peers = self.peers(&entry.peers);
        if let PeerSet::Some(set) = &peers {
            if set.is_empty() {
                return;
            }
        }
        let selector_key = peer_selector_key(&entry.peers);
        let mut push = |target: Option<Identity>, proto: Protocol, range: PortRange, c: &Arc<Contribution>| {
            all_items.push((proto, range, c.clone(), selector_key.clone()));
            match target {
                None => any_items.push((proto, range, c.clone())),
                Some(peer) => peer_items.entry(peer).or_default().push((proto, range, c.clone())),
            }
        };
        let targets = |peers: &PeerSet| -> Vec<Option<Identity>> {
            match peers {
                PeerSet::Any => vec![None],
                PeerSet::Some(set) => set.iter().map(|p| Some(*p)).collect(),
            }
        };
        match &entry.ports {
            Ports::All => {
                let c = Arc::new(Contribution {
                    deny: entry.deny,
                    origin: rule.origin.clone(),
                    l7: None,
                    implicit_l7_wildcard: false,
                    auth: entry.auth,
                });
                for t in targets(&peers) {
                    for proto in Protocol::ALL {
                        push(t, proto, PortRange::ALL, &c);
                    }
                }
            }
            Ports::List(list) => {
                for pe in list {
                    let c = Arc::new(Contribution {
                        deny: entry.deny,
                        origin: rule.origin.clone(),
                        l7: if entry.deny { None } else { pe.l7.clone() },
                        implicit_l7_wildcard: !default_deny,
                        auth: entry.auth,
                    });
                    match &pe.port {
                        PortSpec::Range(range) => {
                            for t in targets(&peers) {
                                for proto in &pe.protocols {
                                    push(t, *proto, *range, &c);
                                }
                            }
                        }
                        // A named port is the destination's: on ingress this endpoint's,
                        // on egress each peer's (so it cannot go to the any-peer table).
                        PortSpec::Named(name) => match direction {
                            Direction::Ingress => {
                                for np in self.universe.named_ports(endpoint) {
                                    if &np.name == name && pe.protocols.contains(&np.protocol) {
                                        for t in targets(&peers) {
                                            push(t, np.protocol, PortRange::single(np.port), &c);
                                        }
                                    }
                                }
                            }
                            Direction::Egress => {
                                let candidates: Vec<Identity> = match &peers {
                                    PeerSet::Any => self.universe.identities().map(|i| i.id).collect(),
                                    PeerSet::Some(set) => set.iter().copied().collect(),
                                };
                                for peer in candidates {
                                    for np in self.universe.named_ports(peer) {
                                        if &np.name == name && pe.protocols.contains(&np.protocol) {
                                            push(Some(peer), np.protocol, PortRange::single(np.port), &c);
                                        }
                                    }
                                }
                            }
                        },
                    }
                }
            }
        }
    }

    fn peers(&self, peers: &Peers) -> PeerSet {
        match peers {
            Peers::Any => PeerSet::Any,
            Peers::Selected(list) if list.iter().any(PeerSelector::is_wildcard) => PeerSet::Any,
            Peers::Selected(list) => {
                let mut set = BTreeSet::new();
                for sel in list {
                    set.extend(self.selected(sel).iter().copied());
                }
                PeerSet::Some(set)
            }
        }
    }

    fn selected(&self, sel: &PeerSelector) -> Arc<Vec<Identity>> {
        if let Some(hit) = self.peer_cache.borrow().get(sel) {
            return hit.clone();
        }
        let ids: Vec<Identity> = self
            .universe
            .identities()
            .filter(|info| match sel {
                PeerSelector::Labels(s) => s.matches(&info.labels),
                PeerSelector::Cidr { net, except } => cidr_selects(info, *net, except),
                PeerSelector::Fqdn(pattern) => info
                    .labels
                    .iter()
                    .any(|l| l.key.source == crate::labels::LabelSource::Fqdn && &l.key.key == pattern),
            })
            .map(|info| info.id)
            .collect();
        let ids = Arc::new(ids);
        self.peer_cache.borrow_mut().insert(sel.clone(), ids.clone());
        ids
    }

    /// Cilium's merge checks that span peers: two L7 parsers on one port
    /// (`cannot merge conflicting L7 parsers`), and two explicit authentication modes
    /// for the same selector and port.
    fn check_conflicts(
        &self,
        items: &[(Protocol, PortRange, Arc<Contribution>, Option<PeerSelectorKey>)],
    ) -> Result<(), Conflict> {
        for proto in Protocol::ALL {
            let mut ranged: Vec<(PortRange, &(Protocol, PortRange, Arc<Contribution>, Option<PeerSelectorKey>))> =
                items.iter().filter(|i| i.0 == proto).map(|i| (i.1, i)).collect();
            if ranged.len() < 2 {
                continue;
            }
            ranged.sort_by_key(|(r, _)| (r.lo, r.hi));
            let mut found: Option<Conflict> = None;
            super::table::sweep(&ranged, |_, active| {
                if found.is_some() {
                    return;
                }
                let mut l7: Option<&Arc<Contribution>> = None;
                let mut auth: HashMap<&PeerSelectorKey, &Arc<Contribution>> = HashMap::new();
                for (_, _, c, key) in active.iter().map(|x| *x) {
                    if c.deny {
                        continue;
                    }
                    if let Some(rule) = &c.l7 {
                        match l7 {
                            Some(first) if first.l7.as_ref().map(|r| r.rules.kind()) != Some(rule.rules.kind()) => {
                                let a = first.l7.as_ref().map(|r| r.rules.kind().as_str()).unwrap_or("");
                                found = Some(self.conflict_between(
                                    first,
                                    c,
                                    format!("cannot merge conflicting L7 parsers ({a}/{})", rule.rules.kind().as_str()),
                                ));
                                return;
                            }
                            Some(_) => {}
                            None => l7 = Some(c),
                        }
                    }
                    if let (Some(mode), Some(key)) = (c.auth, key.as_ref()) {
                        match auth.get(key) {
                            Some(first) if first.auth.is_some_and(|m| m != mode) => {
                                let a = first.auth.map(AuthMode::as_str).unwrap_or("");
                                found = Some(self.conflict_between(
                                    first,
                                    c,
                                    format!("cannot merge conflicting authentication types ({a}/{})", mode.as_str()),
                                ));
                                return;
                            }
                            Some(_) => {}
                            None => {
                                auth.insert(key, c);
                            }
                        }
                    }
                }
            });
            if let Some(c) = found {
                return Err(c);
            }
        }
        Ok(())
    }

    /// A conflict is blamed on the later of the two policies (in load order), so the
    /// one that was there first keeps working.
    fn conflict_between(&self, a: &Contribution, b: &Contribution, what: String) -> Conflict {
        let ia = self.index_of.get(&Arc::as_ptr(&a.origin)).copied();
        let ib = self.index_of.get(&Arc::as_ptr(&b.origin)).copied();
        let later = match (ia, ib) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        let (blamed, other) = if later == ib { (&b.origin, &a.origin) } else { (&a.origin, &b.origin) };
        Conflict {
            policy_index: later,
            message: format!("{what}: policy {blamed} conflicts with {other} on the same port; {blamed} is rejected"),
        }
    }

    fn l7_conflict(&self, c: L7Conflict) -> Conflict {
        let ia = self.index_of.get(&Arc::as_ptr(&c.first.1)).copied();
        let ib = self.index_of.get(&Arc::as_ptr(&c.second.1)).copied();
        let later = match (ia, ib) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        Conflict {
            policy_index: later,
            message: format!(
                "cannot merge conflicting L7 parsers ({}/{}): policies {} and {}",
                c.first.0.as_str(),
                c.second.0.as_str(),
                c.first.1,
                c.second.1
            ),
        }
    }
}

/// Identifies "the same selector" for the authentication-mode conflict check.
type PeerSelectorKey = String;

fn peer_selector_key(peers: &Peers) -> Option<PeerSelectorKey> {
    match peers {
        Peers::Any => Some("*".into()),
        Peers::Selected(list) => Some(format!("{list:?}")),
    }
}

fn cidr_selects(info: &crate::universe::IdentityInfo, net: ipnet::IpNet, except: &[ipnet::IpNet]) -> bool {
    let prefix = match &info.kind {
        IdentityKind::Cidr(p) => *p,
        // The world identities stand for the whole address family.
        IdentityKind::Reserved if info.id == Identity::WORLD_IPV4 => ipnet::IpNet::V4(Default::default()),
        IdentityKind::Reserved if info.id == Identity::WORLD_IPV6 => ipnet::IpNet::V6(Default::default()),
        _ => return false,
    };
    net.contains(&prefix) && !except.iter().any(|e| e.contains(&prefix))
}

fn push_unique(list: &mut Vec<Arc<PolicyRef>>, p: &Arc<PolicyRef>) {
    if !list.iter().any(|x| x == p) {
        list.push(p.clone());
    }
}
