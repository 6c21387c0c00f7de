//! Attempts to reach a resource the rules do not allow by spelling the request differently.
//! Each goes through the proxy's path — normalise, then evaluate — and must end refused by
//! the normaliser, denied by the rules, or allowed only as the harmless path it normalises to
//! (which is what the proxy forwards).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use sluice_l7::http::{
    HttpRule, HttpRuleSet, HttpRuleSpec, NormalizeConfig, RequestHead, RequestTarget, normalize,
};

/// The policy under attack: anyone may GET `/public/...`; only host `api` serves the items
/// API; nothing allows `/admin`.
fn policy() -> HttpRuleSet {
    let specs = [
        HttpRuleSpec {
            method: Some("GET".into()),
            path: Some("/public(/.*)?".into()),
            ..HttpRuleSpec::default()
        },
        HttpRuleSpec {
            method: Some("GET|HEAD".into()),
            path: Some("/api/v1/items(/.*)?".into()),
            host: Some("api".into()),
            ..HttpRuleSpec::default()
        },
    ];
    let rules: Vec<HttpRule> = specs
        .iter()
        .map(|s| HttpRule::compile(s, &|_| None).unwrap())
        .collect();
    HttpRuleSet::compile(&rules).unwrap()
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The normaliser answered with this status.
    Refused(u16),
    /// The rules answered 403.
    Denied,
    /// Allowed; the proxy forwards this path.
    Forwarded(String),
}

use Outcome::{Denied, Forwarded, Refused};

fn attempt(
    set: &HttpRuleSet,
    method: &str,
    target: &[u8],
    version: Version,
    fields: &[(&str, &str)],
) -> Outcome {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let target = match RequestTarget::parse(target) {
        Ok(t) => t,
        Err(e) => return Refused(e.status().as_u16()),
    };
    let head = RequestHead {
        method: &method,
        target,
        version,
        headers: &headers,
    };
    let normal = match normalize(&head, &NormalizeConfig::default()) {
        Ok(n) => n,
        Err(e) => return Refused(e.status().as_u16()),
    };
    if set.evaluate(&normal.view()).is_allowed() {
        Forwarded(normal.path_and_query().unwrap_or("").to_owned())
    } else {
        Denied
    }
}

struct Try {
    what: &'static str,
    method: &'static str,
    target: &'static [u8],
    headers: &'static [(&'static str, &'static str)],
    want: Outcome,
}

const HOST: &[(&str, &str)] = &[("host", "www")];

fn t(what: &'static str, target: &'static [u8], want: Outcome) -> Try {
    Try {
        what,
        method: "GET",
        target,
        headers: HOST,
        want,
    }
}

#[test]
fn spellings_of_admin_do_not_pass_the_public_rule() {
    let set = policy();
    let tries = [
        t(
            "control: the public page",
            b"/public/index.html",
            Forwarded("/public/index.html".into()),
        ),
        t("control: admin itself", b"/admin", Denied),
        t("RFC 3986 dot segments", b"/public/../admin", Denied),
        t(
            "dot segments, deeper than the root",
            b"/public/../../../admin",
            Denied,
        ),
        t("single dots", b"/public/./../admin", Denied),
        t("percent-encoded dots", b"/public/%2e%2e/admin", Denied),
        t("half-encoded dots", b"/public/.%2E/admin", Denied),
        t("encoded letters", b"/%70ublic/../%61dmin", Denied),
        t("merged slashes", b"//admin", Denied),
        t(
            "empty segment eaten by `..`: stays under /public, and that is what is forwarded",
            b"/public//../admin",
            Forwarded("/public/admin".into()),
        ),
        t("escaped slash %2F", b"/public%2F..%2Fadmin", Refused(400)),
        t(
            "escaped slash lowercase %2f",
            b"/public/..%2fadmin",
            Refused(400),
        ),
        t("escaped backslash %5C", b"/public/..%5Cadmin", Refused(400)),
        t(
            "escaped backslash lowercase %5c",
            b"/public/..%5cadmin",
            Refused(400),
        ),
        t("raw backslash", b"/public/..\\admin", Refused(400)),
        t(
            "Tomcat path parameter on `..`",
            b"/public/..;/admin",
            Refused(400),
        ),
        t(
            "path parameter on `.`",
            b"/public/.;/../admin",
            Refused(400),
        ),
        t("encoded NUL", b"/public/%00/../admin", Refused(400)),
        t("raw NUL", b"/public/\0/../admin", Refused(400)),
        t("control byte", b"/public/\x01/../admin", Refused(400)),
        t("DEL", b"/public/\x7f", Refused(400)),
        t(
            "space (request-line splitting)",
            b"/public/ HTTP/1.1\r\nX: /admin",
            Refused(400),
        ),
        t("non-ASCII byte", b"/public/\xc3\xa9", Refused(400)),
        t(
            "overlong UTF-8 dots",
            b"/public/%c0%ae%c0%ae/admin",
            Refused(400),
        ),
        t("fragment", b"/public#/../../admin", Refused(400)),
        t("bad escape", b"/public/%zz/../admin", Refused(400)),
        t("truncated escape", b"/public/..%2", Refused(400)),
        t("case of the path", b"/PUBLIC/x", Denied),
        t("query is part of the path", b"/admin?/public/x", Denied),
        t("absolute-form", b"http://www/public/../admin", Denied),
        t(
            "absolute-form naming another host than Host",
            b"http://admin.internal/public/x",
            Refused(400),
        ),
        t("authority-form on GET", b"www:80", Refused(400)),
        t("asterisk on GET", b"*", Refused(400)),
    ];
    for x in &tries {
        assert_eq!(
            attempt(&set, x.method, x.target, Version::HTTP_11, x.headers),
            x.want,
            "{}: {:?}",
            x.what,
            String::from_utf8_lossy(x.target)
        );
    }
}

