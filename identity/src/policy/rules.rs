//! Translation of CNP / CCNP / KNP into one internal rule form.
//!
//! This is where Cilium's implicit scoping happens: a CNP's subject and its
//! `fromEndpoints` / `toEndpoints` peers are limited to the policy's namespace, peers to
//! the local cluster, KNP peers follow the NetworkPolicy translation, and nil versus
//! empty peer lists keep their different meanings.

use std::collections::BTreeSet;
use std::sync::Arc;

use ipnet::IpNet;
use sluice_config::types::{
    CidrRule, CiliumPolicy, EgressRule, FqdnSelector, IcmpRule, IngressRule, LabelSelector,
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, PortRule, Rule as CiliumRule, ServiceRef,
};
use sluice_config::{Config, Policy, PolicyKind, RejectedPolicy};

use super::PolicyRef;
use super::table::{L7Rule, L7RuleSet};
use super::verdict::AuthMode;
use crate::identity::{Entity, Identity};
use crate::labels::{LabelKey, LabelSet, LabelSource, meta};
use crate::ports::{PortRange, Protocol, icmp_type_number};
use crate::selector::{Requirement, Selector};

/// Whom a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// Workload endpoints.
    Endpoints(Selector),
    /// The host endpoint (`nodeSelector`, host firewall).
    Nodes(Selector),
}

impl Subject {
    /// Whether the rule applies to `endpoint`, whose labels are `labels`.
    pub(crate) fn selects(&self, endpoint: Identity, labels: &LabelSet) -> bool {
        match self {
            Self::Endpoints(sel) => endpoint != Identity::HOST && sel.matches(labels),
            Self::Nodes(sel) => endpoint == Identity::HOST && sel.matches(labels),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub policy_index: usize,
    pub origin: Arc<PolicyRef>,
    pub subject: Subject,
    pub ingress: Option<Section>,
    pub egress: Option<Section>,
}

/// The rules of one direction of one rule.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// `enableDefaultDeny.<dir>` (true when unset).
    pub default_deny: bool,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub deny: bool,
    pub peers: Peers,
    pub ports: Ports,
    pub auth: Option<AuthMode>,
}

#[derive(Debug, Clone)]
pub(crate) enum Peers {
    /// No peer field: any peer.
    Any,
    /// The union of these selectors; an empty list selects nothing.
    Selected(Vec<PeerSelector>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PeerSelector {
    Labels(Selector),
    /// Identities derived from addresses in `net` but not in any `except`.
    Cidr {
        net: IpNet,
        except: Vec<IpNet>,
    },
    /// Identities learned from DNS answers for names matching the pattern.
    Fqdn(String),
}

#[derive(Debug, Clone)]
pub(crate) enum Ports {
    /// No `toPorts` and no `icmps`: every port of every protocol (L3-only).
    All,
    List(Vec<PortEntry>),
}

#[derive(Debug, Clone)]
pub(crate) struct PortEntry {
    pub port: PortSpec,
    pub protocols: Vec<Protocol>,
    pub l7: Option<Arc<L7Rule>>,
}

#[derive(Debug, Clone)]
pub(crate) enum PortSpec {
    Range(PortRange),
    /// A named port, resolved against the destination's declared ports.
    Named(String),
}

/// Everything translated from a configuration.
#[derive(Debug, Default)]
pub(crate) struct Translation {
    pub rules: Vec<Rule>,
    pub rejected: Vec<RejectedRule>,
    /// Every prefix the rules name (CIDR identities are made for each).
    pub cidrs: BTreeSet<IpNet>,
    /// Every `toFQDNs` selector the rules name, lowercased (as `PeerSelector::Fqdn`).
    pub fqdn_selectors: BTreeSet<String>,
}

/// A rejected policy's subject, failing closed.
#[derive(Debug, Clone)]
pub(crate) struct RejectedRule {
    pub origin: Arc<PolicyRef>,
    pub subject: Subject,
    pub ingress: bool,
    pub egress: bool,
}

pub(crate) fn translate(config: &Config, skip: &BTreeSet<usize>) -> Translation {
    let mut out = Translation::default();
    let cx = Context { config };
    for (index, doc) in config.policies.iter().enumerate() {
        let policy = &doc.resource;
        let origin = Arc::new(PolicyRef::new(
            policy.kind(),
            policy.namespace(),
            policy.name(),
        ));
        if skip.contains(&index) {
            out.rejected
                .extend(rejected_from_valid(&cx, policy, &origin));
            continue;
        }
        match policy {
            Policy::Cilium(p) => cx.cilium(index, &origin, p, &mut out),
            Policy::Kubernetes(p) => cx.knp(index, &origin, p, &mut out),
            Policy::Rejected(r) => out.rejected.extend(cx.rejected(&origin, r)),
        }
    }
    out
}

/// A valid policy turned into a rejected one (an L7 merge conflict found at resolve
/// time): its subjects fail closed in its directions.
fn rejected_from_valid(
    cx: &Context<'_>,
    policy: &Policy,
    origin: &Arc<PolicyRef>,
) -> Vec<RejectedRule> {
    let mut t = Translation::default();
    match policy {
        Policy::Cilium(p) => cx.cilium(0, origin, p, &mut t),
        Policy::Kubernetes(p) => cx.knp(0, origin, p, &mut t),
        Policy::Rejected(r) => return cx.rejected(origin, r),
    }
    t.rules
        .into_iter()
        .map(|r| RejectedRule {
            origin: origin.clone(),
            subject: r.subject,
            ingress: r.ingress.is_some(),
            egress: r.egress.is_some(),
        })
        .collect()
}

struct Context<'a> {
    config: &'a Config,
}

impl Context<'_> {
    fn cluster(&self) -> &str {
        &self.config.node.cluster_name
    }

