//! A compiled `rules.http` entry and the errors of compiling one.

use http::{HeaderName, HeaderValue};

use super::header::{
    Expected, HeaderMatch, HeaderMatchAction, HeaderMismatch, HeaderRequirement, HeaderSource,
    Outcome, SecretRef, is_token,
};
use super::regex::FullMatchRegex;
use crate::quote::go_quote;

/// A `rules.http` entry as written, in plain types (this crate does not know the
/// configuration's serde types). Empty strings count as absent, as in Cilium.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRuleSpec {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub headers: Vec<String>,
    pub header_matches: Vec<HeaderMatchSpec>,
}

/// A `headerMatches` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMatchSpec {
    pub name: String,
    pub value: Option<String>,
    pub secret: Option<SecretRef>,
    pub mismatch: Option<String>,
}

/// What is wrong with an HTTP rule. `Display` is the user-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpRuleError {
    /// The `regex` crate's own message (a caret diagram for syntax errors), as Cilium passes
    /// Go's regexp error through unchanged.
    #[error("{0}")]
    InvalidRegex(String),
    #[error("Header name missing")]
    HeaderNameMissing,
    #[error(
        "invalid header name {}: a header name is a token of letters, digits and !#$%&'*+-.^_`|~ (write \"Name: value\" with a space to require a value)",
        go_quote(.0)
    )]
    InvalidHeaderName(String),
    #[error("Invalid header action: {0}")]
    InvalidHeaderAction(String),
    #[error("Secret name missing")]
    SecretNameMissing,
    /// The HTTP rules that apply to one port and peer, together, compile to more than the
    /// size budget of a rule set.
    #[error(
        "the HTTP rules on this port compile to too large an automaton together: use fewer distinct method, path and host patterns, or simpler ones"
    )]
    RuleSetTooLarge,
}

/// The field of an HTTP rule an error is about, so the caller can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpRuleField {
    Method,
    Path,
    Host,
    /// `headers[i]`
    Header(usize),
    /// `headerMatches[i].name`
    HeaderMatchName(usize),
    /// `headerMatches[i].mismatch`
    HeaderMatchMismatch(usize),
    /// `headerMatches[i].secret.name`
    HeaderMatchSecretName(usize),
}

/// One error of an HTTP rule, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct HttpRuleIssue {
    pub field: HttpRuleField,
    pub error: HttpRuleError,
}

/// A compiled `rules.http` entry: its fields are ANDed; an entry with no field matches every
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    method: Option<FullMatchRegex>,
    path: Option<FullMatchRegex>,
    host: Option<FullMatchRegex>,
    headers: Vec<HeaderRequirement>,
    header_matches: Vec<HeaderMatch>,
}

