//! What the loader knows of each resource type: its kind, its scope, its validation,
//! and how a `NodeConfig` becomes [`NodeSettings`].

use std::net::IpAddr;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::diag::{FieldPath, Issue};
use crate::duration;
use crate::model::{
    DnsRejectResponse, EnforcementMode, FqdnSettings, HttpDenial, HttpTimeouts, NodeSettings,
};
use crate::types::{
    CidrGroup, CiliumPolicy, Namespace, NetworkPolicy, NodeConfig, ObjectMeta, Secret, Service,
    Workload,
};
use crate::validate;

/// A resource type the loader reads.
pub(super) trait Resource: DeserializeOwned {
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    /// Findings with paths relative to the document root.
    fn validate(&self) -> Vec<Issue>;
}

macro_rules! resource {
    ($($ty:ty => $validate:path,)*) => {$(
        impl Resource for $ty {
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
            fn validate(&self) -> Vec<Issue> {
                $validate(self)
            }
        }
    )*};
}

resource! {
    CiliumPolicy => validate::cilium_policy,
    NetworkPolicy => validate::network_policy,
    Namespace => validate::namespace,
    Service => validate::service,
    Secret => validate::secret,
    CidrGroup => validate::cidr_group,
    Workload => validate::workload,
    NodeConfig => validate::node_config,
}

/// The namespace a resource lives in after loading: `default` for a namespaced kind
/// that names none, nothing for a cluster-scoped kind. A namespace written on a
/// cluster-scoped kind is dropped, as `kubectl apply` does.
pub(super) fn scope(namespace: Option<&str>, namespaced: bool) -> Option<String> {
    if !namespaced {
        return None;
    }
    match namespace {
        Some(ns) if !ns.is_empty() => Some(ns.to_owned()),
        _ => Some(DEFAULT_NAMESPACE.to_owned()),
    }
}

pub(super) const DEFAULT_NAMESPACE: &str = "default";

/// `NodeConfig` with defaults applied. Only maps values: checks of their own belong
/// to validation, which has passed when this runs; what it cannot map is an error.
pub(super) fn node_settings(config: &NodeConfig) -> Result<NodeSettings, Issue> {
    let spec = &config.spec;
    let defaults = NodeSettings::default();
    let enforcement = match spec.policy_enforcement.as_deref() {
        None | Some("default") => EnforcementMode::Default,
        Some("always") => EnforcementMode::Always,
        Some("never") => EnforcementMode::Never,
        Some(other) => {
            return Err(Issue::new(
                FieldPath::root().key("spec").key("policyEnforcement"),
                format!("invalid value {other:?}; expected one of: default, always, never"),
            ));
        }
    };
    let allow_localhost = match spec.allow_localhost.as_deref() {
        None | Some("always") => true,
        Some("policy") => false,
        Some(other) => {
            return Err(Issue::new(
                FieldPath::root().key("spec").key("allowLocalhost"),
                format!("invalid value {other:?}; expected one of: always, policy"),
            ));
        }
    };
    let dns_upstream = match spec.dns.as_ref().and_then(|d| d.upstream.as_deref()) {
        None => None,
        Some(text) => Some(validate::dns_upstream(text).map_err(|message| {
            Issue::new(
                FieldPath::root().key("spec").key("dns").key("upstream"),
                message,
            )
        })?),
    };
    let dns_reject_response = match spec.dns.as_ref().and_then(|d| d.reject_response.as_deref()) {
        None | Some("refused") => DnsRejectResponse::Refused,
        Some("nxdomain") => DnsRejectResponse::NxDomain,
        Some(other) => {
            return Err(Issue::new(
                FieldPath::root()
                    .key("spec")
                    .key("dns")
                    .key("rejectResponse"),
                format!("invalid value {other:?}; expected one of: refused, nxdomain"),
            ));
        }
    };
    let http = spec.http.clone().unwrap_or_default();
    let http_denial = HttpDenial {
        body: HttpDenial::body_from(http.denied_body.as_deref()),
        content_type: http
            .denied_content_type
            .unwrap_or_else(|| HttpDenial::DEFAULT_CONTENT_TYPE.to_owned()),
    };
    let timeout = |key: &str, text: Option<&str>, default| match text {
        None => Ok(default),
        Some(text) => duration::parse(text).map_err(|e| {
            Issue::new(
                FieldPath::root().key("spec").key("http").key(key),
                format!("invalid {key} {text:?}: {e}"),
            )
        }),
    };
    let http = HttpTimeouts {
        header: timeout(
            "headerTimeout",
            http.header_timeout.as_deref(),
            defaults.http.header,
        )?,
        idle: timeout(
            "idleTimeout",
            http.idle_timeout.as_deref(),
            defaults.http.idle,
        )?,
    };
    let dns = spec.dns.clone().unwrap_or_default();
    let fqdn = FqdnSettings {
        min_ttl: dns.min_ttl.unwrap_or(defaults.fqdn.min_ttl),
        max_ips_per_hostname: dns
            .max_ips_per_hostname
            .unwrap_or(defaults.fqdn.max_ips_per_hostname),
        state_file: dns
            .state_file
            .map_or(defaults.fqdn.state_file, PathBuf::from),
    };
    let proxy = spec.proxy.clone().unwrap_or_default();
    Ok(NodeSettings {
        cluster_name: spec.cluster_name.clone().unwrap_or(defaults.cluster_name),
        trust_domain: spec.trust_domain.clone().unwrap_or(defaults.trust_domain),
        node_name: spec.node_name.clone(),
        enforcement,
        audit_mode: spec.policy_audit_mode.unwrap_or(defaults.audit_mode),
        allow_localhost,
        proxy_port: proxy.port.unwrap_or(defaults.proxy_port),
        dns_proxy_port: proxy.dns_port.unwrap_or(defaults.dns_proxy_port),
        dns_reject_response,
        http_denial,
        fqdn,
        dns_upstream,
        admin_socket: proxy
            .admin_socket
            .map_or(defaults.admin_socket, PathBuf::from),
        node_labels: spec.node_labels.clone().unwrap_or_default(),
        http,
    })
}

/// A workload address as compared for uniqueness: `fd00::1` and `fd00:0::1` are one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum AddressKey {
    Ip(IpAddr),
    /// Not an address; validation reports it, and it still must not be claimed twice.
    Text(String),
}

impl AddressKey {
    pub fn new(address: &str) -> Self {
        let address = address.trim();
        address
            .parse()
            .map_or_else(|_| Self::Text(address.to_owned()), Self::Ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_defaults_and_drops() {
        assert_eq!(scope(None, true).as_deref(), Some("default"));
        assert_eq!(scope(Some(""), true).as_deref(), Some("default"));
        assert_eq!(scope(Some("shop"), true).as_deref(), Some("shop"));
        assert_eq!(scope(Some("shop"), false), None);
    }

    #[test]
    fn addresses_compare_as_addresses() {
        assert_eq!(AddressKey::new("fd00::1"), AddressKey::new(" fd00:0::1"));
        assert_ne!(AddressKey::new("10.0.0.1"), AddressKey::new("10.0.0.2"));
    }
}
