use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::*;
use crate::http::{
    HeaderEdit, HeaderLogEntry, HeaderLogKind, HeaderMatchSpec, HttpRuleSpec, REDACTED, SecretRef,
};

fn spec(method: Option<&str>, path: Option<&str>, host: Option<&str>) -> HttpRuleSpec {
    HttpRuleSpec {
        method: method.map(str::to_owned),
        path: path.map(str::to_owned),
        host: host.map(str::to_owned),
        ..HttpRuleSpec::default()
    }
}

fn compile_with(
    specs: &[HttpRuleSpec],
    secrets: &dyn Fn(&SecretRef) -> Option<String>,
) -> HttpRuleSet {
    let rules: Vec<HttpRule> = specs
        .iter()
        .map(|s| HttpRule::compile(s, secrets).unwrap_or_else(|e| panic!("{s:?}: {e:?}")))
        .collect();
    HttpRuleSet::compile(&rules).unwrap_or_else(|e| panic!("{e}"))
}

fn set(specs: &[HttpRuleSpec]) -> HttpRuleSet {
    compile_with(specs, &|_| None)
}

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}")),
            HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{value}: {e}")),
        );
    }
    map
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap_or_else(|e| panic!("{m}: {e}"))
}

/// The index of the rule that allowed the request, or `None` when denied.
fn verdict(
    set: &HttpRuleSet,
    m: &str,
    path: Option<&str>,
    host: Option<&str>,
    h: &HeaderMap,
) -> Option<usize> {
    let m = method(m);
    let view = RequestView {
        method: &m,
        path,
        host,
        headers: h,
    };
    match set.evaluate(&view) {
        HttpDecision::Allowed {
            by: AllowedBy::Rule(i),
            ..
        } => Some(i),
        HttpDecision::Allowed {
            by: AllowedBy::NoRules,
            ..
        } => Some(usize::MAX),
        HttpDecision::Denied { .. } => None,
    }
}

struct Case {
    source: &'static str,
    method: &'static str,
    path: Option<&'static str>,
    host: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    want: Option<usize>,
}

fn case(
    source: &'static str,
    method: &'static str,
    path: &'static str,
    host: Option<&'static str>,
    want: Option<usize>,
) -> Case {
    Case {
        source,
        method,
        path: Some(path),
        host,
        headers: &[],
        want,
    }
}

fn run(set: &HttpRuleSet, cases: &[Case]) {
    for c in cases {
        let h = headers(c.headers);
        assert_eq!(
            verdict(set, c.method, c.path, c.host, &h),
            c.want,
            "{}: {} {:?} host {:?}",
            c.source,
            c.method,
            c.path,
            c.host
        );
    }
}

/// spec §11 and the Cilium HTTP policy guide (`GET /public`, `PUT /avatar` with a header).
#[test]
fn method_and_path_are_full_match_regexes() {
    let s = set(&[
        spec(Some("GET|POST"), Some("/api/.*"), None),
        spec(Some("GET"), Some("/public"), None),
    ]);
    run(
        &s,
        &[
            case(
                "alternation, first branch",
                "GET",
                "/api/items",
                None,
                Some(0),
            ),
            case(
                "alternation, second branch",
                "POST",
                "/api/items",
                None,
                Some(0),
            ),
            case("method not listed", "PUT", "/api/items", None, None),
            case(
                "RFC 9110 §9.1: methods are case-sensitive",
                "get",
                "/api/items",
                None,
                None,
            ),
            case(
                "anchored: GET|POST is not a prefix",
                "GETX",
                "/api/items",
                None,
                None,
            ),
            case("path anchored at the end", "GET", "/apix", None, None),
            case("`/api/.*` needs the slash", "GET", "/api", None, None),
            case("exact path", "GET", "/public", None, Some(1)),
            case(
                "spec §11: /public does not match /public/x",
                "GET",
                "/public/x",
                None,
                None,
            ),
            case(
                "spec §11: the query is part of the path",
                "GET",
                "/public?x=1",
                None,
                None,
            ),
            case(
                "`.*` covers the query",
                "GET",
                "/api/items?limit=5",
                None,
                Some(0),
            ),
        ],
    );
}