impl HttpRule {
    /// Compiles `spec`, reporting every error rather than the first.
    ///
    /// `secrets` reads the value of a `headerMatches` secret; it is called once per secret,
    /// here, so that matching never waits on a lookup. When a secret cannot be read the entry
    /// falls back to its `value`, or never matches when it has none (spec §11). Validation,
    /// which only wants the errors, passes a resolver that reads nothing.
    pub fn compile(
        spec: &HttpRuleSpec,
        secrets: &dyn Fn(&SecretRef) -> Option<String>,
    ) -> Result<Self, Vec<HttpRuleIssue>> {
        let mut issues = Vec::new();
        let mut regex = |value: &Option<String>, field| match non_empty(value) {
            None => None,
            Some(pattern) => FullMatchRegex::new(pattern)
                .map_err(|error| issues.push(HttpRuleIssue { field, error }))
                .ok(),
        };
        let method = regex(&spec.method, HttpRuleField::Method);
        let path = regex(&spec.path, HttpRuleField::Path);
        let host = regex(&spec.host, HttpRuleField::Host);

        let mut headers = Vec::with_capacity(spec.headers.len());
        for (i, entry) in spec.headers.iter().enumerate() {
            match HeaderRequirement::parse(entry) {
                Ok(h) => headers.push(h),
                Err(error) => issues.push(HttpRuleIssue {
                    field: HttpRuleField::Header(i),
                    error,
                }),
            }
        }

        let mut header_matches = Vec::with_capacity(spec.header_matches.len());
        for (i, m) in spec.header_matches.iter().enumerate() {
            if let Some(compiled) = compile_header_match(i, m, secrets, &mut issues) {
                header_matches.push(compiled);
            }
        }

        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Self {
            method,
            path,
            host,
            headers,
            header_matches,
        })
    }

    /// Whether a request matches this rule.
    ///
    /// `path` is the request target as sent, query string included (`/public?x=1` does not
    /// match `path: /public`); `host` is the authority as sent, `:port` included, or `None`
    /// when the request has none, which no `host` pattern matches. `headerMatches` entries
    /// whose action is not to fail never make the rule fail; see [`Self::header_mismatches`]
    /// for what the proxy must then do.
    pub fn matches<H: HeaderSource + ?Sized>(
        &self,
        method: &str,
        path: &str,
        host: Option<&str>,
        headers: &H,
    ) -> bool {
        let field = |re: &Option<FullMatchRegex>, value: Option<&str>| match re {
            None => true,
            Some(re) => value.is_some_and(|v| re.is_match(v)),
        };
        field(&self.method, Some(method))
            && field(&self.path, Some(path))
            && field(&self.host, host)
            && self.headers.iter().all(|h| h.is_met(headers))
            && self
                .header_matches
                .iter()
                .all(|m| match m.outcome(headers) {
                    Outcome::Matched => true,
                    Outcome::Unavailable => false,
                    Outcome::Mismatched => m.action() != HeaderMatchAction::Fail,
                })
    }

    /// The non-failing `headerMatches` entries (LOG, ADD, DELETE, REPLACE) whose header differs
    /// in this request: side effects the proxy applies when the rule matched.
    pub fn header_mismatches<'a, H: HeaderSource + ?Sized>(
        &'a self,
        headers: &'a H,
    ) -> impl Iterator<Item = HeaderMismatch<'a>> + 'a {
        self.header_matches
            .iter()
            .filter_map(move |m| m.mismatch(headers))
    }

    /// Whether the rule has `headerMatches`: then every rule of the port is evaluated, not
    /// just up to the first match, so that all side effects apply (spec §11).
    pub fn has_header_matches(&self) -> bool {
        !self.header_matches.is_empty()
    }

    pub(crate) fn method_pattern(&self) -> Option<&str> {
        self.method.as_ref().map(FullMatchRegex::as_str)
    }

    pub(crate) fn path_pattern(&self) -> Option<&str> {
        self.path.as_ref().map(FullMatchRegex::as_str)
    }

    pub(crate) fn host_pattern(&self) -> Option<&str> {
        self.host.as_ref().map(FullMatchRegex::as_str)
    }

    /// `method`, `path` and `host` alone, each with its own regex: what a rule set computes in
    /// one pass for all its rules, and falls back to when that pass cannot run. `path` is
    /// `None` for a request without one (CONNECT), which no `path` pattern matches.
    pub(crate) fn matches_request_line(
        &self,
        method: &str,
        path: Option<&str>,
        host: Option<&str>,
    ) -> bool {
        let field = |re: &Option<FullMatchRegex>, value: Option<&str>| match re {
            None => true,
            Some(re) => value.is_some_and(|v| re.is_match(v)),
        };
        field(&self.method, Some(method)) && field(&self.path, path) && field(&self.host, host)
    }

    /// Whether the rule names methods. A CONNECT opens a tunnel the rules cannot see
    /// into, so only a rule whose `method` matches `CONNECT` allows one: `{}` and
    /// `host`- or `headers`-only rules, which match every other request, do not.
    pub(crate) fn names_method(&self) -> bool {
        self.method.is_some()
    }

    /// The `headers` requirements (presence or exact value).
    pub(crate) fn headers_met<H: HeaderSource + ?Sized>(&self, headers: &H) -> bool {
        self.headers.iter().all(|h| h.is_met(headers))
    }

    pub(crate) fn header_match_entries(&self) -> &[HeaderMatch] {
        &self.header_matches
    }
}

