//! The resources sluice reads, as the user writes them.
//!
//! Field names follow the upstream schemas (`cilium.io/v2`, `networking.k8s.io/v1`,
//! `v1`) so that manifests load unchanged. Every list a user may leave out is an
//! `Option<Vec<_>>`: Cilium gives an absent peer list and an empty one different
//! meanings (absent = no constraint, empty = selects nothing), so the distinction must
//! survive parsing. Every struct rejects unknown fields: a typo must not silently widen
//! or narrow a policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `metadata` of any resource. Fields that `kubectl get -o yaml` prints and that carry
/// no meaning for sluice are accepted and ignored, so exported manifests load.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub uid: Option<String>,
    // Accepted for round-tripping exported manifests; never read.
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    pub match_labels: Option<BTreeMap<String, String>>,
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist` (checked by validation).
    pub operator: String,
    pub values: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------
// cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy
// ---------------------------------------------------------------------------------

/// A CNP or CCNP: `spec` and/or `specs`, all rules are used.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumPolicy {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<Rule>,
    pub specs: Option<Vec<Rule>>,
    /// Written by the Cilium operator; ignored.
    pub status: Option<IgnoredAny>,
}

/// One policy rule (`api.Rule`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub endpoint_selector: Option<LabelSelector>,
    pub node_selector: Option<LabelSelector>,
    pub ingress: Option<Vec<IngressRule>>,
    pub ingress_deny: Option<Vec<IngressRule>>,
    pub egress: Option<Vec<EgressRule>>,
    pub egress_deny: Option<Vec<EgressRule>>,
    pub enable_default_deny: Option<DefaultDenyConfig>,
    pub labels: Option<Vec<RuleLabel>>,
    pub description: Option<String>,
    pub log: Option<LogConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultDenyConfig {
    pub ingress: Option<bool>,
    pub egress: Option<bool>,
}

/// A rule label, `{key, value, source}` as Cilium writes them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleLabel {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub value: String,
}

/// An `ingress` or `ingressDeny` entry. Deny entries use the same shape; validation
/// rejects the fields a deny may not carry (L7 `rules`, `authentication`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    pub from_endpoints: Option<Vec<LabelSelector>>,
    pub from_requires: Option<Vec<LabelSelector>>,
    #[serde(rename = "fromCIDR")]
    pub from_cidr: Option<Vec<String>>,
    #[serde(rename = "fromCIDRSet")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    pub from_entities: Option<Vec<String>>,
    pub from_groups: Option<Vec<IgnoredAny>>,
    pub from_nodes: Option<Vec<LabelSelector>>,
    pub to_ports: Option<Vec<PortRule>>,
    pub icmps: Option<Vec<IcmpRule>>,
    pub authentication: Option<Authentication>,
}

/// An `egress` or `egressDeny` entry. Deny entries may not carry `toFQDNs` or L7 rules.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    pub to_endpoints: Option<Vec<LabelSelector>>,
    pub to_requires: Option<Vec<LabelSelector>>,
    #[serde(rename = "toCIDR")]
    pub to_cidr: Option<Vec<String>>,
    #[serde(rename = "toCIDRSet")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    pub to_entities: Option<Vec<String>>,
    pub to_services: Option<Vec<ServiceRef>>,
    #[serde(rename = "toFQDNs")]
    pub to_fqdns: Option<Vec<FqdnSelector>>,
    pub to_groups: Option<Vec<IgnoredAny>>,
    pub to_nodes: Option<Vec<LabelSelector>>,
    pub to_ports: Option<Vec<PortRule>>,
    pub icmps: Option<Vec<IcmpRule>>,
    pub authentication: Option<Authentication>,
}

/// A `fromCIDRSet` / `toCIDRSet` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrRule {
    pub cidr: Option<String>,
    pub cidr_group_ref: Option<String>,
    pub cidr_group_selector: Option<LabelSelector>,
    pub except: Option<Vec<String>>,
}

/// A `toServices` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRef {
    pub k8s_service: Option<K8sServiceNamespace>,
    pub k8s_service_selector: Option<ServiceSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sServiceNamespace {
    pub service_name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSelector {
    pub selector: LabelSelector,
    pub namespace: Option<String>,
}

/// A DNS name selector: in `toFQDNs` and in `rules.dns`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FqdnSelector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

/// A `toPorts` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    pub ports: Option<Vec<PortProtocol>>,
    pub rules: Option<L7Rules>,
    #[serde(rename = "terminatingTLS")]
    pub terminating_tls: Option<TlsContext>,
    #[serde(rename = "originatingTLS")]
    pub originating_tls: Option<TlsContext>,
    pub server_names: Option<Vec<String>>,
    pub listener: Option<IgnoredAny>,
}

/// `{port, endPort, protocol}`. `port` is a string in Cilium's schema (a number, a
/// named port or empty); a bare YAML number is accepted as its decimal text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    #[serde(default)]
    pub port: String,
    pub end_port: Option<i64>,
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsContext {
    pub secret: Option<SecretRef>,
    #[serde(rename = "trustedCA")]
    pub trusted_ca: Option<String>,
    pub certificate: Option<String>,
    pub private_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// `rules:` of a port rule. At most one kind may be set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L7Rules {
    pub http: Option<Vec<HttpRule>>,
    pub kafka: Option<Vec<KafkaRule>>,
    pub dns: Option<Vec<FqdnSelector>>,
    /// Generic proxylib parsers: not supported by sluice (rejected by validation).
    pub l7proto: Option<String>,
    pub l7: Option<Vec<BTreeMap<String, String>>>,
}

/// One `rules.http` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_matches: Option<Vec<HeaderMatch>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One `rules.kafka` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "clientID")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// An `icmps` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpRule {
    pub fields: Option<Vec<IcmpField>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpField {
    pub family: Option<String>,
    /// A number or a type name such as `EchoRequest`.
    #[serde(rename = "type")]
    pub icmp_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authentication {
    /// `disabled`, `required` or `test-always-fail`.
    pub mode: String,
}

/// A value whose content sluice does not read (`status`, `listener`, cloud `*Groups`).
/// It is still parsed, so its presence is known and validation can reject it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IgnoredAny;

impl<'de> Deserialize<'de> for IgnoredAny {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| IgnoredAny)
    }
}

// ---------------------------------------------------------------------------------
// networking.k8s.io/v1 NetworkPolicy
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicy {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NetworkPolicySpec,
    pub status: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    #[serde(default)]
    pub pod_selector: LabelSelector,
    pub policy_types: Option<Vec<String>>,
    pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
    pub egress: Option<Vec<NetworkPolicyEgressRule>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyIngressRule {
    pub from: Option<Vec<NetworkPolicyPeer>>,
    pub ports: Option<Vec<NetworkPolicyPort>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyEgressRule {
    pub to: Option<Vec<NetworkPolicyPeer>>,
    pub ports: Option<Vec<NetworkPolicyPort>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPeer {
    pub pod_selector: Option<LabelSelector>,
    pub namespace_selector: Option<LabelSelector>,
    pub ip_block: Option<IpBlock>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpBlock {
    pub cidr: String,
    pub except: Option<Vec<String>>,
}

/// A KNP port: `port` is an int-or-string (number or named port); `protocol` defaults
/// to TCP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPort {
    pub protocol: Option<String>,
    pub port: Option<String>,
    pub end_port: Option<i64>,
}

// ---------------------------------------------------------------------------------
// v1 Namespace, v1 Service
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<IgnoredAny>,
    pub status: Option<IgnoredAny>,
}

/// `v1 Secret`: the values `headerMatches` entries compare headers with. `Debug` shows
/// the keys, never the values, so a secret cannot reach a log through a debug print.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Base64 values, as the API server stores them.
    pub data: Option<BTreeMap<String, String>>,
    /// Plain-text values; a key in both takes this one, as the API server merges them.
    pub string_data: Option<BTreeMap<String, String>>,
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    pub immutable: Option<bool>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = |m: &Option<BTreeMap<String, String>>| -> Vec<String> {
            m.iter().flat_map(|m| m.keys().cloned()).collect()
        };
        f.debug_struct("Secret")
            .field("metadata", &self.metadata)
            .field("data_keys", &keys(&self.data))
            .field("string_data_keys", &keys(&self.string_data))
            .field("type", &self.secret_type)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
    pub status: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer`, `ExternalName`.
    #[serde(rename = "type")]
    pub service_type: Option<String>,
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Option<Vec<String>>,
    pub ports: Option<Vec<ServicePort>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub port: u16,
    /// A number or a named port of the selected pods.
    pub target_port: Option<String>,
    pub app_protocol: Option<String>,
}

