//! sluice's own kinds (Workload, NodeConfig) and the Kubernetes objects policies refer to
//! (Service, Namespace, CiliumCIDRGroup).

use std::collections::BTreeSet;
use std::net::IpAddr;

use sluice_l7::quote::go_quote;

use super::Report;
use super::cidr::{self, BareIp};
use super::names::{self, LabelKeys};
use super::selector::{self, NameRule};
use crate::diag::FieldPath;
use crate::duration;
use crate::model::{HttpDenial, NodeSettings};
use crate::types::{CidrGroup, HttpSettings, Namespace, NodeConfig, Service, Workload};

/// Cilium's limit on `cluster-name`.
const CLUSTER_NAME_MAX: usize = 32;

pub(super) fn workload(w: &Workload, report: &mut Report) {
    let root = FieldPath::root();
    selector::object_meta(
        &w.metadata,
        &root.key("metadata"),
        NameRule::Dns1123Subdomain,
        report,
    );
    let spec = &w.spec;
    let at = root.key("spec");

    if let Some(sa) = &spec.service_account
        && let Err(reason) = names::dns1123_subdomain(sa)
    {
        report.add(
            &at.key("serviceAccount"),
            format!("invalid service account name {}: {reason}", go_quote(sa)),
        );
    }

    let mut seen_addresses = BTreeSet::new();
    for (i, a) in spec.addresses.iter().enumerate() {
        let a_at = at.key("addresses").index(i);
        match a.parse::<IpAddr>() {
            Err(_) => report.add(
                &a_at,
                format!(
                    "invalid IP address {}: write one address, without a prefix length",
                    go_quote(a)
                ),
            ),
            Ok(ip) => {
                if !seen_addresses.insert(ip) {
                    report.add(&a_at, format!("duplicate address {ip}"));
                }
            }
        }
    }

    let mut seen_names = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let p_at = at.key("ports").index(i);
        if p.port == 0 {
            report.add(
                &p_at.key("port"),
                "port must be between 1 and 65535, inclusive",
            );
        }
        if let Some(name) = &p.name {
            port_name(name, &p_at.key("name"), &mut seen_names, report);
        }
        if let Some(proto) = &p.protocol {
            protocol(proto, &p_at.key("protocol"), report);
        }
    }

    if let Some(cgroup) = &spec.cgroup {
        let c_at = at.key("cgroup");
        if !cgroup.starts_with('/') {
            report.add(
                &c_at,
                format!("invalid cgroup {}: write the path under the cgroup2 mount, starting with '/', like /system.slice/web.service", go_quote(cgroup)),
            );
        } else if cgroup.split('/').all(str::is_empty) {
            // Attaching to the root cgroup would steer every process on the host.
            report.add(
                &c_at,
                "the root cgroup cannot be enrolled: name the workload's own cgroup",
            );
        }
        if cgroup.split('/').any(|part| part == "..") {
            report.add(
                &c_at,
                format!("invalid cgroup {}: '..' is not allowed", go_quote(cgroup)),
            );
        }
        if cgroup.contains('\0') {
            report.add(
                &c_at,
                format!("invalid cgroup {}: NUL is not allowed", go_quote(cgroup)),
            );
        }
    }

    if let Some(run) = &spec.run {
        let r_at = at.key("run");
        match run.command.first() {
            None => report.add(
                &r_at.key("command"),
                "run.command must not be empty: name the program to start",
            ),
            Some(program) if program.is_empty() => report.add(
                &r_at.key("command").index(0),
                "the program to run must not be empty",
            ),
            Some(_) => {}
        }
        for name in run.env.iter().flat_map(|env| env.keys()) {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                report.add(
                    &r_at.key("env").key(name),
                    format!("invalid environment variable name {}", go_quote(name)),
                );
            }
        }
    }
}

