use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};

use super::*;

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

/// Header fields of a test request.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// What normalisation gave: the path and host rules see, or the status answered.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok {
        path: Option<String>,
        host: Option<String>,
    },
    Status(u16, &'static str),
}

fn ok(path: Option<&str>, host: Option<&str>) -> Outcome {
    Outcome::Ok {
        path: path.map(str::to_owned),
        host: host.map(str::to_owned),
    }
}

fn run(
    method: &str,
    target: &str,
    version: Version,
    fields: &[(&str, &str)],
    config: &NormalizeConfig,
) -> Outcome {
    let method = Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let map = headers(fields);
    let target = match RequestTarget::parse(target.as_bytes()) {
        Ok(t) => t,
        Err(e) => return Outcome::Status(e.status().as_u16(), e.reason()),
    };
    let head = RequestHead {
        method: &method,
        target,
        version,
        headers: &map,
    };
    match normalize(&head, config) {
        Ok(n) => Outcome::Ok {
            path: n.path_and_query().map(str::to_owned),
            host: n.host().map(str::to_owned),
        },
        Err(e) => Outcome::Status(e.status().as_u16(), e.reason()),
    }
}

fn h1(method: &str, target: &str, fields: &[(&str, &str)]) -> Outcome {
    run(
        method,
        target,
        Version::HTTP_11,
        fields,
        &NormalizeConfig::default(),
    )
}

#[test]
fn origin_form_takes_the_host_header() {
    assert_eq!(
        h1(
            "GET",
            "/api/v1/items?limit=5",
            &[("host", "API.example.com:80")]
        ),
        ok(Some("/api/v1/items?limit=5"), Some("api.example.com"))
    );
    assert_eq!(
        h1("GET", "/a//b/../c", &[("host", "api:8080")]),
        ok(Some("/a/c"), Some("api:8080"))
    );
}

/// RFC 9110 §9.1: the method is a case-sensitive token; normalisation leaves it alone.
#[test]
fn method_case_is_not_changed() {
    let method = Method::from_bytes(b"get").unwrap_or_else(|e| panic!("{e}"));
    let map = headers(&[("host", "api")]);
    let head = RequestHead {
        method: &method,
        target: RequestTarget::Origin("/"),
        version: Version::HTTP_11,
        headers: &map,
    };
    let n = normalize(&head, &NormalizeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.view().method.as_str(), "get");
    assert_ne!(n.view().method, &Method::GET);
}