/// spec §11: host is a full-match regex on the authority; a request without one matches no
/// host pattern; gRPC is `POST /pkg.Service/Method` (spec §12).
#[test]
fn host_patterns_and_grpc() {
    let s = set(&[
        spec(None, None, Some(r"api\.example\.com")),
        spec(
            Some("POST"),
            Some("/cloudcity.DoorManager/GetName"),
            Some(r".*\.internal"),
        ),
        spec(Some("POST"), Some("/cloudcity.Inventory/.*"), None),
    ]);
    run(
        &s,
        &[
            case(
                "exact host",
                "DELETE",
                "/x",
                Some("api.example.com"),
                Some(0),
            ),
            case(
                "escaped dot is a dot",
                "GET",
                "/x",
                Some("apiXexample.com"),
                None,
            ),
            case(
                "host pattern is anchored",
                "GET",
                "/x",
                Some("evil-api.example.com"),
                None,
            ),
            case("no authority, no host match", "GET", "/x", None, None),
            case(
                "gRPC method with host",
                "POST",
                "/cloudcity.DoorManager/GetName",
                Some("door.internal"),
                Some(1),
            ),
            case(
                "gRPC method, wrong host",
                "POST",
                "/cloudcity.DoorManager/GetName",
                Some("door.external"),
                None,
            ),
            case(
                "gRPC whole service",
                "POST",
                "/cloudcity.Inventory/List",
                None,
                Some(2),
            ),
            case(
                "gRPC other service",
                "POST",
                "/cloudcity.Other/List",
                None,
                None,
            ),
        ],
    );
}

/// spec §11: `headers` entries require presence or an exact value; several values of one
/// header are joined with `,`.
#[test]
fn header_requirements_are_checked_for_candidates() {
    let s = set(&[HttpRuleSpec {
        path: Some("/avatar".into()),
        headers: vec!["X-My-Header: true".into(), "X-Trace".into()],
        ..HttpRuleSpec::default()
    }]);
    run(
        &s,
        &[
            Case {
                source: "both present, value equal",
                method: "PUT",
                path: Some("/avatar"),
                host: None,
                headers: &[("x-my-header", "true"), ("x-trace", "")],
                want: Some(0),
            },
            Case {
                source: "value differs",
                method: "PUT",
                path: Some("/avatar"),
                host: None,
                headers: &[("x-my-header", "false"), ("x-trace", "1")],
                want: None,
            },
            Case {
                source: "presence missing",
                method: "PUT",
                path: Some("/avatar"),
                host: None,
                headers: &[("x-my-header", "true")],
                want: None,
            },
            Case {
                source: "repeated header is joined: `true,true` is not `true`",
                method: "PUT",
                path: Some("/avatar"),
                host: None,
                headers: &[
                    ("x-my-header", "true"),
                    ("x-my-header", "true"),
                    ("x-trace", "1"),
                ],
                want: None,
            },
            Case {
                source: "headers alone do not help another path",
                method: "PUT",
                path: Some("/other"),
                host: None,
                headers: &[("x-my-header", "true"), ("x-trace", "1")],
                want: None,
            },
        ],
    );
}