pub(super) fn node_config(n: &NodeConfig, report: &mut Report) {
    let root = FieldPath::root();
    let meta_at = root.key("metadata");
    // One NodeConfig per configuration: its name is optional, but must be valid if given.
    if !n.metadata.name.is_empty()
        && let Err(reason) = names::dns1123_subdomain(&n.metadata.name)
    {
        report.add(
            &meta_at.key("name"),
            format!("invalid name {}: {reason}", go_quote(&n.metadata.name)),
        );
    }
    if let Some(labels) = &n.metadata.labels {
        selector::label_map(
            labels,
            &meta_at.key("labels"),
            LabelKeys::Kubernetes,
            report,
        );
    }
    let spec = &n.spec;
    let at = root.key("spec");

    if let Some(name) = &spec.cluster_name {
        let reason = if name.len() > CLUSTER_NAME_MAX {
            Some(format!(
                "must be no more than {CLUSTER_NAME_MAX} characters"
            ))
        } else {
            names::dns1123_label(name).err()
        };
        if let Some(reason) = reason {
            report.add(
                &at.key("clusterName"),
                format!("invalid clusterName {}: {reason}", go_quote(name)),
            );
        }
    }
    if let Some(td) = &spec.trust_domain
        && let Some(message) = trust_domain(td)
    {
        report.add(&at.key("trustDomain"), message);
    }
    if let Some(node) = &spec.node_name
        && let Err(reason) = names::dns1123_subdomain(node)
    {
        report.add(
            &at.key("nodeName"),
            format!("invalid nodeName {}: {reason}", go_quote(node)),
        );
    }
    if let Some(labels) = &spec.node_labels {
        // Matched by `nodeSelector` rules, whose keys may carry a Cilium source prefix; the
        // labels themselves are plain.
        selector::label_map(labels, &at.key("nodeLabels"), LabelKeys::Kubernetes, report);
    }
    if let Some(mode) = &spec.policy_enforcement
        && !matches!(mode.as_str(), "default" | "always" | "never")
    {
        report.add(
                &at.key("policyEnforcement"),
                format!(
                    "unsupported policyEnforcement {}: supported values: \"default\", \"always\", \"never\"",
                    go_quote(mode)
                ),
            );
    }
    if let Some(mode) = &spec.allow_localhost
        && !matches!(mode.as_str(), "always" | "policy")
    {
        report.add(
            &at.key("allowLocalhost"),
            format!(
                "unsupported allowLocalhost {}: supported values: \"always\", \"policy\"",
                go_quote(mode)
            ),
        );
    }
    if let Some(upstream) = spec.dns.as_ref().and_then(|d| d.upstream.as_ref())
        && let Err(message) = super::dns_upstream(upstream)
    {
        report.add(&at.key("dns").key("upstream"), message);
    }
    if let Some(reject) = spec.dns.as_ref().and_then(|d| d.reject_response.as_ref())
        && !matches!(reject.as_str(), "refused" | "nxdomain")
    {
        report.add(
            &at.key("dns").key("rejectResponse"),
            format!(
                "unsupported rejectResponse {}: supported values: \"refused\", \"nxdomain\"",
                go_quote(reject)
            ),
        );
    }
    if let Some(http) = &spec.http {
        http_settings(http, &at.key("http"), report);
        let h_at = at.key("http");
        let timeouts = [
            ("headerTimeout", &http.header_timeout),
            ("idleTimeout", &http.idle_timeout),
        ];
        for (key, value) in timeouts {
            let Some(text) = value else { continue };
            match duration::parse(text) {
                Ok(d) if d.is_zero() => {
                    report.add(&h_at.key(key), format!("{key} must be greater than zero"))
                }
                Ok(_) => {}
                Err(e) => report.add(
                    &h_at.key(key),
                    format!("invalid {key} {}: {e}", go_quote(text)),
                ),
            }
        }
    }
    if let Some(dns) = &spec.dns {
        if dns.max_ips_per_hostname == Some(0) {
            report.add(
                &at.key("dns").key("maxIPsPerHostname"),
                "maxIPsPerHostname must be at least 1 (every allowed answer keeps at least one address per name)",
            );
        }
        if let Some(path) = &dns.state_file
            && !path.starts_with('/')
        {
            report.add(
                &at.key("dns").key("stateFile"),
                format!(
                    "stateFile must be an absolute path, like {}",
                    crate::model::FqdnSettings::DEFAULT_STATE_FILE
                ),
            );
        }
    }
    if let Some(proxy) = &spec.proxy {
        let p_at = at.key("proxy");
        for (key, value) in [("port", proxy.port), ("dnsPort", proxy.dns_port)] {
            if value == Some(0) {
                report.add(
                    &p_at.key(key),
                    format!("{key} must be between 1 and 65535, inclusive"),
                );
            }
        }
        // Compared with defaults applied: `dnsPort: 15001` collides with the default `port`.
        let port = proxy.port.unwrap_or(NodeSettings::DEFAULT_PROXY_PORT);
        let dns_port = proxy
            .dns_port
            .unwrap_or(NodeSettings::DEFAULT_DNS_PROXY_PORT);
        if port == dns_port && port != 0 {
            let key = if proxy.dns_port.is_some() {
                "dnsPort"
            } else {
                "port"
            };
            report.add(
                &p_at.key(key),
                format!("port and dnsPort must differ (both are {port})"),
            );
        }
        if let Some(socket) = &proxy.admin_socket
            && !socket.starts_with('/')
        {
            report.add(
                &p_at.key("adminSocket"),
                format!(
                    "adminSocket must be an absolute path, like {}",
                    NodeSettings::DEFAULT_ADMIN_SOCKET
                ),
            );
        }
    }
}

