//! Policy resolution, table-driven: each case is a configuration plus the flows a user
//! would trace through it, with the verdict Cilium gives. Every case names its source.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use sluice_config::load_str;
use sluice_identity::policy::L7Kind;
use sluice_identity::trace::{PartySpec, TraceQuery, trace};
use sluice_identity::{CompiledPolicy, Direction, Protocol, Verdict};

/// The cluster every case runs in: namespaces `shop` (team=shop) and `other`
/// (team=other), pods shop/web, shop/api (named port http=8080/TCP), shop/db,
/// other/client, other/foo.
const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {team: other}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {addresses: ["10.0.1.1"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: api, namespace: shop, labels: {app: api}}
spec:
  addresses: ["10.0.1.2"]
  ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {addresses: ["10.0.1.3"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: other, labels: {app: client}}
spec: {addresses: ["10.0.2.1"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: foo, namespace: other, labels: {app: foo}}
spec: {addresses: ["10.0.2.2"]}
"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Allowed,
    /// Allowed through the L7 proxy; `true` = wildcard (every request passes).
    L7(L7Kind, bool),
    Denied(u8),
    Audit,
}
use Expect::*;

struct Case {
    source: &'static str,
    name: &'static str,
    policies: &'static str,
    /// (from, to, port/proto, expected)
    flows: &'static [(&'static str, &'static str, &'static str, Expect)],
}

fn run(case: &Case) {
    run_with(case, false);
}

fn run_with(case: &Case, authenticated: bool) {
    let text = format!("{BASE}\n---\n{}", case.policies);
    let config = load_str("case.yaml", &text)
        .unwrap_or_else(|e| panic!("[{}] {}: config does not load: {e}", case.source, case.name));
    for (from, to, port, expect) in case.flows {
        let (p, proto) = port.split_once('/').unwrap_or((port, "TCP"));
        let query = TraceQuery {
            from: PartySpec::parse(from).unwrap(),
            to: PartySpec::parse(to).unwrap(),
            port: p.parse().unwrap(),
            protocol: Protocol::parse(proto).unwrap(),
            authenticated,
        };
        let r = trace(&config, &query).unwrap();
        if !from.contains('=') && !to.contains('=') {
            fast_path_agrees(&config, &r);
        }
        let got = match (r.verdict, r.drop_reason) {
            (Verdict::Denied, Some(reason)) => Denied(reason.code()),
            (Verdict::Audit, _) => Audit,
            (Verdict::Allowed, _) if r.l7_proxy => {
                let l7 = &r.l7[0].policy;
                L7(l7.kind, r.l7.iter().all(|l| l.policy.wildcard))
            }
            (Verdict::Allowed, _) => Allowed,
            (v, d) => panic!("inconsistent result {v:?} {d:?}"),
        };
        assert_eq!(
            got, *expect,
            "[{}] {}: {from} -> {to} {port}\n{:#?}",
            case.source, case.name, r
        );
    }
}

/// The allocation-free per-connection path gives the same answer as the reporting one.
fn fast_path_agrees(config: &sluice_config::Config, r: &sluice_identity::trace::TraceResult) {
    let policy = CompiledPolicy::compile(config).unwrap();
    let sides = [
        (
            r.source.endpoint,
            Direction::Egress,
            r.source.identity,
            r.destination.identity,
        ),
        (
            r.destination.endpoint,
            Direction::Ingress,
            r.destination.identity,
            r.source.identity,
        ),
    ];
    for (is_endpoint, dir, ep, peer) in sides {
        if !is_endpoint {
            continue;
        }
        let d = policy.decide(ep, dir, peer, r.protocol, r.port);
        let o = policy.outcome(ep, dir, peer, r.protocol, r.port);
        assert_eq!(o.verdict, d.verdict, "{dir} {d:#?}");
        assert_eq!(
            o.drop_reason,
            d.drop_reason.or(d.audit_drop_reason),
            "{dir}"
        );
        assert_eq!(o.needs_l7, d.l7.is_some(), "{dir}");
        assert_eq!(o.auth, d.authentication, "{dir}");
    }
}

