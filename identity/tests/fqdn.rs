//! FQDN identities (spec §14): what rules select an address learned from DNS, with the
//! numbers a node gave it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::IpAddr;

use sluice_config::load_str;
use sluice_identity::allocator::{IdentityRange, allocate_one};
use sluice_identity::fqdn::{AddressBase, FqdnIdentity};
use sluice_identity::{CompiledPolicy, Direction, DropReason, Identity, Protocol, Verdict};

/// The fqdn-egress example's rule, plus a toCIDR rule, a world rule and a deny.
const CONFIG: &str = r#"
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: worker, namespace: billing, labels: {app: worker}}
spec: {addresses: ["10.200.3.2"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: other, namespace: billing, labels: {app: other}}
spec: {addresses: ["10.200.3.3"]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: egress, namespace: billing}
spec:
  endpointSelector: {matchLabels: {app: worker}}
  egress:
  - toFQDNs: [{matchName: "api.stripe.com"}, {matchPattern: "*.amazonaws.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toCIDR: ["198.51.100.0/24"]
    toPorts: [{ports: [{port: "8443", protocol: TCP}]}]
  - toEntities: [world]
    toPorts: [{ports: [{port: "123", protocol: UDP}]}]
  egressDeny:
  - toCIDR: ["203.0.113.0/24"]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#;

struct Learned {
    policy: CompiledPolicy,
}

/// Compiles CONFIG with one FQDN identity per (address, selectors) given, numbered as a
/// node would (hash slot, avoiding what the configuration uses).
fn learn(addresses: &[(&str, &[&str])]) -> (Learned, Vec<Identity>) {
    let config = load_str("p.yaml", CONFIG).unwrap();
    let plain = CompiledPolicy::compile(&config).unwrap();
    let mut fqdn: Vec<FqdnIdentity> = Vec::new();
    let mut ids = Vec::new();
    for (addr, selectors) in addresses {
        let ip: IpAddr = addr.parse().unwrap();
        let base = AddressBase::of(plain.universe(), ip).expect("a world or CIDR address");
        let labels = base.with_selectors(selectors.iter().copied());
        let id = match fqdn.iter().find(|f| f.labels == labels) {
            Some(f) => f.id,
            None => {
                let id = allocate_one(&labels, IdentityRange::NODE_LOCAL, |id| {
                    plain.universe().identity(id).is_some() || fqdn.iter().any(|f| f.id == id)
                })
                .unwrap();
                fqdn.push(FqdnIdentity {
                    id,
                    labels,
                    base: base.prefix,
                });
                id
            }
        };
        ids.push(id);
    }
    let policy = CompiledPolicy::compile_with_fqdn(&config, &fqdn).unwrap();
    (Learned { policy }, ids)
}

impl Learned {
    fn egress(&self, peer: Identity, proto: Protocol, port: u16) -> (Verdict, Option<DropReason>) {
        let worker = self
            .policy
            .universe()
            .endpoint("billing", "worker")
            .unwrap()
            .identity;
        let d = self
            .policy
            .decide(worker, Direction::Egress, peer, proto, port);
        (d.verdict, d.drop_reason)
    }
}

const ALLOWED: (Verdict, Option<DropReason>) = (Verdict::Allowed, None);
const DEFAULT_DENY: (Verdict, Option<DropReason>) =
    (Verdict::Denied, Some(DropReason::PolicyDenied));
const DENY_RULE: (Verdict, Option<DropReason>) =
    (Verdict::Denied, Some(DropReason::PolicyDenyList));

#[test]
fn a_learned_address_is_selected_by_its_names_selectors_and_by_what_it_was() {
    let (l, ids) = learn(&[
        ("192.0.2.10", &["api.stripe.com"]),
        ("192.0.2.11", &["*.amazonaws.com"]),
        // Inside a toCIDR prefix: the FQDN rule and the CIDR rule both apply.
        ("198.51.100.7", &["api.stripe.com"]),
        // Inside a denied prefix: the deny beats the toFQDNs allow (spec §7).
        ("203.0.113.9", &["api.stripe.com"]),
        ("2001:db8::10", &["api.stripe.com"]),
    ]);
    let (stripe, aws, in_cidr, in_deny, v6) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    let world = Identity::WORLD_IPV4;
    let cases = [
        // (peer, proto, port, expected, why)
        (stripe, Protocol::Tcp, 443, ALLOWED, "toFQDNs on 443"),
        (stripe, Protocol::Tcp, 80, DEFAULT_DENY, "only 443"),
        (aws, Protocol::Tcp, 443, ALLOWED, "matchPattern"),
        (v6, Protocol::Tcp, 443, ALLOWED, "IPv6 answer"),
        (
            world,
            Protocol::Tcp,
            443,
            DEFAULT_DENY,
            "an address nobody learned",
        ),
        (in_cidr, Protocol::Tcp, 443, ALLOWED, "its name"),
        (in_cidr, Protocol::Tcp, 8443, ALLOWED, "its prefix (toCIDR)"),
        (
            stripe,
            Protocol::Tcp,
            8443,
            DEFAULT_DENY,
            "not in the prefix",
        ),
        (
            stripe,
            Protocol::Udp,
            123,
            ALLOWED,
            "still world (toEntities)",
        ),
        (
            in_cidr,
            Protocol::Udp,
            123,
            ALLOWED,
            "a CIDR identity is world too",
        ),
        (
            in_deny,
            Protocol::Tcp,
            443,
            DENY_RULE,
            "egressDeny on its prefix",
        ),
    ];
    for (peer, proto, port, want, why) in cases {
        assert_eq!(
            l.egress(peer, proto, port),
            want,
            "{why}: {peer} {proto:?}/{port}"
        );
    }
    // Other endpoints are not selected by worker's policy: not enforced, allowed.
    let other = l
        .policy
        .universe()
        .endpoint("billing", "other")
        .unwrap()
        .identity;
    let d = l
        .policy
        .decide(other, Direction::Egress, stripe, Protocol::Tcp, 80);
    assert_eq!(d.verdict, Verdict::Allowed);
    // The learned identities carry Cilium's labels.
    let labels = l
        .policy
        .universe()
        .identity(stripe)
        .unwrap()
        .labels
        .to_strings();
    assert!(
        labels.contains(&"fqdn:api.stripe.com".to_owned()),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"reserved:world-ipv4".to_owned()),
        "{labels:?}"
    );
    let labels = l
        .policy
        .universe()
        .identity(in_cidr)
        .unwrap()
        .labels
        .to_strings();
    assert!(
        labels.contains(&"cidr:198.51.100.0/24".to_owned()),
        "{labels:?}"
    );
}

#[test]
fn one_identity_per_label_set_and_the_selectors_are_listed() {
    let (l, ids) = learn(&[
        ("192.0.2.10", &["api.stripe.com"]),
        ("192.0.2.20", &["api.stripe.com"]),
        ("192.0.2.30", &["api.stripe.com", "*.amazonaws.com"]),
    ]);
    assert_eq!(ids[0], ids[1], "same labels, same identity");
    assert_ne!(ids[0], ids[2]);
    assert!(ids.iter().all(|id| id.is_local_scope()));
    assert_eq!(
        l.policy.fqdn_selectors(),
        ["*.amazonaws.com", "api.stripe.com"]
    );
    // An identity of both names is allowed by the rule (either selector).
    assert_eq!(l.egress(ids[2], Protocol::Tcp, 443), ALLOWED);
}

#[test]
fn the_kernel_policy_of_learned_identities_agrees_with_the_engine() {
    let (l, ids) = learn(&[
        ("192.0.2.10", &["api.stripe.com"]),
        ("198.51.100.7", &["api.stripe.com"]),
        ("203.0.113.9", &["*.amazonaws.com"]),
    ]);
    let worker = l
        .policy
        .universe()
        .endpoint("billing", "worker")
        .unwrap()
        .identity;
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let k = l.policy.kernel_policy(worker, Direction::Egress, &[proto]);
        for &peer in &ids {
            for port in [0, 122, 123, 124, 442, 443, 444, 8442, 8443, 8444, 65535] {
                let o = l
                    .policy
                    .outcome(worker, Direction::Egress, peer, proto, port);
                let rule = k
                    .rules
                    .iter()
                    .find(|r| {
                        r.peer == Some(peer)
                            && r.proto == proto
                            && r.ports.lo <= port
                            && port <= r.ports.hi
                    })
                    .or_else(|| {
                        k.rules.iter().find(|r| {
                            r.peer.is_none()
                                && r.proto == proto
                                && r.ports.lo <= port
                                && port <= r.ports.hi
                        })
                    });
                let kernel_allows = rule.is_some_and(|r| {
                    matches!(r.action, sluice_identity::policy::KernelAction::Allow)
                });
                assert_eq!(
                    kernel_allows,
                    o.verdict == Verdict::Allowed,
                    "peer {peer} {proto:?}/{port}"
                );
            }
        }
    }
}
