//! The shipped examples (the Cilium playbook's policies) resolve as their READMEs say.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::Path;

use sluice_config::load;
use sluice_identity::trace::{PartySpec, TraceQuery, trace};
use sluice_identity::{Protocol, Verdict};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Allowed,
    /// Allowed, through the L7 proxy.
    L7,
    /// Allowed by policy but authentication `required`: 189 until mutual TLS is done.
    AuthRequired,
    Denied(u8),
    Audit,
}
use Expect::*;

fn check(example: &str, flows: &[(&str, &str, &str, Expect)]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(example);
    let config = load(&[&dir]).unwrap_or_else(|e| panic!("{example} does not load: {e}"));
    assert!(
        config.diagnostics.is_empty(),
        "{example}: {:?}",
        config.diagnostics
    );
    for (from, to, port, expect) in flows {
        let (p, proto) = port.split_once('/').unwrap_or((port, "TCP"));
        let query = TraceQuery {
            from: PartySpec::parse(from).unwrap(),
            to: PartySpec::parse(to).unwrap(),
            port: p.parse().unwrap(),
            protocol: Protocol::parse(proto).unwrap(),
            authenticated: false,
        };
        let r = trace(&config, &query).unwrap();
        let got = match (r.verdict, r.drop_reason) {
            (Verdict::Denied, Some(reason)) if reason.code() == 189 => AuthRequired,
            (Verdict::Denied, Some(reason)) => Denied(reason.code()),
            (Verdict::Audit, _) => Audit,
            (Verdict::Allowed, _) if r.l7_proxy => L7,
            (Verdict::Allowed, _) => Allowed,
            (v, d) => panic!("inconsistent {v:?} {d:?}"),
        };
        assert_eq!(
            got, *expect,
            "examples/{example}: {from} -> {to} {port}\n{r:#?}"
        );
    }
}

#[test]
fn quickstart() {
    check(
        "quickstart",
        &[
            (
                "production/frontend",
                "production/backend",
                "8080/TCP",
                Allowed,
            ),
            (
                "production/stranger",
                "production/backend",
                "8080/TCP",
                Denied(133),
            ),
            (
                "production/frontend",
                "production/backend",
                "9090/TCP",
                Denied(133),
            ),
            ("production/frontend", "kube-system/coredns", "53/UDP", L7),
            ("production/frontend", "kube-system/coredns", "53/TCP", L7),
            ("production/stranger", "kube-system/coredns", "53/UDP", L7),
            (
                "production/frontend",
                "203.0.113.10",
                "443/TCP",
                Denied(133),
            ),
            (
                "kube-system/coredns",
                "production/backend",
                "8080/TCP",
                Denied(133),
            ),
            ("10.200.1.2", "10.200.1.3", "8080/TCP", Allowed),
        ],
    );
}

#[test]
fn api_gateway_l7() {
    check(
        "api-gateway-l7",
        &[
            ("shop/api-gateway", "shop/users-api", "8080/TCP", L7),
            ("shop/reporting", "shop/users-api", "8080/TCP", Denied(133)),
            ("shop/reporting", "shop/orders-api", "8080/TCP", L7),
            ("shop/api-gateway", "shop/orders-api", "8080/TCP", L7),
            ("world", "shop/api-gateway", "8080/TCP", Allowed),
            ("203.0.113.10", "shop/users-api", "8080/TCP", Denied(133)),
        ],
    );
}

#[test]
fn fqdn_egress() {
    check(
        "fqdn-egress",
        &[
            (
                "billing/billing-worker",
                "kube-system/coredns",
                "53/UDP",
                L7,
            ),
            (
                "billing/billing-worker",
                "fqdn:api.stripe.com",
                "443/TCP",
                Allowed,
            ),
            (
                "billing/billing-worker",
                "fqdn:api.stripe.com",
                "80/TCP",
                Denied(133),
            ),
            (
                "billing/billing-worker",
                "203.0.113.10",
                "443/TCP",
                Denied(133),
            ),
            ("billing/report-builder", "203.0.113.10", "443/TCP", Allowed),
        ],
    );
}