#[test]
fn spec_1_resources_spec_and_specs() {
    run(&Case {
        source: "spec §1: `spec` and `specs` are both used",
        name: "spec+specs",
        policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: both, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}], toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]
specs:
- endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: db}}], toPorts: [{ports: [{port: "9090", protocol: TCP}]}]}]
"#,
        flows: &[
            ("shop/web", "shop/api", "8080/TCP", Allowed),
            ("shop/db", "shop/api", "9090/TCP", Allowed),
            ("shop/db", "shop/api", "8080/TCP", Denied(133)),
        ],
    });
}

#[test]
fn spec_2_nil_versus_empty() {
    let cases = [
        Case {
            source: "spec §2 nil vs empty: `fromEndpoints: []` selects nothing",
            name: "empty peer list",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [], toPorts: [{ports: [{port: "8080"}]}]}]
"#,
            flows: &[("shop/web", "shop/api", "8080/TCP", Denied(133))],
        },
        Case {
            source: "spec §2: peer list absent with toPorts = any peer on those ports",
            name: "absent peers",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Allowed),
                ("other/client", "shop/api", "8080/TCP", Allowed),
                ("203.0.113.7", "shop/api", "8080/TCP", Allowed),
                ("shop/web", "shop/api", "8081/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §2: peers without toPorts = all ports and protocols",
            name: "L3-only",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]
"#,
            flows: &[
                ("shop/web", "shop/api", "1/TCP", Allowed),
                ("shop/web", "shop/api", "53/UDP", Allowed),
                ("shop/web", "shop/api", "8/ICMP", Allowed),
                ("shop/db", "shop/api", "8080/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §2/§6: `ingress: [{}]` allows nothing but switches default deny on",
            name: "ingress [{}]",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {}
  ingress: [{}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Denied(133)),
                ("shop/api", "shop/web", "80/TCP", Denied(133)),
                // Egress is not enforced by an ingress-only rule.
                ("shop/web", "203.0.113.7", "443/TCP", Allowed),
            ],
        },
    ];
    for c in &cases {
        run(c);
    }
}

#[test]
fn spec_2_namespace_and_cluster_scoping() {
    let cases = [
        Case {
            source: "spec §2 namespace scoping: `fromEndpoints: [{}]` in a CNP = every pod of its namespace",
            name: "CNP {} peer",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{}]}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Allowed),
                ("other/client", "shop/api", "8080/TCP", Denied(133)),
                ("203.0.113.7", "shop/api", "8080/TCP", Denied(133)),
                // allow-localhost (spec §6): the local host reaches local pods anyway.
                ("host", "shop/api", "8080/TCP", Allowed),
            ],
        },
        Case {
            source: "spec §2: a CNP subject is limited to the policy's namespace",
            name: "CNP subject scope",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: other}
spec:
  endpointSelector: {}
  ingress: [{}]
"#,
            flows: &[
                ("shop/web", "other/client", "80/TCP", Denied(133)),
                ("other/client", "shop/web", "80/TCP", Allowed),
            ],
        },
        Case {
            source: "spec §2: a selector naming the namespace key crosses namespaces",
            name: "explicit namespace",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other, app: client}}]
"#,
            flows: &[
                ("other/client", "shop/api", "8080/TCP", Allowed),
                ("other/foo", "shop/api", "8080/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §2: a namespace-label key (io.cilium.k8s.namespace.labels.*) drops the own-namespace constraint",
            name: "namespace labels",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {io.cilium.k8s.namespace.labels.team: other}}]
"#,
            flows: &[
                ("other/client", "shop/api", "8080/TCP", Allowed),
                ("shop/web", "shop/api", "8080/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §2 CCNP: `{}` peer = every pod of every namespace, not world (cilium utils.go getEndpointSelector)",
            name: "CCNP {} peer",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{}]}]