    fn cilium(
        &self,
        index: usize,
        origin: &Arc<PolicyRef>,
        p: &CiliumPolicy,
        out: &mut Translation,
    ) {
        let namespace = cilium_namespace(origin, p);
        for rule in p.spec.iter().chain(p.specs.iter().flatten()) {
            if let Some(r) = self.cilium_rule(index, origin, namespace, rule, out) {
                out.rules.push(r);
            }
        }
    }

    fn cilium_rule(
        &self,
        index: usize,
        origin: &Arc<PolicyRef>,
        namespace: Option<&str>,
        rule: &CiliumRule,
        out: &mut Translation,
    ) -> Option<Rule> {
        let subject = cilium_subject(rule, namespace)?;
        let ingress = has_any(&rule.ingress) || has_any(&rule.ingress_deny);
        let egress = has_any(&rule.egress) || has_any(&rule.egress_deny);
        let dd = rule.enable_default_deny.as_ref();
        let ingress = ingress.then(|| {
            let mut entries = Vec::new();
            for r in rule.ingress.iter().flatten() {
                entries.push(self.ingress_entry(origin, namespace, r, false, out));
            }
            for r in rule.ingress_deny.iter().flatten() {
                entries.push(self.ingress_entry(origin, namespace, r, true, out));
            }
            Section {
                default_deny: dd.and_then(|d| d.ingress).unwrap_or(true),
                entries,
            }
        });
        let egress = egress.then(|| {
            let mut entries = Vec::new();
            for r in rule.egress.iter().flatten() {
                entries.push(self.egress_entry(origin, namespace, r, false, out));
            }
            for r in rule.egress_deny.iter().flatten() {
                entries.push(self.egress_entry(origin, namespace, r, true, out));
            }
            Section {
                default_deny: dd.and_then(|d| d.egress).unwrap_or(true),
                entries,
            }
        });
        Some(Rule {
            policy_index: index,
            origin: origin.clone(),
            subject,
            ingress,
            egress,
        })
    }

    fn ingress_entry(
        &self,
        origin: &Arc<PolicyRef>,
        ns: Option<&str>,
        r: &IngressRule,
        deny: bool,
        out: &mut Translation,
    ) -> Entry {
        let mut peers: Option<Vec<PeerSelector>> = None;
        let mut add = |list: Vec<PeerSelector>| peers.get_or_insert_with(Vec::new).extend(list);
        if let Some(eps) = &r.from_endpoints {
            add(eps
                .iter()
                .map(|s| PeerSelector::Labels(self.peer_selector(s, ns)))
                .collect());
        }
        if let Some(cidrs) = &r.from_cidr {
            add(self.cidrs(cidrs, out));
        }
        if let Some(set) = &r.from_cidr_set {
            add(self.cidr_set(set, out));
        }
        if let Some(entities) = &r.from_entities {
            add(self.entities(entities));
        }
        if let Some(nodes) = &r.from_nodes {
            add(nodes
                .iter()
                .map(|s| PeerSelector::Labels(self.node_peer(s)))
                .collect());
        }
        // fromRequires / fromGroups are rejected at load time; if one slipped through,
        // it selects nothing rather than everything.
        if r.from_requires.is_some() || r.from_groups.is_some() {
            add(Vec::new());
        }
        entry(
            origin,
            deny,
            peers,
            &r.to_ports,
            &r.icmps,
            r.authentication.as_ref(),
        )
    }

