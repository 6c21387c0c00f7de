//! Resolution of translated rules into per-endpoint, per-direction port tables.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sluice_config::{Config, Diagnostic, EnforcementMode, FieldPath};

use super::rules::{
    Entry, PeerSelector, Peers, PortSpec, Ports, RejectedRule, Rule, Subject, translate,
};
use super::table::{Contribution, L7Conflict, PortTable, PortVerdict};
use super::verdict::{AuthMode, Decision, DecisionKind, DropReason, Verdict};
use super::{Direction, PolicyRef};
use crate::fqdn::FqdnIdentity;
use crate::identity::Identity;
use crate::labels::{LabelSet, LabelSource, meta};
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
    /// Every `toFQDNs` selector of the policies in force, lowercased, sorted.
    fqdn_selectors: Arc<[String]>,
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
        Self::compile_inner(config, extra, &[])
    }

    /// Compiles a configuration with the FQDN identities a node learned from DNS
    /// answers (see [`crate::fqdn`]): they keep their numbers, and the rules that select
    /// them (`toFQDNs`, and CIDR and entity rules covering their addresses) resolve to
    /// per-peer entries as for any other identity.
    pub fn compile_with_fqdn(config: &Config, fqdn: &[FqdnIdentity]) -> Result<Self, CompileError> {
        Self::compile_inner(config, &[], fqdn)
    }

    fn compile_inner(
        config: &Config,
        extra: &[LabelSet],
        fqdn: &[FqdnIdentity],
    ) -> Result<Self, CompileError> {
        let mut skip = BTreeSet::new();
        let mut diagnostics = Vec::new();
        // Each round rejects at least one more policy or ends, so this terminates.
        loop {
            let translation = translate(config, &skip);
            let universe = Universe::build_with_fqdn(config, &translation.cidrs, extra, fqdn)?;
            let resolver =
                Resolver::new(config, &universe, &translation.rules, &translation.rejected);
            match resolver.resolve_all() {
                Ok(endpoints) => {
                    return Ok(Self {
                        universe,
                        endpoints,
                        enforcement: config.node.enforcement,
                        audit_mode: config.node.audit_mode,
                        fqdn_selectors: translation.fqdn_selectors.into_iter().collect(),
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
        let universe = Universe::build_with_fqdn(config, &translation.cidrs, extra, fqdn)?;
        let resolver = Resolver::new(config, &universe, &translation.rules, &translation.rejected);
        let endpoints = resolver.resolve_all().unwrap_or_default();
        Ok(Self {
            universe,
            endpoints,
            enforcement: config.node.enforcement,
            audit_mode: config.node.audit_mode,
            fqdn_selectors: translation.fqdn_selectors.into_iter().collect(),
            diagnostics,
        })
    }

    /// Every `toFQDNs` selector of the policies in force (lowercased, sorted, each
    /// once): what a learned name is matched against to label its addresses.
    pub fn fqdn_selectors(&self) -> &[String] {
        &self.fqdn_selectors
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
        let verdict = dp.lookup(peer, proto, port).merged();
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
                deny(
                    &mut d,
                    DropReason::PolicyDenyList,
                    DecisionKind::DeniedByRule,
                );
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

impl CompiledPolicy {
    /// The same decision as [`CompiledPolicy::decide`], without the reasons and without
    /// allocating: the per-connection path.
    pub fn outcome(
        &self,
        endpoint: Identity,
        direction: Direction,
        peer: Identity,
        proto: Protocol,
        port: u16,
    ) -> Outcome {
        let allowed = Outcome {
            verdict: Verdict::Allowed,
            drop_reason: None,
            needs_l7: false,
            auth: None,
        };
        if self.enforcement == EnforcementMode::Never {
            return allowed;
        }
        let Some(ep) = self.endpoints.get(&endpoint) else {
            return allowed;
        };
        let dp = ep.direction(direction);
        let deny = |reason| Outcome {
            verdict: if self.audit_mode {
                Verdict::Audit
            } else {
                Verdict::Denied
            },
            drop_reason: Some(reason),
            needs_l7: false,
            auth: None,
        };
        if !dp.fail_closed.is_empty() {
            return deny(DropReason::PolicyDenied);
        }
        let l = dp.lookup(peer, proto, port);
        if l.denied() {
            deny(DropReason::PolicyDenyList)
        } else if l.allowed() {
            Outcome {
                needs_l7: l.needs_l7(),
                auth: l.auth().filter(|a| *a != AuthMode::Disabled),
                ..allowed
            }
        } else if dp.enforced {
            deny(DropReason::PolicyDenied)
        } else {
            allowed
        }
    }
}

/// What the kernel does on its own with traffic the proxy never sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelAction {
    /// Allowed at L3/L4, nothing more to check.
    Allow,
    /// Allowed only with L7 rules or authentication: only the proxy may carry it.
    Proxy,
    /// Denied by a deny rule.
    Deny(DropReason),
}

/// One entry of an endpoint direction's policy as the kernel holds it: `peer` `None`
/// applies to peers without entries of their own. Entries naming a peer already include
/// the any-peer rules for every port either covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRule {
    pub peer: Option<Identity>,
    pub proto: Protocol,
    pub ports: PortRange,
    pub action: KernelAction,
}

/// An endpoint direction's L3/L4 policy, flattened for the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelPolicy {
    /// Traffic no rule covers is dropped (133).
    pub default_deny: bool,
    pub rules: Vec<KernelRule>,
}

impl CompiledPolicy {
    /// The L3/L4 policy of `endpoint` in `direction` for `protocols`, flattened into
    /// per-peer port ranges, for the kernel to decide what never reaches the proxy.
    /// Audit mode is not applied here (the kernel has its own switch). A direction
    /// failed closed by a rejected policy is default deny with no rules.
    pub fn kernel_policy(
        &self,
        endpoint: Identity,
        direction: Direction,
        protocols: &[Protocol],
    ) -> KernelPolicy {
        if self.enforcement == EnforcementMode::Never {
            return KernelPolicy::default();
        }
        let Some(ep) = self.endpoints.get(&endpoint) else {
            return KernelPolicy::default();
        };
        let dp = ep.direction(direction);
        if !dp.fail_closed.is_empty() {
            return KernelPolicy {
                default_deny: true,
                rules: Vec::new(),
            };
        }
        let mut rules = Vec::new();
        for &proto in protocols {
            for (range, v) in dp.any_peer.segments(proto) {
                let lookup = PortLookup {
                    specific: None,
                    any: Some(v),
                };
                push_rule(&mut rules, None, proto, range, &lookup);
            }
            let mut peers: Vec<_> = dp.by_peer.iter().collect();
            peers.sort_by_key(|(id, _)| **id);
            for (peer, table) in peers {
                let mut bounds: Vec<u32> = table
                    .segments(proto)
                    .chain(dp.any_peer.segments(proto))
                    .flat_map(|(r, _)| [u32::from(r.lo), u32::from(r.hi) + 1])
                    .collect();
                bounds.sort_unstable();
                bounds.dedup();
                for w in bounds.windows(2) {
                    // Both bounds come from u16 ports (w[1] - 1 <= 65535).
                    let range = PortRange {
                        lo: u16::try_from(w[0]).unwrap_or(u16::MAX),
                        hi: u16::try_from(w[1] - 1).unwrap_or(u16::MAX),
                    };
                    let lookup = PortLookup {
                        specific: table.lookup(proto, range.lo),
                        any: dp.any_peer.lookup(proto, range.lo),
                    };
                    push_rule(&mut rules, Some(*peer), proto, range, &lookup);
                }
            }
        }
        KernelPolicy {
            default_deny: dp.enforced,
            rules,
        }
    }
}

/// Appends the rule a lookup means for `range`, merged into the previous one when it
/// continues it with the same action.
fn push_rule(
    rules: &mut Vec<KernelRule>,
    peer: Option<Identity>,
    proto: Protocol,
    range: PortRange,
    lookup: &PortLookup<'_>,
) {
    let action = if lookup.denied() {
        KernelAction::Deny(DropReason::PolicyDenyList)
    } else if lookup.allowed() {
        let auth = lookup.auth().filter(|a| *a != AuthMode::Disabled);
        if lookup.needs_l7() || auth.is_some() {
            KernelAction::Proxy
        } else {
            KernelAction::Allow
        }
    } else {
        return;
    };
    if let Some(last) = rules.last_mut()
        && last.peer == peer
        && last.proto == proto
        && last.action == action
        && u32::from(last.ports.hi) + 1 == u32::from(range.lo)
    {
        last.ports.hi = range.hi;
        return;
    }
    rules.push(KernelRule {
        peer,
        proto,
        ports: range,
        action,
    });
}

impl DirectionPolicy {
    /// What the tables hold for a peer and port: one hash lookup and at most two
    /// binary searches, nothing allocated.
    pub fn lookup(&self, peer: Identity, proto: Protocol, port: u16) -> PortLookup<'_> {
        PortLookup {
            specific: self.by_peer.get(&peer).and_then(|t| t.lookup(proto, port)),
            any: self.any_peer.lookup(proto, port),
        }
    }

    /// Number of peers with peer-specific entries.
    pub fn peer_count(&self) -> usize {
        self.by_peer.len()
    }
}

/// The verdicts covering one peer and port, borrowed from the tables: the
/// peer-specific one and the any-peer one, merged on demand.
#[derive(Debug, Clone, Copy)]
pub struct PortLookup<'a> {
    specific: Option<&'a PortVerdict>,
    any: Option<&'a PortVerdict>,
}

impl PortLookup<'_> {
    fn sides(&self) -> impl Iterator<Item = &PortVerdict> {
        self.specific.into_iter().chain(self.any)
    }

    /// An explicit deny matches.
    pub fn denied(&self) -> bool {
        self.sides().any(|v| !v.denied_by.is_empty())
    }

    /// An allow matches.
    pub fn allowed(&self) -> bool {
        self.sides().any(|v| !v.allowed_by.is_empty())
    }

    /// L7 rules apply: the connection goes through the proxy.
    pub fn needs_l7(&self) -> bool {
        self.sides().any(|v| v.l7.is_some())
    }

    /// The strongest authentication mode of the allows.
    pub fn auth(&self) -> Option<AuthMode> {
        self.sides().filter_map(|v| v.auth).max()
    }

    /// Both sides merged into one verdict (allocates; for reporting).
    pub fn merged(&self) -> Option<PortVerdict> {
        PortVerdict::merge(self.specific, self.any)
    }
}