"#,
            flows: &[
                ("other/client", "shop/api", "8080/TCP", Allowed),
                ("shop/web", "shop/api", "8080/TCP", Allowed),
                ("203.0.113.7", "shop/api", "8080/TCP", Denied(133)),
                ("remote-node", "shop/api", "8080/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §2 cluster scoping (policy-default-local-cluster): peers are local-cluster pods unless the cluster key is named",
            name: "cluster scoping",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Allowed),
                (
                    "k8s:app=web,k8s:io.kubernetes.pod.namespace=shop,k8s:io.cilium.k8s.policy.cluster=remote",
                    "shop/api",
                    "8080/TCP",
                    Denied(133),
                ),
            ],
        },
    ];
    for c in &cases {
        run(c);
    }
}

#[test]
fn spec_2_kubernetes_network_policy_translation() {
    let cases = [
        Case {
            source: "spec §2 KNP: podSelector peer = same namespace; policyTypes absent ⇒ Ingress",
            name: "KNP podSelector",
            policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 8080}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Allowed),
                // KNP ports default to TCP.
                ("shop/web", "shop/api", "8080/UDP", Denied(133)),
                ("other/client", "shop/api", "8080/TCP", Denied(133)),
                // No Egress in policyTypes: egress stays open.
                ("shop/api", "203.0.113.7", "443/TCP", Allowed),
            ],
        },
        Case {
            source: "spec §2 KNP: empty namespaceSelector = any namespace; with a podSelector the own-namespace constraint goes",
            name: "KNP namespaceSelector",
            policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}]
  - from: [{namespaceSelector: {matchLabels: {team: shop}}}]
    ports: [{port: http}]
"#,
            flows: &[
                ("other/client", "shop/api", "1234/TCP", Allowed),
                ("other/foo", "shop/api", "1234/TCP", Denied(133)),
                // Named port `http` resolves to api's 8080/TCP.
                ("shop/db", "shop/api", "8080/TCP", Allowed),
                ("shop/db", "shop/api", "8081/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §2/§4 KNP ipBlock → CIDR set with except",
            name: "KNP ipBlock",
            policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.128/25]}}]
"#,
            flows: &[
                ("shop/web", "198.51.100.7", "443/TCP", Allowed),
                ("shop/web", "198.51.100.200", "443/TCP", Denied(133)),
                ("shop/web", "203.0.113.7", "443/TCP", Denied(133)),
                // Ingress not listed in policyTypes: not enforced.
                ("other/client", "shop/web", "80/TCP", Allowed),
            ],
        },
        Case {
            source: "spec §6 KNP: no rules and no policyTypes = ingress deny-all; egress untouched",
            name: "KNP deny-all",
            policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec:
  podSelector: {}
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Denied(133)),
                ("shop/web", "203.0.113.7", "443/TCP", Allowed),
            ],
        },
        Case {
            source: "spec §2 KNP: an empty `from` allows every source",
            name: "KNP allow-all ingress",
            policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{}]
"#,
            flows: &[
                ("203.0.113.7", "shop/api", "8080/TCP", Allowed),
                ("other/client", "shop/api", "9/UDP", Allowed),
            ],
        },
    ];
    for c in &cases {
        run(c);
    }
}

#[test]
fn spec_3_entities() {
    run(&Case {
        source: "spec §3 entities: world, host, cluster, all, none",
        name: "entities",
        policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
specs:
- endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEntities: [world]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toEntities: [cluster]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  - toEntities: [none]
- endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEntities: [host]
  egress:
  - toEntities: [all]
"#,
        flows: &[
            ("shop/web", "203.0.113.7", "443/TCP", Allowed),
            ("shop/web", "world", "443/TCP", Allowed),
            ("shop/web", "2001:db8::1", "443/TCP", Allowed),
            ("shop/web", "shop/db", "443/TCP", Denied(133)),
            ("shop/web", "other/client", "80/TCP", Allowed),
            ("shop/web", "host", "80/TCP", Allowed),
            ("shop/web", "remote-node", "80/TCP", Allowed),
            ("shop/web", "203.0.113.7", "80/TCP", Denied(133)),
            ("host", "shop/api", "8080/TCP", Allowed),
            ("shop/web", "shop/api", "8080/TCP", Denied(133)),
            ("shop/api", "203.0.113.7", "1/UDP", Allowed),
            ("shop/api", "host", "22/TCP", Allowed),
        ],
    });
}