    fn egress_entry(
        &self,
        origin: &Arc<PolicyRef>,
        ns: Option<&str>,
        r: &EgressRule,
        deny: bool,
        out: &mut Translation,
    ) -> Entry {
        let mut peers: Option<Vec<PeerSelector>> = None;
        let mut add = |list: Vec<PeerSelector>| peers.get_or_insert_with(Vec::new).extend(list);
        if let Some(eps) = &r.to_endpoints {
            add(eps
                .iter()
                .map(|s| PeerSelector::Labels(self.peer_selector(s, ns)))
                .collect());
        }
        if let Some(cidrs) = &r.to_cidr {
            add(self.cidrs(cidrs, out));
        }
        if let Some(set) = &r.to_cidr_set {
            add(self.cidr_set(set, out));
        }
        if let Some(entities) = &r.to_entities {
            add(self.entities(entities));
        }
        if let Some(nodes) = &r.to_nodes {
            add(nodes
                .iter()
                .map(|s| PeerSelector::Labels(self.node_peer(s)))
                .collect());
        }
        if let Some(services) = &r.to_services {
            add(services
                .iter()
                .flat_map(|s| self.service_peers(s, ns))
                .collect());
        }
        if let Some(fqdns) = &r.to_fqdns {
            let selectors: Vec<String> = fqdns
                .iter()
                .filter_map(|f| f.match_name.clone().or_else(|| f.match_pattern.clone()))
                .map(|p| p.to_ascii_lowercase())
                .collect();
            out.fqdn_selectors.extend(selectors.iter().cloned());
            add(selectors.into_iter().map(PeerSelector::Fqdn).collect());
        }
        if r.to_requires.is_some() || r.to_groups.is_some() {
            add(Vec::new());
        }
        entry(
            origin,
            deny,
            peers,
            &r.to_ports,
            &r.icmps,
            r.authentication.as_ref(),
        )
    }

    /// Cilium's `getEndpointSelector`: namespace and cluster scoping of a peer.
    fn peer_selector(&self, sel: &LabelSelector, ns: Option<&str>) -> Selector {
        let mut s = Selector::from_config(sel);
        // Reserved-label selectors are left alone (no namespace, no cluster).
        if s.mentions_reserved() {
            return s;
        }
        if !s.mentions_key(meta::NAMESPACE) {
            match ns {
                // CCNP: only endpoints that have a namespace (pods), even for `{}`.
                None => s.push(Requirement::exists(LabelKey::new(
                    LabelSource::K8s,
                    meta::NAMESPACE,
                ))),
                Some(ns) if !s.mentions_key_prefix(meta::NAMESPACE_LABELS_PREFIX) => s.push(
                    Requirement::equals(LabelKey::new(LabelSource::K8s, meta::NAMESPACE), ns),
                ),
                Some(_) => {}
            }
        }
        self.cluster_filter(&mut s);
        s
    }

    fn cluster_filter(&self, s: &mut Selector) {
        if !s.mentions_key(meta::CLUSTER) {
            s.push(Requirement::equals(
                LabelKey::new(LabelSource::K8s, meta::CLUSTER),
                self.cluster(),
            ));
        }
    }

    /// `fromNodes` / `toNodes`: remote nodes only (the local host is `host`).
    fn node_peer(&self, sel: &LabelSelector) -> Selector {
        let mut s = Selector::from_config(sel);
        s.push(Requirement::exists(LabelKey::new(
            LabelSource::Reserved,
            "remote-node",
        )));
        s
    }