/// The outcome of one direction without the reasons: what the datapath needs, computed
/// without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Why it is denied, or would be in audit mode.
    pub drop_reason: Option<DropReason>,
    pub needs_l7: bool,
    pub auth: Option<AuthMode>,
}

/// One contribution to a port table: protocol, port range, what it says.
type Item = (Protocol, PortRange, Arc<Contribution>);

/// A contribution with the selector it came from, for the cross-peer merge checks.
struct Keyed {
    proto: Protocol,
    range: PortRange,
    contribution: Arc<Contribution>,
    selector: Option<PeerSelectorKey>,
}

/// The contributions of one direction of one endpoint, before they become tables.
#[derive(Default)]
struct DirectionItems {
    any_peer: Vec<Item>,
    by_peer: BTreeMap<Identity, Vec<Item>>,
    keyed: Vec<Keyed>,
}

/// A resolve-time conflict, attributed to the later policy.
struct Conflict {
    policy_index: Option<usize>,
    message: String,
}

struct Resolver<'a> {
    config: &'a Config,
    universe: &'a Universe,
    rejected: &'a [RejectedRule],
    /// Peer identities per selector, computed once for all endpoints.
    peer_cache: std::cell::RefCell<HashMap<PeerSelector, Arc<Vec<Identity>>>>,
    index_of: HashMap<*const PolicyRef, usize>,
    /// Rules whose subject requires a namespace, by that namespace; the others apply
    /// everywhere. Most rules are namespaced (every CNP and KNP subject is), so an
    /// endpoint tests only its namespace's rules instead of all of them.
    rules_by_ns: HashMap<&'a str, Vec<&'a Rule>>,
    rules_anywhere: Vec<&'a Rule>,
    /// Identities by the namespace they carry, for selecting peers the same way.
    identities_by_ns: HashMap<&'a str, Vec<&'a crate::universe::IdentityInfo>>,
    /// The pseudo-policy `allowed_by` names for `allowLocalhost`.
    allow_localhost: Arc<PolicyRef>,
}