#[test]
fn spec_4_cidr_rules() {
    run(&Case {
        source: "spec §4 CIDR rules: prefix minus except; pod IPs keep their identity; a bare IP is a /32",
        name: "cidr",
        policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.96.0.0/12]}]
  - toCIDR: ["192.0.2.10"]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
"#,
        flows: &[
            ("shop/web", "10.1.2.3", "5432/TCP", Allowed),
            ("shop/web", "10.96.0.10", "5432/TCP", Denied(133)),
            // 10.0.1.2 is shop/api: a pod keeps its pod identity, the CIDR does not match it.
            ("shop/web", "10.0.1.2", "8080/TCP", Denied(133)),
            ("shop/web", "192.0.2.10", "53/UDP", Allowed),
            ("shop/web", "192.0.2.11", "53/UDP", Denied(133)),
        ],
    });
}

#[test]
fn spec_5_ports_and_protocols() {
    run(&Case {
        source: "spec §5: endPort ranges, named ports, ANY = TCP+UDP+SCTP, port 0 = all, icmps",
        name: "ports",
        policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
specs:
- endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "9000", endPort: 9010, protocol: TCP}, {port: http}]}]
  - fromEndpoints: [{matchLabels: {app: db}}]
    toPorts: [{ports: [{port: "7000"}]}]
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other, app: client}}]
    toPorts: [{ports: [{port: "0", protocol: UDP}]}]
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other, app: foo}}]
    icmps: [{fields: [{type: 8, family: IPv4}]}]
- endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEndpoints: [{matchLabels: {app: api}}]
    toPorts: [{ports: [{port: http, protocol: TCP}, {port: "9000", endPort: 9010, protocol: TCP}]}]
  - toEndpoints: [{matchLabels: {app: db}}]
    toPorts: [{ports: [{port: http, protocol: TCP}]}]
"#,
        flows: &[
            ("shop/web", "shop/api", "9000/TCP", Allowed),
            ("shop/web", "shop/api", "9010/TCP", Allowed),
            ("shop/web", "shop/api", "9011/TCP", Denied(133)),
            ("shop/web", "shop/api", "8080/TCP", Allowed),
            ("shop/db", "shop/api", "7000/TCP", Allowed),
            ("shop/db", "shop/api", "7000/UDP", Allowed),
            ("shop/db", "shop/api", "7000/SCTP", Allowed),
            ("shop/db", "shop/api", "8/ICMP", Denied(133)),
            ("other/client", "shop/api", "1/UDP", Allowed),
            ("other/client", "shop/api", "65535/UDP", Allowed),
            ("other/client", "shop/api", "1/TCP", Denied(133)),
            ("other/foo", "shop/api", "8/ICMP", Allowed),
            ("other/foo", "shop/api", "0/ICMP", Denied(133)),
            // Egress named port: resolved against the destination (api: http = 8080).
            ("shop/web", "shop/api", "8080/TCP", Allowed),
            // db declares no port named http: the named port matches nothing there.
            ("shop/web", "shop/db", "8080/TCP", Denied(133)),
        ],
    });
}

#[test]
fn spec_6_default_deny() {
    let cases = [
        Case {
            source: "spec §6: enableDefaultDeny false adds allows without denying the rest",
            name: "non-default-deny",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  enableDefaultDeny: {ingress: false}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: [{method: GET}]}}]
