//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy: rules, sections and peers.
//!
//! The checks are those of Cilium's `Rule.Validate` (pkg/policy/api/rule_validation.go,
//! 1.19/1.20), plus sluice's own: what sluice does not support is rejected by name instead of
//! being silently ignored, since ignoring a peer or port constraint would change what the
//! policy allows.

use sluice_l7::quote::go_quote;

use super::Report;
use super::cidr::{self, BareIp, CidrError};
use super::names::{self, LabelKeys};
use super::ports::{self, Direction, Section};
use super::selector::{self, NameRule};
use crate::diag::FieldPath;
use crate::types::{
    Authentication, CidrRule, CiliumPolicy, EgressRule, IngressRule, LabelSelector, Rule,
    ServiceRef,
};

/// Longest `log.value`, copied into flows' `policy_log` (CRD `MaxLength=32`).
const LOG_VALUE_MAX: usize = 32;

/// Entities a rule may name (Cilium `EntitySelectorMapping`).
const ENTITIES: &[&str] = &[
    "all",
    "world",
    "cluster",
    "cluster-mesh",
    "host",
    "init",
    "ingress",
    "unmanaged",
    "remote-node",
    "health",
    "none",
    "kube-apiserver",
    "world-ipv4",
    "world-ipv6",
];

const AUTH_MODES: &[&str] = &["disabled", "required", "test-always-fail"];

const CCNP: &str = "CiliumClusterwideNetworkPolicy";

pub(super) fn policy(p: &CiliumPolicy, report: &mut Report) {
    let root = FieldPath::root();
    selector::object_meta(
        &p.metadata,
        &root.key("metadata"),
        NameRule::Dns1123Subdomain,
        report,
    );
    if p.spec.is_none() && p.specs.is_none() {
        // Cilium ErrEmptyCNP / ErrEmptyCCNP.
        report.add(&root, format!("Invalid {} spec(s): empty policy", p.kind));
    }
    let clusterwide = p.kind == CCNP;
    if let Some(rule) = &p.spec {
        self::rule(rule, &root.key("spec"), clusterwide, report);
    }
    for (i, rule) in p.specs.iter().flatten().enumerate() {
        self::rule(rule, &root.key("specs").index(i), clusterwide, report);
    }
}

fn rule(r: &Rule, at: &FieldPath, clusterwide: bool, report: &mut Report) {
    // Cilium tests len() == 0, so an empty list counts as absent here (unlike for peers,
    // where the policy engine tells `[]` from absent).
    if len(&r.ingress) + len(&r.ingress_deny) + len(&r.egress) + len(&r.egress_deny) == 0 {
        report.add(
            at,
            "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny",
        );
    }

    match (&r.endpoint_selector, &r.node_selector) {
        (None, None) => report.add(at, "rule must have one of EndpointSelector or NodeSelector"),
        (Some(_), Some(_)) => report.add(
            &at.key("nodeSelector"),
            "rule cannot have both EndpointSelector and NodeSelector",
        ),
        (None, Some(_)) if !clusterwide => report.add(
            &at.key("nodeSelector"),
            "rule cannot have NodeSelector: host policies need a CiliumClusterwideNetworkPolicy",
        ),
        _ => {}
    }
    if let Some(sel) = &r.endpoint_selector {
        selector::selector(sel, &at.key("endpointSelector"), LabelKeys::Cilium, report);
    }
    if let Some(sel) = &r.node_selector {
        selector::selector(sel, &at.key("nodeSelector"), LabelKeys::Cilium, report);
    }
    let host = r.node_selector.is_some() && r.endpoint_selector.is_none();

    for (key, rules, deny) in [
        ("ingress", &r.ingress, false),
        ("ingressDeny", &r.ingress_deny, true),
    ] {
        for (i, ing) in rules.iter().flatten().enumerate() {
            let section = Section {
                direction: Direction::Ingress,
                deny,
                host,
            };
            ingress(ing, &at.key(key).index(i), section, report);
        }
    }
    for (key, rules, deny) in [
        ("egress", &r.egress, false),
        ("egressDeny", &r.egress_deny, true),
    ] {
        for (i, eg) in rules.iter().flatten().enumerate() {
            let section = Section {
                direction: Direction::Egress,
                deny,
                host,
            };
            egress(eg, &at.key(key).index(i), section, report);
        }
    }

    for (i, label) in r.labels.iter().flatten().enumerate() {
        if label.key.is_empty() {
            report.add(
                &at.key("labels").index(i),
                "rule label key must not be empty",
            );
        }
    }
    if let Some(log) = &r.log {
        let len = log.value.chars().count();
        if len > LOG_VALUE_MAX {
            report.add(
                &at.key("log").key("value"),
                format!(
                    "log.value may not be longer than {LOG_VALUE_MAX} characters (it has {len})"
                ),
            );
        }
    }
}