    fn cidrs(&self, cidrs: &[String], out: &mut Translation) -> Vec<PeerSelector> {
        cidrs
            .iter()
            .filter_map(|c| parse_cidr(c))
            .map(|net| {
                out.cidrs.insert(net);
                PeerSelector::Cidr {
                    net,
                    except: Vec::new(),
                }
            })
            .collect()
    }

    fn cidr_set(&self, set: &[CidrRule], out: &mut Translation) -> Vec<PeerSelector> {
        let mut peers = Vec::new();
        for r in set {
            let except: Vec<IpNet> = r
                .except
                .iter()
                .flatten()
                .filter_map(|c| parse_cidr(c))
                .collect();
            let mut nets = Vec::new();
            if let Some(net) = r.cidr.as_deref().and_then(parse_cidr) {
                nets.push(net);
            }
            if let Some(name) = &r.cidr_group_ref {
                nets.extend(self.cidr_group_nets(|g| &g.metadata.name == name));
            }
            if let Some(sel) = &r.cidr_group_selector {
                let sel = Selector::from_config(sel);
                nets.extend(self.cidr_group_nets(|g| {
                    let labels = g
                        .metadata
                        .labels
                        .iter()
                        .flatten()
                        .map(|(k, v)| {
                            crate::labels::Label::new(LabelSource::CidrGroup, k.clone(), v.clone())
                        })
                        .collect();
                    sel.matches(&labels)
                }));
            }
            for net in nets {
                out.cidrs.insert(net);
                out.cidrs.extend(except.iter().copied());
                peers.push(PeerSelector::Cidr {
                    net,
                    except: except.clone(),
                });
            }
        }
        peers
    }

    fn cidr_group_nets(
        &self,
        pick: impl Fn(&sluice_config::types::CidrGroup) -> bool,
    ) -> Vec<IpNet> {
        self.config
            .cidr_groups
            .iter()
            .filter(|d| pick(&d.resource))
            .flat_map(|d| {
                d.resource
                    .spec
                    .external_cidrs
                    .iter()
                    .filter_map(|c| parse_cidr(c))
            })
            .collect()
    }

    fn entities(&self, entities: &[String]) -> Vec<PeerSelector> {
        entities
            .iter()
            // Unknown entities are rejected at load time; here they select nothing.
            .filter_map(|e| Entity::parse(e))
            .flat_map(|e| e.selectors(self.cluster()))
            .map(PeerSelector::Labels)
            .collect()
    }

    /// `toServices`: the pods behind the named or selected Services. A Service without
    /// a selector selects nothing.
    fn service_peers(&self, s: &ServiceRef, ns: Option<&str>) -> Vec<PeerSelector> {
        let mut out = Vec::new();
        let services = self.config.services.iter().map(|d| &d.resource);
        let default_ns = ns.unwrap_or("default");
        for svc in services {
            let svc_ns = svc.metadata.namespace.as_deref().unwrap_or("default");
            let by_name = s.k8s_service.as_ref().is_some_and(|k| {
                k.service_name.as_deref() == Some(svc.metadata.name.as_str())
                    && k.namespace.as_deref().unwrap_or(default_ns) == svc_ns
            });
            let by_selector = s.k8s_service_selector.as_ref().is_some_and(|k| {
                let labels = svc
                    .metadata
                    .labels
                    .iter()
                    .flatten()
                    .map(|(k, v)| crate::labels::Label::k8s(k.clone(), v.clone()))
                    .collect();
                Selector::from_config(&k.selector).matches(&labels)
                    && k.namespace.as_deref().unwrap_or(default_ns) == svc_ns
            });
            if !(by_name || by_selector) {
                continue;
            }
            if let Some(selector) = &svc.spec.selector {
                let mut sel = Selector::from_match_labels(selector);
                sel.push(Requirement::equals(
                    LabelKey::new(LabelSource::K8s, meta::NAMESPACE),
                    svc_ns,
                ));
                self.cluster_filter(&mut sel);
                out.push(PeerSelector::Labels(sel));
            }
        }
        out
    }