#[test]
fn tenant_isolation() {
    check(
        "tenant-isolation",
        &[
            ("tenant-a/web", "tenant-a/db", "5432/TCP", Allowed),
            ("tenant-a/web", "tenant-b/web", "8080/TCP", Denied(133)),
            ("tenant-b/db", "tenant-a/db", "5432/TCP", Denied(133)),
            ("monitoring/prometheus", "tenant-a/web", "9090/TCP", Allowed),
            ("monitoring/prometheus", "tenant-b/db", "9090/TCP", Allowed),
            (
                "monitoring/prometheus",
                "tenant-a/web",
                "8080/TCP",
                Denied(133),
            ),
            (
                "monitoring/grafana",
                "tenant-a/web",
                "9090/TCP",
                Denied(133),
            ),
            (
                "tenant-a/web",
                "monitoring/grafana",
                "3000/TCP",
                Denied(133),
            ),
        ],
    );
}

#[test]
fn env_isolation() {
    check(
        "env-isolation",
        &[
            ("production/web", "production/api", "8080/TCP", Allowed),
            ("staging/web", "staging/api", "8080/TCP", Allowed),
            ("staging/web", "production/api", "8080/TCP", Denied(181)),
            ("staging/api", "production/web", "8080/TCP", Denied(181)),
            ("staging/web", "production/batch", "8080/TCP", Denied(181)),
            ("production/web", "staging/api", "8080/TCP", Allowed),
            ("production/web", "production/batch", "8080/TCP", Allowed),
            (
                "production/batch",
                "production/api",
                "8080/TCP",
                Denied(133),
            ),
            ("production/api", "production/web", "9090/TCP", Denied(133)),
        ],
    );
}

#[test]
fn mtls_required() {
    check(
        "mtls-required",
        &[
            ("shop/checkout", "shop/payments", "8080/TCP", AuthRequired),
            ("shop/metrics-agent", "shop/payments", "9090/TCP", Allowed),
            (
                "shop/metrics-agent",
                "shop/payments",
                "8080/TCP",
                Denied(133),
            ),
            ("shop/storefront", "shop/payments", "8080/TCP", Denied(133)),
        ],
    );
}

#[test]
fn host_firewall() {
    check(
        "host-firewall",
        &[
            ("192.0.2.10", "host", "22/TCP", Allowed),
            ("203.0.113.7", "host", "22/TCP", Denied(133)),
            ("apps/client", "host", "22/TCP", Denied(133)),
            ("apps/client", "host", "10250/TCP", Allowed),
            ("apps/client", "host", "8/ICMP", Allowed),
            ("remote-node", "host", "4240/TCP", Allowed),
            ("world", "host", "10250/TCP", Denied(133)),
            ("198.51.100.5", "host", "9100/TCP", Allowed),
            ("198.51.100.20", "host", "9100/TCP", Denied(133)),
            ("203.0.113.7", "apps/web", "8080/TCP", Allowed),
        ],
    );
}

#[test]
fn knp() {
    check(
        "knp",
        &[
            ("store/frontend", "store/api", "8080/TCP", Allowed),
            ("store/frontend", "store/api", "9102/TCP", Denied(133)),
            ("ops/debug-shell", "store/api", "8080/TCP", Allowed),
            ("ops/debug-shell", "store/api", "9102/TCP", Allowed),
            ("ops/runner", "store/api", "8080/TCP", Denied(133)),
            ("store/frontend", "kube-system/coredns", "53/UDP", Allowed),
            ("store/api", "203.0.113.10", "443/TCP", Allowed),
            ("store/api", "10.1.2.3", "443/TCP", Denied(133)),
            ("store/api", "203.0.113.10", "80/TCP", Denied(133)),
            ("store/frontend", "203.0.113.10", "443/TCP", Denied(133)),
        ],
    );
}

#[test]
fn audit_mode() {
    check(
        "audit-mode",
        &[
            ("orders/web", "orders/db", "5432/TCP", Allowed),
            ("orders/batch", "orders/db", "5432/TCP", Audit),
            ("orders/web", "203.0.113.10", "443/TCP", Audit),
            ("203.0.113.10", "orders/web", "8080/TCP", Audit),
        ],
    );
}