"#,
            flows: &[
                // The L7 rule still forces the proxy, with an implicit allow-all L7 rule.
                ("shop/web", "shop/api", "8080/TCP", L7(L7Kind::Http, true)),
                ("shop/db", "shop/api", "9999/TCP", Allowed),
            ],
        },
        Case {
            source: "spec §6: any default-deny rule wins over enableDefaultDeny false",
            name: "default deny wins",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  enableDefaultDeny: {ingress: false}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: q, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: db}}]}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Allowed),
                ("shop/db", "shop/api", "8080/TCP", Allowed),
                ("other/client", "shop/api", "8080/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §6: per direction — an egress-only rule leaves ingress open",
            name: "per direction",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress: [{toEndpoints: [{matchLabels: {app: api}}]}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Allowed),
                ("shop/web", "shop/db", "5432/TCP", Denied(133)),
                ("other/client", "shop/web", "80/TCP", Allowed),
            ],
        },
        Case {
            source: "spec §6 global modes: policyEnforcement always puts unselected endpoints in default deny",
            name: "always",
            policies: r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec: {policyEnforcement: always}
"#,
            flows: &[("shop/web", "shop/api", "8080/TCP", Denied(133))],
        },
        Case {
            source: "spec §6 global modes: policyEnforcement never allows everything",
            name: "never",
            policies: r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec: {policyEnforcement: never}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {}
  ingress: [{}]
  egressDeny: [{toEntities: [all]}]
"#,
            flows: &[("shop/web", "shop/api", "8080/TCP", Allowed)],
        },
    ];
    for c in &cases {
        run(c);
    }
}

#[test]
fn spec_6_allow_localhost() {
    let cases = [
        Case {
            source: "spec §6: allow-localhost (default always) lets the local host reach pods; a deny still wins",
            name: "allow-localhost always",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
specs:
- endpointSelector: {matchLabels: {app: api}}
  ingress: [{}]
- endpointSelector: {matchLabels: {app: db}}
  ingressDeny: [{fromEntities: [host], toPorts: [{ports: [{port: "5432", protocol: TCP}]}]}]
"#,
            flows: &[
                ("host", "shop/api", "8080/TCP", Allowed),
                ("host", "shop/api", "53/UDP", Allowed),
                ("host", "shop/db", "5432/TCP", Denied(181)),
                ("host", "shop/db", "80/TCP", Allowed),
                ("shop/web", "shop/api", "8080/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §6: allowLocalhost policy subjects the host to ingress policy",
            name: "allow-localhost policy",
            policies: r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec: {allowLocalhost: policy}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{}]
"#,
            flows: &[("host", "shop/api", "8080/TCP", Denied(133))],
        },
    ];
    for c in &cases {
        run(c);
    }
}

#[test]
fn spec_7_deny_precedence() {
    let cases = [
        Case {
            source: "spec §7 example: allow-from-client + deny port 80 ⇒ 81 and ping allowed, 80 denied (181)",
            name: "deny beats allow",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
            flows: &[
                ("shop/web", "shop/api", "81/TCP", Allowed),
                ("shop/web", "shop/api", "8/ICMP", Allowed),
                ("shop/web", "shop/api", "80/TCP", Denied(181)),
            ],
        },
        Case {
            source: "spec §7: a policy that only denies port 80 still puts the pod in default deny (81 → 133)",
            name: "deny-only",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingressDeny: [{toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
"#,
            flows: &[
                ("shop/web", "shop/api", "80/TCP", Denied(181)),
                ("shop/web", "shop/api", "81/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §7: deny wins regardless of kind — a CCNP deny beats a KNP allow",
            name: "cross-kind deny",
            policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: shop}
spec:
  podSelector: {}
  ingress: [{}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: no-other}
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other}}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Allowed),
                ("other/client", "shop/api", "8080/TCP", Denied(181)),
            ],
        },
    ];
    for c in &cases {
        run(c);
    }
}

#[test]
fn spec_8_l7_merging() {
    let cases = [
        Case {
            source: "spec §8.1: L3/L4-only allow + L7 allow on the same selector and port = L7 wildcard",
            name: "L4 + L7 = wildcard",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: [{method: GET, path: "/"}]}}]
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
            flows: &[("shop/web", "shop/api", "8080/TCP", L7(L7Kind::Http, true))],
        },
        Case {
            source: "spec §8 example: any peer 80/TCP GET / plus peer foo all ports",
            name: "selectors kept apart",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET, path: "/"}]}}]
  - fromEndpoints: [{matchLabels: {app: foo}}]