    fn knp(&self, index: usize, origin: &Arc<PolicyRef>, p: &NetworkPolicy, out: &mut Translation) {
        let ns = p.metadata.namespace.as_deref().unwrap_or("default");
        let subject = Subject::Endpoints(subject_selector(&p.spec.pod_selector, Some(ns)));
        let types: Vec<&str> = match &p.spec.policy_types {
            Some(t) => t.iter().map(String::as_str).collect(),
            None if p.spec.egress.is_some() => vec!["Ingress", "Egress"],
            None => vec!["Ingress"],
        };
        let ingress = types.contains(&"Ingress").then(|| Section {
            default_deny: true,
            entries: p
                .spec
                .ingress
                .iter()
                .flatten()
                .map(|r| self.knp_entry(ns, r.from.as_deref(), r.ports.as_deref(), out))
                .collect(),
        });
        let egress = types.contains(&"Egress").then(|| Section {
            default_deny: true,
            entries: p
                .spec
                .egress
                .iter()
                .flatten()
                .map(|r| self.knp_entry(ns, r.to.as_deref(), r.ports.as_deref(), out))
                .collect(),
        });
        out.rules.push(Rule {
            policy_index: index,
            origin: origin.clone(),
            subject,
            ingress,
            egress,
        });
    }

    /// A NetworkPolicy rule: an absent or empty peer list means every peer, an absent
    /// or empty port list every port (unlike Cilium's own nil-vs-empty rules).
    fn knp_entry(
        &self,
        ns: &str,
        peers: Option<&[NetworkPolicyPeer]>,
        ports: Option<&[NetworkPolicyPort]>,
        out: &mut Translation,
    ) -> Entry {
        let peers = match peers {
            None | Some([]) => Peers::Any,
            Some(list) => Peers::Selected(
                list.iter()
                    .flat_map(|p| self.knp_peer(ns, p, out))
                    .collect(),
            ),
        };
        let ports = match ports {
            None | Some([]) => Ports::All,
            Some(list) => Ports::List(list.iter().filter_map(knp_port).collect()),
        };
        Entry {
            deny: false,
            peers,
            ports,
            auth: None,
        }
    }

    fn knp_peer(
        &self,
        ns: &str,
        p: &NetworkPolicyPeer,
        out: &mut Translation,
    ) -> Vec<PeerSelector> {
        if let Some(block) = &p.ip_block {
            let Some(net) = parse_cidr(&block.cidr) else {
                return Vec::new();
            };
            let except: Vec<IpNet> = block
                .except
                .iter()
                .flatten()
                .filter_map(|c| parse_cidr(c))
                .collect();
            out.cidrs.insert(net);
            out.cidrs.extend(except.iter().copied());
            return vec![PeerSelector::Cidr { net, except }];
        }
        let mut s = p
            .pod_selector
            .as_ref()
            .map(Selector::from_config)
            .unwrap_or_default();
        match &p.namespace_selector {
            None => s.push(Requirement::equals(
                LabelKey::new(LabelSource::K8s, meta::NAMESPACE),
                ns,
            )),
            Some(nsel) => {
                let nsel = Selector::from_config(nsel);
                if nsel.is_wildcard() {
                    s.push(Requirement::exists(LabelKey::new(
                        LabelSource::K8s,
                        meta::NAMESPACE,
                    )));
                }
                for r in nsel.requirements() {
                    s.push(Requirement {
                        key: LabelKey::new(
                            LabelSource::K8s,
                            format!("{}{}", meta::NAMESPACE_LABELS_PREFIX, r.key.key),
                        ),
                        op: r.op.clone(),
                    });
                }
            }
        }
        self.cluster_filter(&mut s);
        vec![PeerSelector::Labels(s)]
    }

