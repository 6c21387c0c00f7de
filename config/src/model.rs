//! The loaded configuration, as the policy engine and the node consume it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::types::{
    CidrGroup, CiliumPolicy, LabelSelector, Namespace, NetworkPolicy, Secret, Service, Workload,
};

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: PathBuf,
    /// 1-based line of the document's first node.
    pub line: usize,
    /// 0-based index of the document within its file.
    pub document: usize,
}

/// A resource and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc<T> {
    pub source: Source,
    pub resource: T,
}

/// Policy enforcement mode (Cilium's `enable-policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EnforcementMode {
    /// An endpoint is enforced in a direction when a rule selects it for that direction.
    #[default]
    Default,
    /// Every endpoint is enforced in both directions.
    Always,
    /// Nothing is enforced.
    Never,
}

/// The answer the DNS proxy gives a query that `rules.dns` does not allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DnsRejectResponse {
    /// REFUSED, Cilium's default.
    #[default]
    Refused,
    /// NXDOMAIN: some clients stop retrying sooner.
    NxDomain,
}

/// The answer to an HTTP request `rules.http` deny (the status is always 403; a gRPC
/// call gets PERMISSION_DENIED instead and none of this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDenial {
    /// The body as sent: it ends with a CRLF.
    pub body: String,
    pub content_type: String,
}

impl HttpDenial {
    /// Cilium's body (spec §11): `Access denied` and a CRLF, 15 bytes.
    pub const DEFAULT_BODY: &'static str = "Access denied\r\n";
    pub const DEFAULT_CONTENT_TYPE: &'static str = "text/plain";
    /// The largest `deniedBody` accepted, in bytes (before the CRLF sluice may append):
    /// a denial is an answer, not a page, and every denied request carries it.
    pub const MAX_BODY_LEN: usize = 4096;
    /// The longest `deniedContentType` accepted.
    pub const MAX_CONTENT_TYPE_LEN: usize = 255;

    /// The body sent for a configured text, as Cilium's proxy builds it (cilium/proxy
    /// `cilium/l7policy.cc`, `Config::Config`): empty means the default text, and a CRLF is
    /// appended unless the text already ends with one.
    pub fn body_from(text: Option<&str>) -> String {
        let mut body = match text {
            None | Some("") => return Self::DEFAULT_BODY.to_owned(),
            Some(text) => text.to_owned(),
        };
        if !body.ends_with("\r\n") {
            body.push_str("\r\n");
        }
        body
    }
}

impl Default for HttpDenial {
    fn default() -> Self {
        Self {
            body: Self::DEFAULT_BODY.to_owned(),
            content_type: Self::DEFAULT_CONTENT_TYPE.to_owned(),
        }
    }
}

/// How the node keeps what DNS answers teach `toFQDNs` (`NodeConfig.spec.dns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FqdnSettings {
    /// Seconds an allowed answer's addresses stay open at least (`minTTL`).
    pub min_ttl: u32,
    /// Addresses kept per endpoint and name (`maxIPsPerHostname`).
    pub max_ips_per_hostname: u32,
    /// The file the learned names and addresses are kept in across restarts
    /// (`stateFile`).
    pub state_file: PathBuf,
}

impl FqdnSettings {
    /// Cilium's current default (`tofqdns-min-ttl`: the answer's own TTL counts; older
    /// releases defaulted to 3600).
    pub const DEFAULT_MIN_TTL: u32 = 0;
    /// Cilium's current default (`tofqdns-endpoint-max-ip-per-hostname`; older releases
    /// defaulted to 50).
    pub const DEFAULT_MAX_IPS_PER_HOSTNAME: u32 = 1000;
    /// Under `/run`: it survives a restart of the node but not of the machine, whose
    /// workloads start again with empty DNS caches (as Cilium's state directory).
    pub const DEFAULT_STATE_FILE: &'static str = "/run/sluice/fqdn-cache.json";
}

impl Default for FqdnSettings {
    fn default() -> Self {
        Self {
            min_ttl: Self::DEFAULT_MIN_TTL,
            max_ips_per_hostname: Self::DEFAULT_MAX_IPS_PER_HOSTNAME,
            state_file: PathBuf::from(Self::DEFAULT_STATE_FILE),
        }
    }
}

/// `NodeConfig` with its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    pub cluster_name: String,
    pub trust_domain: String,
    pub node_name: Option<String>,
    pub enforcement: EnforcementMode,
    pub audit_mode: bool,
    /// The local host may reach every local workload (Cilium's `allow-localhost`).
    pub allow_localhost: bool,
    pub proxy_port: u16,
    pub dns_proxy_port: u16,
    pub dns_reject_response: DnsRejectResponse,
    /// `spec.dns.upstream`: the resolver every query is forwarded to. `None`: each query
    /// goes to the resolver the workload addressed (its original destination), as in Cilium.
    /// Policy is decided on the original destination either way.
    pub dns_upstream: Option<SocketAddr>,
    /// The HTTP engine's answer to a denied request (`spec.http`).
    pub http_denial: HttpDenial,
    /// `toFQDNs`: what learning addresses from DNS answers keeps, and where.
    pub fqdn: FqdnSettings,
    pub admin_socket: PathBuf,
    /// Labels of this node, selected by `nodeSelector` rules.
    pub node_labels: BTreeMap<String, String>,
    pub http: HttpTimeouts,
}

