//! `toPorts`, L7 rules and `icmps` of CNP/CCNP.

use super::*;
use crate::types::{
    FqdnSelector, HeaderMatch, HttpRule, IcmpField, IcmpRule, IgnoredAny, KafkaRule, L7Rules,
    SecretRef, TlsContext,
};
use crate::validate::cilium_policy;

fn http(rules: Vec<HttpRule>) -> L7Rules {
    L7Rules {
        http: Some(rules),
        ..L7Rules::default()
    }
}

fn dns(selectors: Vec<FqdnSelector>) -> L7Rules {
    L7Rules {
        dns: Some(selectors),
        ..L7Rules::default()
    }
}

fn kafka(rules: Vec<KafkaRule>) -> L7Rules {
    L7Rules {
        kafka: Some(rules),
        ..L7Rules::default()
    }
}

fn name(n: &str) -> FqdnSelector {
    FqdnSelector {
        match_name: Some(n.to_owned()),
        match_pattern: None,
    }
}

fn pattern(p: &str) -> FqdnSelector {
    FqdnSelector {
        match_name: None,
        match_pattern: Some(p.to_owned()),
    }
}

/// A port rule with L7 rules.
fn l7(list: Vec<PortProtocol>, rules: L7Rules) -> PortRule {
    PortRule {
        rules: Some(rules),
        ..ports(list)
    }
}

fn ingress_ports(rules: Vec<PortRule>) -> CiliumPolicy {
    ingress(IngressRule {
        to_ports: Some(rules),
        ..IngressRule::default()
    })
}

fn egress_ports(rules: Vec<PortRule>) -> CiliumPolicy {
    egress(EgressRule {
        to_ports: Some(rules),
        ..EgressRule::default()
    })
}

fn get(path: &str) -> HttpRule {
    HttpRule {
        method: Some("GET".into()),
        path: Some(path.into()),
        ..HttpRule::default()
    }
}