    /// What a rejected policy still tells: its subjects fail closed.
    fn rejected(&self, origin: &Arc<PolicyRef>, r: &RejectedPolicy) -> Vec<RejectedRule> {
        let ns = r.namespace.as_deref().filter(|_| r.kind.is_namespaced());
        let scope_all = || match ns {
            Some(ns) => {
                let mut s = Selector::all();
                s.push(Requirement::equals(
                    LabelKey::new(LabelSource::K8s, meta::NAMESPACE),
                    ns,
                ));
                s
            }
            None => Selector::all(),
        };
        if r.subjects.is_empty() {
            return vec![RejectedRule {
                origin: origin.clone(),
                subject: Subject::Endpoints(scope_all()),
                ingress: true,
                egress: true,
            }];
        }
        r.subjects
            .iter()
            .map(|s| {
                let subject = match (&s.selector, s.node) {
                    (Some(sel), true) => Subject::Nodes(Selector::from_config(sel)),
                    (None, true) => Subject::Nodes(Selector::all()),
                    (Some(sel), false) => Subject::Endpoints(subject_selector(sel, ns)),
                    (None, false) => Subject::Endpoints(scope_all()),
                };
                RejectedRule {
                    origin: origin.clone(),
                    subject,
                    ingress: s.ingress,
                    egress: s.egress,
                }
            })
            .collect()
    }
}

/// Builds an entry from its parts, applying Cilium's nil-versus-empty rules: no peer
/// field means any peer, but an entry with no peer, no `toPorts` and no `icmps`
/// (`ingress: [{}]`) allows nothing: it only switches default deny on. Peers without
/// ports mean every port of every protocol (L3-only).
fn entry(
    origin: &Arc<PolicyRef>,
    deny: bool,
    peers: Option<Vec<PeerSelector>>,
    to_ports: &Option<Vec<PortRule>>,
    icmps: &Option<Vec<IcmpRule>>,
    auth: Option<&sluice_config::types::Authentication>,
) -> Entry {
    let l3_only = !has_any(to_ports) && !has_any(icmps);
    let peers = match peers {
        Some(list) => Peers::Selected(list),
        None if l3_only => Peers::Selected(Vec::new()),
        None => Peers::Any,
    };
    Entry {
        deny,
        peers,
        ports: if l3_only {
            Ports::All
        } else {
            ports(origin, to_ports, icmps)
        },
        auth: auth.and_then(|a| AuthMode::parse(&a.mode)),
    }
}

/// The namespace a CNP's selectors are scoped to; `None` for a CCNP.
fn cilium_namespace<'a>(origin: &PolicyRef, p: &'a CiliumPolicy) -> Option<&'a str> {
    match origin.kind {
        k if k == PolicyKind::CiliumNetworkPolicy.as_str() => p.metadata.namespace.as_deref(),
        _ => None,
    }
}

/// Whom one rule of a CNP / CCNP applies to; `None` without a subject selector.
fn cilium_subject(rule: &CiliumRule, namespace: Option<&str>) -> Option<Subject> {
    match (&rule.endpoint_selector, &rule.node_selector) {
        (Some(sel), _) => Some(Subject::Endpoints(subject_selector(sel, namespace))),
        (None, Some(sel)) => Some(Subject::Nodes(Selector::from_config(sel))),
        (None, None) => None,
    }
}

/// The `toFQDNs` list of one egress allow, with its rule's subject and the entry's ports.
#[derive(Debug, Clone)]
pub(crate) struct FqdnPeers {
    pub origin: Arc<PolicyRef>,
    pub subject: Subject,
    pub selectors: Vec<FqdnSelector>,
    /// The entry's `toPorts` as written (`443/TCP`, `8000-8100/ANY`); empty: every port.
    pub ports: Vec<String>,
}

/// Every `toFQDNs` list of the valid CNPs and CCNPs (KNPs have none; deny sections may not
/// carry one). Kept as written: the translated peers lose whether a selector was a
/// `matchName` or a `matchPattern`, which a user reading a trace wants to see.
pub(crate) fn fqdn_peers(config: &Config) -> Vec<FqdnPeers> {
    let mut out = Vec::new();
    for doc in &config.policies {
        let Policy::Cilium(p) = &doc.resource else {
            continue;
        };
        let policy = &doc.resource;
        let origin = Arc::new(PolicyRef::new(
            policy.kind(),
            policy.namespace(),
            policy.name(),
        ));
        let namespace = cilium_namespace(&origin, p);
        for rule in p.spec.iter().chain(p.specs.iter().flatten()) {
            let Some(subject) = cilium_subject(rule, namespace) else {
                continue;
            };
            for entry in rule.egress.iter().flatten() {
                let Some(selectors) = &entry.to_fqdns else {
                    continue;
                };
                let ports = entry
                    .to_ports
                    .iter()
                    .flatten()
                    .flat_map(|r| r.ports.iter().flatten())
                    .map(|p| {
                        let proto = p.protocol.as_deref().unwrap_or("ANY");
                        match p.end_port {
                            Some(end) => format!("{}-{end}/{proto}", p.port),
                            None => format!("{}/{proto}", p.port),
                        }
                    })
                    .collect();
                out.push(FqdnPeers {
                    origin: origin.clone(),
                    subject: subject.clone(),
                    selectors: selectors.clone(),
                    ports,
                });
            }
        }
    }
    out
}