/// `spec.http`: the 403 answer's body and content type.
fn http_settings(http: &HttpSettings, at: &FieldPath, report: &mut Report) {
    if let Some(body) = &http.denied_body
        && body.len() > HttpDenial::MAX_BODY_LEN
    {
        report.add(
            &at.key("deniedBody"),
            format!(
                "deniedBody is {} bytes, more than the limit of {} (4 KiB): a denial is sent with every denied request; keep it short",
                body.len(),
                HttpDenial::MAX_BODY_LEN
            ),
        );
    }
    if let Some(ct) = &http.denied_content_type
        && let Err(reason) = media_type(ct)
    {
        report.add(
            &at.key("deniedContentType"),
            format!(
                "invalid deniedContentType {}: {reason}",
                go_quote(truncated(ct, HttpDenial::MAX_CONTENT_TYPE_LEN))
            ),
        );
    }
}

/// A `content-type` value: `type/subtype`, optionally followed by `;` and parameters, in
/// characters a header value may carry (RFC 9110 §8.3.1, §5.5).
fn media_type(ct: &str) -> Result<(), String> {
    const EXAMPLE: &str =
        "write a media type such as \"text/plain\" or \"text/html; charset=utf-8\"";
    if ct.len() > HttpDenial::MAX_CONTENT_TYPE_LEN {
        return Err(format!(
            "it is {} bytes, more than the limit of {}",
            ct.len(),
            HttpDenial::MAX_CONTENT_TYPE_LEN
        ));
    }
    if !ct
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Err(format!(
            "a header value carries only visible ASCII, spaces and tabs; {EXAMPLE}"
        ));
    }
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match essence.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => Ok(()),
        _ => Err(format!("it is not type/subtype; {EXAMPLE}")),
    }
}

/// At most `max` bytes of `s`, cut at a character boundary (an error quotes the start of a
/// long value, not all of it).
fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A SPIFFE trust domain name (SPIFFE ID spec §2.1): lowercase letters, digits, `.`, `-`, `_`.
fn trust_domain(td: &str) -> Option<String> {
    if td.is_empty() {
        return Some("trustDomain must not be empty".to_owned());
    }
    if let Some(rest) = td.strip_prefix("spiffe://") {
        return Some(format!(
            "trustDomain is a name, not a SPIFFE ID: write {} instead of {}",
            go_quote(rest.trim_end_matches('/')),
            go_quote(td)
        ));
    }
    let valid = td
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'));
    (!valid).then(|| {
        format!(
            "invalid trustDomain {}: a SPIFFE trust domain consists of lowercase letters, digits, '.', '-' and '_'",
            go_quote(td)
        )
    })
}

