//! Matching one query name against a compiled DNS selector set.
//!
//! `cargo bench -p sluice-l7 --bench dns_patterns`
//!
//! Sets of 10 and 10,000 selectors shaped like a busy node's `toFQDNs` / `rules.dns`:
//! literal names, `*.tenant.example`, `**.tenant.example`, `api-*.tenant.example` and
//! `svc-tenant-*.shared.example` in equal parts (the last puts thousands of starred labels
//! under one suffix, the regex-set case). Each size is queried with a hit for every shape and a miss; the goal is
//! a flat cost, the same at 10,000 selectors as at 10. `linear` is the loop over
//! `FqdnPattern::matches` the set replaces, for comparison.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sluice_l7::dns::{DnsPatternSet, FqdnPattern};

const SHAPES: usize = 5;

fn selectors(count: usize) -> Vec<FqdnPattern> {
    (0..count)
        .map(|i| {
            let tenant = i / SHAPES;
            let compiled = match i % SHAPES {
                0 => FqdnPattern::match_name(&format!("www.tenant{tenant}.example")),
                1 => FqdnPattern::match_pattern(&format!("*.tenant{tenant}.example")),
                2 => FqdnPattern::match_pattern(&format!("**.tenant{tenant}.example")),
                3 => FqdnPattern::match_pattern(&format!("api-*.tenant{tenant}.example")),
                _ => FqdnPattern::match_pattern(&format!("svc-tenant{tenant}-*.shared.example")),
            };
            compiled.unwrap_or_else(|e| panic!("selector {i}: {e:?}"))
        })
        .collect()
}

fn queries(count: usize) -> Vec<(&'static str, String)> {
    let last = count / SHAPES - 1;
    vec![
        ("exact", format!("www.tenant{last}.example.")),
        ("star", format!("cdn.tenant{last}.example.")),
        ("subdomains", format!("a.b.c.tenant{last}.example.")),
        ("starred-label", format!("api-eu1.tenant{last}.example.")),
        (
            "shared-suffix",
            format!("svc-tenant{last}-eu1.shared.example."),
        ),
        ("miss", "www.elsewhere.example.".to_owned()),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dns_patterns");
    for count in [10usize, 10_000] {
        let patterns = selectors(count);
        let set = DnsPatternSet::new(patterns.clone());
        let mut out = Vec::with_capacity(8);
        for (kind, name) in queries(count) {
            group.bench_with_input(
                BenchmarkId::new(format!("set/{kind}"), count),
                &name,
                |b, name| {
                    b.iter(|| {
                        out.clear();
                        set.matches_canonical_into(black_box(name), &mut out);
                        out.len()
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("linear/{kind}"), count),
                &name,
                |b, name| {
                    b.iter(|| {
                        patterns
                            .iter()
                            .filter(|p| p.matches_canonical(black_box(name)))
                            .count()
                    })
                },
            );
        }
        group.bench_function(BenchmarkId::new("compile", count), |b| {
            b.iter(|| DnsPatternSet::new(black_box(patterns.clone())))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
