//! Any bytes as a request head through the HTTP normaliser and a rule set. Refusals are
//! fine; panics, hangs, unbounded memory, and a normalised path or host that does not
//! normalise to itself are the bugs.
//!
//! Input: the first byte picks method and version, the first line is the request-target,
//! each further line a `name: value` header (lines the `http` crate refuses are skipped).
//! l7-filters/tests/http_fuzz_corpus.rs runs the same format, mutated, in the test suite.

#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use libfuzzer_sys::fuzz_target;
use sluice_l7::http::{
    EscapedSlashAction, HeaderMatchSpec, HttpRule, HttpRuleSet, HttpRuleSpec, NormalizeConfig,
    RequestHead, RequestTarget, SecretRef, Transport, normalize,
};

const METHODS: &[&str] = &[
    "GET", "POST", "CONNECT", "OPTIONS", "get", "HEAD", "PUT", "BREW",
];
const VERSIONS: &[Version] = &[
    Version::HTTP_11,
    Version::HTTP_10,
    Version::HTTP_2,
    Version::HTTP_09,
];

static RULES: LazyLock<HttpRuleSet> = LazyLock::new(|| {
    let header_match =
        |name: &str, value: Option<&str>, secret: Option<&str>, mismatch: &str| HeaderMatchSpec {
            name: name.into(),
            value: value.map(str::to_owned),
            secret: secret.map(|n| SecretRef {
                namespace: None,
                name: n.into(),
            }),
            mismatch: Some(mismatch.into()),
        };
    let specs = [
        HttpRuleSpec {
            method: Some("GET|HEAD".into()),
            path: Some("/api/v1/items(/.*)?".into()),
            host: Some("api(:[0-9]+)?".into()),
            ..HttpRuleSpec::default()
        },
        HttpRuleSpec {
            path: Some("/public(/.*)?".into()),
            headers: vec!["X-Trace".into()],
            ..HttpRuleSpec::default()
        },
        HttpRuleSpec {
            method: Some("POST".into()),
            path: Some(r"/grpc\.Svc/.*".into()),
            header_matches: vec![
                header_match("x-token", None, Some("token"), ""),
                header_match("x-env", Some("prod"), None, "REPLACE"),
                header_match("x-add", Some("1"), None, "ADD"),
                header_match("x-del", Some("1"), None, "DELETE"),
                header_match("x-log", None, None, "LOG"),
            ],
            ..HttpRuleSpec::default()
        },
        HttpRuleSpec {
            method: Some("CONNECT".into()),
            host: Some(r"[a-z.]+:443".into()),
            ..HttpRuleSpec::default()
        },
    ];
    let secrets = |s: &SecretRef| (s.name == "token").then(|| "s3cret".to_owned());
    let rules: Vec<HttpRule> = specs
        .iter()
        .map(|s| HttpRule::compile(s, &secrets).expect("fixed rules compile"))
        .collect();
    HttpRuleSet::compile(&rules).expect("fixed rule set compiles")
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(method) = Method::from_bytes(METHODS[usize::from(selector) % METHODS.len()].as_bytes())
    else {
        return;
    };
    let version = VERSIONS[usize::from(selector >> 4) % VERSIONS.len()];
    let mut lines = rest.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii_start();
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let Ok(target) = RequestTarget::parse(target) else {
        return;
    };
    let configs = [
        NormalizeConfig::default(),
        NormalizeConfig {
            escaped_slashes: EscapedSlashAction::UnescapeAndRedirect,
            transport: Transport::Tls,
            ..NormalizeConfig::default()
        },
    ];
    for config in configs {
        let head = RequestHead {
            method: &method,
            target,
            version,
            headers: &headers,
        };
        let Ok(normal) = normalize(&head, &config) else {
            continue;
        };
        check_fixed_point(&head, &config, normal.path_and_query(), normal.host());
        let decision = RULES.evaluate(&normal.view());
        let mut forwarded = headers.clone();
        decision.apply_edits(&mut forwarded);
    }
});

/// A normalised path and host, sent again in the same form, come back unchanged.
fn check_fixed_point(
    head: &RequestHead<'_>,
    config: &NormalizeConfig,
    path: Option<&str>,
    host: Option<&str>,
) {
    let Some(path) = path.filter(|p| *p != "*") else {
        return;
    };
    let target = match (head.target, host) {
        (RequestTarget::Absolute { scheme, .. }, Some(host)) => RequestTarget::Absolute {
            scheme,
            authority: host,
            path_and_query: path,
        },
        (RequestTarget::Origin(_), _) => RequestTarget::Origin(path),
        _ => return,
    };
    // An empty Host is how a request names no host.
    let mut headers = HeaderMap::new();
    headers.insert(
        "host",
        HeaderValue::from_str(host.unwrap_or("")).expect("a normalised host is a header value"),
    );
    let again = RequestHead {
        method: head.method,
        target,
        version: head.version,
        headers: &headers,
    };
    match normalize(&again, config) {
        Ok(n) => {
            assert_eq!(n.path_and_query(), Some(path), "path is not a fixed point");
            assert_eq!(n.host(), host, "host is not a fixed point");
            assert!(!n.path_rewritten(), "{path}");
        }
        Err(e) => panic!("normalised {path:?} / {host:?} is refused: {e}"),
    }
}