/// spec §11: an empty entry `{}` matches every request; Cilium's proxy: an empty rule list
/// is no restriction; `deny_all` is the explicit opposite.
#[test]
fn empty_entry_empty_list_and_deny_all() {
    let h = HeaderMap::new();
    let with_empty = set(&[spec(Some("GET"), Some("/a"), None), HttpRuleSpec::default()]);
    assert_eq!(verdict(&with_empty, "GET", Some("/a"), None, &h), Some(0));
    assert_eq!(
        verdict(&with_empty, "BREW", Some("/anything"), None, &h),
        Some(1)
    );
    // A tunnel needs a rule that names its method (see `connect_needs_a_method`).
    assert_eq!(verdict(&with_empty, "CONNECT", None, None, &h), None);

    let none = set(&[]);
    assert!(none.is_unrestricted());
    assert_eq!(
        verdict(&none, "GET", Some("/x"), None, &h),
        Some(usize::MAX)
    );

    let deny = HttpRuleSet::deny_all();
    assert!(!deny.is_unrestricted());
    assert_eq!(verdict(&deny, "GET", Some("/x"), None, &h), None);
}

/// A request without a path (CONNECT) matches no path pattern but still matches rules
/// without one.
#[test]
fn connect_has_no_path() {
    let h = HeaderMap::new();
    let s = set(&[
        spec(Some("CONNECT"), Some(".*"), None),
        spec(Some("CONNECT"), None, Some("api:443")),
    ]);
    assert_eq!(verdict(&s, "CONNECT", None, Some("api:443"), &h), Some(1));
    assert_eq!(verdict(&s, "CONNECT", None, Some("db:5432"), &h), None);
}

/// CONNECT opens a tunnel the rules cannot inspect: Cilium's Envoy refuses every one;
/// sluice allows one only by a rule whose `method` matches `CONNECT`, never by `{}` or a
/// rule that leaves the method open.
#[test]
fn connect_needs_a_method() {
    let h = HeaderMap::new();
    let cases: [(&[HttpRuleSpec], Option<usize>); 5] = [
        (&[HttpRuleSpec::default()], None),
        (&[spec(None, None, Some("db:5432"))], None),
        (&[spec(Some("GET|CONNECT"), None, Some("db:5432"))], Some(0)),
        (&[spec(Some(".*"), None, None)], Some(0)),
        (
            &[HttpRuleSpec::default(), spec(Some("CONNECT"), None, None)],
            Some(1),
        ),
    ];
    for (rules, want) in cases {
        let s = set(rules);
        assert_eq!(
            verdict(&s, "CONNECT", None, Some("db:5432"), &h),
            want,
            "{rules:?}"
        );
        // The same rules still allow a GET to that host.
        assert_eq!(
            verdict(&s, "GET", Some("/"), Some("db:5432"), &h),
            Some(0),
            "{rules:?}"
        );
    }
}

#[test]
fn the_lowest_matching_index_is_reported() {
    let h = HeaderMap::new();
    let s = set(&[
        spec(Some("POST"), None, None),
        spec(None, Some("/a.*"), None),
        spec(Some("GET"), Some("/a/b"), None),
        HttpRuleSpec::default(),
    ]);
    assert_eq!(verdict(&s, "GET", Some("/a/b"), None, &h), Some(1));
    assert_eq!(verdict(&s, "POST", Some("/a/b"), None, &h), Some(0));
    assert_eq!(verdict(&s, "PUT", Some("/z"), None, &h), Some(3));
}

fn header_match(
    name: &str,
    value: Option<&str>,
    secret: Option<&str>,
    mismatch: &str,
) -> HttpRuleSpec {
    HttpRuleSpec {
        header_matches: vec![HeaderMatchSpec {
            name: name.into(),
            value: value.map(str::to_owned),
            secret: secret.map(|n| SecretRef {
                namespace: None,
                name: n.into(),
            }),
            mismatch: Some(mismatch.into()),
        }],
        ..HttpRuleSpec::default()
    }
}

fn decide<'a>(s: &'a HttpRuleSet, get: &'a Method, h: &'a HeaderMap) -> HttpDecision<'a> {
    s.evaluate(&RequestView {
        method: get,
        path: Some("/"),
        host: None,
        headers: h,
    })
}

fn missing(name: &str, value: &str) -> HeaderLogEntry<'static> {
    HeaderLogEntry {
        kind: HeaderLogKind::Missing,
        name: name.to_owned().leak(),
        value: Cow::Owned(value.to_owned()),
    }
}