#[test]
fn ports_and_protocols() {
    let one = |p: PortProtocol| ingress_ports(vec![ports(vec![p])]);
    let ranged = |p: &str, end: i64| PortProtocol {
        end_port: Some(end),
        ..port(p, Some("TCP"))
    };
    let cases = vec![
        case(
            "spec §5: numbers, names (any case, Cilium lowercases), protocols in any case",
            ingress_ports(vec![ports(vec![
                port("80", Some("TCP")),
                port("0", None),
                port("65535", Some("udp")),
                port("http-alt", Some("Sctp")),
                port("GRPC", Some("any")),
                ranged("8000", 8080),
            ])]),
            &[],
        ),
        case(
            "spec §5: an empty port means all ports (Cilium 1.20 would say `port must be specified`)",
            one(port("", Some("TCP"))),
            &[],
        ),
        case(
            "sluice: port out of range",
            one(port("70000", None)),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].port",
                "unable to parse port \"70000\": 70000 is out of range 0-65535",
            )],
        ),
        case(
            "sluice: Cilium's ParseUint(port, 0, 16) reads a leading zero as octal",
            one(port("080", None)),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].port",
                "unable to parse port \"080\": a leading zero makes Cilium read the port as octal; write 80 without it, or the octal value in decimal",
            )],
        ),
        case(
            "cilium pkg/iana IsSvcName: not a number nor a port name",
            one(port("http--alt", None)),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].port",
                "unable to parse port \"http--alt\": not a number 0-65535 nor a port name (a port name is 1-15 lowercase letters, digits and '-', with at least one letter and no '-' at either end or twice in a row)",
            )],
        ),
        case(
            "sluice: endPort ≥ port",
            one(ranged("8080", 8000)),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].endPort",
                "endPort 8000 must not be less than port 8080",
            )],
        ),
        case(
            "sluice: endPort ≤ 65535 (CRD Maximum=65535)",
            one(ranged("8080", 70000)),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].endPort",
                "endPort 70000 is out of range 0-65535",
            )],
        ),
        case(
            "sluice: a range cannot start at a named port",
            one(ranged("http", 8080)),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].endPort",
                "endPort cannot be used with a named port",
            )],
        ),
        case(
            "sluice: a range cannot start at port 0 (all ports)",
            one(ranged("0", 8080)),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].endPort",
                "endPort needs a non-zero port to start the range",
            )],
        ),
        case(
            "cilium: endPort 0 means no range",
            one(ranged("80", 0)),
            &[],
        ),
        case(
            "cilium l4.go ParseL4Proto: TCP, UDP, SCTP, ANY only (no ICMP in toPorts)",
            one(port("8", Some("icmp"))),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].protocol",
                "invalid protocol \"ICMP\", must be { tcp | udp | sctp | any }",
            )],
        ),
        case(
            "spec §1 table; cilium PortRule.Validate: too many ports",
            ingress_ports(vec![ports(
                (0..41)
                    .map(|i| port(&(1000 + i).to_string(), Some("TCP")))
                    .collect(),
            )]),
            &[(
                "spec.ingress[0].toPorts[0].ports",
                "too many ports, the max is 40",
            )],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn l7_placement() {
    let cases = vec![
        case(
            "spec §1 table; cilium PortRule.Validate: L7 only on TCP",
            ingress_ports(vec![l7(
                vec![port("80", Some("UDP"))],
                http(vec![get("/")]),
            )]),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].protocol",
                "L7 rules can only apply to TCP (not UDP) except for DNS rules",
            )],
        ),
        case(
            "cilium rule_validation_test.go TestL7RulesWithNonTCPProtocols: ANY (the default) is not TCP",
            ingress_ports(vec![l7(vec![port("80", None)], http(vec![get("/")]))]),
            &[(
                "spec.ingress[0].toPorts[0].ports[0]",
                "L7 rules can only apply to TCP (not ANY) except for DNS rules",
            )],
        ),
        case(
            "spec §1 table; cilium rule_validation_test.go TestL7RuleRejectsEmptyPort",
            ingress_ports(vec![l7(vec![port("0", Some("TCP"))], http(vec![get("/")]))]),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].port",
                "L7 rules can not be used when a port is 0",
            )],
        ),
        case(
            "cilium rule_validation_test.go TestHTTPRuleRegexes: `*` is not a regex",
            ingress_ports(vec![l7(
                vec![port("80", Some("TCP"))],
                http(vec![HttpRule {
                    method: Some("*".into()),
                    ..HttpRule::default()
                }]),
            )]),
            &[(
                "spec.ingress[0].toPorts[0].rules.http[0].method",
                "regex parse error:\n    *\n    ^\nerror: repetition operator missing expression",
            )],
        ),
        case(
            "sluice: L7 rules without ports would apply to every port",
            egress_ports(vec![PortRule {
                rules: Some(http(vec![get("/")])),
                ..PortRule::default()
            }]),
            &[(
                "spec.egress[0].toPorts[0]",
                "L7 rules can not be used when a port is 0: list the ports the rules apply to",
            )],
        ),
        case(
            "cilium L7Rules.IsEmpty: `http: []` is an L7 rule set (it allows no request)",
            ingress_ports(vec![l7(vec![port("80", Some("UDP"))], http(vec![]))]),
            &[(
                "spec.ingress[0].toPorts[0].ports[0].protocol",
                "L7 rules can only apply to TCP (not UDP) except for DNS rules",
            )],
        ),
        case(
            "cilium L7Rules.IsEmpty: `rules: {}` is no L7 rule",
            ingress_ports(vec![l7(vec![port("0", None)], L7Rules::default())]),
            &[],
        ),
        case(
            "spec §1 table; cilium L7Rules.Validate: two L7 kinds in one port rule",
            egress_ports(vec![l7(
                vec![port("53", Some("ANY"))],
                L7Rules {
                    http: Some(vec![]),
                    ..dns(vec![name("cilium.io")])
                },
            )]),
            &[(
                "spec.egress[0].toPorts[0].rules",
                "multiple L7 protocol rule types specified in single rule",
            )],
        ),
        case(
            "spec §1 table; cilium PortRule.Validate: ServerNames need TLS termination with L7",
            egress_ports(vec![PortRule {
                server_names: strings(&["api.example.com", ""]),
                ..l7(vec![port("443", Some("TCP"))], http(vec![get("/")]))
            }]),
            &[
                (
                    "spec.egress[0].toPorts[0].serverNames",
                    "ServerNames are not allowed with L7 rules without TLS termination",
                ),
                (
                    "spec.egress[0].toPorts[0].serverNames[1]",
                    "empty server name is not allowed",
                ),
            ],
        ),
        case(
            "spec §1 table; cilium IngressRule.Validate: L7 on host ingress",
            ccnp(Rule {
                node_selector: Some(sel(&[])),
                ingress: Some(vec![IngressRule {
                    to_ports: Some(vec![l7(
                        vec![port("80", Some("TCP"))],
                        http(vec![get("/")]),
                    )]),
                    ..IngressRule::default()
                }]),
                ..Rule::default()
            }),
            &[(
                "spec.ingress[0].toPorts[0].rules",
                "L7 policy is not supported on host ingress yet",
            )],
        ),
        case(
            "cilium 1.19 EgressRule.Validate: HTTP and Kafka not on host egress, DNS is",
            ccnp(Rule {
                node_selector: Some(sel(&[])),
                egress: Some(vec![EgressRule {
                    to_ports: Some(vec![
                        l7(vec![port("80", Some("TCP"))], http(vec![get("/")])),
                        l7(vec![port("53", Some("UDP"))], dns(vec![pattern("*")])),
                    ]),
                    ..EgressRule::default()
                }]),
                ..Rule::default()
            }),
            &[(
                "spec.egress[0].toPorts[0].rules.http",
                "L7 protocol HTTP is not supported on host egress yet",
            )],
        ),
        case(
            "spec §1 table; cilium PortRule.Validate: ICMPs with toPorts",
            ingress(IngressRule {
                to_ports: Some(vec![ports(vec![port("80", Some("TCP"))])]),
                icmps: Some(vec![IcmpRule {
                    fields: Some(vec![IcmpField {
                        family: None,
                        icmp_type: "8".into(),
                    }]),
                }]),
                ..IngressRule::default()
            }),
            &[(
                "spec.ingress[0].icmps",
                "the ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts",
            )],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn dns_rules() {
    let cases = vec![
        case(
            "spec §14: DNS rule on 53/ANY with toFQDNs-style selectors: valid",
            egress_ports(vec![l7(
                vec![port("53", Some("ANY"))],
                dns(vec![
                    name("cilium.io"),
                    pattern("*.cilium.io"),
                    pattern("**.svc.cluster.local"),
                ]),
            )]),
            &[],
        ),
        case(
            "spec §1 table; cilium PortRule.Validate: DNS rules are egress only",
            ingress_ports(vec![l7(
                vec![port("53", Some("UDP"))],
                dns(vec![name("cilium.io")]),
            )]),
            &[(
                "spec.ingress[0].toPorts[0].rules.dns",
                "DNS rules are not allowed on ingress",
            )],
        ),
        case(
            "spec §1 table; cilium L7Rules.Validate: no ports",
            egress_ports(vec![PortRule {
                rules: Some(dns(vec![name("cilium.io")])),
                ..PortRule::default()
            }]),
            &[(
                "spec.egress[0].toPorts[0]",
                "port 53 must be specified for DNS rules",
            )],
        ),
        case(
            "spec §1 table (sluice: port 0 or empty with DNS rules gets the DNS message)",
            egress_ports(vec![l7(
                vec![port("0", Some("UDP")), port("", Some("TCP"))],
                dns(vec![name("cilium.io")]),
            )]),
            &[
                (
                    "spec.egress[0].toPorts[0].ports[0].port",
                    "port 53 must be specified for DNS rules",
                ),
                (
                    "spec.egress[0].toPorts[0].ports[1]",
                    "port 53 must be specified for DNS rules",
                ),
            ],
        ),
        case(
            "spec §1 table; cilium PortProtocol.Validate: DNS rules do not support ranges",
            egress_ports(vec![l7(
                vec![PortProtocol {
                    end_port: Some(54),
                    ..port("53", Some("UDP"))
                }],
                dns(vec![name("cilium.io")]),
            )]),
            &[(
                "spec.egress[0].toPorts[0].ports[0].endPort",
                "DNS rules do not support port ranges",
            )],
        ),
        case(
            "spec §14; cilium fqdn.go: matchName characters, located on the field",
            egress_ports(vec![l7(
                vec![port("53", None)],
                dns(vec![name("*.cilium.io")]),
            )]),
            &[(
                "spec.egress[0].toPorts[0].rules.dns[0].matchName",
                "Invalid characters in MatchName: \"*.cilium.io\". Only 0-9, a-z, A-Z and ., - and _ characters are allowed",
            )],
        ),
        case(
            "spec §1 table: FQDN selector with both fields, in toFQDNs",
            egress(EgressRule {
                to_fqdns: Some(vec![
                    FqdnSelector {
                        match_name: Some("cilium.io".into()),
                        match_pattern: Some("*.cilium.io".into()),
                    },
                    FqdnSelector::default(),
                    pattern("api.(cilium).io"),
                ]),
                ..EgressRule::default()
            }),
            &[
                (
                    "spec.egress[0].toFQDNs[0]",
                    "only one of MatchName or MatchPattern is allowed in an FQDNSelector",
                ),
                (
                    "spec.egress[0].toFQDNs[1]",
                    "one of MatchName or MatchPattern is required in an FQDNSelector",
                ),
                (
                    "spec.egress[0].toFQDNs[2].matchPattern",
                    "Invalid characters in MatchPattern: \"api.(cilium).io\". Only 0-9, a-z, A-Z and ., -, _ and * characters are allowed",
                ),
            ],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn http_rules() {
    let on_80 =
        |rules: Vec<HttpRule>| ingress_ports(vec![l7(vec![port("80", Some("TCP"))], http(rules))]);
    let header_match = |name: &str, mismatch: Option<&str>, secret: Option<&str>| HeaderMatch {
        name: name.into(),
        mismatch: mismatch.map(str::to_owned),
        secret: secret.map(|n| SecretRef {
            namespace: None,
            name: n.into(),
        }),
        value: Some("v".into()),
    };
    let cases = vec![
        case(
            "spec §11: headers and headerMatches, all valid",
            on_80(vec![HttpRule {
                headers: strings(&["X-Trace", "X-Token: abc"]),
                header_matches: Some(vec![
                    header_match("x-a", None, None),
                    header_match("x-b", Some("LOG"), Some("token")),
                    header_match("x-c", Some("REPLACE"), None),
                ]),
                ..get("/v1/.*")
            }]),
            &[],
        ),
        case(
            "spec §1 table; cilium http.go Sanitize: Header name missing",
            on_80(vec![HttpRule {
                headers: strings(&[""]),
                header_matches: Some(vec![header_match("", None, None)]),
                ..HttpRule::default()
            }]),
            &[
                (
                    "spec.ingress[0].toPorts[0].rules.http[0].headers[0]",
                    "Header name missing",
                ),
                (
                    "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0]",
                    "Header name missing",
                ),
            ],
        ),
        case(
            "spec §1 table; cilium http.go Sanitize: Invalid header action, Secret name missing",
            on_80(vec![HttpRule {
                header_matches: Some(vec![
                    header_match("x-a", Some("DROP"), None),
                    header_match("x-b", None, Some("")),
                ]),
                ..HttpRule::default()
            }]),
            &[
                (
                    "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].mismatch",
                    "Invalid header action: DROP",
                ),
                (
                    "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[1].secret",
                    "Secret name missing",
                ),
            ],
        ),
    ];
    run(cases, cilium_policy);
}

/// spec §1 table: "HTTP regex does not compile → the regex error", on that field. The text is
/// the regex crate's, so it is checked by content rather than copied here.
#[test]
fn http_regex_errors_are_located_on_their_field() {
    let policy = ingress_ports(vec![l7(
        vec![port("80", Some("TCP"))],
        http(vec![
            HttpRule {
                method: Some("GET|(".into()),
                host: Some("[a-".into()),
                ..HttpRule::default()
            },
            get("/v1/(items"),
        ]),
    )]);
    let issues = cilium_policy(&policy);
    let fields: Vec<String> = issues.iter().map(|i| i.field.to_string()).collect();
    assert_eq!(
        fields,
        vec![
            "spec.ingress[0].toPorts[0].rules.http[0].method",
            "spec.ingress[0].toPorts[0].rules.http[0].host",
            "spec.ingress[0].toPorts[0].rules.http[1].path",
        ]
    );
    for (issue, pattern) in issues.iter().zip(["GET|(", "[a-", "/v1/(items"]) {
        assert!(
            issue.message.starts_with("regex parse error") && issue.message.contains(pattern),
            "{}",
            issue.message
        );
    }
}

#[test]
fn kafka_rules() {
    let on_9092 = |rules: Vec<KafkaRule>| {
        egress_ports(vec![l7(vec![port("9092", Some("TCP"))], kafka(rules))])
    };
    let rule =
        |role: Option<&str>, key: Option<&str>, version: Option<&str>, topic: Option<&str>| {
            KafkaRule {
                role: role.map(str::to_owned),
                api_key: key.map(str::to_owned),
                api_version: version.map(str::to_owned),
                client_id: None,
                topic: topic.map(str::to_owned),
            }
        };
    let cases = vec![
        case(
            "spec §13: role or apiKey, version, topic: valid",
            on_9092(vec![
                rule(Some("Produce"), None, None, Some("orders")),
                rule(None, Some("metadata"), Some("5"), None),
                rule(None, None, None, None),
            ]),
            &[],
        ),
        case(
            "spec §1 table; cilium kafka.go Sanitize: role and apiKey, unknown apiKey",
            on_9092(vec![
                rule(Some("produce"), Some("fetch"), None, None),
                rule(None, Some("createtopic"), None, None),
            ]),
            &[
                (
                    "spec.egress[0].toPorts[0].rules.kafka[0].apiKey",
                    "cannot set both Role \"produce\" and APIKey \"fetch\" together",
                ),
                (
                    "spec.egress[0].toPorts[0].rules.kafka[1].apiKey",
                    "invalid Kafka APIKey \"createtopic\"",
                ),
            ],
        ),
        case(
            "spec §13; cilium kafka.go Sanitize: role, apiVersion, topic",
            on_9092(vec![rule(Some("admin"), None, Some("-1"), Some("a/b"))]),
            &[
                (
                    "spec.egress[0].toPorts[0].rules.kafka[0].role",
                    "invalid Kafka Role \"admin\"",
                ),
                (
                    "spec.egress[0].toPorts[0].rules.kafka[0].apiVersion",
                    "invalid Kafka APIVersion \"-1\"",
                ),
                (
                    "spec.egress[0].toPorts[0].rules.kafka[0].topic",
                    "invalid Kafka Topic name \"a/b\"",
                ),
            ],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn icmps() {
    let icmp = |fields: Vec<(Option<&str>, &str)>| {
        ingress(IngressRule {
            icmps: Some(vec![IcmpRule {
                fields: Some(
                    fields
                        .into_iter()
                        .map(|(family, t)| IcmpField {
                            family: family.map(str::to_owned),
                            icmp_type: t.to_owned(),
                        })
                        .collect(),
                ),
            }]),
            ..IngressRule::default()
        })
    };
    let cases = vec![
        case(
            "spec §5; cilium icmp.go: numbers and per-family names",
            icmp(vec![
                (None, "8"),
                (Some("IPv4"), "EchoRequest"),
                (Some("IPv6"), "PacketTooBig"),
                (Some("IPv6"), "255"),
            ]),
            &[],
        ),
        case(
            "cilium ICMPRule.Validate: wrong family (case-sensitive)",
            icmp(vec![(Some("ipv4"), "8")]),
            &[(
                "spec.ingress[0].icmps[0].fields[0].family",
                "wrong family: ipv4",
            )],
        ),
        case(
            "cilium ICMPField.UnmarshalJSON: name not in the family's table",
            icmp(vec![(None, "PacketTooBig"), (Some("IPv6"), "Echo")]),
            &[
                (
                    "spec.ingress[0].icmps[0].fields[0].type",
                    "ICMP type PacketTooBig not found in IPv4",
                ),
                (
                    "spec.ingress[0].icmps[0].fields[1].type",
                    "ICMP type Echo not found in IPv6",
                ),
            ],
        ),
        case(
            "cilium CRD: type 0-255",
            icmp(vec![(None, "256")]),
            &[(
                "spec.ingress[0].icmps[0].fields[0].type",
                "ICMP type 256 is out of range 0-255",
            )],
        ),
        case(
            "cilium ICMPRule.Validate: too many types",
            icmp((0..41).map(|_| (None, "8")).collect()),
            &[(
                "spec.ingress[0].icmps[0].fields",
                "too many types, the max is 40",
            )],
        ),
    ];
    run(cases, cilium_policy);
}

#[test]
fn unsupported_port_features() {
    let cases = vec![
        case(
            "sluice: TLS interception has not landed",
            egress_ports(vec![PortRule {
                terminating_tls: Some(TlsContext::default()),
                originating_tls: Some(TlsContext::default()),
                ..ports(vec![port("443", Some("TCP"))])
            }]),
            &[
                (
                    "spec.egress[0].toPorts[0].terminatingTLS",
                    "terminatingTLS is not supported by sluice yet: TLS interception has not landed; remove it, or allow the TLS traffic without L7 rules",
                ),
                (
                    "spec.egress[0].toPorts[0].originatingTLS",
                    "originatingTLS is not supported by sluice yet: TLS interception has not landed; remove it, or allow the TLS traffic without L7 rules",
                ),
            ],
        ),
        case(
            "sluice: no Envoy listeners",
            egress_ports(vec![PortRule {
                listener: Some(IgnoredAny),
                ..ports(vec![port("80", Some("TCP"))])
            }]),
            &[(
                "spec.egress[0].toPorts[0].listener",
                "listener (a CiliumEnvoyConfig listener) is not supported by sluice: sluice has no Envoy; use L7 rules instead",
            )],
        ),
        case(
            "sluice: no generic proxylib parsers",
            egress_ports(vec![l7(
                vec![port("6379", Some("TCP"))],
                L7Rules {
                    l7proto: Some("r2d2".into()),
                    l7: Some(vec![]),
                    ..L7Rules::default()
                },
            )]),
            &[
                (
                    "spec.egress[0].toPorts[0].rules.l7proto",
                    "generic L7 rules (l7proto / l7) are not supported by sluice: it enforces http, kafka and dns rules",
                ),
                (
                    "spec.egress[0].toPorts[0].rules.l7",
                    "generic L7 rules (l7proto / l7) are not supported by sluice: it enforces http, kafka and dns rules",
                ),
            ],
        ),
    ];
    run(cases, cilium_policy);
}
