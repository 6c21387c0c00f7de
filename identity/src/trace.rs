//! `policy trace`: the verdict for a connection between two parties, answered offline
//! from the compiled policy, as `cilium policy trace` does.

use std::net::IpAddr;

use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;
use sluice_config::Config;
use sluice_config::types::FqdnSelector;
use sluice_l7::dns::{DnsPatternSet, FqdnPattern};

use crate::identity::{Entity, Identity};
use crate::labels::{Label, LabelSet, LabelSource, meta};
use crate::policy::{
    AuthMode, CompileError, CompiledPolicy, Decision, Direction, DropReason, L7Policy, PolicyRef,
    Verdict, fqdn_peers,
};
use crate::ports::Protocol;
use crate::universe::{Endpoint, IdentityKind};

/// One side of a traced connection, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartySpec {
    /// `namespace/name` of a workload.
    Workload { namespace: String, name: String },
    /// An address: its identity comes from the ipcache.
    Address(IpAddr),
    /// A prefix: the identity of the addresses in it.
    Prefix(IpNet),
    /// An entity (`world`, `host`, …).
    Entity(String),
    /// A label set (`k8s:app=web,k8s:io.kubernetes.pod.namespace=shop`).
    Labels(Vec<Label>),
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{0:?} is not a workload (namespace/name), an IP, a CIDR, an entity or a label list")]
    BadParty(String),
    #[error("no workload {namespace}/{name} in the configuration")]
    NoSuchWorkload { namespace: String, name: String },
    #[error(
        "entity {0:?} does not stand for a single identity; name an address or a workload instead"
    )]
    AmbiguousEntity(String),
    #[error(transparent)]
    Compile(#[from] CompileError),
}

impl PartySpec {
    /// Parses a `--from` / `--to` argument.
    pub fn parse(s: &str) -> Result<Self, TraceError> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Address(ip));
        }
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self::Prefix(net.trunc()));
        }
        if s.contains('=') || s.contains(':') {
            let labels: Vec<Label> = s
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(Label::parse)
                .collect();
            if labels.is_empty() {
                return Err(TraceError::BadParty(s.into()));
            }
            return Ok(Self::Labels(labels));
        }
        if Entity::parse(s).is_some() {
            return Ok(Self::Entity(s.into()));
        }
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self::Workload {
                    namespace: ns.into(),
                    name: name.into(),
                })
            }
            _ => Err(TraceError::BadParty(s.into())),
        }
    }
}

/// A traced connection.
#[derive(Debug, Clone)]
pub struct TraceQuery {
    pub from: PartySpec,
    pub to: PartySpec,
    pub port: u16,
    pub protocol: Protocol,
    /// Evaluate as if mutual authentication between the two identities had completed.
    pub authenticated: bool,
}

/// One side, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Party {
    pub identity: Identity,
    /// `namespace/name` of the workload, `host`, or the reserved name.
    pub name: Option<String>,
    /// Whether policy is enforced on this side (a workload or the host).
    pub endpoint: bool,
    pub labels: Vec<String>,
}

/// The verdict of one direction.
#[derive(Debug, Clone, Serialize)]
pub struct DirectionTrace {
    pub direction: Direction,
    /// The endpoint whose policy this is.
    pub endpoint: String,
    #[serde(flatten)]
    pub decision: Decision,
}

