//! The policy flattened for the kernel (`CompiledPolicy::kernel_policy`) must give the
//! same answer as the per-connection decision (`CompiledPolicy::outcome`) for every
//! endpoint, peer identity, protocol and port the shipped examples and an edge-case
//! configuration can produce: the kernel and the proxy never disagree.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::Path;

use sluice_config::{Config, load, load_str};
use sluice_identity::policy::{KernelAction, KernelPolicy};
use sluice_identity::{CompiledPolicy, Direction, DropReason, Identity, Protocol, Verdict};

const PROTOCOLS: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

/// What the kernel does with (peer, proto, port) given the flattened policy: the
/// peer's own entry, else the any-peer one, else the default.
fn kernel_answer(
    k: &KernelPolicy,
    peer: Identity,
    proto: Protocol,
    port: u16,
) -> Option<KernelAction> {
    let find = |p: Option<Identity>| {
        k.rules
            .iter()
            .find(|r| r.peer == p && r.proto == proto && r.ports.lo <= port && port <= r.ports.hi)
            .map(|r| r.action)
    };
    find(Some(peer)).or_else(|| find(None)).or(k
        .default_deny
        .then_some(KernelAction::Deny(DropReason::PolicyDenied)))
}

fn engine_answer(
    policy: &CompiledPolicy,
    endpoint: Identity,
    direction: Direction,
    peer: Identity,
    proto: Protocol,
    port: u16,
) -> Option<KernelAction> {
    let o = policy.outcome(endpoint, direction, peer, proto, port);
    match o.verdict {
        Verdict::Denied | Verdict::Audit if o.drop_reason.is_some() => {
            o.drop_reason.map(KernelAction::Deny)
        }
        _ if o.needs_l7 || o.auth.is_some() => Some(KernelAction::Proxy),
        _ => Some(KernelAction::Allow),
    }
}

/// Ports around every boundary a policy in these configs uses, and the extremes.
const PORTS: &[u16] = &[
    0, 1, 52, 53, 54, 79, 80, 81, 442, 443, 444, 1023, 1024, 1025, 5000, 5432, 6379, 8079, 8080,
    8081, 8443, 9000, 9090, 9092, 9093, 65534, 65535,
];

fn check(name: &str, config: &Config) {
    let policy = CompiledPolicy::compile(config).unwrap();
    let universe = policy.universe();
    let peers: Vec<Identity> = universe.identities().map(|i| i.id).collect();
    let mut compared = 0;
    for ep in universe.endpoints() {
        for direction in [Direction::Ingress, Direction::Egress] {
            let k = policy.kernel_policy(ep.identity, direction, &PROTOCOLS);
            for &peer in &peers {
                for proto in PROTOCOLS {
                    for &port in PORTS {
                        let engine =
                            engine_answer(&policy, ep.identity, direction, peer, proto, port);
                        // No rule and no default deny: the kernel lets it pass.
                        let kernel =
                            kernel_answer(&k, peer, proto, port).or(Some(KernelAction::Allow));
                        assert_eq!(
                            kernel,
                            engine,
                            "{name}: {} {direction:?} peer {peer:?} {proto:?}/{port}",
                            ep.display_name()
                        );
                        compared += 1;
                    }
                }
            }
        }
    }
    assert!(compared > 0, "{name}: nothing compared");
}

#[test]
fn every_shipped_example_flattens_to_the_same_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let config = load(&[&dir]).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        check(&dir.display().to_string(), &config);
        n += 1;
    }
    assert!(n >= 9, "examples found: {n}");
}

/// Overlapping ranges, a deny inside an allow range, peer-specific and any-peer rules
/// on the same ports, L7 on one port of a range, and a protocol-less rule.
const EDGES: &str = r#"
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: a, namespace: ns, labels: {app: a}}
spec: {addresses: ["10.0.0.1"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: b, namespace: ns, labels: {app: b}}
spec: {addresses: ["10.0.0.2"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: c, namespace: ns, labels: {app: c}}
spec: {addresses: ["10.0.0.3"]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: edges, namespace: ns}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
    toPorts: [{ports: [{port: "1024", endPort: 9000, protocol: TCP}]}]
  - fromEndpoints: [{}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: [{method: GET}]}}]
  - fromCIDR: ["10.9.0.0/16"]
    toPorts: [{ports: [{port: "5000", endPort: 5100}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: c}}]
    toPorts: [{ports: [{port: "5432", protocol: ANY}]}]
  egress:
  - toEndpoints: [{matchLabels: {app: b}}]
  - toCIDR: ["0.0.0.0/0"]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
  egressDeny:
  - toEndpoints: [{matchLabels: {app: b}}]
    toPorts: [{ports: [{port: "6379", protocol: TCP}]}]
"#;

#[test]
fn overlapping_ranges_denies_and_l7_flatten_to_the_same_answers() {
    let config = load_str("edges.yaml", EDGES).unwrap();
    check("edges", &config);
}