fn compile_header_match(
    index: usize,
    spec: &HeaderMatchSpec,
    secrets: &dyn Fn(&SecretRef) -> Option<String>,
    issues: &mut Vec<HttpRuleIssue>,
) -> Option<HeaderMatch> {
    let before = issues.len();
    if spec.name.is_empty() {
        issues.push(HttpRuleIssue {
            field: HttpRuleField::HeaderMatchName(index),
            error: HttpRuleError::HeaderNameMissing,
        });
    } else if !is_token(&spec.name) {
        // Cilium passes any text to Envoy, where a name that is not a token can never match
        // and cannot be written by ADD or REPLACE. Rejecting it is kinder.
        issues.push(HttpRuleIssue {
            field: HttpRuleField::HeaderMatchName(index),
            error: HttpRuleError::InvalidHeaderName(spec.name.clone()),
        });
    }
    let action = HeaderMatchAction::parse(spec.mismatch.as_deref().unwrap_or(""))
        .map_err(|error| {
            issues.push(HttpRuleIssue {
                field: HttpRuleField::HeaderMatchMismatch(index),
                error,
            })
        })
        .ok();
    if spec.secret.as_ref().is_some_and(|s| s.name.is_empty()) {
        issues.push(HttpRuleIssue {
            field: HttpRuleField::HeaderMatchSecretName(index),
            error: HttpRuleError::SecretNameMissing,
        });
    }
    if issues.len() != before {
        return None;
    }

    let name = spec.name.to_ascii_lowercase();
    let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
        // `is_token` above accepts exactly what `HeaderName` does; this only keeps a
        // disagreement between the two from dropping the entry silently.
        issues.push(HttpRuleIssue {
            field: HttpRuleField::HeaderMatchName(index),
            error: HttpRuleError::InvalidHeaderName(spec.name.clone()),
        });
        return None;
    };
    let fallback = non_empty(&spec.value).map(str::to_owned);
    let expected = match &spec.secret {
        None => match fallback {
            None => Expected::Present,
            Some(value) => expected_value(value, false),
        },
        // Cilium uses a secret that resolves, even to an empty value (which then asks only for
        // presence); the fallback `value` serves only when the secret cannot be read.
        Some(secret) => match (secrets(secret), fallback) {
            (Some(value), _) if value.is_empty() => Expected::Present,
            (Some(value), _) => expected_value(value, true),
            (None, Some(value)) => expected_value(value, false),
            (None, None) => Expected::Unavailable,
        },
    };
    Some(HeaderMatch {
        name,
        header_name,
        expected,
        action: action?,
        redact: spec.secret.is_some(),
    })
}