/// A peer kind present in a rule: Cilium's Go field name and the YAML key.
struct Peer {
    go_name: &'static str,
    key: &'static str,
}

/// Cilium: "combining %s and %s is not supported yet". Reported once for each kind after the
/// first, on that kind's field, so every offending key is pointed at.
fn one_peer_kind(present: &[Peer], at: &FieldPath, report: &mut Report) {
    let Some((first, rest)) = present.split_first() else {
        return;
    };
    for other in rest {
        report.add(
            &at.key(other.key),
            format!(
                "combining {} and {} is not supported yet",
                first.go_name, other.go_name
            ),
        );
    }
}

fn peers(candidates: &[(&'static str, &'static str, usize)]) -> Vec<Peer> {
    candidates
        .iter()
        .filter(|(_, _, len)| *len > 0)
        .map(|&(go_name, key, _)| Peer { go_name, key })
        .collect()
}

fn len<T>(list: &Option<Vec<T>>) -> usize {
    list.as_ref().map_or(0, Vec::len)
}

fn ingress(r: &IngressRule, at: &FieldPath, section: Section, report: &mut Report) {
    // Cilium's IngressCommonRule l3Members; fromRequires is a constraint, not a peer.
    let present = peers(&[
        ("FromEndpoints", "fromEndpoints", len(&r.from_endpoints)),
        ("FromCIDR", "fromCIDR", len(&r.from_cidr)),
        ("FromCIDRSet", "fromCIDRSet", len(&r.from_cidr_set)),
        ("FromEntities", "fromEntities", len(&r.from_entities)),
        ("FromNodes", "fromNodes", len(&r.from_nodes)),
        ("FromGroups", "fromGroups", len(&r.from_groups)),
    ]);
    one_peer_kind(&present, at, report);

    endpoint_selectors(
        r.from_endpoints.as_deref(),
        &at.key("fromEndpoints"),
        report,
    );
    endpoint_selectors(r.from_nodes.as_deref(), &at.key("fromNodes"), report);
    if r.from_requires.is_some() {
        report.add(
            &at.key("fromRequires"),
            "fromRequires is not supported by sluice (Cilium deprecated it): add the required labels to each fromEndpoints selector instead",
        );
    }
    if r.from_groups.is_some() {
        report.add(
            &at.key("fromGroups"),
            "fromGroups (cloud provider groups) is not supported by sluice: list the addresses with fromCIDRSet instead",
        );
    }
    cidrs(r.from_cidr.as_deref(), &at.key("fromCIDR"), report);
    cidr_rules(r.from_cidr_set.as_deref(), &at.key("fromCIDRSet"), report);
    entities(r.from_entities.as_deref(), &at.key("fromEntities"), report);

    ports::to_ports_and_icmps(
        r.to_ports.as_deref(),
        r.icmps.as_deref(),
        at,
        section,
        report,
    );
    authentication(r.authentication.as_ref(), at, section, report);
}