/// The peers an entry applies to, resolved.
enum PeerSet {
    Any,
    Some(BTreeSet<Identity>),
}

impl<'a> Resolver<'a> {
    fn new(
        config: &'a Config,
        universe: &'a Universe,
        rules: &'a [Rule],
        rejected: &'a [RejectedRule],
    ) -> Self {
        let index_of = rules
            .iter()
            .map(|r| (Arc::as_ptr(&r.origin), r.policy_index))
            .collect();
        let mut rules_by_ns: HashMap<&str, Vec<&Rule>> = HashMap::new();
        let mut rules_anywhere = Vec::new();
        for rule in rules {
            match subject_namespace(&rule.subject) {
                Some(ns) => rules_by_ns.entry(ns).or_default().push(rule),
                None => rules_anywhere.push(rule),
            }
        }
        let mut identities_by_ns: HashMap<&str, Vec<&crate::universe::IdentityInfo>> =
            HashMap::new();
        for info in universe.identities() {
            if let Some(ns) = namespace_of(&info.labels) {
                identities_by_ns.entry(ns).or_default().push(info);
            }
        }
        Self {
            config,
            universe,
            rejected,
            peer_cache: Default::default(),
            index_of,
            rules_by_ns,
            rules_anywhere,
            identities_by_ns,
            allow_localhost: Arc::new(PolicyRef {
                kind: "NodeConfig",
                namespace: None,
                name: "allowLocalhost".into(),
            }),
        }
    }