// ---------------------------------------------------------------------------------
// cilium.io/v2alpha1 CiliumCIDRGroup (target of `cidrGroupRef` / `cidrGroupSelector`)
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrGroup {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CidrGroupSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrGroupSpec {
    #[serde(rename = "externalCIDRs", default)]
    pub external_cidrs: Vec<String>,
}

// ---------------------------------------------------------------------------------
// sluice.io/v1alpha1 Workload and NodeConfig
// ---------------------------------------------------------------------------------

/// A workload: what a pod is to Kubernetes, for a plain Linux host too.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WorkloadSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Defaults to `default`, as a pod's does.
    pub service_account: Option<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub ports: Vec<WorkloadPort>,
    /// A cgroup v2 path to enroll, relative to the cgroup2 mount.
    pub cgroup: Option<String>,
    /// A command sluice starts as a pod (demo and test workloads).
    pub run: Option<RunSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunSpec {
    pub command: Vec<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub working_dir: Option<String>,
}

/// Node-wide settings. At most one per configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConfig {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeConfigSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConfigSpec {
    /// Defaults to `default`, Cilium's default cluster name.
    pub cluster_name: Option<String>,
    /// Defaults to `cluster.local`.
    pub trust_domain: Option<String>,
    /// Defaults to the host name.
    pub node_name: Option<String>,
    /// `default`, `always` or `never` (Cilium's `enable-policy`).
    pub policy_enforcement: Option<String>,
    /// Cilium's `policy-audit-mode`.
    pub policy_audit_mode: Option<bool>,
    /// Cilium's `allow-localhost`: `always` (default) lets the local host reach every
    /// local workload whatever its ingress policy; `policy` subjects it to policy.
    pub allow_localhost: Option<String>,
    pub proxy: Option<ProxyPorts>,
    /// Labels of this node, for `nodeSelector` (host firewall) rules.
    pub node_labels: Option<BTreeMap<String, String>>,
    /// The DNS proxy's behaviour.
    pub dns: Option<DnsSettings>,
    /// The HTTP engine's own answers and time limits.
    pub http: Option<HttpSettings>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsSettings {
    /// One resolver that every query is forwarded to, instead of the one the workload
    /// addressed: `10.96.0.10`, `10.96.0.10:5353`, `fd00::10`, `[fd00::10]:53`.
    pub upstream: Option<String>,
    /// `refused` (default) or `nxdomain`: the answer to a query `rules.dns` does not
    /// allow (Cilium's `tofqdns-dns-reject-response-code`, `refused` / `nameError`).
    pub reject_response: Option<String>,
    /// Seconds: the shortest time the addresses of an allowed answer stay open for
    /// `toFQDNs`, whatever the answer's TTL (Cilium's `tofqdns-min-ttl`).
    #[serde(rename = "minTTL")]
    pub min_ttl: Option<u32>,
    /// The most addresses kept per endpoint and name; the ones closest to expiry go
    /// first (Cilium's `tofqdns-endpoint-max-ip-per-hostname`).
    #[serde(rename = "maxIPsPerHostname")]
    pub max_ips_per_hostname: Option<u32>,
    /// Where the learned names and addresses are kept across restarts (an absolute path).
    pub state_file: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    /// The body of the 403 answer to a request `rules.http` deny (Cilium's
    /// `http-403-msg`); empty or absent means `Access denied`, and a CRLF is appended
    /// when the text does not end with one, as Cilium's proxy does.
    pub denied_body: Option<String>,
    /// The `content-type` of that answer; `text/plain` when absent.
    pub denied_content_type: Option<String>,
    /// How long a request head may take to arrive. Durations are Gateway API
    /// durations (GEP-2257): `15s`, `1m30s`, `500ms`.
    pub header_timeout: Option<String>,
    /// How long a connection may stay without a request in flight.
    pub idle_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyPorts {
    /// Transparent proxy port for redirected connections.
    pub port: Option<u16>,
    /// DNS proxy port for redirected DNS.
    pub dns_port: Option<u16>,
    /// Admin socket path.
    pub admin_socket: Option<String>,
}
