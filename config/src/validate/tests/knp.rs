//! Kubernetes NetworkPolicy. Sources: k8s.io/kubernetes pkg/apis/networking/validation
//! (ValidateNetworkPolicySpec and friends); messages are sluice's phrasing of those checks.

use super::*;
use crate::types::{
    IpBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use crate::validate::network_policy;

fn knp(spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        api_version: "networking.k8s.io/v1".into(),
        kind: "NetworkPolicy".into(),
        metadata: meta("allow-web", Some("shop")),
        spec,
        status: None,
    }
}

fn from(peers: Vec<NetworkPolicyPeer>) -> NetworkPolicy {
    knp(NetworkPolicySpec {
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(peers),
            ports: None,
        }]),
        ..NetworkPolicySpec::default()
    })
}

fn to_ports(ports: Vec<NetworkPolicyPort>) -> NetworkPolicy {
    knp(NetworkPolicySpec {
        egress: Some(vec![NetworkPolicyEgressRule {
            to: None,
            ports: Some(ports),
        }]),
        ..NetworkPolicySpec::default()
    })
}

fn ip_block(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IpBlock {
            cidr: cidr.into(),
            except: if except.is_empty() {
                None
            } else {
                strings(except)
            },
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn knp_port(
    protocol: Option<&str>,
    port: Option<&str>,
    end_port: Option<i64>,
) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: protocol.map(str::to_owned),
        port: port.map(str::to_owned),
        end_port,
    }
}

#[test]
fn network_policies() {
    let cases = vec![
        case(
            "kubernetes docs example: pod + namespace selectors, ipBlock with except, ports",
            knp(NetworkPolicySpec {
                pod_selector: sel(&[("role", "db")]),
                policy_types: strings(&["Ingress", "Egress"]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![
                        ip_block("172.17.0.0/16", &["172.17.1.0/24"]),
                        NetworkPolicyPeer {
                            namespace_selector: Some(sel(&[("project", "myproject")])),
                            pod_selector: Some(sel(&[("role", "frontend")])),
                            ip_block: None,
                        },
                    ]),
                    ports: Some(vec![knp_port(Some("TCP"), Some("6379"), None)]),
                }]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![ip_block("10.0.0.0/24", &[])]),
                    ports: Some(vec![
                        knp_port(Some("TCP"), Some("32000"), Some(32768)),
                        knp_port(None, Some("metrics"), None),
                    ]),
                }]),
            }),
            &[],
        ),
        case(
            "kubernetes ValidateNetworkPolicySpec: policyTypes values",
            knp(NetworkPolicySpec {
                policy_types: strings(&["Ingress", "ingress", "Ingress"]),
                ..NetworkPolicySpec::default()
            }),
            &[
                (
                    "spec.policyTypes",
                    "may not specify more than two policyTypes",
                ),
                (
                    "spec.policyTypes[1]",
                    "unsupported policy type \"ingress\": supported values: \"Ingress\", \"Egress\"",
                ),
                ("spec.policyTypes[2]", "duplicate policy type \"Ingress\""),
            ],
        ),
        case(
            "kubernetes ValidateNetworkPolicyPeer: a peer needs one field, ipBlock alone",
            from(vec![
                NetworkPolicyPeer::default(),
                NetworkPolicyPeer {
                    pod_selector: Some(sel(&[])),
                    ..ip_block("10.0.0.0/8", &[])
                },
            ]),
            &[
                ("spec.ingress[0].from[0]", "must specify a peer"),
                (
                    "spec.ingress[0].from[1].ipBlock",
                    "may not specify both ipBlock and another peer",
                ),
            ],
        ),
        case(
            "kubernetes ValidateIPBlock: CIDRs parse, excepts are strict subsets",
            from(vec![
                ip_block("10.0.0.0", &[]),
                ip_block(
                    "10.0.0.0/8",
                    &["10.0.0.0/8", "11.0.0.0/16", "10.1.0.0/16", "x"],
                ),
                ip_block("", &[]),
            ]),
            &[
                (
                    "spec.ingress[0].from[0].ipBlock.cidr",
                    "invalid CIDR \"10.0.0.0\": no '/': write the prefix length, e.g. 10.0.0.0/8 or 10.0.0.1/32",
                ),
                (
                    "spec.ingress[0].from[1].ipBlock.except[0]",
                    "except 10.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8",
                ),
                (
                    "spec.ingress[0].from[1].ipBlock.except[1]",
                    "except 11.0.0.0/16 must be a strict subset of cidr 10.0.0.0/8",
                ),
                (
                    "spec.ingress[0].from[1].ipBlock.except[3]",
                    "invalid CIDR \"x\": not an IPv4 or IPv6 address",
                ),
                (
                    "spec.ingress[0].from[2].ipBlock",
                    "ipBlock.cidr is required",
                ),
            ],
        ),
        case(
            "kubernetes ValidateNetworkPolicyPort: protocol, port number or name",
            to_ports(vec![
                knp_port(Some("tcp"), Some("80"), None),
                knp_port(None, Some("0"), None),
                knp_port(None, Some("65536"), None),
                knp_port(None, Some("HTTP"), None),
            ]),
            &[
                (
                    "spec.egress[0].ports[0].protocol",
                    "unsupported protocol \"tcp\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
                ),
                (
                    "spec.egress[0].ports[1].port",
                    "port must be between 1 and 65535, inclusive",
                ),
                (
                    "spec.egress[0].ports[2].port",
                    "port must be between 1 and 65535, inclusive",
                ),
                (
                    "spec.egress[0].ports[3].port",
                    "invalid port name \"HTTP\": a port name is 1-15 lowercase letters, digits and '-', with at least one letter and no '-' at either end or twice in a row",
                ),
            ],
        ),
        case(
            "kubernetes ValidateNetworkPolicyPort: endPort rules",
            to_ports(vec![
                knp_port(None, None, Some(90)),
                knp_port(None, Some("http"), Some(90)),
                knp_port(None, Some("100"), Some(90)),
                knp_port(None, Some("100"), Some(70000)),
            ]),
            &[
                (
                    "spec.egress[0].ports[0].endPort",
                    "endPort may not be specified when port is not specified",
                ),
                (
                    "spec.egress[0].ports[1].endPort",
                    "endPort may not be specified when port is non-numeric",
                ),
                (
                    "spec.egress[0].ports[2].endPort",
                    "endPort must be greater than or equal to port",
                ),
                (
                    "spec.egress[0].ports[3].endPort",
                    "endPort must be between 1 and 65535, inclusive",
                ),
            ],
        ),
        case(
            "kubernetes: selectors use plain label keys (no Cilium source prefix)",
            from(vec![NetworkPolicyPeer {
                namespace_selector: Some(sel(&[("k8s:team", "a")])),
                ..NetworkPolicyPeer::default()
            }]),
            &[(
                "spec.ingress[0].from[0].namespaceSelector.matchLabels.k8s:team",
                "invalid label key \"k8s:team\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')",
            )],
        ),
        case(
            "loader contract: a missing name is the loader's to report",
            NetworkPolicy {
                metadata: meta("", Some("shop")),
                ..knp(NetworkPolicySpec::default())
            },
            &[],
        ),
    ];
    run(cases, network_policy);
}