/// The answer to a trace.
#[derive(Debug, Clone, Serialize)]
pub struct TraceResult {
    /// Final verdict for the connection: both directions together.
    pub verdict: Verdict,
    /// 133, 181 or 189 when denied; null otherwise.
    pub drop_reason: Option<DropReason>,
    /// Hubble's name for the drop reason (`POLICY_DENIED`, `POLICY_DENY`, `AUTH_REQUIRED`).
    pub drop_reason_desc: Option<&'static str>,
    /// In audit mode, what it would have been dropped for.
    pub audit_drop_reason: Option<DropReason>,
    pub source: Party,
    pub destination: Party,
    pub port: u16,
    pub protocol: Protocol,
    /// The source's egress policy (absent when the source is not an endpoint).
    pub egress: Option<DirectionTrace>,
    /// The destination's ingress policy (absent when it is not an endpoint).
    pub ingress: Option<DirectionTrace>,
    /// Whether the connection goes through the L7 proxy.
    pub l7_proxy: bool,
    /// The L7 rules that apply, per direction.
    pub l7: Vec<L7Trace>,
    /// The strongest authentication mode required by either direction.
    pub authentication: AuthTrace,
    /// Policies rejected while resolving (merge conflicts), if any.
    pub policy_errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct L7Trace {
    pub direction: Direction,
    #[serde(flatten)]
    pub policy: L7Policy,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthTrace {
    pub mode: AuthMode,
    /// Whether the trace assumed a completed mutual authentication (`--authenticated`).
    pub assumed_authenticated: bool,
}

/// Answers a trace query against a configuration.
pub fn trace(config: &Config, query: &TraceQuery) -> Result<TraceResult, TraceError> {
    trace_with_policy(config, query).map(|(result, _)| result)
}

/// [`trace`], also handing back the policy it compiled (with the query's hypothetical
/// endpoints), for callers that go on to decide L7 requests on the same identities.
pub fn trace_with_policy(
    config: &Config,
    query: &TraceQuery,
) -> Result<(TraceResult, CompiledPolicy), TraceError> {
    let mut extra = Vec::new();
    for spec in [&query.from, &query.to] {
        if let PartySpec::Labels(labels) = spec {
            extra.push(complete_labels(config, labels));
        }
    }
    let policy = CompiledPolicy::compile_with(config, &extra)?;
    let from = resolve(config, &policy, &query.from)?;
    let to = resolve(config, &policy, &query.to)?;

    let egress = from.endpoint.then(|| DirectionTrace {
        direction: Direction::Egress,
        endpoint: from
            .name
            .clone()
            .unwrap_or_else(|| from.identity.to_string()),
        decision: policy.decide(
            from.identity,
            Direction::Egress,
            to.identity,
            query.protocol,
            query.port,
        ),
    });
    let ingress = to.endpoint.then(|| DirectionTrace {
        direction: Direction::Ingress,
        endpoint: to.name.clone().unwrap_or_else(|| to.identity.to_string()),
        decision: policy.decide(
            to.identity,
            Direction::Ingress,
            from.identity,
            query.protocol,
            query.port,
        ),
    });

    // The packet leaves the source first: an egress drop is the one reported.
    let decisions: Vec<&Decision> = egress
        .iter()
        .chain(ingress.iter())
        .map(|d| &d.decision)
        .collect();
    let denied = decisions.iter().find(|d| d.verdict == Verdict::Denied);
    let audited = decisions.iter().find(|d| d.verdict == Verdict::Audit);
    let auth_mode = decisions
        .iter()
        .filter_map(|d| d.authentication)
        .max()
        .unwrap_or(AuthMode::Disabled);
    let (mut verdict, mut drop_reason) = match (denied, audited) {
        (Some(d), _) => (Verdict::Denied, d.drop_reason),
        (None, Some(_)) => (Verdict::Audit, None),
        (None, None) => (Verdict::Allowed, None),
    };
    let mut audit_drop_reason = audited.and_then(|d| d.audit_drop_reason);
    // Allowed by policy, but mutual authentication has not completed (or can never,
    // for test-always-fail): 189, as Cilium drops until the handshake is done.
    let auth_missing = match auth_mode {
        AuthMode::Disabled => false,
        AuthMode::Required => !query.authenticated,
        AuthMode::TestAlwaysFail => true,
    };
    if verdict != Verdict::Denied && auth_missing {
        if policy.audit_mode() {
            verdict = Verdict::Audit;
            audit_drop_reason = audit_drop_reason.or(Some(DropReason::AuthRequired));
        } else {
            verdict = Verdict::Denied;
            drop_reason = Some(DropReason::AuthRequired);
        }
    }
    let l7: Vec<L7Trace> = egress
        .iter()
        .chain(ingress.iter())
        .filter_map(|d| {
            d.decision.l7.clone().map(|policy| L7Trace {
                direction: d.direction,
                policy,
            })
        })
        .collect();
    let result = TraceResult {
        verdict,
        drop_reason,
        drop_reason_desc: drop_reason.map(DropReason::desc),
        audit_drop_reason,
        source: from,
        destination: to,
        port: query.port,
        protocol: query.protocol,
        l7_proxy: verdict != Verdict::Denied && !l7.is_empty(),
        l7,
        egress,
        ingress,
        authentication: AuthTrace {
            mode: auth_mode,
            assumed_authenticated: query.authenticated,
        },
        policy_errors: policy.diagnostics.iter().map(ToString::to_string).collect(),
    };
    Ok((result, policy))
}

/// A `toFQDNs` selector of an endpoint's egress rules that selects a name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FqdnSelectorMatch {
    pub policy: Arc<PolicyRef>,
    /// `matchName` or `matchPattern`, as written.
    #[serde(flatten)]
    pub selector: FqdnSelector,
    /// The ports its entry allows (`443/TCP`); empty: every port.
    pub ports: Vec<String>,
}

/// The `toFQDNs` selectors of the egress rules selecting `endpoint` that select `name`,
/// with `toFQDNs` semantics ([`FqdnPattern::matches`]: lowercase, trailing dot optional).
/// Empty when `endpoint` is not an endpoint of `policy`.
///
/// Rules of policies rejected while resolving are listed too: their endpoint fails
/// closed anyway, which the L3/L4 verdict says.
pub fn to_fqdns_selecting(
    config: &Config,
    policy: &CompiledPolicy,
    endpoint: Identity,
    name: &str,
) -> Vec<FqdnSelectorMatch> {
    let universe = policy.universe();
    if universe.endpoints_of(endpoint).next().is_none() {
        return Vec::new();
    }
    let Some(info) = universe.identity(endpoint) else {
        return Vec::new();
    };
    let mut candidates = Vec::new();
    let mut patterns = Vec::new();
    for peers in fqdn_peers(config) {
        if !peers.subject.selects(endpoint, &info.labels) {
            continue;
        }
        for selector in &peers.selectors {
            // Validation refused invalid selectors along with their policy.
            let Ok(pattern) = FqdnPattern::from_selector(
                selector.match_name.as_deref(),
                selector.match_pattern.as_deref(),
            ) else {
                continue;
            };
            patterns.push(pattern);
            candidates.push(FqdnSelectorMatch {
                policy: peers.origin.clone(),
                selector: selector.clone(),
                ports: peers.ports.clone(),
            });
        }
    }
    let set = DnsPatternSet::new(patterns);
    set.matches(name)
        .into_iter()
        .filter_map(|i| candidates.get(i).cloned())
        .collect()
}

/// A hypothetical pod's labels: namespace meta labels and the local cluster are added
/// when a namespace is given, as they would be on a real pod.
fn complete_labels(config: &Config, labels: &[Label]) -> LabelSet {
    let mut set: LabelSet = labels.iter().cloned().collect();
    let ns = labels
        .iter()
        .find(|l| l.key.key == meta::NAMESPACE)
        .map(|l| l.value.clone());
    if let Some(ns) = ns {
        if !labels.iter().any(|l| l.key.key == meta::CLUSTER) {
            set.insert(Label::k8s(meta::CLUSTER, config.node.cluster_name.clone()));
        }
        if let Some(doc) = config
            .namespaces
            .iter()
            .find(|d| d.resource.metadata.name == ns)
        {
            for (k, v) in doc.resource.metadata.labels.iter().flatten() {
                set.insert(Label::k8s(
                    format!("{}{k}", meta::NAMESPACE_LABELS_PREFIX),
                    v.clone(),
                ));
            }
        }
    }
    set
}

fn resolve(
    config: &Config,
    policy: &CompiledPolicy,
    spec: &PartySpec,
) -> Result<Party, TraceError> {
    let universe = policy.universe();
    let party = |id: Identity, name: Option<String>, endpoint: bool| Party {
        identity: id,
        name,
        endpoint,
        labels: universe
            .identity(id)
            .map(|i| i.labels.to_strings())
            .unwrap_or_default(),
    };
    let by_identity = |id: Identity| {
        let endpoints: Vec<&Endpoint> = universe.endpoints_of(id).collect();
        let name = match endpoints.as_slice() {
            [one] => Some(one.display_name()),
            _ => id.reserved_name().map(str::to_owned).or_else(|| {
                universe.identity(id).and_then(|i| match &i.kind {
                    IdentityKind::Cidr(net) => Some(net.to_string()),
                    _ => None,
                })
            }),
        };
        party(id, name, !endpoints.is_empty())
    };
    Ok(match spec {
        PartySpec::Workload { namespace, name } => {
            let ep =
                universe
                    .endpoint(namespace, name)
                    .ok_or_else(|| TraceError::NoSuchWorkload {
                        namespace: namespace.clone(),
                        name: name.clone(),
                    })?;
            party(ep.identity, Some(ep.display_name()), true)
        }
        PartySpec::Address(ip) => by_identity(universe.ipcache().lookup(*ip).0),
        PartySpec::Prefix(net) => {
            let id = universe
                .ipcache()
                .entries()
                .find(|(p, _)| p == net)
                .map(|(_, id)| id)
                .unwrap_or_else(|| universe.ipcache().lookup(net.network()).0);
            by_identity(id)
        }
        PartySpec::Entity(name) => {
            let id = match Entity::parse(name) {
                Some(Entity::Host) => Identity::HOST,
                Some(Entity::World | Entity::WorldIpv4) => Identity::WORLD_IPV4,
                Some(Entity::WorldIpv6) => Identity::WORLD_IPV6,
                Some(Entity::RemoteNode) => Identity::REMOTE_NODE,
                Some(Entity::Init) => Identity::INIT,
                Some(Entity::Health) => Identity::HEALTH,
                Some(Entity::Ingress) => Identity::INGRESS,
                Some(Entity::Unmanaged) => Identity::UNMANAGED,
                Some(Entity::KubeApiserver) => Identity::KUBE_APISERVER,
                _ => return Err(TraceError::AmbiguousEntity(name.clone())),
            };
            by_identity(id)
        }
        PartySpec::Labels(labels) => {
            let set = complete_labels(config, labels);
            let id = universe
                .identity_by_labels(&set)
                .unwrap_or(Identity::UNKNOWN);
            let is_pod = set
                .iter()
                .any(|l| l.key.source == LabelSource::K8s && l.key.key == meta::NAMESPACE);
            let mut p = party(id, None, is_pod);
            p.labels = set.to_strings();
            p
        }
    })
}

/// Formats the policies that decided, for the human output.
pub fn policy_list(list: &[std::sync::Arc<PolicyRef>]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_forms() {
        // The forms `cilium policy trace` users type, plus sluice's workload names.
        let cases: Vec<(&str, PartySpec)> = vec![
            (
                "production/frontend",
                PartySpec::Workload {
                    namespace: "production".into(),
                    name: "frontend".into(),
                },
            ),
            (
                "203.0.113.7",
                PartySpec::Address("203.0.113.7".parse().unwrap()),
            ),
            (
                "2001:db8::1",
                PartySpec::Address("2001:db8::1".parse().unwrap()),
            ),
            (
                "10.0.0.0/8",
                PartySpec::Prefix("10.0.0.0/8".parse().unwrap()),
            ),
            (
                "10.1.2.3/8",
                PartySpec::Prefix("10.0.0.0/8".parse().unwrap()),
            ),
            ("world", PartySpec::Entity("world".into())),
            ("host", PartySpec::Entity("host".into())),
            (
                "k8s:app=web, k8s:io.kubernetes.pod.namespace=shop",
                PartySpec::Labels(vec![
                    Label::k8s("app", "web"),
                    Label::k8s(meta::NAMESPACE, "shop"),
                ]),
            ),
            ("app=web", PartySpec::Labels(vec![Label::k8s("app", "web")])),
        ];
        for (input, expected) in cases {
            assert_eq!(PartySpec::parse(input).unwrap(), expected, "{input}");
        }
        for bad in ["", "frontend", "a/b/c", "/x", "x/", ","] {
            assert!(PartySpec::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    const FQDN_CONFIG: &str = r#"
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: billing, namespace: pay, labels: {app: billing}}
spec: {addresses: ["10.1.0.2"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: other, namespace: pay, labels: {app: other}}
spec: {addresses: ["10.1.0.3"]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: billing-egress, namespace: pay}
specs:
- endpointSelector: {matchLabels: {app: billing}}
  egress:
  - toFQDNs: [{matchName: api.stripe.com}, {matchPattern: "*.amazonaws.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
- endpointSelector: {matchLabels: {app: billing}}
  egress:
  - toFQDNs: [{matchPattern: "**.example.com"}]
- endpointSelector: {matchLabels: {app: other}}
  egress:
  - toFQDNs: [{matchName: api.stripe.com}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: everyone-to-status}
spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchPattern: "status.*.io"}]
"#;

    #[test]
    fn to_fqdns_selectors_of_the_source_that_select_a_name() {
        let config = sluice_config::load_str("fqdn.yaml", FQDN_CONFIG).unwrap();
        assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics);
        let policy = CompiledPolicy::compile(&config).unwrap();
        let billing = policy
            .universe()
            .endpoint("pay", "billing")
            .unwrap()
            .identity;
        let selected = |name: &str| -> Vec<String> {
            to_fqdns_selecting(&config, &policy, billing, name)
                .iter()
                .map(|m| {
                    let sel = m.selector.match_name.as_deref().map_or_else(
                        || {
                            format!(
                                "pattern {}",
                                m.selector.match_pattern.as_deref().unwrap_or("")
                            )
                        },
                        |n| format!("name {n}"),
                    );
                    format!("{} {sel} {}", m.policy.name, m.ports.join(","))
                })
                .collect()
        };
        // Expected: spec §14 matching (lowercase, trailing dot optional; `*` within one
        // label; a leading `**.` one or more labels); only rules selecting billing.
        let cases: &[(&str, &[&str])] = &[
            (
                "api.stripe.com",
                &["billing-egress name api.stripe.com 443/TCP"],
            ),
            (
                "API.Stripe.COM.",
                &["billing-egress name api.stripe.com 443/TCP"],
            ),
            (
                "sqs.amazonaws.com",
                &["billing-egress pattern *.amazonaws.com 443/TCP"],
            ),
            ("amazonaws.com", &[]),
            ("s3.eu-west-1.amazonaws.com", &[]),
            (
                "a.b.example.com",
                &["billing-egress pattern **.example.com "],
            ),
            ("example.com", &[]),
            (
                "status.cilium.io",
                &["everyone-to-status pattern status.*.io "],
            ),
            ("api.stripe.com.evil.test", &[]),
        ];
        for (name, want) in cases {
            assert_eq!(selected(name), *want, "{name}");
        }
        // Not an endpoint: no egress policy, nothing listed.
        assert!(
            to_fqdns_selecting(&config, &policy, Identity::WORLD_IPV4, "api.stripe.com").is_empty()
        );
    }
}
