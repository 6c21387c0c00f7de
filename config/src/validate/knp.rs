//! Kubernetes NetworkPolicy (`networking.k8s.io/v1`), with the API server's checks
//! (k8s.io/kubernetes pkg/apis/networking/validation), worded as `kubectl` users know them.

use sluice_l7::quote::go_quote;

use super::Report;
use super::cidr::{self, BareIp};
use super::names::{self, LabelKeys};
use super::selector::{self, NameRule};
use crate::diag::FieldPath;
use crate::types::{IpBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};

const MAX_PORT: i64 = 65535;

pub(super) fn policy(p: &NetworkPolicy, report: &mut Report) {
    let root = FieldPath::root();
    selector::object_meta(
        &p.metadata,
        &root.key("metadata"),
        NameRule::Dns1123Subdomain,
        report,
    );
    let spec = &p.spec;
    let at = root.key("spec");
    selector::selector(
        &spec.pod_selector,
        &at.key("podSelector"),
        LabelKeys::Kubernetes,
        report,
    );

    if let Some(types) = &spec.policy_types {
        if types.len() > 2 {
            report.add(
                &at.key("policyTypes"),
                "may not specify more than two policyTypes",
            );
        }
        for (i, t) in types.iter().enumerate() {
            if t != "Ingress" && t != "Egress" {
                report.add(
                    &at.key("policyTypes").index(i),
                    format!(
                        "unsupported policy type {}: supported values: \"Ingress\", \"Egress\"",
                        go_quote(t)
                    ),
                );
            } else if types[..i].contains(t) {
                report.add(
                    &at.key("policyTypes").index(i),
                    format!("duplicate policy type {}", go_quote(t)),
                );
            }
        }
    }

    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let rule_at = at.key("ingress").index(i);
        for (j, peer) in rule.from.iter().flatten().enumerate() {
            self::peer(peer, &rule_at.key("from").index(j), report);
        }
        for (j, port) in rule.ports.iter().flatten().enumerate() {
            self::port(port, &rule_at.key("ports").index(j), report);
        }
    }
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let rule_at = at.key("egress").index(i);
        for (j, peer) in rule.to.iter().flatten().enumerate() {
            self::peer(peer, &rule_at.key("to").index(j), report);
        }
        for (j, port) in rule.ports.iter().flatten().enumerate() {
            self::port(port, &rule_at.key("ports").index(j), report);
        }
    }
}

fn peer(peer: &NetworkPolicyPeer, at: &FieldPath, report: &mut Report) {
    let selectors = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
    match (&peer.ip_block, selectors) {
        (None, false) => report.add(at, "must specify a peer"),
        (Some(_), true) => report.add(
            &at.key("ipBlock"),
            "may not specify both ipBlock and another peer",
        ),
        _ => {}
    }
    if let Some(sel) = &peer.pod_selector {
        selector::selector(sel, &at.key("podSelector"), LabelKeys::Kubernetes, report);
    }
    if let Some(sel) = &peer.namespace_selector {
        selector::selector(
            sel,
            &at.key("namespaceSelector"),
            LabelKeys::Kubernetes,
            report,
        );
    }
    if let Some(block) = &peer.ip_block {
        ip_block(block, &at.key("ipBlock"), report);
    }
}

fn ip_block(block: &IpBlock, at: &FieldPath, report: &mut Report) {
    let net = if block.cidr.is_empty() {
        report.add(at, "ipBlock.cidr is required");
        None
    } else {
        match cidr::parse(&block.cidr, BareIp::Rejected) {
            Ok(net) => Some(net),
            Err(e) => {
                report.add(
                    &at.key("cidr"),
                    format!("invalid CIDR {}: {}", go_quote(&block.cidr), e.reason()),
                );
                None
            }
        }
    };
    for (i, ex) in block.except.iter().flatten().enumerate() {
        let ex_at = at.key("except").index(i);
        match cidr::parse(ex, BareIp::Rejected) {
            Err(e) => report.add(
                &ex_at,
                format!("invalid CIDR {}: {}", go_quote(ex), e.reason()),
            ),
            Ok(ex_net) => {
                // Kubernetes wants a strict subset: excepting the whole block is a mistake.
                if let Some(net) = &net
                    && (ex_net.prefix_len() <= net.prefix_len() || !cidr::contains(net, &ex_net))
                {
                    report.add(
                        &ex_at,
                        format!("except {ex} must be a strict subset of cidr {}", block.cidr),
                    );
                }
            }
        }
    }
}

fn port(port: &NetworkPolicyPort, at: &FieldPath, report: &mut Report) {
    if let Some(proto) = &port.protocol
        && !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP")
    {
        report.add(
            &at.key("protocol"),
            format!(
                "unsupported protocol {}: supported values: \"TCP\", \"UDP\", \"SCTP\"",
                go_quote(proto)
            ),
        );
    }
    // `None`: absent, named or invalid.
    let mut number = None;
    let mut named = false;
    if let Some(p) = &port.port {
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            match p.parse::<i64>() {
                Ok(n) if (1..=MAX_PORT).contains(&n) => number = Some(n),
                _ => report.add(
                    &at.key("port"),
                    "port must be between 1 and 65535, inclusive",
                ),
            }
        } else if names::is_port_name(p, false) {
            named = true;
        } else {
            report.add(
                &at.key("port"),
                format!(
                    "invalid port name {}: {}",
                    go_quote(p),
                    names::PORT_NAME_RULES
                ),
            );
        }
    }
    if let Some(end) = port.end_port {
        let end_at = at.key("endPort");
        if port.port.is_none() {
            report.add(
                &end_at,
                "endPort may not be specified when port is not specified",
            );
        } else if named {
            report.add(
                &end_at,
                "endPort may not be specified when port is non-numeric",
            );
        } else if !(1..=MAX_PORT).contains(&end) {
            report.add(&end_at, "endPort must be between 1 and 65535, inclusive");
        } else if let Some(start) = number
            && end < start
        {
            report.add(&end_at, "endPort must be greater than or equal to port");
        }
    }
}