fn egress(r: &EgressRule, at: &FieldPath, section: Section, report: &mut Report) {
    // Cilium's EgressRule l3Members: toFQDNs is a peer kind too; toRequires is not.
    let present = peers(&[
        ("ToEndpoints", "toEndpoints", len(&r.to_endpoints)),
        ("ToCIDR", "toCIDR", len(&r.to_cidr)),
        ("ToCIDRSet", "toCIDRSet", len(&r.to_cidr_set)),
        ("ToEntities", "toEntities", len(&r.to_entities)),
        ("ToServices", "toServices", len(&r.to_services)),
        ("ToFQDNs", "toFQDNs", len(&r.to_fqdns)),
        ("ToGroups", "toGroups", len(&r.to_groups)),
        ("ToNodes", "toNodes", len(&r.to_nodes)),
    ]);
    one_peer_kind(&present, at, report);

    endpoint_selectors(r.to_endpoints.as_deref(), &at.key("toEndpoints"), report);
    endpoint_selectors(r.to_nodes.as_deref(), &at.key("toNodes"), report);
    if r.to_requires.is_some() {
        report.add(
            &at.key("toRequires"),
            "toRequires is not supported by sluice (Cilium deprecated it): add the required labels to each toEndpoints selector instead",
        );
    }
    if r.to_groups.is_some() {
        report.add(
            &at.key("toGroups"),
            "toGroups (cloud provider groups) is not supported by sluice: list the addresses with toCIDRSet instead",
        );
    }
    cidrs(r.to_cidr.as_deref(), &at.key("toCIDR"), report);
    cidr_rules(r.to_cidr_set.as_deref(), &at.key("toCIDRSet"), report);
    entities(r.to_entities.as_deref(), &at.key("toEntities"), report);
    for (i, s) in r.to_services.iter().flatten().enumerate() {
        service_ref(s, &at.key("toServices").index(i), report);
    }
    if let Some(fqdns) = &r.to_fqdns {
        if section.deny {
            // Cilium's EgressDenyRule has no toFQDNs: a name cannot be denied before it is
            // resolved, and denying its IPs afterwards would race the allow.
            report.add(&at.key("toFQDNs"), "deny rules cannot carry toFQDNs");
        } else {
            for (i, f) in fqdns.iter().enumerate() {
                ports::fqdn_selector(f, &at.key("toFQDNs").index(i), report);
            }
        }
    }

    ports::to_ports_and_icmps(
        r.to_ports.as_deref(),
        r.icmps.as_deref(),
        at,
        section,
        report,
    );
    authentication(r.authentication.as_ref(), at, section, report);
}

fn endpoint_selectors(list: Option<&[LabelSelector]>, at: &FieldPath, report: &mut Report) {
    for (i, sel) in list.unwrap_or_default().iter().enumerate() {
        selector::selector(sel, &at.index(i), LabelKeys::Cilium, report);
    }
}

fn entities(list: Option<&[String]>, at: &FieldPath, report: &mut Report) {
    for (i, e) in list.unwrap_or_default().iter().enumerate() {
        if !ENTITIES.contains(&e.as_str()) {
            report.add(&at.index(i), format!("unsupported entity: {e}"));
        }
    }
}

/// `fromCIDR` / `toCIDR` entries (Cilium `CIDR.Validate`): a prefix or a bare address.
fn cidrs(list: Option<&[String]>, at: &FieldPath, report: &mut Report) {
    for (i, c) in list.unwrap_or_default().iter().enumerate() {
        match cidr::parse(c, BareIp::Allowed) {
            Ok(_) => {}
            Err(CidrError::Empty) => report.add(&at.index(i), "IP must be specified"),
            Err(CidrError::NonContiguousMask) => report.add(
                &at.index(i),
                format!("CIDR cannot specify non-contiguous mask {c}"),
            ),
            Err(e) => report.add(
                &at.index(i),
                format!("unable to parse CIDR {}: {}", go_quote(c), e.reason()),
            ),
        }
    }
}