"#,
            flows: &[
                ("other/foo", "shop/api", "80/TCP", L7(L7Kind::Http, true)),
                ("other/foo", "shop/api", "81/TCP", Allowed),
                (
                    "other/client",
                    "shop/api",
                    "80/TCP",
                    L7(L7Kind::Http, false),
                ),
                ("other/client", "shop/api", "81/TCP", Denied(133)),
            ],
        },
        Case {
            source: "spec §8.1: different L7 parsers on one port — the later policy is rejected and its endpoints fail closed",
            name: "conflicting parsers",
            policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: http, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: [{}]}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: kafka, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: db}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {kafka: [{topic: t}]}}]
"#,
            flows: &[
                ("shop/web", "shop/api", "8080/TCP", Denied(133)),
                ("shop/db", "shop/api", "8080/TCP", Denied(133)),
                // Egress of api is not declared by the rejected policy: untouched.
                ("shop/api", "shop/db", "5432/TCP", Allowed),
            ],
        },
    ];
    for c in &cases {
        run(c);
    }
}

#[test]
fn spec_9_audit_mode() {
    run(&Case {
        source: "spec §9: audit mode forwards what L3/L4 would drop, verdict AUDIT (denies too)",
        name: "audit",
        policies: r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec: {policyAuditMode: true}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}], toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: db}}]}]
"#,
        flows: &[
            ("shop/web", "shop/api", "8080/TCP", Allowed),
            ("shop/web", "shop/api", "9090/TCP", Audit),
            ("shop/db", "shop/api", "8080/TCP", Audit),
        ],
    });
}

const AUTH: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: mtls, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    authentication: {mode: required}
  - fromEndpoints: [{matchLabels: {app: db}}]
    authentication: {mode: test-always-fail}
"#;

#[test]
fn spec_10_authentication() {
    let case = Case {
        source: "spec §10: allowed but not mutually authenticated → 189; test-always-fail never passes",
        name: "auth",
        policies: AUTH,
        flows: &[
            ("shop/web", "shop/api", "8080/TCP", Denied(189)),
            ("shop/db", "shop/api", "8080/TCP", Denied(189)),
            ("other/client", "shop/api", "8080/TCP", Denied(133)),
        ],
    };
    run(&case);
    let authenticated = Case {
        flows: &[
            ("shop/web", "shop/api", "8080/TCP", Allowed),
            ("shop/db", "shop/api", "8080/TCP", Denied(189)),
        ],
        ..case
    };
    run_with(&authenticated, true);
}

#[test]
fn spec_10_conflicting_auth_modes_reject_the_later_policy() {
    run(&Case {
        source: "spec §10: two explicit modes on the same selector and port = `cannot merge conflicting authentication types`",
        name: "auth conflict",
        policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}], authentication: {mode: required}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}], authentication: {mode: disabled}}]
"#,
        flows: &[("shop/web", "shop/api", "8080/TCP", Denied(133))],
    });
}

#[test]
fn issue_item_6_invalid_policy_fails_closed_alone() {
    run(&Case {
        source: "issue 2 item 6: an invalid policy is rejected alone; its endpoints fail closed in its directions",
        name: "rejected policy",
        policies: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: broken, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: [{path: "/api/(unclosed"}]}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fine, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]
"#,
        flows: &[
            ("shop/web", "shop/api", "8080/TCP", Denied(133)),
            ("other/client", "shop/api", "8080/TCP", Denied(133)),
            // The broken policy declares only ingress: api's egress is untouched.
            ("shop/api", "203.0.113.7", "443/TCP", Allowed),
            // Other policies still apply.
            ("shop/web", "shop/db", "5432/TCP", Allowed),
            ("shop/api", "shop/db", "5432/TCP", Denied(133)),
        ],
    });
}
