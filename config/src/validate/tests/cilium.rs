//! Rule-level checks of CNP/CCNP: sections, subjects, peers, CIDRs, entities, selectors,
//! deny sections and what sluice does not support.

use super::*;
use crate::types::{
    Authentication, CidrRule, FqdnSelector, IgnoredAny, K8sServiceNamespace,
    LabelSelectorRequirement, LogConfig, ServiceRef,
};
use crate::validate::cilium_policy;

fn from_endpoints(selectors: Vec<LabelSelector>) -> IngressRule {
    IngressRule {
        from_endpoints: Some(selectors),
        ..IngressRule::default()
    }
}

#[test]
fn rule_sections_and_subjects() {
    let cases = vec![
        case(
            "spec §1 example (api-read-only): valid",
            ingress(IngressRule {
                from_endpoints: Some(vec![sel(&[("app", "web")])]),
                to_ports: Some(vec![PortRule {
                    rules: Some(crate::types::L7Rules {
                        http: Some(vec![crate::types::HttpRule {
                            method: Some("GET".into()),
                            path: Some("/v1/items(/.*)?".into()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..ports(vec![port("8080", Some("TCP"))])
                }]),
                ..IngressRule::default()
            }),
            &[],
        ),
        case(
            "spec §1 table; cilium rule_validation.go Rule.Validate: no section",
            cnp(Rule {
                endpoint_selector: Some(sel(&[("app", "api")])),
                ..Rule::default()
            }),
            &[(
                "spec",
                "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny",
            )],
        ),
        case(
            "spec §1 table: an empty list counts as absent",
            cnp(Rule {
                endpoint_selector: Some(sel(&[("app", "api")])),
                ingress: Some(vec![]),
                egress_deny: Some(vec![]),
                ..Rule::default()
            }),
            &[(
                "spec",
                "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny",
            )],
        ),
        case(
            "spec §2 nil versus empty: `ingress: [{}]` is a section (default deny)",
            cnp(Rule {
                endpoint_selector: Some(sel(&[])),
                ingress: Some(vec![IngressRule::default()]),
                ..Rule::default()
            }),
            &[],
        ),
        case(
            "spec §1 table; cilium Rule.Validate: neither subject selector",
            cnp(Rule {
                ingress: Some(vec![IngressRule::default()]),
                ..Rule::default()
            }),
            &[(
                "spec",
                "rule must have one of EndpointSelector or NodeSelector",
            )],
        ),
        case(
            "spec §1 table; cilium Rule.Validate: both subject selectors",
            ccnp(Rule {
                endpoint_selector: Some(sel(&[])),
                node_selector: Some(sel(&[])),
                ingress: Some(vec![IngressRule::default()]),
                ..Rule::default()
            }),
            &[(
                "spec.nodeSelector",
                "rule cannot have both EndpointSelector and NodeSelector",
            )],
        ),
        case(
            "cilium cnp_types.go CiliumNetworkPolicy.Validate: a CNP cannot select nodes",
            cnp(Rule {
                node_selector: Some(sel(&[])),
                ingress: Some(vec![IngressRule::default()]),
                ..Rule::default()
            }),
            &[(
                "spec.nodeSelector",
                "rule cannot have NodeSelector: host policies need a CiliumClusterwideNetworkPolicy",
            )],
        ),
        case(
            "spec §1: a CCNP may select nodes (host firewall)",
            ccnp(Rule {
                node_selector: Some(sel(&[("node-role.kubernetes.io/worker", "")])),
                ingress: Some(vec![IngressRule::default()]),
                ..Rule::default()
            }),
            &[],
        ),
        case(
            "cilium errors.go ErrEmptyCNP: neither spec nor specs",
            CiliumPolicy {
                spec: None,
                ..cnp(Rule::default())
            },
            &[(
                "(document)",
                "Invalid CiliumNetworkPolicy spec(s): empty policy",
            )],
        ),
        case(
            "spec §1: every rule of `specs` is validated, located by index",
            CiliumPolicy {
                spec: None,
                specs: Some(vec![
                    Rule {
                        endpoint_selector: Some(sel(&[])),
                        egress: Some(vec![EgressRule::default()]),
                        ..Rule::default()
                    },
                    Rule {
                        endpoint_selector: Some(sel(&[])),
                        ..Rule::default()
                    },
                ]),
                ..ccnp(Rule::default())
            },
            &[(
                "specs[1]",
                "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny",
            )],
        ),
        case(
            "loader contract: a missing name is reported by the loader (`a name is required`), not repeated here",
            CiliumPolicy {
                metadata: meta("", Some("shop")),
                ..ingress(IngressRule::default())
            },
            &[],
        ),
        case(
            "kubernetes: metadata.name is a DNS-1123 subdomain, namespace a DNS-1123 label",
            CiliumPolicy {
                metadata: meta("Api_Policy", Some("Shop")),
                ..ingress(IngressRule::default())
            },
            &[
                (
                    "metadata.name",
                    "invalid name \"Api_Policy\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
                ),
                (
                    "metadata.namespace",
                    "invalid namespace \"Shop\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')",
                ),
            ],
        ),
        case(
            "spec §1: log.value ≤ 32 characters (CRD MaxLength=32)",
            cnp(Rule {
                endpoint_selector: Some(sel(&[])),
                ingress: Some(vec![IngressRule::default()]),
                log: Some(LogConfig {
                    value: "x".repeat(33),
                }),
                ..Rule::default()
            }),
            &[(
                "spec.log.value",
                "log.value may not be longer than 32 characters (it has 33)",
            )],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn one_peer_kind_per_rule() {
    let cidr = |c: &str| strings(&[c]);
    let cases = vec![
        case(
            "spec §1 table; cilium IngressCommonRule.Validate: FromEndpoints + FromCIDR",
            ingress(IngressRule {
                from_cidr: cidr("10.0.0.0/8"),
                ..from_endpoints(vec![sel(&[("app", "web")])])
            }),
            &[(
                "spec.ingress[0].fromCIDR",
                "combining FromEndpoints and FromCIDR is not supported yet",
            )],
        ),
        case(
            "spec §1 table: toFQDNs counts as a peer kind (cilium EgressRule.l3Members)",
            egress(EgressRule {
                to_endpoints: Some(vec![sel(&[("app", "db")])]),
                to_fqdns: Some(vec![FqdnSelector {
                    match_name: Some("cilium.io".into()),
                    match_pattern: None,
                }]),
                ..EgressRule::default()
            }),
            &[(
                "spec.egress[0].toFQDNs",
                "combining ToEndpoints and ToFQDNs is not supported yet",
            )],
        ),
        case(
            "sluice: every extra kind is pointed at",
            egress(EgressRule {
                to_entities: strings(&["world"]),
                to_cidr: cidr("192.0.2.0/24"),
                to_services: Some(vec![ServiceRef {
                    k8s_service: Some(K8sServiceNamespace {
                        service_name: Some("db".into()),
                        namespace: Some("shop".into()),
                    }),
                    k8s_service_selector: None,
                }]),
                ..EgressRule::default()
            }),
            &[
                (
                    "spec.egress[0].toEntities",
                    "combining ToCIDR and ToEntities is not supported yet",
                ),
                (
                    "spec.egress[0].toServices",
                    "combining ToCIDR and ToServices is not supported yet",
                ),
            ],
        ),
        case(
            "cilium counts len() > 0: an empty peer list is not a peer kind",
            ingress(IngressRule {
                from_cidr: cidr("10.0.0.0/8"),
                ..from_endpoints(vec![])
            }),
            &[],
        ),
        case(
            "cilium: fromGroups counts as a peer kind (and sluice rejects it)",
            ingress(IngressRule {
                from_groups: Some(vec![IgnoredAny]),
                ..from_endpoints(vec![sel(&[])])
            }),
            &[
                (
                    "spec.ingress[0].fromGroups",
                    "combining FromEndpoints and FromGroups is not supported yet",
                ),
                (
                    "spec.ingress[0].fromGroups",
                    "fromGroups (cloud provider groups) is not supported by sluice: list the addresses with fromCIDRSet instead",
                ),
            ],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn entities() {
    let all = [
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
    let cases = vec![
        case(
            "spec §3 entities (cilium EntitySelectorMapping): all accepted",
            ingress(IngressRule {
                from_entities: strings(&all),
                ..IngressRule::default()
            }),
            &[],
        ),
        case(
            "spec §1 table; cilium IngressCommonRule.Validate: unsupported entity",
            egress(EgressRule {
                to_entities: strings(&["world", "internet", "Host"]),
                ..EgressRule::default()
            }),
            &[
                (
                    "spec.egress[0].toEntities[1]",
                    "unsupported entity: internet",
                ),
                ("spec.egress[0].toEntities[2]", "unsupported entity: Host"),
            ],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn cidr_peers() {
    let from_cidr = |list: &[&str]| {
        ingress(IngressRule {
            from_cidr: strings(list),
            ..IngressRule::default()
        })
    };
    let cidr_set = |rule: CidrRule| {
        egress(EgressRule {
            to_cidr_set: Some(vec![rule]),
            ..EgressRule::default()
        })
    };
    let cases = vec![
        case(
            "spec §4: a bare IP is a /32 or /128; cilium TestCIDRsanitize valid prefixes",
            from_cidr(&[
                "10.0.0.0/8",
                "192.0.2.7",
                "2001:db8::1",
                "0.0.0.0/0",
                "::/0",
                "ff02::/64",
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334/128",
            ]),
            &[],
        ),
        case(
            "cilium CIDR.Validate: IP must be specified",
            from_cidr(&[""]),
            &[("spec.ingress[0].fromCIDR[0]", "IP must be specified")],
        ),
        case(
            "spec §1 table; cilium TestCIDRsanitize: non-contiguous mask",
            from_cidr(&["10.0.0.0/255.0.255.0", "10.0.0.0/254.0.0.255"]),
            &[
                (
                    "spec.ingress[0].fromCIDR[0]",
                    "CIDR cannot specify non-contiguous mask 10.0.0.0/255.0.255.0",
                ),
                (
                    "spec.ingress[0].fromCIDR[1]",
                    "CIDR cannot specify non-contiguous mask 10.0.0.0/254.0.0.255",
                ),
            ],
        ),
        case(
            "cilium CIDR.Validate: unable to parse CIDR (sluice says why)",
            from_cidr(&["example.com", "10.0.0.0/33"]),
            &[
                (
                    "spec.ingress[0].fromCIDR[0]",
                    "unable to parse CIDR \"example.com\": not an IPv4 or IPv6 address",
                ),
                (
                    "spec.ingress[0].fromCIDR[1]",
                    "unable to parse CIDR \"10.0.0.0/33\": bad prefix length: a decimal number up to 32 for IPv4 or 128 for IPv6",
                ),
            ],
        ),
        case(
            "spec §1 table; cilium CIDRRule.Validate: none of cidr, cidrGroupRef, cidrGroupSelector",
            cidr_set(CidrRule {
                except: strings(&["10.0.0.0/16"]),
                ..CidrRule::default()
            }),
            &[(
                "spec.egress[0].toCIDRSet[0]",
                "one of cidr, cidrGroupRef, or cidrGroupSelector is required",
            )],
        ),
        case(
            "spec §1 table; cilium CIDRRule.Validate: more than one",
            cidr_set(CidrRule {
                cidr: Some("10.0.0.0/8".into()),
                cidr_group_ref: Some("external".into()),
                ..CidrRule::default()
            }),
            &[(
                "spec.egress[0].toCIDRSet[0]",
                "more than one of cidr, cidrGroupRef, or cidrGroupSelector may not be set",
            )],
        ),
        case(
            "spec §1 table; cilium CIDRRule.Validate: except outside its cidr",
            cidr_set(CidrRule {
                cidr: Some("10.0.0.0/8".into()),
                except: strings(&["10.96.0.0/12", "192.168.0.0/16", "10.0.0.0/7"]),
                ..CidrRule::default()
            }),
            &[
                (
                    "spec.egress[0].toCIDRSet[0].except[1]",
                    "allow CIDR prefix 10.0.0.0/8 does not contain exclude CIDR prefix 192.168.0.0/16",
                ),
                (
                    "spec.egress[0].toCIDRSet[0].except[2]",
                    "allow CIDR prefix 10.0.0.0/8 does not contain exclude CIDR prefix 10.0.0.0/7",
                ),
            ],
        ),
        case(
            "cilium CIDRRule.Validate: a CIDR set needs addr/len, unlike fromCIDR",
            cidr_set(CidrRule {
                cidr: Some("10.0.0.1".into()),
                ..CidrRule::default()
            }),
            &[(
                "spec.egress[0].toCIDRSet[0].cidr",
                "unable to parse CIDRRule \"10.0.0.1\": no '/': write the prefix length, e.g. 10.0.0.0/8 or 10.0.0.1/32",
            )],
        ),
        case(
            "cilium 1.19 CIDRRule.Validate: cidrGroupSelector is a plain Kubernetes selector",
            cidr_set(CidrRule {
                cidr_group_selector: Some(sel(&[("k8s:team", "x")])),
                ..CidrRule::default()
            }),
            &[(
                "spec.egress[0].toCIDRSet[0].cidrGroupSelector.matchLabels.k8s:team",
                "invalid label key \"k8s:team\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')",
            )],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn selectors() {
    let expr = |key: &str, op: &str, values: Option<&[&str]>| LabelSelectorRequirement {
        key: key.to_owned(),
        operator: op.to_owned(),
        values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
    };
    let with_exprs = |list: Vec<LabelSelectorRequirement>| {
        ingress(from_endpoints(vec![LabelSelector {
            match_labels: None,
            match_expressions: Some(list),
        }]))
    };
    let cases = vec![
        case(
            "spec §2: Cilium source prefixes are allowed before keys",
            ingress(from_endpoints(vec![sel(&[
                ("k8s:io.kubernetes.pod.namespace", "shop"),
                ("reserved:host", ""),
                ("any:app", "web"),
                ("io.cilium.k8s.namespace.labels.team", "a"),
            ])])),
            &[],
        ),
        case(
            "kubernetes IsQualifiedName / IsValidLabelValue",
            ingress(from_endpoints(vec![sel(&[
                ("foo:app", "web"),
                ("app", "-web"),
            ])])),
            &[
                (
                    "spec.ingress[0].fromEndpoints[0].matchLabels.app",
                    "invalid label value \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')",
                ),
                (
                    "spec.ingress[0].fromEndpoints[0].matchLabels.foo:app",
                    "invalid label key \"foo:app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')",
                ),
            ],
        ),
        case(
            "kubernetes ValidateLabelSelectorRequirement: operators and values",
            with_exprs(vec![
                expr("app", "In", Some(&["a", "b"])),
                expr("tier", "Exists", None),
                expr("app", "In", Some(&[])),
                expr("app", "NotIn", None),
                expr("app", "Exists", Some(&["x"])),
                expr("app", "Equals", Some(&["x"])),
            ]),
            &[
                (
                    "spec.ingress[0].fromEndpoints[0].matchExpressions[2]",
                    "values must be non-empty when operator is In",
                ),
                (
                    "spec.ingress[0].fromEndpoints[0].matchExpressions[3]",
                    "values must be non-empty when operator is NotIn",
                ),
                (
                    "spec.ingress[0].fromEndpoints[0].matchExpressions[4].values",
                    "values must be empty when operator is Exists",
                ),
                (
                    "spec.ingress[0].fromEndpoints[0].matchExpressions[5].operator",
                    "unsupported operator \"Equals\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
                ),
            ],
        ),
        case(
            "subject selectors are validated too",
            cnp(Rule {
                endpoint_selector: Some(sel(&[("app/x/y", "v")])),
                ingress: Some(vec![IngressRule::default()]),
                ..Rule::default()
            }),
            &[(
                "spec.endpointSelector.matchLabels.app/x/y",
                "invalid label key \"app/x/y\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            )],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn deny_sections() {
    let deny_in = |entry: IngressRule| {
        cnp(Rule {
            endpoint_selector: Some(sel(&[])),
            ingress_deny: Some(vec![entry]),
            ..Rule::default()
        })
    };
    let cases = vec![
        case(
            "spec §7: a deny with peers and ports is valid",
            deny_in(IngressRule {
                to_ports: Some(vec![ports(vec![port("80", Some("TCP"))])]),
                ..from_endpoints(vec![sel(&[("app", "client")])])
            }),
            &[],
        ),
        case(
            "spec §1/§7: deny rules carry no L7 rules (cilium PortDenyRule has only ports)",
            deny_in(IngressRule {
                to_ports: Some(vec![PortRule {
                    rules: Some(crate::types::L7Rules {
                        http: Some(vec![]),
                        ..Default::default()
                    }),
                    server_names: strings(&["a.example"]),
                    ..ports(vec![port("80", Some("TCP"))])
                }]),
                ..IngressRule::default()
            }),
            &[
                (
                    "spec.ingressDeny[0].toPorts[0].rules",
                    "deny rules cannot carry L7 rules",
                ),
                (
                    "spec.ingressDeny[0].toPorts[0].serverNames",
                    "deny rules cannot carry serverNames",
                ),
            ],
        ),
        case(
            "spec §1: deny rules take no toFQDNs (cilium EgressDenyRule has none)",
            cnp(Rule {
                endpoint_selector: Some(sel(&[])),
                egress_deny: Some(vec![EgressRule {
                    to_fqdns: Some(vec![FqdnSelector {
                        match_name: Some("cilium.io".into()),
                        match_pattern: None,
                    }]),
                    ..EgressRule::default()
                }]),
                ..Rule::default()
            }),
            &[(
                "spec.egressDeny[0].toFQDNs",
                "deny rules cannot carry toFQDNs",
            )],
        ),
        case(
            "sluice: deny rules carry no authentication (cilium IngressDenyRule has none)",
            deny_in(IngressRule {
                authentication: Some(Authentication {
                    mode: "required".into(),
                }),
                ..IngressRule::default()
            }),
            &[(
                "spec.ingressDeny[0].authentication",
                "deny rules cannot carry authentication",
            )],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn authentication_modes() {
    let with_mode = |mode: &str| {
        ingress(IngressRule {
            authentication: Some(Authentication { mode: mode.into() }),
            ..IngressRule::default()
        })
    };
    let mut cases: Vec<_> = ["disabled", "required", "test-always-fail"]
        .into_iter()
        .map(|m| case("spec §10: known authentication modes", with_mode(m), &[]))
        .collect();
    cases.push(case(
        "spec §10 / CRD enum: unknown authentication mode",
        with_mode("mtls"),
        &[(
            "spec.ingress[0].authentication.mode",
            "unsupported authentication mode \"mtls\": supported values: \"disabled\", \"required\", \"test-always-fail\"",
        )],
    ));
    run(cases, cilium_policy);
}

#[test]
fn unsupported_by_sluice() {
    let cases = vec![
        case(
            "sluice: fromRequires is rejected by name",
            ingress(IngressRule {
                from_requires: Some(vec![sel(&[("env", "prod")])]),
                ..IngressRule::default()
            }),
            &[(
                "spec.ingress[0].fromRequires",
                "fromRequires is not supported by sluice (Cilium deprecated it): add the required labels to each fromEndpoints selector instead",
            )],
        ),
        case(
            "sluice: toRequires and toGroups are rejected by name",
            egress(EgressRule {
                to_requires: Some(vec![sel(&[("env", "prod")])]),
                to_groups: Some(vec![IgnoredAny]),
                ..EgressRule::default()
            }),
            &[
                (
                    "spec.egress[0].toRequires",
                    "toRequires is not supported by sluice (Cilium deprecated it): add the required labels to each toEndpoints selector instead",
                ),
                (
                    "spec.egress[0].toGroups",
                    "toGroups (cloud provider groups) is not supported by sluice: list the addresses with toCIDRSet instead",
                ),
            ],
        ),
        case(
            "sluice: a toServices entry must name a service",
            egress(EgressRule {
                to_services: Some(vec![ServiceRef::default()]),
                ..EgressRule::default()
            }),
            &[(
                "spec.egress[0].toServices[0]",
                "toServices entry must set k8sService or k8sServiceSelector",
            )],
        ),
    ];
    run(cases, cilium_policy);
}

/// The loader relies on this: one policy with many mistakes reports all of them, in
/// document order of the checks.
#[test]
fn reports_every_issue_not_just_the_first() {
    let policy = CiliumPolicy {
        metadata: meta("Bad_Name", None),
        specs: Some(vec![Rule::default()]),
        ..ingress(IngressRule {
            from_entities: strings(&["moon"]),
            from_cidr: strings(&["nope"]),
            ..IngressRule::default()
        })
    };
    let got: Vec<String> = cilium_policy(&policy)
        .into_iter()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect();
    assert_eq!(
        got,
        vec![
            "metadata.name: invalid name \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
            "spec.ingress[0].fromEntities: combining FromCIDR and FromEntities is not supported yet",
            "spec.ingress[0].fromCIDR[0]: unable to parse CIDR \"nope\": not an IPv4 or IPv6 address",
            "spec.ingress[0].fromEntities[0]: unsupported entity: moon",
            "specs[0]: rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny",
            "specs[0]: rule must have one of EndpointSelector or NodeSelector",
        ]
    );
}