/// `fromCIDRSet` / `toCIDRSet` entries (Cilium `CIDRRule.Validate`).
fn cidr_rules(list: Option<&[CidrRule]>, at: &FieldPath, report: &mut Report) {
    for (i, rule) in list.unwrap_or_default().iter().enumerate() {
        let at = at.index(i);
        let cidr_text = rule.cidr.as_deref().filter(|c| !c.is_empty());
        let group_ref = rule.cidr_group_ref.as_deref().filter(|c| !c.is_empty());
        let set = [
            cidr_text.is_some(),
            group_ref.is_some(),
            rule.cidr_group_selector.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        match set {
            0 => report.add(
                &at,
                "one of cidr, cidrGroupRef, or cidrGroupSelector is required",
            ),
            1 => {}
            _ => report.add(
                &at,
                "more than one of cidr, cidrGroupRef, or cidrGroupSelector may not be set",
            ),
        }
        if let Some(sel) = &rule.cidr_group_selector {
            // Cilium 1.19: CiliumCIDRGroup labels are plain Kubernetes labels.
            selector::selector(
                sel,
                &at.key("cidrGroupSelector"),
                LabelKeys::Kubernetes,
                report,
            );
        }
        if let Some(name) = group_ref
            && let Err(reason) = names::dns1123_subdomain(name)
        {
            report.add(
                &at.key("cidrGroupRef"),
                format!("invalid CiliumCIDRGroup name {}: {reason}", go_quote(name)),
            );
        }
        let allow = match cidr_text.map(|c| (c, cidr::parse(c, BareIp::Rejected))) {
            None => None,
            Some((_, Ok(net))) => Some(net),
            Some((c, Err(CidrError::NonContiguousMask))) => {
                report.add(
                    &at.key("cidr"),
                    format!("CIDR cannot specify non-contiguous mask {c}"),
                );
                None
            }
            Some((c, Err(e))) => {
                report.add(
                    &at.key("cidr"),
                    format!("unable to parse CIDRRule {}: {}", go_quote(c), e.reason()),
                );
                None
            }
        };
        for (j, ex) in rule.except.iter().flatten().enumerate() {
            let ex_at = at.key("except").index(j);
            match cidr::parse(ex, BareIp::Rejected) {
                Err(e) => report.add(
                    &ex_at,
                    format!(
                        "unable to parse except prefix {}: {}",
                        go_quote(ex),
                        e.reason()
                    ),
                ),
                Ok(ex_net) => {
                    if let (Some(allow), Some(c)) = (allow, cidr_text)
                        && !cidr::contains(&allow, &ex_net)
                    {
                        report.add(
                            &ex_at,
                            format!(
                                "allow CIDR prefix {c} does not contain exclude CIDR prefix {ex}"
                            ),
                        );
                    }
                }
            }
        }
    }
}

fn service_ref(s: &ServiceRef, at: &FieldPath, report: &mut Report) {
    if s.k8s_service.is_none() && s.k8s_service_selector.is_none() {
        report.add(
            at,
            "toServices entry must set k8sService or k8sServiceSelector",
        );
    }
    if let Some(svc) = &s.k8s_service {
        let at = at.key("k8sService");
        if let Some(name) = &svc.service_name
            && let Err(reason) = names::dns1035_label(name)
        {
            report.add(
                &at.key("serviceName"),
                format!("invalid service name {}: {reason}", go_quote(name)),
            );
        }
        namespace_field(svc.namespace.as_deref(), &at, report);
    }
    if let Some(sel) = &s.k8s_service_selector {
        let at = at.key("k8sServiceSelector");
        selector::selector(
            &sel.selector,
            &at.key("selector"),
            LabelKeys::Kubernetes,
            report,
        );
        namespace_field(sel.namespace.as_deref(), &at, report);
    }
}

fn namespace_field(ns: Option<&str>, at: &FieldPath, report: &mut Report) {
    if let Some(ns) = ns
        && let Err(reason) = names::dns1123_label(ns)
    {
        report.add(
            &at.key("namespace"),
            format!("invalid namespace {}: {reason}", go_quote(ns)),
        );
    }
}

fn authentication(
    auth: Option<&Authentication>,
    at: &FieldPath,
    section: Section,
    report: &mut Report,
) {
    let Some(auth) = auth else {
        return;
    };
    let at = at.key("authentication");
    if section.deny {
        report.add(&at, "deny rules cannot carry authentication");
    } else if !AUTH_MODES.contains(&auth.mode.as_str()) {
        report.add(
            &at.key("mode"),
            format!(
                "unsupported authentication mode {}: supported values: \"disabled\", \"required\", \"test-always-fail\"",
                go_quote(&auth.mode)
            ),
        );
    }
}