    fn resolve_all(&self) -> Result<HashMap<Identity, EndpointPolicy>, Conflict> {
        let ids: BTreeSet<Identity> = self
            .universe
            .endpoints()
            .iter()
            .map(|e| e.identity)
            .collect();
        let mut out = HashMap::new();
        for id in ids {
            out.insert(id, self.resolve_endpoint(id)?);
        }
        Ok(out)
    }

    fn subject_matches(&self, subject: &Subject, endpoint: Identity, labels: &LabelSet) -> bool {
        subject.selects(endpoint, labels)
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

        let local = namespace_of(&info.labels)
            .and_then(|ns| self.rules_by_ns.get(ns))
            .map_or(&[][..], Vec::as_slice);
        let mut selecting: Vec<&Rule> = local
            .iter()
            .chain(self.rules_anywhere.iter())
            .copied()
            .filter(|r| self.subject_matches(&r.subject, endpoint, &info.labels))
            .collect();
        // Load order, so that results never depend on how rules were indexed.
        selecting.sort_by_key(|r| (r.policy_index, *r as *const Rule));
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
            let mut items = DirectionItems::default();
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
                        &mut items,
                    );
                }
            }
            if direction == Direction::Ingress
                && endpoint != Identity::HOST
                && self.config.node.allow_localhost
            {
                // Cilium's `allow-localhost`: the local host reaches every local workload
                // (probes, health checks) whatever its ingress rules; denies still win.
                let c = Arc::new(Contribution {
                    deny: false,
                    origin: self.allow_localhost.clone(),
                    l7: None,
                    implicit_l7_wildcard: false,
                    auth: None,
                });
                let host = items.by_peer.entry(Identity::HOST).or_default();
                for proto in Protocol::ALL {
                    host.push((proto, PortRange::ALL, c.clone()));
                }
            }
            self.check_conflicts(&items.keyed)?;
            dp.any_peer = PortTable::build(&items.any_peer).map_err(|c| self.l7_conflict(c))?;
            for (peer, items) in items.by_peer {
                let table = PortTable::build(&items).map_err(|c| self.l7_conflict(c))?;
                dp.by_peer.insert(peer, table);
            }
        }
        Ok(policy)
    }

    fn contribute(
        &self,
        rule: &Rule,
        default_deny: bool,
        entry: &Entry,
        endpoint: Identity,
        direction: Direction,
        items: &mut DirectionItems,
    ) {
        let peers = self.peers(&entry.peers);
        if let PeerSet::Some(set) = &peers
            && set.is_empty()
        {
            return;
        }
        let selector_key = peer_selector_key(&entry.peers);
        let mut push =
            |target: Option<Identity>, proto: Protocol, range: PortRange, c: &Arc<Contribution>| {
                items.keyed.push(Keyed {
                    proto,
                    range,
                    contribution: c.clone(),
                    selector: selector_key.clone(),
                });
                match target {
                    None => items.any_peer.push((proto, range, c.clone())),
                    Some(peer) => {
                        items
                            .by_peer
                            .entry(peer)
                            .or_default()
                            .push((proto, range, c.clone()))
                    }
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
                                    PeerSet::Any => {
                                        self.universe.identities().map(|i| i.id).collect()
                                    }
                                    PeerSet::Some(set) => set.iter().copied().collect(),
                                };
                                for peer in candidates {
                                    for np in self.universe.named_ports(peer) {
                                        if &np.name == name && pe.protocols.contains(&np.protocol) {
                                            push(
                                                Some(peer),
                                                np.protocol,
                                                PortRange::single(np.port),
                                                &c,
                                            );
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
        let candidates: Box<dyn Iterator<Item = &crate::universe::IdentityInfo>> = match sel {
            PeerSelector::Labels(s) => match s.required_value(meta::NAMESPACE) {
                Some(ns) => Box::new(self.identities_by_ns.get(ns).into_iter().flatten().copied()),
                None => Box::new(self.universe.identities()),
            },
            _ => Box::new(self.universe.identities()),
        };
        let ids: Vec<Identity> = candidates
            .filter(|info| match sel {
                PeerSelector::Labels(s) => s.matches(&info.labels),
                PeerSelector::Cidr { net, except } => cidr_selects(info, *net, except),
                PeerSelector::Fqdn(pattern) => info.labels.iter().any(|l| {
                    l.key.source == crate::labels::LabelSource::Fqdn && &l.key.key == pattern
                }),
            })
            .map(|info| info.id)
            .collect();
        let ids = Arc::new(ids);
        self.peer_cache
            .borrow_mut()
            .insert(sel.clone(), ids.clone());
        ids
    }

    /// Cilium's merge checks that span peers: two L7 parsers on one port
    /// (`cannot merge conflicting L7 parsers`), and two explicit authentication modes
    /// for the same selector and port.
    fn check_conflicts(&self, items: &[Keyed]) -> Result<(), Conflict> {
        for proto in Protocol::ALL {
            let mut ranged: Vec<(PortRange, &Keyed)> = items
                .iter()
                .filter(|i| i.proto == proto)
                .map(|i| (i.range, i))
                .collect();
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
                for keyed in active.iter().copied() {
                    let (c, key) = (&keyed.contribution, &keyed.selector);
                    if c.deny {
                        continue;
                    }
                    if let Some(rule) = &c.l7 {
                        match l7 {
                            Some(first)
                                if first.l7.as_ref().map(|r| r.rules.kind())
                                    != Some(rule.rules.kind()) =>
                            {
                                let a = first
                                    .l7
                                    .as_ref()
                                    .map(|r| r.rules.kind().as_str())
                                    .unwrap_or("");
                                found = Some(self.conflict_between(
                                    first,
                                    c,
                                    format!(
                                        "cannot merge conflicting L7 parsers ({a}/{})",
                                        rule.rules.kind().as_str()
                                    ),
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
                                    format!(
                                        "cannot merge conflicting authentication types ({a}/{})",
                                        mode.as_str()
                                    ),
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
        let (blamed, other) = if later == ib {
            (&b.origin, &a.origin)
        } else {
            (&a.origin, &b.origin)
        };
        Conflict {
            policy_index: later,
            message: format!(
                "{what}: policy {blamed} conflicts with {other} on the same port; {blamed} is rejected"
            ),
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

/// The namespace a subject is limited to, if any.
fn subject_namespace(subject: &Subject) -> Option<&str> {
    match subject {
        Subject::Endpoints(sel) => sel.required_value(meta::NAMESPACE),
        Subject::Nodes(_) => None,
    }
}

fn namespace_of(labels: &LabelSet) -> Option<&str> {
    labels
        .iter()
        .find(|l| l.key.source == LabelSource::K8s && l.key.key == meta::NAMESPACE)
        .map(|l| l.value.as_str())
}

/// Identifies "the same selector" for the authentication-mode conflict check.
type PeerSelectorKey = String;

fn peer_selector_key(peers: &Peers) -> Option<PeerSelectorKey> {
    match peers {
        Peers::Any => Some("*".into()),
        Peers::Selected(list) => Some(format!("{list:?}")),
    }
}

fn cidr_selects(
    info: &crate::universe::IdentityInfo,
    net: ipnet::IpNet,
    except: &[ipnet::IpNet],
) -> bool {
    let prefix = match &info.kind {
        // An FQDN identity's addresses lie where its base prefix is.
        IdentityKind::Cidr(p) | IdentityKind::Fqdn(p) => *p,
        // The world identities stand for the whole address family.
        IdentityKind::Reserved if info.id == Identity::WORLD_IPV4 => {
            ipnet::IpNet::V4(Default::default())
        }
        IdentityKind::Reserved if info.id == Identity::WORLD_IPV6 => {
            ipnet::IpNet::V6(Default::default())
        }
        _ => return false,
    };
    net.contains(&prefix) && !except.iter().any(|e| e.contains(&prefix))
}

fn push_unique(list: &mut Vec<Arc<PolicyRef>>, p: &Arc<PolicyRef>) {
    if !list.iter().any(|x| x == p) {
        list.push(p.clone());
    }
}