/// RFC 9112 §3.2 and §3.2.2: HTTP/1.1 needs exactly one Host; an absolute-form target names
/// the host, and a Host header naming another one is refused (the upstream might route by
/// either).
#[test]
fn hosts_must_be_present_once_and_agree() {
    let cases: &[(&str, &str, Fields<'_>, Outcome)] = &[
        (
            "no Host on 1.1",
            "/",
            &[],
            Outcome::Status(400, "missing_host"),
        ),
        (
            "two Host headers",
            "/",
            &[("host", "api"), ("host", "api")],
            Outcome::Status(400, "duplicate_host"),
        ),
        (
            "absolute-form, Host agrees after normalisation",
            "http://API:80/x",
            &[("host", "api")],
            ok(Some("/x"), Some("api")),
        ),
        (
            "absolute-form, Host names another host",
            "http://public/x",
            &[("host", "admin")],
            Outcome::Status(400, "host_mismatch"),
        ),
        (
            "absolute-form, Host drops a non-default port",
            "http://api:8080/x",
            &[("host", "api")],
            Outcome::Status(400, "host_mismatch"),
        ),
        (
            "absolute-form still needs Host on 1.1",
            "http://api/x",
            &[],
            Outcome::Status(400, "missing_host"),
        ),
        (
            "absolute-form https default port",
            "https://api:443",
            &[("host", "api:443")],
            ok(Some("/"), Some("api")),
        ),
        (
            "absolute-form with only a query",
            "http://api?x=1",
            &[("host", "api")],
            ok(Some("/?x=1"), Some("api")),
        ),
        (
            "scheme other than http(s)",
            "ftp://api/x",
            &[("host", "api")],
            Outcome::Status(400, "unsupported_scheme"),
        ),
        (
            "userinfo in the target",
            "http://user@api/x",
            &[("host", "api")],
            Outcome::Status(400, "invalid_host"),
        ),
        (
            "empty Host on an origin-form request",
            "/",
            &[("host", "")],
            ok(Some("/"), None),
        ),
    ];
    for (source, target, fields, want) in cases {
        assert_eq!(&h1("GET", target, fields), want, "{source}");
    }
    assert_eq!(
        run(
            "GET",
            "/",
            Version::HTTP_10,
            &[],
            &NormalizeConfig::default()
        ),
        ok(Some("/"), None),
        "HTTP/1.0 may omit Host"
    );
}

/// RFC 9113 §8.3.1: a Host header that differs from `:authority` makes the request malformed.
#[test]
fn http2_authority_and_host_must_agree() {
    let h2 = |fields: &[(&str, &str)]| {
        let config = NormalizeConfig {
            transport: Transport::Tls,
            ..NormalizeConfig::default()
        };
        run("GET", "https://API:443/x", Version::HTTP_2, fields, &config)
    };
    assert_eq!(h2(&[]), ok(Some("/x"), Some("api")));
    assert_eq!(h2(&[("host", "api")]), ok(Some("/x"), Some("api")));
    assert_eq!(
        h2(&[("host", "admin")]),
        Outcome::Status(400, "host_mismatch")
    );
    assert_eq!(
        h2(&[("transfer-encoding", "chunked")]),
        Outcome::Status(400, "connection_specific_header")
    );
}

#[test]
fn request_parsed_by_hyper_goes_through_from_parts() {
    let request = Request::builder()
        .method("GET")
        .uri("/public/%2e%2e/admin")
        .header("host", "api")
        .body(())
        .unwrap_or_else(|e| panic!("{e}"));
    let (parts, ()) = request.into_parts();
    let n = normalize(
        &RequestHead::from_parts(&parts),
        &NormalizeConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.path_and_query(), Some("/admin"));
    assert!(n.path_rewritten());
    assert_eq!(n.framing(), BodyFraming::Empty);
}

/// RFC 9110 §9.3.6 and RFC 9112 §3.2.3-4: CONNECT takes host:port and nothing else takes it;
/// `*` is for OPTIONS only.
#[test]
fn target_forms_belong_to_their_methods() {
    let cases: &[(&str, &str, Fields<'_>, Outcome)] = &[
        (
            "CONNECT",
            "api.example.com:443",
            &[("host", "api.example.com:443")],
            ok(None, Some("api.example.com:443")),
        ),
        (
            "CONNECT",
            "api.example.com:443",
            &[("host", "API.example.com")],
            ok(None, Some("api.example.com:443")),
        ),
        (
            "CONNECT",
            "api.example.com:443",
            &[("host", "api.example.com:8443")],
            Outcome::Status(400, "host_mismatch"),
        ),
        (
            "CONNECT",
            "/x",
            &[("host", "api")],
            Outcome::Status(400, "invalid_target"),
        ),
        (
            "CONNECT",
            "http://api/x",
            &[("host", "api")],
            Outcome::Status(400, "invalid_target"),
        ),
        (
            "GET",
            "api.example.com:443",
            &[("host", "api.example.com:443")],
            Outcome::Status(400, "invalid_target"),
        ),
        (
            "OPTIONS",
            "*",
            &[("host", "api")],
            ok(Some("*"), Some("api")),
        ),
        (
            "GET",
            "*",
            &[("host", "api")],
            Outcome::Status(400, "invalid_target"),
        ),
    ];
    for (method, target, fields, want) in cases {
        assert_eq!(
            &h1(method, target, fields),
            want,
            "{method} {target} {fields:?}"
        );
    }
}

#[test]
fn limits_answer_414_and_431() {
    let config = NormalizeConfig {
        limits: Limits {
            max_target_len: 16,
            max_header_count: 3,
            max_header_bytes: 64,
        },
        ..NormalizeConfig::default()
    };
    let host = [("host", "api")];
    assert!(matches!(
        run("GET", "/0123456789abcde", Version::HTTP_11, &host, &config),
        Outcome::Ok { .. }
    ));
    assert_eq!(
        run("GET", "/0123456789abcdef", Version::HTTP_11, &host, &config),
        Outcome::Status(414, "target_too_long")
    );
    let many = [("host", "api"), ("a", "1"), ("b", "2"), ("c", "3")];
    assert_eq!(
        run("GET", "/", Version::HTTP_11, &many, &config),
        Outcome::Status(431, "too_many_headers")
    );
    let long_value = "v".repeat(60);
    let big = [("host", "api"), ("x", long_value.as_str())];
    assert_eq!(
        run("GET", "/", Version::HTTP_11, &big, &config),
        Outcome::Status(431, "headers_too_large")
    );
    let defaults = Limits::default();
    assert_eq!(
        (
            defaults.max_target_len,
            defaults.max_header_count,
            defaults.max_header_bytes
        ),
        (8192, 100, 65536)
    );
}

#[test]
fn http09_is_not_supported() {
    assert_eq!(
        run(
            "GET",
            "/",
            Version::HTTP_09,
            &[],
            &NormalizeConfig::default()
        ),
        Outcome::Status(505, "unsupported_version")
    );
}

/// Envoy's UNESCAPE_AND_REDIRECT, Cilium's default: a 307 to the unescaped, normalised path.
#[test]
fn redirect_mode_answers_307_with_the_unescaped_path() {
    let config = NormalizeConfig {
        escaped_slashes: EscapedSlashAction::UnescapeAndRedirect,
        ..NormalizeConfig::default()
    };
    let method = Method::GET;
    let map = headers(&[("host", "api")]);
    let head = RequestHead {
        method: &method,
        target: RequestTarget::Origin("/public%2F..%2Fadmin?x"),
        version: Version::HTTP_11,
        headers: &map,
    };
    let Err(rejection) = normalize(&head, &config) else {
        panic!("must redirect")
    };
    assert_eq!(rejection.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        rejection,
        RequestRejection::Redirect {
            location: "/admin?x".into()
        }
    );
    assert!(!rejection.closes_connection());
}

#[test]
fn framing_errors_close_the_connection() {
    let map = headers(&[
        ("host", "api"),
        ("content-length", "1"),
        ("transfer-encoding", "chunked"),
    ]);
    let head = RequestHead {
        method: &Method::POST,
        target: RequestTarget::Origin("/"),
        version: Version::HTTP_11,
        headers: &map,
    };
    let Err(rejection) = normalize(&head, &NormalizeConfig::default()) else {
        panic!("must be refused")
    };
    assert_eq!(
        rejection,
        RequestRejection::ContentLengthWithTransferEncoding
    );
    assert!(rejection.closes_connection());
    assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
}

/// Canonical requests cost no allocation: path and host are borrowed.
#[test]
fn canonical_requests_are_borrowed() {
    let method = Method::GET;
    let map = headers(&[("host", "api.example.com")]);
    let head = RequestHead {
        method: &method,
        target: RequestTarget::Origin("/api/v1/items?limit=5"),
        version: Version::HTTP_11,
        headers: &map,
    };
    let n = normalize(&head, &NormalizeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!n.path_rewritten());
    assert!(matches!(n.host, Some(Cow::Borrowed(_))));
}
