//! Evaluating one request against an HTTP rule set, and normalising a request head.
//!
//! `cargo bench -p sluice-l7 --bench http_rules`
//!
//! - `evaluate/<case>/<n>`: sets of 10, 1,000 and 10,000 rules shaped like a busy port's
//!   `rules.http`: a path per service (`/api/v1/svc{i}/.*`), methods `GET`, `GET|HEAD`,
//!   `POST` or none, a `headers` requirement on every tenth rule and a host on every
//!   twenty-fifth. Cases: a hit on the last rule, a hit on a rule with a header requirement,
//!   and a miss. The goal is at most 2× from 10 to 10,000 rules.
//! - `linear/<n>`: the loop over `HttpRule::matches` that the set replaces, for comparison.
//! - `normalize/<case>`: an already canonical request (the common case, no allocation) and
//!   one that needs every rewrite.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Version};
use sluice_l7::http::{
    HttpRule, HttpRuleSet, HttpRuleSpec, NormalizeConfig, RequestHead, RequestTarget, RequestView,
    normalize,
};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

fn spec(i: usize) -> HttpRuleSpec {
    HttpRuleSpec {
        method: match i % 4 {
            0 => Some("GET".into()),
            1 => Some("GET|HEAD".into()),
            2 => Some("POST".into()),
            _ => None,
        },
        path: Some(format!("/api/v1/svc{i}/.*")),
        host: i
            .is_multiple_of(25)
            .then(|| format!(r"svc{i}\.example\.com")),
        headers: if i.is_multiple_of(10) {
            vec![format!("X-Tenant: t{i}")]
        } else {
            Vec::new()
        },
        ..HttpRuleSpec::default()
    }
}

fn rules(count: usize) -> Vec<HttpRule> {
    (0..count)
        .map(|i| HttpRule::compile(&spec(i), &|_| None).unwrap_or_else(|e| panic!("{e:?}")))
        .collect()
}

struct Request {
    name: &'static str,
    method: Method,
    path: String,
    host: String,
    headers: HeaderMap,
    allowed: bool,
}

/// Requests for a set of `count` rules. The highest rule index that is `1 (mod 4)` (methods
/// `GET|HEAD`, no header) is the last plain hit; the highest multiple of 100 (`GET`) has a
/// header and a host.
fn requests(count: usize) -> Vec<Request> {
    let last = (count - 1) - ((count - 1) % 4) + 1;
    let last = if last >= count { last - 4 } else { last };
    let tenant = (count - 1) / 100 * 100;
    let mut tenant_headers = HeaderMap::new();
    tenant_headers.insert(
        "x-tenant",
        HeaderValue::from_str(&format!("t{tenant}")).unwrap_or_else(|e| panic!("{e}")),
    );
    vec![
        Request {
            name: "hit",
            method: Method::HEAD,
            path: format!("/api/v1/svc{last}/items/42?limit=10"),
            host: "api.internal".into(),
            headers: HeaderMap::new(),
            allowed: true,
        },
        Request {
            name: "hit_with_header",
            method: Method::GET,
            path: format!("/api/v1/svc{tenant}/items"),
            host: format!("svc{tenant}.example.com"),
            headers: tenant_headers,
            allowed: true,
        },
        Request {
            name: "miss",
            method: Method::GET,
            path: "/api/v2/svc1/items".into(),
            host: "api.internal".into(),
            headers: HeaderMap::new(),
            allowed: false,
        },
    ]
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    for count in SIZES {
        let rules = rules(count);
        let started = Instant::now();
        let set = HttpRuleSet::compile(&rules).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("compile {count} rules: {:?}", started.elapsed());
        // The lazy DFA builds its states on first use, per thread: the first request pays.
        let requests = requests(count);
        if let Some(r) = requests.first() {
            let view = RequestView {
                method: &r.method,
                path: Some(&r.path),
                host: Some(&r.host),
                headers: &r.headers,
            };
            let started = Instant::now();
            let allowed = set.evaluate(&view).is_allowed();
            eprintln!(
                "first request, {count} rules: {:?} ({allowed})",
                started.elapsed()
            );
        }
        for r in requests {
            let view = RequestView {
                method: &r.method,
                path: Some(&r.path),
                host: Some(&r.host),
                headers: &r.headers,
            };
            assert_eq!(
                set.evaluate(&view).is_allowed(),
                r.allowed,
                "{} {count}",
                r.name
            );
            group.bench_with_input(BenchmarkId::new(r.name, count), &view, |b, view| {
                b.iter(|| black_box(set.evaluate(black_box(view))).is_allowed());
            });
        }
    }
    group.finish();
}

fn linear(c: &mut Criterion) {
    let mut group = c.benchmark_group("linear");
    for count in SIZES {
        let rules = rules(count);
        let r = requests(count).swap_remove(0);
        group.bench_with_input(BenchmarkId::from_parameter(count), &r, |b, r| {
            b.iter(|| {
                rules.iter().position(|rule| {
                    rule.matches(
                        r.method.as_str(),
                        black_box(&r.path),
                        Some(&r.host),
                        &r.headers,
                    )
                })
            });
        });
    }
    group.finish();
}

fn normalise(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("api.internal"));
    headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    let config = NormalizeConfig::default();
    let cases = [
        ("canonical", "/api/v1/svc7/items/42?limit=10"),
        ("dirty", "/api//v1/./svc7/%7Eitems/../items/%34%32?limit=10"),
    ];
    for (name, target) in cases {
        let head = RequestHead {
            method: &Method::GET,
            target: RequestTarget::Origin(target),
            version: Version::HTTP_11,
            headers: &headers,
        };
        assert!(normalize(&head, &config).is_ok(), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| normalize(black_box(&head), &config).map(|n| n.framing()));
        });
    }
    group.finish();

    // The proxy's whole per-request path: normalise, then evaluate against 10,000 rules.
    let set = HttpRuleSet::compile(&rules(10_000)).unwrap_or_else(|e| panic!("{e}"));
    let target = "/api/v1/svc9997/items/42?limit=10";
    let head = RequestHead {
        method: &Method::HEAD,
        target: RequestTarget::Origin(target),
        version: Version::HTTP_11,
        headers: &headers,
    };
    c.bench_function("normalize_and_evaluate/10000", |b| {
        b.iter(|| {
            normalize(black_box(&head), &config).map(|n| set.evaluate(&n.view()).is_allowed())
        });
    });
}

criterion_group!(benches, evaluate, linear, normalise);
criterion_main!(benches);
