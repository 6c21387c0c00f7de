//! The DNS query decision on compiled policies: L3/L4 first (drops), then `rules.dns`
//! (refusals), audit mode, and the rule cache across generations. Expected semantics
//! from ../shared/spec/cilium-policy.md §7 (L7 denials are not drops), §9 (audit), §14.

use std::net::{IpAddr, Ipv4Addr};

use sluice_identity::{CompiledPolicy, Direction, Identity, Protocol};

use super::*;

const WORKLOADS: &str = r#"
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: app, labels: {app: client}}
spec: {addresses: ["10.1.0.1"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: stranger, namespace: app, labels: {app: stranger}}
spec: {addresses: ["10.1.0.2"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: resolver, namespace: app, labels: {app: resolver}}
spec: {addresses: ["10.1.0.53"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: closed, namespace: app, labels: {app: closed}}
spec: {addresses: ["10.1.0.54"]}
"#;

/// client may ask resolver (53/UDP, 53/TCP) for `*.allowed.test` and `exact.test`, and
/// `closed` for anything at L4 (but `closed` lets nobody in); stranger may ask nothing.
const POLICY: &str = r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns, namespace: app}
specs:
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: resolver}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]
      rules:
        dns: [{matchPattern: "*.allowed.test"}, {matchName: "Exact.test"}]
  - toEndpoints: [{matchLabels: {app: closed}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
- endpointSelector: {matchLabels: {app: stranger}}
  egress: [{toEndpoints: [{matchLabels: {app: client}}]}]
- endpointSelector: {matchLabels: {app: resolver}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
- endpointSelector: {matchLabels: {app: closed}}
  ingress: [{fromEndpoints: [{matchLabels: {app: nobody}}]}]
"#;

fn compile(extra: &str) -> CompiledPolicy {
    let config = sluice_config::load_str("dns.yaml", &format!("{WORKLOADS}{extra}"))
        .unwrap_or_else(|e| panic!("config: {e:?}"));
    assert!(
        config.diagnostics.is_empty(),
        "policies rejected: {:?}",
        config.diagnostics
    );
    CompiledPolicy::compile(&config).unwrap_or_else(|e| panic!("compile: {e}"))
}

fn id(policy: &CompiledPolicy, last_octet: u8) -> Identity {
    client_identity(
        policy.universe(),
        IpAddr::V4(Ipv4Addr::new(10, 1, 0, last_octet)),
    )
}

fn key(policy: &CompiledPolicy, client: u8, resolver: u8, proto: Protocol) -> QueryKey {
    QueryKey {
        client: id(policy, client),
        resolver: id(policy, resolver),
        proto,
        port: 53,
    }
}

fn ask(policy: &CompiledPolicy, k: QueryKey, qname: &str) -> QueryVerdict {
    decide(policy, 1, &RuleCache::default(), k, qname)
}

#[test]
fn rules_dns_refuse_names_they_do_not_allow_on_both_transports() {
    let policy = compile(POLICY);
    for proto in [Protocol::Udp, Protocol::Tcp] {
        let k = key(&policy, 1, 53, proto);
        let cases: &[(&str, QueryVerdict)] = &[
            ("api.allowed.test.", QueryVerdict::Forward),
            // spec §14: `*` stays within one label, and does not match the bare suffix.
            ("a.b.allowed.test.", QueryVerdict::Refuse),
            ("allowed.test.", QueryVerdict::Refuse),
            // spec §14: matchName compares lowercased.
            ("exact.test.", QueryVerdict::Forward),
            ("www.exact.test.", QueryVerdict::Refuse),
            ("api.denied.test.", QueryVerdict::Refuse),
        ];
        for (qname, want) in cases {
            assert_eq!(ask(&policy, k, qname), *want, "{proto:?} {qname}");
        }
    }
}

#[test]
fn l3_l4_denials_are_drops_on_the_side_that_denies() {
    let policy = compile(POLICY);
    // stranger's egress is enforced and allows no DNS: dropped before any name matters.
    assert_eq!(
        ask(
            &policy,
            key(&policy, 2, 53, Protocol::Udp),
            "api.allowed.test."
        ),
        QueryVerdict::Drop {
            direction: Direction::Egress
        }
    );
    // client may send to `closed`, whose ingress lets nobody in.
    assert_eq!(
        ask(
            &policy,
            key(&policy, 1, 54, Protocol::Udp),
            "anything.test."
        ),
        QueryVerdict::Drop {
            direction: Direction::Ingress
        }
    );
    // 53/TCP to `closed` is not in client's egress.
    assert_eq!(
        ask(
            &policy,
            key(&policy, 1, 54, Protocol::Tcp),
            "anything.test."
        ),
        QueryVerdict::Drop {
            direction: Direction::Egress
        }
    );
}

#[test]
fn without_dns_rules_every_name_passes() {
    // `closed` opened up: an L4-only allow, no rules.dns.
    let open = POLICY.replace("{app: nobody}", "{app: client}");
    let policy = compile(&open);
    assert_eq!(
        ask(
            &policy,
            key(&policy, 1, 54, Protocol::Udp),
            "anything.test."
        ),
        QueryVerdict::Forward
    );
}

#[test]
fn an_l4_only_allow_beside_dns_rules_makes_them_a_wildcard() {
    // spec §8.1/§8.3: an L3-only allow for the same peer turns the port's L7 rules into
    // "allow everything, still proxied".
    let extra = r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: everything-to-resolver, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{toEndpoints: [{matchLabels: {app: resolver}}]}]
"#;
    let policy = compile(&format!("{POLICY}{extra}"));
    assert_eq!(
        ask(
            &policy,
            key(&policy, 1, 53, Protocol::Udp),
            "api.denied.test."
        ),
        QueryVerdict::Forward
    );
}

#[test]
fn audit_mode_forwards_what_l3_l4_would_drop_and_still_refuses_names() {
    let node = r#"
---
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec: {policyAuditMode: true}
"#;
    let policy = compile(&format!("{POLICY}{node}"));
    assert_eq!(
        ask(
            &policy,
            key(&policy, 1, 53, Protocol::Udp),
            "api.denied.test."
        ),
        // Cilium keeps enforcing L7 rules in audit mode.
        QueryVerdict::Refuse
    );
    assert_eq!(
        ask(
            &policy,
            key(&policy, 1, 53, Protocol::Udp),
            "api.allowed.test."
        ),
        QueryVerdict::Forward
    );
    assert_eq!(
        ask(
            &policy,
            key(&policy, 2, 53, Protocol::Udp),
            "api.allowed.test."
        ),
        QueryVerdict::Audit {
            l4: Some(Direction::Egress)
        }
    );
}

#[test]
fn authentication_required_is_a_drop_until_mutual_tls_lands() {
    let extra = POLICY.replace(
        "  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]",
        "  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], authentication: {mode: required}}]",
    );
    let policy = compile(&extra);
    assert_eq!(
        ask(
            &policy,
            key(&policy, 1, 53, Protocol::Udp),
            "api.allowed.test."
        ),
        QueryVerdict::Drop {
            direction: Direction::Ingress
        }
    );
}

#[test]
fn the_node_and_loopback_as_resolvers() {
    let policy = compile(POLICY);
    let universe = policy.universe();
    assert_eq!(
        resolver_identity(universe, IpAddr::V4(GATEWAY)),
        Some(Identity::HOST)
    );
    assert_eq!(
        resolver_identity(universe, IpAddr::V4(Ipv4Addr::LOCALHOST)),
        None
    );
    assert_eq!(
        resolver_identity(universe, IpAddr::V4(Ipv4Addr::new(10, 1, 0, 53))),
        Some(id(&policy, 53))
    );
}

#[test]
fn compiled_rules_are_cached_per_generation_and_follow_reloads() {
    let before = compile(POLICY);
    let after = compile(&POLICY.replace("*.allowed.test", "*.denied.test"));
    let cache = RuleCache::default();
    let k = key(&before, 1, 53, Protocol::Udp);
    assert_eq!(key(&after, 1, 53, Protocol::Udp), k, "same identities");

    assert_eq!(
        decide(&before, 1, &cache, k, "api.allowed.test."),
        QueryVerdict::Forward
    );
    assert_eq!(cache.len(1), 1);
    // Generation 2 compiles its own set: the old one must not answer for it.
    assert_eq!(
        decide(&after, 2, &cache, k, "api.allowed.test."),
        QueryVerdict::Refuse
    );
    assert_eq!(
        decide(&after, 2, &cache, k, "api.denied.test."),
        QueryVerdict::Forward
    );
    assert_eq!((cache.len(1), cache.len(2)), (0, 1));
    // A straggler of generation 1 gets generation 1's answer and leaves 2 in place.
    assert_eq!(
        decide(&before, 1, &cache, k, "api.allowed.test."),
        QueryVerdict::Forward
    );
    assert_eq!(cache.len(2), 1);
}

#[test]
fn a_cache_hit_does_not_compile_again() {
    let cache = RuleCache::default();
    let k = QueryKey {
        client: Identity(300),
        resolver: Identity(301),
        proto: Protocol::Udp,
        port: 53,
    };
    let first = cache.get(7, k, || DnsRule::AllowAll);
    let second = cache.get(7, k, || panic!("compiled twice"));
    assert!(Arc::ptr_eq(&first, &second));
}

#[test]
fn other_l7_kinds_on_the_dns_port_refuse_everything() {
    // HTTP rules on 53/TCP (stranger to closed; one parser per port, so not beside the
    // DNS rules client has there): the DNS proxy cannot apply them.
    let extra = r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: http-on-53, namespace: app}
specs:
- endpointSelector: {matchLabels: {app: stranger}}
  egress:
  - toEndpoints: [{matchLabels: {app: closed}}]
    toPorts:
    - ports: [{port: "53", protocol: TCP}]
      rules: {http: [{method: GET}]}
- endpointSelector: {matchLabels: {app: closed}}
  ingress: [{fromEndpoints: [{matchLabels: {app: stranger}}]}]
"#;
    let policy = compile(&format!("{POLICY}{extra}"));
    assert!(policy.diagnostics.is_empty(), "{:?}", policy.diagnostics);
    assert_eq!(
        ask(
            &policy,
            key(&policy, 2, 54, Protocol::Tcp),
            "anything.test."
        ),
        QueryVerdict::Refuse
    );
}
