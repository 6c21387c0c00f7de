//! Policy compile time and decision lookup latency.
//!
//! `cargo bench -p sluice-identity --bench policy`
//!
//! - compile: 1,000 policies over 5,000 workloads (100 namespaces × 50 apps).
//! - lookup: one decision for an endpoint selected by 10 / 1,000 / 10,000 rules; the
//!   goal is a flat lookup, well under 1 µs.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sluice_config::load_str;
use sluice_identity::{CompiledPolicy, Direction, Protocol};

const NAMESPACES: usize = 100;
const APPS: usize = 50;

fn workloads() -> String {
    let mut y = String::new();
    for ns in 0..NAMESPACES {
        for app in 0..APPS {
            let n = ns * APPS + app;
            let _ = write!(
                y,
                "---\napiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {{name: w{app}, namespace: ns{ns}, labels: {{app: a{app}, tier: t{}}}}}\nspec: {{addresses: [\"10.{}.{}.{}\"]}}\n",
                app % 5,
                n / 65536,
                (n / 256) % 256,
                n % 256
            );
        }
    }
    y
}

/// `count` CNPs spread over the namespaces: each selects one app and allows another app
/// of its namespace on a port, with an HTTP rule on every tenth.
fn policies(count: usize) -> String {
    let mut y = String::new();
    for i in 0..count {
        let ns = i % NAMESPACES;
        let rules = if i % 10 == 0 {
            ", rules: {http: [{method: GET, path: \"/v1/.*\"}]}"
        } else {
            ""
        };
        let _ = write!(
            y,
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: p{i}, namespace: ns{ns}}}\nspec:\n  endpointSelector: {{matchLabels: {{app: a{}}}}}\n  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: a{}}}}}]\n    toPorts: [{{ports: [{{port: \"{}\", protocol: TCP}}]{rules}}}]\n",
            i % APPS,
            (i + 1) % APPS,
            1000 + i % 5000
        );
    }
    y
}

/// `count` rules all selecting ns0/w0 (app a0), each allowing a0..a49 on its own port.
fn rules_on_one_endpoint(count: usize) -> String {
    let mut y = String::new();
    for i in 0..count {
        let _ = write!(
            y,
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: r{i}, namespace: ns0}}\nspec:\n  endpointSelector: {{matchLabels: {{app: a0}}}}\n  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: a{}}}}}]\n    toPorts: [{{ports: [{{port: \"{}\", protocol: TCP}}]}}]\n",
            i % APPS,
            1 + (i % 60000)
        );
    }
    y
}

fn compile(c: &mut Criterion) {
    let text = format!("{}{}", workloads(), policies(1_000));
    let config = match load_str("bench.yaml", &text) {
        Ok(c) => c,
        Err(e) => panic!("bench config does not load: {e}"),
    };
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("1000_policies_5000_workloads", |b| {
        b.iter(|| CompiledPolicy::compile(black_box(&config)))
    });
    group.finish();
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for rules in [10usize, 1_000, 10_000] {
        // A smaller cluster keeps setup quick; the lookup does not depend on it.
        let mut base = String::new();
        for app in 0..APPS {
            let _ = write!(
                base,
                "---\napiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {{name: w{app}, namespace: ns0, labels: {{app: a{app}}}}}\nspec: {{addresses: [\"10.0.0.{}\"]}}\n",
                app + 1
            );
        }
        let text = format!("{base}{}", rules_on_one_endpoint(rules));
        let config = match load_str("bench.yaml", &text) {
            Ok(c) => c,
            Err(e) => panic!("bench config does not load: {e}"),
        };
        let policy = match CompiledPolicy::compile(&config) {
            Ok(p) => p,
            Err(e) => panic!("bench config does not compile: {e}"),
        };
        let u = policy.universe();
        let ep = |name: &str| match u.endpoint("ns0", name) {
            Some(e) => e.identity,
            None => panic!("no workload {name}"),
        };
        let (target, peer) = (ep("w0"), ep("w7"));
        let port = (1 + (rules / 2 / APPS) * APPS + 7) as u16;
        let table = match policy.endpoint_policy(target) {
            Some(t) => t.direction(Direction::Ingress),
            None => panic!("endpoint has no policy"),
        };
        group.bench_with_input(BenchmarkId::new("port_table", rules), &rules, |b, _| {
            b.iter(|| table.lookup(black_box(peer), Protocol::Tcp, black_box(port)))
        });
        group.bench_with_input(BenchmarkId::new("outcome", rules), &rules, |b, _| {
            b.iter(|| {
                policy.outcome(
                    black_box(target),
                    Direction::Ingress,
                    black_box(peer),
                    Protocol::Tcp,
                    black_box(port),
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("decide", rules), &rules, |b, _| {
            b.iter(|| {
                policy.decide(
                    black_box(target),
                    Direction::Ingress,
                    black_box(peer),
                    Protocol::Tcp,
                    black_box(port),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, compile, lookup);
criterion_main!(benches);