fn rejected(name: &str, value: &str) -> HeaderLogEntry<'static> {
    HeaderLogEntry {
        kind: HeaderLogKind::Rejected,
        name: name.to_owned().leak(),
        value: Cow::Owned(value.to_owned()),
    }
}

/// What a rule set edits and logs, as owned text, to compare.
#[derive(Debug, PartialEq, Eq)]
enum Edit {
    Append(String, String),
    Remove(String),
    Set(String, String),
}

fn edits(d: &HttpDecision<'_>) -> Vec<Edit> {
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    match d {
        HttpDecision::Allowed { edits, .. } => edits
            .iter()
            .map(|e| match *e {
                HeaderEdit::Append { name, value } => Edit::Append(name.to_string(), text(value)),
                HeaderEdit::Remove { name } => Edit::Remove(name.to_string()),
                HeaderEdit::Set { name, value } => Edit::Set(name.to_string(), text(value)),
            })
            .collect(),
        HttpDecision::Denied { .. } => Vec::new(),
    }
}

/// cilium/proxy `network_policy.cc` `HeaderMatch::allowed`: what each mismatch action does
/// to the request and to the access log.
#[test]
fn header_match_actions_follow_cilium() {
    let get = Method::GET;
    let right = headers(&[("x-token", "s3cret")]);
    let wrong = headers(&[("x-token", "guess")]);
    let absent = HeaderMap::new();

    struct ActionCase {
        source: &'static str,
        rule: HttpRuleSpec,
        request: HeaderMap,
        allowed: bool,
        edits: Vec<Edit>,
        log: Vec<HeaderLogEntry<'static>>,
    }
    let x = "x-token";
    let cases = [
        ActionCase {
            source: "value matches: allowed, nothing logged",
            rule: header_match("X-Token", Some("s3cret"), None, ""),
            request: right.clone(),
            allowed: true,
            edits: vec![],
            log: vec![],
        },
        ActionCase {
            source: "no action: mismatch denies and logs the expected value as missing",
            rule: header_match("X-Token", Some("s3cret"), None, ""),
            request: wrong.clone(),
            allowed: false,
            edits: vec![],
            log: vec![missing(x, "s3cret")],
        },
        ActionCase {
            source: "LOG: allowed, missing logged",
            rule: header_match("X-Token", Some("s3cret"), None, "LOG"),
            request: wrong.clone(),
            allowed: true,
            edits: vec![],
            log: vec![missing(x, "s3cret")],
        },
        ActionCase {
            source: "ADD: value appended, missing logged",
            rule: header_match("X-Token", Some("s3cret"), None, "ADD"),
            request: wrong.clone(),
            allowed: true,
            edits: vec![Edit::Append(x.into(), "s3cret".into())],
            log: vec![missing(x, "s3cret")],
        },
        ActionCase {
            source: "DELETE: wrong value removed, received value logged as rejected",
            rule: header_match("X-Token", Some("s3cret"), None, "DELETE"),
            request: wrong.clone(),
            allowed: true,
            edits: vec![Edit::Remove(x.into())],
            log: vec![rejected(x, "guess")],
        },
        ActionCase {
            source: "DELETE on an absent header: nothing to do",
            rule: header_match("X-Token", Some("s3cret"), None, "DELETE"),
            request: absent.clone(),
            allowed: true,
            edits: vec![],
            log: vec![],
        },
        ActionCase {
            source: "DELETE after a failed presence check: nothing to do",
            rule: header_match("X-Token", None, None, "DELETE"),
            request: absent.clone(),
            allowed: true,
            edits: vec![],
            log: vec![],
        },
        ActionCase {
            source: "REPLACE: received rejected, expected set and logged missing",
            rule: header_match("X-Token", Some("s3cret"), None, "REPLACE"),
            request: wrong.clone(),
            allowed: true,
            edits: vec![Edit::Set(x.into(), "s3cret".into())],
            log: vec![rejected(x, "guess"), missing(x, "s3cret")],
        },
        ActionCase {
            source: "REPLACE on an absent header: set, logged missing only",
            rule: header_match("X-Token", Some("s3cret"), None, "REPLACE"),
            request: absent.clone(),
            allowed: true,
            edits: vec![Edit::Set(x.into(), "s3cret".into())],
            log: vec![missing(x, "s3cret")],
        },
        ActionCase {
            source: "presence check without action: absent denies",
            rule: header_match("X-Token", None, None, ""),
            request: absent.clone(),
            allowed: false,
            edits: vec![],
            log: vec![missing(x, "")],
        },
        ActionCase {
            source: "secret value: logs redact expected and received values",
            rule: header_match("X-Token", None, Some("token"), "REPLACE"),
            request: wrong.clone(),
            allowed: true,
            edits: vec![Edit::Set(x.into(), "s3cret".into())],
            log: vec![rejected(x, REDACTED), missing(x, REDACTED)],
        },
        ActionCase {
            source: "secret value matches",
            rule: header_match("X-Token", None, Some("token"), ""),
            request: right.clone(),
            allowed: true,
            edits: vec![],
            log: vec![],
        },
        ActionCase {
            source: "spec §11: missing secret, no fallback: the rule never matches, even with LOG",
            rule: header_match("X-Token", None, Some("gone"), "LOG"),
            request: right.clone(),
            allowed: false,
            edits: vec![],
            log: vec![],
        },
        ActionCase {
            source: "missing secret with fallback value: the value is used, logs still redacted",
            rule: header_match("X-Token", Some("s3cret"), Some("gone"), ""),
            request: wrong.clone(),
            allowed: false,
            edits: vec![],
            log: vec![missing(x, REDACTED)],
        },
    ];
    let secrets = |s: &SecretRef| (s.name == "token").then(|| "s3cret".to_owned());
    for c in cases {
        let s = compile_with(std::slice::from_ref(&c.rule), &secrets);
        let d = decide(&s, &get, &c.request);
        assert_eq!(d.is_allowed(), c.allowed, "{}", c.source);
        assert_eq!(edits(&d), c.edits, "{}", c.source);
        assert_eq!(d.log(), c.log.as_slice(), "{}", c.source);
    }
}