/// The HTTP engine's time limits against clients that hold connections without using
/// them (`spec.http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// A request head must be complete this long after the proxy starts waiting for it:
    /// from accept for a connection's first request, from its first byte for later ones.
    pub header: Duration,
    /// A connection with no request in flight is closed after this long (HTTP/2: GOAWAY).
    pub idle: Duration,
}

impl HttpTimeouts {
    pub const DEFAULT_HEADER: Duration = Duration::from_secs(15);
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            header: Self::DEFAULT_HEADER,
            idle: Self::DEFAULT_IDLE,
        }
    }
}

impl NodeSettings {
    pub const DEFAULT_CLUSTER_NAME: &'static str = "default";
    pub const DEFAULT_TRUST_DOMAIN: &'static str = "cluster.local";
    pub const DEFAULT_PROXY_PORT: u16 = 15001;
    pub const DEFAULT_DNS_PROXY_PORT: u16 = 15053;
    pub const DEFAULT_ADMIN_SOCKET: &'static str = "/run/sluice/admin.sock";
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            cluster_name: Self::DEFAULT_CLUSTER_NAME.to_owned(),
            trust_domain: Self::DEFAULT_TRUST_DOMAIN.to_owned(),
            node_name: None,
            enforcement: EnforcementMode::Default,
            audit_mode: false,
            allow_localhost: true,
            proxy_port: Self::DEFAULT_PROXY_PORT,
            dns_proxy_port: Self::DEFAULT_DNS_PROXY_PORT,
            dns_reject_response: DnsRejectResponse::Refused,
            dns_upstream: None,
            http_denial: HttpDenial::default(),
            fqdn: FqdnSettings::default(),
            admin_socket: PathBuf::from(Self::DEFAULT_ADMIN_SOCKET),
            node_labels: BTreeMap::new(),
            http: HttpTimeouts::default(),
        }
    }
}

/// The three policy kinds sluice accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
    NetworkPolicy,
}

impl PolicyKind {
    /// The Kubernetes kind name, as Hubble prints it in `*_allowed_by`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            Self::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            Self::NetworkPolicy => "NetworkPolicy",
        }
    }

    pub fn is_namespaced(self) -> bool {
        !matches!(self, Self::CiliumClusterwideNetworkPolicy)
    }
}

/// A policy document: valid and typed, or rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// A valid CNP or CCNP (`kind` tells which).
    Cilium(CiliumPolicy),
    /// A valid Kubernetes NetworkPolicy.
    Kubernetes(NetworkPolicy),
    /// A policy with errors (see [`Config::diagnostics`]).
    Rejected(RejectedPolicy),
}

impl Policy {
    pub fn kind(&self) -> PolicyKind {
        match self {
            Self::Cilium(p) if p.kind == "CiliumClusterwideNetworkPolicy" => {
                PolicyKind::CiliumClusterwideNetworkPolicy
            }
            Self::Cilium(_) => PolicyKind::CiliumNetworkPolicy,
            Self::Kubernetes(_) => PolicyKind::NetworkPolicy,
            Self::Rejected(r) => r.kind,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Cilium(p) => &p.metadata.name,
            Self::Kubernetes(p) => &p.metadata.name,
            Self::Rejected(r) => &r.name,
        }
    }

    /// The namespace of a namespaced policy; `None` for a CCNP.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::Cilium(p) => p.metadata.namespace.as_deref(),
            Self::Kubernetes(p) => p.metadata.namespace.as_deref(),
            Self::Rejected(r) => r.namespace.as_deref(),
        }
    }
}

/// What is known of a rejected policy: enough to fail its subjects closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedPolicy {
    pub kind: PolicyKind,
    /// `None` for a CCNP.
    pub namespace: Option<String>,
    pub name: String,
    /// One entry per rule that could be read far enough; empty when nothing could be
    /// read, in which case every endpoint in the policy's scope (its namespace, or the
    /// cluster for a CCNP) fails closed in both directions.
    pub subjects: Vec<RejectedSubject>,
}

/// The subject and directions of one rule of a rejected policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedSubject {
    /// `None`: the selector itself could not be read; every endpoint in scope.
    pub selector: Option<LabelSelector>,
    /// The selector is a `nodeSelector` (host firewall).
    pub node: bool,
    pub ingress: bool,
    pub egress: bool,
}

/// A whole, loaded configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub node: NodeSettings,
    pub namespaces: Vec<Doc<Namespace>>,
    pub workloads: Vec<Doc<Workload>>,
    pub services: Vec<Doc<Service>>,
    pub cidr_groups: Vec<Doc<CidrGroup>>,
    /// `v1 Secret`s, read by `headerMatches` entries that name them.
    pub secrets: Vec<Doc<Secret>>,
    pub policies: Vec<Doc<Policy>>,
    /// The errors of policies that were rejected alone.
    pub diagnostics: Vec<Diagnostic>,
}