/// A value to compare and write, or [`Expected::Unavailable`] when no header can carry it.
fn expected_value(value: String, from_secret: bool) -> Expected {
    match HeaderValue::from_str(&value) {
        Ok(header_value) => Expected::Value {
            value,
            header_value,
            from_secret,
        },
        Err(_) => Expected::Unavailable,
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_secrets(_: &SecretRef) -> Option<String> {
        None
    }

    fn rule(spec: HttpRuleSpec) -> HttpRule {
        match HttpRule::compile(&spec, &no_secrets) {
            Ok(r) => r,
            Err(e) => panic!("rule {spec:?} should compile: {e:?}"),
        }
    }

    fn spec(method: Option<&str>, path: Option<&str>, host: Option<&str>) -> HttpRuleSpec {
        HttpRuleSpec {
            method: method.map(str::to_owned),
            path: path.map(str::to_owned),
            host: host.map(str::to_owned),
            ..HttpRuleSpec::default()
        }
    }

    const NO_HEADERS: &[(&str, &str)] = &[];

    /// spec §11 examples: full-match anchoring, the query string is part of the path, the
    /// host includes the port, an empty entry matches everything.
    #[test]
    fn matches_method_path_and_host_like_cilium() {
        struct Case {
            source: &'static str,
            rule: HttpRuleSpec,
            method: &'static str,
            path: &'static str,
            host: Option<&'static str>,
            want: bool,
        }
        let cases = [
            Case {
                source: "spec §11: `path: /public` does not match /public/x",
                rule: spec(None, Some("/public"), None),
                method: "GET",
                path: "/public/x",
                host: Some("a"),
                want: false,
            },
            Case {
                source: "spec §11: write /public(/.*)? for a subtree",
                rule: spec(None, Some("/public(/.*)?"), None),
                method: "GET",
                path: "/public/x",
                host: Some("a"),
                want: true,
            },
            Case {
                source: "spec §11: the query string is part of the path",
                rule: spec(None, Some("/public"), None),
                method: "GET",
                path: "/public?x=1",
                host: Some("a"),
                want: false,
            },
            Case {
                source: "spec §11: /public.* covers the query string",
                rule: spec(None, Some("/public.*"), None),
                method: "GET",
                path: "/public?x=1",
                host: Some("a"),
                want: true,
            },
            Case {
                source: "spec §11: host is the authority as sent, port included",
                rule: spec(None, None, Some("api.example.com")),
                method: "GET",
                path: "/",
                host: Some("api.example.com:8080"),
                want: false,
            },
            Case {
                source: "spec §11: a host pattern can allow the port",
                rule: spec(None, None, Some("api\\.example\\.com(:[0-9]+)?")),
                method: "GET",
                path: "/",
                host: Some("api.example.com:8080"),
                want: true,
            },
            Case {
                source: "spec §11: no authority, no host match",
                rule: spec(None, None, Some(".*")),
                method: "GET",
                path: "/",
                host: None,
                want: false,
            },
            Case {
                source: "spec §11: fields are ANDed (method differs)",
                rule: spec(Some("GET"), Some("/v1/items(/.*)?"), None),
                method: "POST",
                path: "/v1/items",
                host: Some("a"),
                want: false,
            },
            Case {
                source: "spec §1 example: GET /v1/items(/.*)?",
                rule: spec(Some("GET"), Some("/v1/items(/.*)?"), None),
                method: "GET",
                path: "/v1/items/42",
                host: Some("a"),
                want: true,
            },
            Case {
                source: "spec §12: a gRPC method is POST /pkg.Service/Method",
                rule: spec(Some("POST"), Some("/cloudcity.Inventory/.*"), None),
                method: "POST",
                path: "/cloudcity.Inventory/List",
                host: Some("a"),
                want: true,
            },
            Case {
                source: "spec §11: an empty entry {} matches every request",
                rule: HttpRuleSpec::default(),
                method: "DELETE",
                path: "/anything?at=all",
                host: None,
                want: true,
            },
            Case {
                source: "Cilium: empty strings count as absent",
                rule: spec(Some(""), Some(""), Some("")),
                method: "PUT",
                path: "/x",
                host: None,
                want: true,
            },
        ];
        for c in cases {
            let got = rule(c.rule).matches(c.method, c.path, c.host, NO_HEADERS);
            assert_eq!(got, c.want, "{}", c.source);
        }
    }

    #[test]
    fn headers_are_required() {
        let r = rule(HttpRuleSpec {
            headers: vec!["X-Token: abc".into(), "X-Trace".into()],
            ..HttpRuleSpec::default()
        });
        let ok: &[(&str, &str)] = &[("x-token", "abc"), ("x-trace", "1")];
        let wrong_value: &[(&str, &str)] = &[("x-token", "abd"), ("x-trace", "1")];
        let missing: &[(&str, &str)] = &[("x-token", "abc")];
        assert!(r.matches("GET", "/", None, ok));
        assert!(!r.matches("GET", "/", None, wrong_value));
        assert!(!r.matches("GET", "/", None, missing));
    }

    fn header_match(value: Option<&str>, secret: Option<&str>, mismatch: &str) -> HeaderMatchSpec {
        HeaderMatchSpec {
            name: "X-Token".into(),
            value: value.map(str::to_owned),
            secret: secret.map(|name| SecretRef {
                namespace: Some("shop".into()),
                name: name.to_owned(),
            }),
            mismatch: Some(mismatch.to_owned()),
        }
    }

    fn with_header_match(
        m: HeaderMatchSpec,
        secrets: &dyn Fn(&SecretRef) -> Option<String>,
    ) -> HttpRule {
        let spec = HttpRuleSpec {
            header_matches: vec![m],
            ..HttpRuleSpec::default()
        };
        match HttpRule::compile(&spec, secrets) {
            Ok(r) => r,
            Err(e) => panic!("should compile: {e:?}"),
        }
    }

    /// spec §11 headerMatches: value or secret, fallback value, unreadable secret never matches,
    /// non-failing actions do not deny.
    #[test]
    fn header_matches_follow_spec() {
        let good: &[(&str, &str)] = &[("x-token", "s3cret")];
        let bad: &[(&str, &str)] = &[("x-token", "guess")];
        let secret = |s: &SecretRef| (s.name == "token").then(|| "s3cret".to_owned());

        let by_value = with_header_match(header_match(Some("s3cret"), None, ""), &no_secrets);
        assert!(by_value.matches("GET", "/", None, good));
        assert!(!by_value.matches("GET", "/", None, bad));

        let by_secret = with_header_match(header_match(None, Some("token"), ""), &secret);
        assert!(by_secret.matches("GET", "/", None, good));
        assert!(!by_secret.matches("GET", "/", None, bad));

        let fallback = with_header_match(header_match(Some("s3cret"), Some("gone"), ""), &secret);
        assert!(fallback.matches("GET", "/", None, good));

        let unavailable = with_header_match(header_match(None, Some("gone"), "LOG"), &secret);
        assert!(!unavailable.matches("GET", "/", None, good));

        let presence = with_header_match(header_match(None, None, ""), &no_secrets);
        assert!(presence.matches("GET", "/", None, bad));
        assert!(!presence.matches("GET", "/", None, NO_HEADERS));

        let logged = with_header_match(header_match(None, Some("token"), "REPLACE"), &secret);
        assert!(logged.matches("GET", "/", None, bad));
        let mismatches: Vec<_> = logged.header_mismatches(bad).collect();
        assert_eq!(
            mismatches,
            vec![HeaderMismatch {
                name: "x-token",
                action: HeaderMatchAction::Replace,
                value: Some("s3cret"),
                from_secret: true,
            }]
        );
        assert_eq!(logged.header_mismatches(good).count(), 0);
    }

    /// Cilium pkg/policy/api/http.go PortRuleHTTP.Sanitize: regex errors, `Header name
    /// missing`, `Invalid header action: %s`, `Secret name missing`; sluice reports them all.
    #[test]
    fn compile_reports_every_error_with_its_field() {
        let spec = HttpRuleSpec {
            method: Some("GET(".into()),
            path: Some("/ok".into()),
            host: Some("[".into()),
            headers: vec!["".into(), "X-Ok".into()],
            header_matches: vec![
                HeaderMatchSpec {
                    name: String::new(),
                    mismatch: Some("DROP".into()),
                    secret: Some(SecretRef {
                        namespace: None,
                        name: String::new(),
                    }),
                    value: None,
                },
                HeaderMatchSpec {
                    name: "x-fine".into(),
                    ..HeaderMatchSpec::default()
                },
            ],
        };
        let Err(issues) = HttpRule::compile(&spec, &no_secrets) else {
            panic!("must fail");
        };
        let got: Vec<(HttpRuleField, String)> =
            issues.iter().map(|i| (i.field, i.to_string())).collect();
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(got[0].0, HttpRuleField::Method);
        assert!(got[0].1.contains("unclosed group"), "{}", got[0].1);
        assert_eq!(got[1].0, HttpRuleField::Host);
        assert!(
            got[1].1.contains("unclosed character class"),
            "{}",
            got[1].1
        );
        assert_eq!(
            got[2..].to_vec(),
            vec![
                (HttpRuleField::Header(0), "Header name missing".to_owned()),
                (
                    HttpRuleField::HeaderMatchName(0),
                    "Header name missing".to_owned()
                ),
                (
                    HttpRuleField::HeaderMatchMismatch(0),
                    "Invalid header action: DROP".to_owned()
                ),
                (
                    HttpRuleField::HeaderMatchSecretName(0),
                    "Secret name missing".to_owned()
                ),
            ]
        );
    }
}