/// RFC 9110 §9.1: `get` is not `GET`; a rule for `GET` does not let it through.
#[test]
fn method_case_is_not_a_way_around_a_method_rule() {
    let set = policy();
    for method in ["get", "Get", "gET"] {
        assert_eq!(
            attempt(&set, method, b"/public/x", Version::HTTP_11, HOST),
            Denied,
            "{method}"
        );
    }
}

/// Host rules see one normalised host; ambiguous hosts are refused.
#[test]
fn host_spellings() {
    let set = policy();
    let items = b"/api/v1/items";
    let cases: &[(&[(&str, &str)], Outcome)] = &[
        (&[("host", "api")], Forwarded("/api/v1/items".into())),
        (&[("host", "API")], Forwarded("/api/v1/items".into())),
        (&[("host", "api:80")], Forwarded("/api/v1/items".into())),
        (&[("host", "api.")], Forwarded("/api/v1/items".into())),
        (&[("host", "api:8080")], Denied),
        (&[("host", "api.evil")], Denied),
        (&[("host", "api@evil")], Refused(400)),
        (&[("host", "evil@api")], Refused(400)),
        (&[("host", "api"), ("host", "evil")], Refused(400)),
        (&[("host", "api evil")], Refused(400)),
        (&[("host", "api:80:80")], Refused(400)),
        (&[], Refused(400)),
    ];
    for (fields, want) in cases {
        assert_eq!(
            &attempt(&set, "GET", items, Version::HTTP_11, fields),
            want,
            "{fields:?}"
        );
    }
    // An HTTP/2 request whose Host differs from :authority.
    assert_eq!(
        attempt(
            &set,
            "GET",
            b"http://api/api/v1/items",
            Version::HTTP_2,
            &[("host", "evil")]
        ),
        Refused(400)
    );
    assert_eq!(
        attempt(
            &set,
            "GET",
            b"http://api/api/v1/items",
            Version::HTTP_2,
            &[]
        ),
        Forwarded("/api/v1/items".into())
    );
}

/// Request smuggling: bodies framed two ways are refused before any rule runs.
#[test]
fn ambiguous_framing_is_refused() {
    let set = policy();
    let cases: &[(&[(&str, &str)], u16)] = &[
        (
            &[("content-length", "4"), ("transfer-encoding", "chunked")],
            400,
        ),
        (&[("content-length", "4"), ("content-length", "40")], 400),
        (&[("content-length", "4"), ("content-length", "4")], 400),
        (&[("content-length", "4, 40")], 400),
        (&[("transfer-encoding", "chunked, identity")], 400),
        (&[("transfer-encoding", "gzip, chunked")], 501),
        (
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            400,
        ),
    ];
    for (framing, status) in cases {
        let mut fields = vec![("host", "www")];
        fields.extend_from_slice(framing);
        assert_eq!(
            attempt(&set, "GET", b"/public/x", Version::HTTP_11, &fields),
            Refused(*status),
            "{framing:?}"
        );
    }
}

#[test]
fn oversized_requests_are_refused() {
    let set = policy();
    let long = format!("/public/{}", "a".repeat(9000));
    let target: &'static [u8] = long.into_bytes().leak();
    assert_eq!(
        attempt(&set, "GET", target, Version::HTTP_11, HOST),
        Refused(414)
    );
    let many: Vec<(String, &str)> = (0..120).map(|i| (format!("x-{i}"), "v")).collect();
    let mut fields: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    fields.push(("host", "www"));
    assert_eq!(
        attempt(&set, "GET", b"/public/x", Version::HTTP_11, &fields),
        Refused(431)
    );
}