/// spec §11: with `headerMatches` anywhere, every rule is evaluated and all side effects
/// apply — also those of a rule that then fails (Cilium does the same).
#[test]
fn header_matches_evaluate_every_candidate() {
    let get = Method::GET;
    let mut token_and_env = header_match("X-Token", Some("s3cret"), None, "");
    token_and_env.header_matches.push(HeaderMatchSpec {
        name: "X-Env".into(),
        value: Some("prod".into()),
        secret: None,
        mismatch: Some("REPLACE".into()),
    });
    let s = set(&[
        token_and_env,
        HttpRuleSpec::default(),
        header_match("X-Trace", Some("on"), None, "ADD"),
    ]);
    let h = headers(&[("x-env", "dev")]);
    let d = decide(&s, &get, &h);
    assert_eq!(
        d,
        HttpDecision::Allowed {
            by: AllowedBy::Rule(1),
            edits: vec![
                HeaderEdit::Set {
                    name: &HeaderName::from_static("x-env"),
                    value: &HeaderValue::from_static("prod"),
                },
                HeaderEdit::Append {
                    name: &HeaderName::from_static("x-trace"),
                    value: &HeaderValue::from_static("on"),
                },
            ],
            log: vec![
                missing("x-token", "s3cret"),
                rejected("x-env", "dev"),
                missing("x-env", "prod"),
                missing("x-trace", "on"),
            ],
        }
    );
    let mut forwarded = h.clone();
    d.apply_edits(&mut forwarded);
    assert_eq!(forwarded, headers(&[("x-env", "prod"), ("x-trace", "on")]));
}