pub(super) fn service(s: &Service, report: &mut Report) {
    let root = FieldPath::root();
    selector::object_meta(
        &s.metadata,
        &root.key("metadata"),
        NameRule::Dns1035Label,
        report,
    );
    let spec = &s.spec;
    let at = root.key("spec");

    if let Some(t) = &spec.service_type
        && !matches!(
            t.as_str(),
            "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
        )
    {
        report.add(
                &at.key("type"),
                format!(
                    "unsupported service type {}: supported values: \"ClusterIP\", \"NodePort\", \"LoadBalancer\", \"ExternalName\"",
                    go_quote(t)
                ),
            );
    }
    if let Some(sel) = &spec.selector {
        selector::label_map(sel, &at.key("selector"), LabelKeys::Kubernetes, report);
    }
    if let Some(ip) = &spec.cluster_ip {
        cluster_ip(ip, &at.key("clusterIP"), report);
    }
    for (i, ip) in spec.cluster_ips.iter().flatten().enumerate() {
        cluster_ip(ip, &at.key("clusterIPs").index(i), report);
    }

    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut seen_names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let p_at = at.key("ports").index(i);
        if p.port == 0 {
            report.add(
                &p_at.key("port"),
                "port must be between 1 and 65535, inclusive",
            );
        }
        match p.name.as_deref().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => report.add(
                &p_at,
                "name is required when a service has more than one port",
            ),
            None => {}
            Some(name) => {
                if let Err(reason) = names::dns1123_label(name) {
                    report.add(
                        &p_at.key("name"),
                        format!("invalid port name {}: {reason}", go_quote(name)),
                    );
                } else if !seen_names.insert(name) {
                    report.add(
                        &p_at.key("name"),
                        format!("duplicate port name {}", go_quote(name)),
                    );
                }
            }
        }
        if let Some(proto) = &p.protocol {
            protocol(proto, &p_at.key("protocol"), report);
        }
        if let Some(target) = &p.target_port {
            let t_at = p_at.key("targetPort");
            if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) {
                if !target
                    .parse::<u32>()
                    .is_ok_and(|n| (1..=65535).contains(&n))
                {
                    report.add(&t_at, "targetPort must be between 1 and 65535, inclusive");
                }
            } else if !names::is_port_name(target, false) {
                report.add(
                    &t_at,
                    format!(
                        "invalid targetPort {}: {}",
                        go_quote(target),
                        names::PORT_NAME_RULES
                    ),
                );
            }
        }
    }
}

fn cluster_ip(ip: &str, at: &FieldPath, report: &mut Report) {
    // "" lets Kubernetes allocate; "None" makes a headless service.
    if !ip.is_empty() && ip != "None" && ip.parse::<IpAddr>().is_err() {
        report.add(
            at,
            format!(
                "invalid cluster IP {}: must be an IP address or \"None\"",
                go_quote(ip)
            ),
        );
    }
}

pub(super) fn namespace(n: &Namespace, report: &mut Report) {
    selector::object_meta(
        &n.metadata,
        &FieldPath::root().key("metadata"),
        NameRule::Dns1123Label,
        report,
    );
}

pub(super) fn cidr_group(c: &CidrGroup, report: &mut Report) {
    let root = FieldPath::root();
    selector::object_meta(
        &c.metadata,
        &root.key("metadata"),
        NameRule::Dns1123Subdomain,
        report,
    );
    for (i, text) in c.spec.external_cidrs.iter().enumerate() {
        if let Err(e) = cidr::parse(text, BareIp::Rejected) {
            report.add(
                &root.key("spec").key("externalCIDRs").index(i),
                format!("invalid CIDR {}: {}", go_quote(text), e.reason()),
            );
        }
    }
}

fn port_name<'a>(name: &'a str, at: &FieldPath, seen: &mut BTreeSet<&'a str>, report: &mut Report) {
    if !names::is_port_name(name, false) {
        report.add(
            at,
            format!(
                "invalid port name {}: {}",
                go_quote(name),
                names::PORT_NAME_RULES
            ),
        );
    } else if !seen.insert(name) {
        report.add(at, format!("duplicate port name {}", go_quote(name)));
    }
}

fn protocol(proto: &str, at: &FieldPath, report: &mut Report) {
    if !matches!(proto, "TCP" | "UDP" | "SCTP") {
        report.add(
            at,
            format!(
                "unsupported protocol {}: supported values: \"TCP\", \"UDP\", \"SCTP\"",
                go_quote(proto)
            ),
        );
    }
}