/// A subject selector: a CNP's is limited to its namespace (a namespace match the user
/// wrote is replaced, as Cilium does).
fn subject_selector(sel: &LabelSelector, ns: Option<&str>) -> Selector {
    let mut s = Selector::from_config(sel);
    if let Some(ns) = ns {
        let kept: Vec<Requirement> = s
            .requirements()
            .iter()
            .filter(|r| r.key.key != meta::NAMESPACE)
            .cloned()
            .collect();
        s = Selector::all();
        for r in kept {
            s.push(r);
        }
        s.push(Requirement::equals(
            LabelKey::new(LabelSource::K8s, meta::NAMESPACE),
            ns,
        ));
    }
    s
}

fn has_any<T>(list: &Option<Vec<T>>) -> bool {
    list.as_ref().is_some_and(|l| !l.is_empty())
}

fn ports(
    origin: &Arc<PolicyRef>,
    to_ports: &Option<Vec<PortRule>>,
    icmps: &Option<Vec<IcmpRule>>,
) -> Ports {
    let mut list = Vec::new();
    for pr in to_ports.iter().flatten() {
        let l7 = pr.rules.as_ref().and_then(|r| {
            let set = if let Some(http) = &r.http {
                L7RuleSet::Http(http.clone())
            } else if let Some(kafka) = &r.kafka {
                L7RuleSet::Kafka(kafka.clone())
            } else if let Some(dns) = &r.dns {
                L7RuleSet::Dns(dns.clone())
            } else {
                return None;
            };
            Some(Arc::new(L7Rule {
                policy: origin.clone(),
                rules: set,
            }))
        });
        for pp in pr.ports.iter().flatten() {
            let protocols = match pp
                .protocol
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                None | Some("ANY") | Some("") => Protocol::ANY.to_vec(),
                Some(p) => match Protocol::parse(p) {
                    Some(p) => vec![p],
                    None => continue,
                },
            };
            let port = match pp.port.trim() {
                "" | "0" => PortSpec::Range(PortRange::ALL),
                p => match p.parse::<u16>() {
                    Ok(lo) => {
                        let hi = pp
                            .end_port
                            .and_then(|e| u16::try_from(e).ok())
                            .filter(|&e| e >= lo)
                            .unwrap_or(lo);
                        PortSpec::Range(PortRange { lo, hi })
                    }
                    Err(_) => PortSpec::Named(p.to_ascii_lowercase()),
                },
            };
            list.push(PortEntry {
                port,
                protocols,
                l7: l7.clone(),
            });
        }
    }
    for icmp in icmps.iter().flatten() {
        for field in icmp.fields.iter().flatten() {
            let v6 = field.family.as_deref() == Some("IPv6");
            if let Some(t) = icmp_type_number(v6, &field.icmp_type) {
                list.push(PortEntry {
                    port: PortSpec::Range(PortRange::single(u16::from(t))),
                    protocols: vec![if v6 { Protocol::Icmpv6 } else { Protocol::Icmp }],
                    l7: None,
                });
            }
        }
    }
    Ports::List(list)
}

fn knp_port(p: &NetworkPolicyPort) -> Option<PortEntry> {
    let protocol = Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))?;
    let port = match p.port.as_deref().map(str::trim) {
        None | Some("") | Some("0") => PortSpec::Range(PortRange::ALL),
        Some(s) => match s.parse::<u16>() {
            Ok(lo) => {
                let hi = p
                    .end_port
                    .and_then(|e| u16::try_from(e).ok())
                    .filter(|&e| e >= lo)
                    .unwrap_or(lo);
                PortSpec::Range(PortRange { lo, hi })
            }
            Err(_) => PortSpec::Named(s.to_ascii_lowercase()),
        },
    };
    Some(PortEntry {
        port,
        protocols: vec![protocol],
        l7: None,
    })
}

/// A CIDR or a bare address (= /32 or /128). Validation rejected anything else.
pub(crate) fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

impl PeerSelector {
    /// Whether it selects every identity (so it can go to the any-peer table).
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Self::Labels(s) if s.is_wildcard())
    }
}