/// A value that no header can carry never matches and is never written.
#[test]
fn unwritable_values_never_match() {
    let get = Method::GET;
    let s = compile_with(
        &[header_match("X-Token", None, Some("token"), "ADD")],
        &|_| Some("a\r\nx-admin: 1".to_owned()),
    );
    let none = HeaderMap::new();
    let d = decide(&s, &get, &none);
    assert_eq!(d, HttpDecision::Denied { log: vec![] });
}

/// Cilium accepts any `headerMatches` name; one that is not a token can never match, so
/// sluice refuses it at load time.
#[test]
fn header_match_names_must_be_tokens() {
    let bad = header_match("X Token", Some("v"), None, "");
    let issues = HttpRule::compile(&bad, &|_| None).err().unwrap_or_default();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        issues[0].field,
        crate::http::HttpRuleField::HeaderMatchName(0)
    );
}

/// The one-pass candidate search agrees with checking every rule on its own, on a set mixing
/// shared and distinct patterns, wildcards and the RegexSet fallback (`\b`).
#[test]
fn agrees_with_rule_by_rule_matching() {
    let methods = [
        None,
        Some("GET"),
        Some("GET|HEAD"),
        Some("POST"),
        Some("[A-Z]+"),
    ];
    let paths = [
        None,
        Some("/api/v1/.*"),
        Some("/api/v1/items"),
        Some("/api/v[0-9]+/items(/.*)?"),
        Some("/public(/.*)?"),
        Some(r"/\bw\b.*"),
        Some(".*\\?debug=1"),
    ];
    let hosts = [
        None,
        Some("api"),
        Some("api(:[0-9]+)?"),
        Some(".*\\.example\\.com"),
    ];
    let mut specs = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        for (j, p) in paths.iter().enumerate() {
            for (k, h) in hosts.iter().enumerate() {
                // Keep about a third, in a scattered pattern, so no field is all-wildcard.
                if (i + 2 * j + 3 * k) % 3 == 0 {
                    specs.push(spec(*m, *p, *h));
                }
            }
        }
    }
    let rules: Vec<HttpRule> = specs
        .iter()
        .map(|s| HttpRule::compile(s, &|_| None).unwrap_or_else(|e| panic!("{e:?}")))
        .collect();
    let s = HttpRuleSet::compile(&rules).unwrap_or_else(|e| panic!("{e}"));
    let h = HeaderMap::new();
    let requests_m = ["GET", "HEAD", "POST", "get", "DELETE"];
    let requests_p = [
        None,
        Some("/api/v1/items"),
        Some("/api/v2/items/3"),
        Some("/public"),
        Some("/publicity"),
        Some("/w/x"),
        Some("/x?debug=1"),
        Some("/"),
    ];
    let requests_h = [
        None,
        Some("api"),
        Some("api:8080"),
        Some("a.example.com"),
        Some("evil"),
    ];
    let mut checked = 0;
    for m in requests_m {
        for p in requests_p {
            for host in requests_h {
                let want = rules.iter().position(|r| match p {
                    Some(p) => r.matches(m, p, host, &h),
                    None => r.matches_request_line(m, None, host),
                });
                assert_eq!(verdict(&s, m, p, host, &h), want, "{m} {p:?} {host:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 200);
}

/// The set is shared by the proxy's worker threads; each takes its own scratch space.
#[test]
fn evaluates_from_many_threads() {
    const RULES: usize = 64;
    let rules: Vec<HttpRuleSpec> = (0..RULES)
        .map(|i| spec(Some("GET"), Some(&format!("/svc{i}/.*")), None))
        .collect();
    let s = set(&rules);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                let h = HeaderMap::new();
                for i in 0..RULES {
                    let n = (i * 7 + t) % RULES;
                    let path = format!("/svc{n}/x");
                    assert_eq!(verdict(s, "GET", Some(&path), None, &h), Some(n));
                }
            });
        }
    });
}
