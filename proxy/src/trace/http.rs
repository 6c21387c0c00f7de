//! One HTTP request through the node's HTTP engine, offline: `policy trace --http-*`.
//!
//! The engine's steps, in its order and with its code: a connection whose sides have no
//! `rules.http` is spliced, so its requests are never looked at ([`wants_http`]);
//! otherwise every request is normalised with the listener's settings
//! ([`NORMALIZE`]: a refusal is answered 400 and the like before any rule), then both
//! sides' rule sets ([`Side::uncached`], the compilation the node caches) must allow it;
//! a denial is answered 403 with `NodeConfig.spec.http`'s body ([`DeniedResponse`]), or
//! PERMISSION_DENIED for a gRPC call ([`respond::is_grpc`]).

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, HOST, LOCATION};
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use serde::Serialize;
use sluice_config::Config;
use sluice_config::types::HttpRule as HttpRuleYaml;
use sluice_identity::policy::{Decision, L7Kind};
use sluice_identity::trace::{Party, PartySpec, TraceResult};
use sluice_identity::{CompiledPolicy, Direction, PolicyRef, Protocol, Verdict};
use sluice_l7::http::{
    AllowedBy, HeaderEdit, HeaderLogKind, HttpDecision, REDACTED, RequestHead, normalize,
};

use super::rule_policies;
use crate::node::http::enforce::NORMALIZE;
use crate::node::http::respond::{self, DeniedResponse};
use crate::node::http::rules::{Side, http_rules, wants_http};
use crate::node::http::secrets;

/// A request as the `--http-*` flags describe it.
#[derive(Debug, Clone, Default)]
pub struct HttpQuery {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    /// `Name: value`, as curl's `-H` takes them.
    pub headers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpQueryError {
    #[error("HTTP runs over TCP: the --http-* flags need a TCP --port, not {0}")]
    NotTcp(Protocol),
    #[error("--http-method {0:?} is not an HTTP method (a token such as GET or POST)")]
    Method(String),
    #[error(
        "--http-path {0:?} is not a request target: write a path such as /api/v1/users, percent-encoding spaces and other bytes a URI cannot carry"
    )]
    Path(String),
    #[error("--http-host {0:?} is not a host[:port]")]
    Host(String),
    #[error("--http-header {0:?}: write it as `Name: value`")]
    HeaderSyntax(String),
    #[error("--http-header {header:?}: {reason}")]
    Header {
        header: String,
        reason: &'static str,
    },
    #[error(
        "the destination has no address to send as the Host header (it is not a workload or an IP); give --http-host"
    )]
    NoHost,
}

/// The request a trace decides, built the way hyper hands requests to the engine.
#[derive(Debug)]
pub struct TracedRequest {
    parts: http::request::Parts,
    grpc: bool,
}

impl HttpQuery {
    pub fn is_empty(&self) -> bool {
        self.method.is_none()
            && self.path.is_none()
            && self.host.is_none()
            && self.headers.is_empty()
    }

    /// Builds the request. A gRPC call (content type `application/grpc…`, given with
    /// `--http-header`) is HTTP/2 and defaults to POST; anything else is HTTP/1.1 and
    /// defaults to GET. The path defaults to `/`. The host is `--http-host`, else a Host
    /// header given with `--http-header`, else `default_host` (the destination's address
    /// and port, as `curl http://<address>:<port>/` sends it).
    pub fn request(&self, default_host: Option<String>) -> Result<TracedRequest, HttpQueryError> {
        let mut headers = Vec::with_capacity(self.headers.len());
        for raw in &self.headers {
            headers.push(parse_header(raw)?);
        }
        let mut header_map = http::HeaderMap::new();
        for (name, value) in &headers {
            header_map.append(name.clone(), value.clone());
        }
        let grpc = respond::is_grpc(&header_map);
        let method = match &self.method {
            Some(m) => {
                Method::from_bytes(m.as_bytes()).map_err(|_| HttpQueryError::Method(m.clone()))?
            }
            None if grpc => Method::POST,
            None => Method::GET,
        };
        let path = self.path.as_deref().unwrap_or("/");
        let host = match &self.host {
            Some(h) => {
                h.parse::<Authority>()
                    .map_err(|_| HttpQueryError::Host(h.clone()))?;
                Some(h.clone())
            }
            None if header_map.contains_key(HOST) => None,
            None => Some(default_host.ok_or(HttpQueryError::NoHost)?),
        };
        let (version, uri) = if grpc {
            // HTTP/2 carries the host as :authority, in the URI.
            let uri = match &host {
                Some(h) if path.starts_with('/') => format!("http://{h}{path}").parse::<Uri>(),
                _ => path.parse::<Uri>(),
            };
            (Version::HTTP_2, uri)
        } else {
            (Version::HTTP_11, path.parse::<Uri>())
        };
        let uri = uri.map_err(|_| HttpQueryError::Path(path.to_owned()))?;
        let mut builder = Request::builder().method(method).uri(uri).version(version);
        if version == Version::HTTP_11
            && let Some(h) = &host
        {
            builder = builder.header(HOST, h.as_str());
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let (parts, ()) = builder
            .body(())
            .map_err(|_| HttpQueryError::Path(path.to_owned()))?
            .into_parts();
        Ok(TracedRequest { parts, grpc })
    }
}

/// `Name: value` (or `Name:` for an empty value), split at the first colon, the value's
/// surrounding blanks dropped, as curl does.
fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), HttpQueryError> {
    let Some((name, value)) = raw.split_once(':') else {
        return Err(HttpQueryError::HeaderSyntax(raw.to_owned()));
    };
    let name =
        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| HttpQueryError::Header {
            header: raw.to_owned(),
            reason: "the name is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
        })?;
    let value = HeaderValue::from_str(value.trim_matches([' ', '\t'])).map_err(|_| {
        HttpQueryError::Header {
            header: raw.to_owned(),
            reason: "the value has a byte a header cannot carry (a control character)",
        }
    })?;
    Ok((name, value))
}

/// The Host a client addressing the destination directly would send: its address and the
/// port, when the destination has one address to speak of.
pub fn default_host(
    policy: &CompiledPolicy,
    to: &PartySpec,
    destination: &Party,
    port: u16,
) -> Option<String> {
    let universe = policy.universe();
    let address = match to {
        PartySpec::Address(ip) => Some(*ip),
        PartySpec::Workload { namespace, name } => universe
            .endpoint(namespace, name)
            .and_then(|e| e.addresses.first().copied()),
        _ => {
            let mut endpoints = universe.endpoints_of(destination.identity);
            match (endpoints.next(), endpoints.next()) {
                (Some(one), None) => one.addresses.first().copied(),
                _ => None,
            }
        }
    }?;
    Some(match address {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    })
}

/// The L7 answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpVerdict {
    /// Both sides' rules allow it: forwarded (with any header edits).
    Allowed,
    /// A side's rules do not: answered 403, or gRPC PERMISSION_DENIED.
    Denied,
    /// Normalisation refused it before any rule (400, 414, 431, …).
    Rejected,
}

/// How a side holds the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SideRules {
    /// No `rules.http` on this side (an L3/L4-only allow, no policy, or an L7 wildcard).
    Unrestricted,
    /// `rules.http` entries: one of them must match.
    Rules,
    /// Every request is denied: the side's L3/L4 allow needs mutual authentication the
    /// node cannot do yet, or its rules do not compile together.
    DenyAll,
}

/// The request as traced.
#[derive(Debug, Clone, Serialize)]
pub struct RequestEcho {
    /// `HTTP/1.1`, or `HTTP/2` for a gRPC call.
    pub protocol: &'static str,
    pub method: String,
    /// The request-target as sent (before normalisation).
    pub path: String,
    pub host: Option<String>,
    /// Headers given with `--http-header`, values of secret-matched headers `[redacted]`.
    pub headers: Vec<HeaderEcho>,
    pub grpc: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderEcho {
    pub name: String,
    pub value: String,
}

/// What the rules saw after normalisation.
#[derive(Debug, Clone, Serialize)]
pub struct NormalizedEcho {
    /// Path and query; what the upstream would be sent too.
    pub path: Option<String>,
    /// Lowercase, default port removed.
    pub host: Option<String>,
}

/// A request normalisation refused.
#[derive(Debug, Clone, Serialize)]
pub struct RejectionEcho {
    /// A fixed identifier (`escaped_slash_in_path`, …), as flows carry it.
    pub reason: &'static str,
    pub message: String,
}

/// One side's decision about the request.
#[derive(Debug, Clone, Serialize)]
pub struct SideTrace {
    pub direction: Direction,
    pub endpoint: String,
    pub rules: SideRules,
    /// How many `rules.http` entries the side holds.
    pub rule_count: usize,
    /// The policies those entries come from.
    pub policies: Vec<Arc<PolicyRef>>,
    pub verdict: HttpVerdict,
    /// The entry that allowed the request, when one did.
    pub matched: Option<MatchedRule>,
    /// `headerMatches` log lines: headers missing (expected value) or rejected (received
    /// value); secret values `[redacted]`. A `LOG` action shows here and nowhere else.
    pub header_log: Vec<HeaderLogEcho>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MatchedRule {
    pub policy: Arc<PolicyRef>,
    pub rule: HttpRuleYaml,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderLogEcho {
    /// `missing` or `rejected`.
    pub kind: &'static str,
    pub name: String,
    pub value: String,
}

/// A header change the engine makes before forwarding (`headerMatches` actions).
#[derive(Debug, Clone, Serialize)]
pub struct HeaderEditEcho {
    pub direction: Direction,
    /// `ADD`, `DELETE` or `REPLACE`.
    pub action: &'static str,
    pub name: String,
    /// The value written (`[redacted]` when it is a secret's); null for `DELETE`.
    pub value: Option<String>,
}

/// The side whose rules denied the request.
#[derive(Debug, Clone, Serialize)]
pub struct DeniedBy {
    pub direction: Direction,
    pub endpoint: String,
    /// The policies whose rules were checked and none of which allowed the request.
    pub policies: Vec<Arc<PolicyRef>>,
}

/// The answer the engine gives itself (a forwarded request gets the upstream's instead).
#[derive(Debug, Clone, Serialize)]
pub struct ResponseEcho {
    pub status: u16,
    pub content_type: Option<String>,
    /// The body of a 403, as `NodeConfig.spec.http.deniedBody` makes it.
    pub body: Option<String>,
    /// A gRPC denial: HTTP 200, trailers-only, `grpc-status: 7` (PERMISSION_DENIED).
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
    /// A redirect's target.
    pub location: Option<String>,
}

/// The trace of one request; see the module documentation.
#[derive(Debug, Clone, Serialize)]
pub struct HttpTrace {
    pub request: RequestEcho,
    /// The connection goes through the node's HTTP engine (some side has `rules.http`).
    /// When false its requests are never looked at: the connection's verdict is final.
    pub inspected: bool,
    /// The L7 answer; null when the request is not looked at (not inspected, or the
    /// connection is dropped at L3/L4).
    pub verdict: Option<HttpVerdict>,
    /// Why the request was not looked at, when it was not.
    pub note: Option<String>,
    pub normalized: Option<NormalizedEcho>,
    pub rejection: Option<RejectionEcho>,
    pub sides: Vec<SideTrace>,
    pub denied_by: Option<DeniedBy>,
    pub header_edits: Vec<HeaderEditEcho>,
    /// The proxy's own answer: a denial or a refusal; null when forwarded.
    pub response: Option<ResponseEcho>,
}

impl HttpTrace {
    /// The final verdict for the request: the connection's (`l3l4`), unless the L7 rules
    /// or normalisation refuse the request.
    pub fn final_verdict(&self, l3l4: Verdict) -> Verdict {
        match self.verdict {
            Some(HttpVerdict::Denied | HttpVerdict::Rejected) => Verdict::Denied,
            Some(HttpVerdict::Allowed) | None => l3l4,
        }
    }
}

/// Decides `request` on the connection `connection` traced with `policy`. With
/// `authenticated`, authentication the rules require counts as done (`--authenticated`),
/// as it did for the connection.
pub fn trace_http(
    config: &Config,
    policy: &CompiledPolicy,
    connection: &TraceResult,
    request: &TracedRequest,
    authenticated: bool,
) -> HttpTrace {
    let parts = &request.parts;
    let mut trace = HttpTrace {
        request: echo(request),
        inspected: false,
        verdict: None,
        note: None,
        normalized: None,
        rejection: None,
        sides: Vec::new(),
        denied_by: None,
        header_edits: Vec::new(),
        response: None,
    };
    if connection.verdict == Verdict::Denied {
        trace.note = Some("the connection is dropped at L3/L4: no request is sent".into());
        return trace;
    }
    // The decisions the node makes for a proxied connection (`Enforcement::decide`).
    let source = connection.source.identity;
    let destination = connection.destination.identity;
    let decide = |endpoint, direction, peer| {
        let mut d = policy.decide(endpoint, direction, peer, Protocol::Tcp, connection.port);
        if authenticated {
            d.authentication = None;
        }
        d
    };
    let egress = decide(source, Direction::Egress, destination);
    let ingress = decide(destination, Direction::Ingress, source);
    if !wants_http(&egress, &ingress) {
        let other = [&egress, &ingress]
            .iter()
            .find_map(|d| d.l7.as_ref().map(|l7| l7.kind))
            .filter(|k| *k != L7Kind::Http);
        trace.note = Some(match other {
            Some(kind) => format!(
                "the port's L7 rules are {} rules, not HTTP: HTTP requests are not inspected",
                kind.as_str()
            ),
            None => "no rules.http on either side: the connection is not inspected, every request passes".into(),
        });
        return trace;
    }
    trace.inspected = true;

    let secrets = secrets::store(config);
    let sides = [
        (
            Side::uncached(Direction::Egress, &egress, &secrets),
            &egress,
            side_name(
                connection.egress.as_ref().map(|d| &d.endpoint),
                &connection.source,
            ),
        ),
        (
            Side::uncached(Direction::Ingress, &ingress, &secrets),
            &ingress,
            side_name(
                connection.ingress.as_ref().map(|d| &d.endpoint),
                &connection.destination,
            ),
        ),
    ];

    let normalized = match normalize(&RequestHead::from_parts(parts), &NORMALIZE) {
        Ok(n) => n,
        Err(rejection) => {
            let answer = respond::rejected(&rejection);
            trace.verdict = Some(HttpVerdict::Rejected);
            trace.rejection = Some(RejectionEcho {
                reason: rejection.reason(),
                message: rejection.to_string(),
            });
            trace.response = Some(ResponseEcho {
                status: answer.status().as_u16(),
                content_type: header_text(answer.headers(), CONTENT_TYPE),
                body: None,
                grpc_status: None,
                grpc_message: None,
                location: header_text(answer.headers(), LOCATION),
            });
            return trace;
        }
    };
    trace.normalized = Some(NormalizedEcho {
        path: normalized.path_and_query().map(str::to_owned),
        host: normalized.host().map(str::to_owned),
    });
    let view = normalized.view();
    let decisions: Vec<HttpDecision<'_>> = sides
        .iter()
        .map(|(side, _, _)| side.rules.set.evaluate(&view))
        .collect();
    // As the engine does: a header whose log shows `[redacted]` is a secret's.
    let redact: Vec<&str> = decisions
        .iter()
        .flat_map(|d| d.log())
        .filter(|entry| entry.value == REDACTED)
        .map(|entry| entry.name)
        .collect();
    for header in &mut trace.request.headers {
        if redact.iter().any(|r| r.eq_ignore_ascii_case(&header.name)) {
            header.value = REDACTED.to_owned();
        }
    }

    for ((side, decision, endpoint), verdict) in sides.iter().zip(&decisions) {
        trace
            .sides
            .push(side_trace(side, decision, endpoint, verdict));
    }
    // The side that refused: egress first, as the request leaves the source first.
    let refused = sides.iter().zip(&decisions).find(|(_, d)| !d.is_allowed());
    if let Some(((side, decision, endpoint), _)) = refused {
        trace.verdict = Some(HttpVerdict::Denied);
        let mut policies = rule_policies(decision.l7.as_ref());
        if policies.is_empty() {
            policies.clone_from(&side.allowed_by);
        }
        trace.denied_by = Some(DeniedBy {
            direction: side.direction,
            endpoint: endpoint.clone(),
            policies,
        });
        let denial = DeniedResponse::new(&config.node.http_denial);
        let answer = respond::denied(request.grpc, &denial);
        let headers = answer.headers();
        trace.response = Some(ResponseEcho {
            status: answer.status().as_u16(),
            content_type: header_text(headers, CONTENT_TYPE),
            body: (!request.grpc).then(|| String::from_utf8_lossy(denial.body()).into_owned()),
            grpc_status: header_text(headers, HeaderName::from_static("grpc-status")),
            grpc_message: header_text(headers, HeaderName::from_static("grpc-message")),
            location: None,
        });
        return trace;
    }
    trace.verdict = Some(HttpVerdict::Allowed);
    for ((side, _, _), decision) in sides.iter().zip(&decisions) {
        let HttpDecision::Allowed { edits, .. } = decision else {
            continue;
        };
        for edit in edits {
            trace
                .header_edits
                .push(edit_echo(side.direction, edit, &redact));
        }
    }
    trace
}

fn echo(request: &TracedRequest) -> RequestEcho {
    let parts = &request.parts;
    RequestEcho {
        protocol: if parts.version == Version::HTTP_2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        },
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), ToString::to_string),
        host: parts
            .uri
            .authority()
            .map(ToString::to_string)
            .or_else(|| header_text(&parts.headers, HOST)),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| *name != HOST || parts.version == Version::HTTP_2)
            .map(|(name, value)| HeaderEcho {
                name: name.to_string(),
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            })
            .collect(),
        grpc: request.grpc,
    }
}

fn side_name(endpoint: Option<&String>, party: &Party) -> String {
    endpoint
        .cloned()
        .or_else(|| party.name.clone())
        .unwrap_or_else(|| party.identity.to_string())
}

fn side_trace(
    side: &Side,
    decision: &Decision,
    endpoint: &str,
    verdict: &HttpDecision<'_>,
) -> SideTrace {
    let rules = if !side.has_l7 {
        SideRules::Unrestricted
    } else if side.rules.set.is_unrestricted() {
        // An L7 wildcard: proxied, every request passes (spec §8).
        SideRules::Unrestricted
    } else if side.rules.set.is_empty() {
        SideRules::DenyAll
    } else {
        SideRules::Rules
    };
    let matched = match verdict {
        HttpDecision::Allowed {
            by: AllowedBy::Rule(i),
            ..
        } => decision.l7.as_ref().and_then(|l7| {
            http_rules(l7).nth(*i).map(|(policy, rule)| MatchedRule {
                policy: policy.clone(),
                rule: rule.clone(),
            })
        }),
        _ => None,
    };
    SideTrace {
        direction: side.direction,
        endpoint: endpoint.to_owned(),
        rules,
        rule_count: side.rules.set.len(),
        policies: match rules {
            SideRules::Unrestricted => Vec::new(),
            SideRules::Rules | SideRules::DenyAll => rule_policies(decision.l7.as_ref()),
        },
        verdict: if verdict.is_allowed() {
            HttpVerdict::Allowed
        } else {
            HttpVerdict::Denied
        },
        matched,
        header_log: verdict
            .log()
            .iter()
            .map(|entry| HeaderLogEcho {
                kind: match entry.kind {
                    HeaderLogKind::Missing => "missing",
                    HeaderLogKind::Rejected => "rejected",
                },
                name: entry.name.to_owned(),
                value: entry.value.clone().into_owned(),
            })
            .collect(),
    }
}

fn edit_echo(direction: Direction, edit: &HeaderEdit<'_>, redact: &[&str]) -> HeaderEditEcho {
    let (action, name, value) = match *edit {
        HeaderEdit::Append { name, value } => ("ADD", name, Some(value)),
        HeaderEdit::Remove { name } => ("DELETE", name, None),
        HeaderEdit::Set { name, value } => ("REPLACE", name, Some(value)),
    };
    let secret = redact.iter().any(|r| r.eq_ignore_ascii_case(name.as_str()));
    HeaderEditEcho {
        direction,
        action,
        name: name.to_string(),
        value: value.map(|v| {
            if secret {
                REDACTED.to_owned()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            }
        }),
    }
}

fn header_text(headers: &http::HeaderMap, name: impl http::header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(method: Option<&str>, host: Option<&str>, headers: &[&str]) -> HttpQuery {
        HttpQuery {
            method: method.map(str::to_owned),
            path: Some("/api/users".into()),
            host: host.map(str::to_owned),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    /// What a client would send: curl's defaults (GET, HTTP/1.1, Host = the address it
    /// connects to) and a gRPC client's (POST over HTTP/2, the host as :authority).
    #[test]
    fn requests_are_built_as_clients_send_them() {
        let default = Some("10.0.0.3:8080".to_owned());
        let r = query(None, None, &[]).request(default.clone()).unwrap();
        assert_eq!(
            (r.parts.method.as_str(), r.parts.version),
            ("GET", Version::HTTP_11)
        );
        assert_eq!(r.parts.headers[HOST], "10.0.0.3:8080");
        assert!(!r.grpc);

        let grpc = ["content-type: application/grpc"];
        let r = query(None, Some("greeter:50051"), &grpc)
            .request(default.clone())
            .unwrap();
        assert!(r.grpc);
        assert_eq!(
            (r.parts.method.as_str(), r.parts.version),
            ("POST", Version::HTTP_2)
        );
        assert_eq!(r.parts.uri.to_string(), "http://greeter:50051/api/users");
        assert!(r.parts.headers.get(HOST).is_none());

        // A Host header given as a header is the host; no default is added beside it.
        let r = query(Some("PUT"), None, &["Host: api"])
            .request(None)
            .unwrap();
        assert_eq!(r.parts.headers.get_all(HOST).iter().count(), 1);
        assert_eq!(r.parts.headers[HOST], "api");
        assert_eq!(r.parts.method, Method::PUT);

        assert!(matches!(
            query(None, None, &[]).request(None),
            Err(HttpQueryError::NoHost)
        ));
    }

    /// curl's `-H` syntax: split at the first colon, blanks around the value dropped.
    #[test]
    fn headers_parse_as_curl_takes_them() {
        let ok: &[(&str, &str, &str)] = &[
            ("X-API-Key: k", "x-api-key", "k"),
            ("X-API-Key:k", "x-api-key", "k"),
            ("X-Note:  a b  ", "x-note", "a b"),
            ("X-Empty:", "x-empty", ""),
            ("X-Url: http://a:1/", "x-url", "http://a:1/"),
        ];
        for (raw, name, value) in ok {
            let (n, v) = parse_header(raw).unwrap();
            assert_eq!((n.as_str(), v.to_str().unwrap()), (*name, *value), "{raw}");
        }
        assert!(matches!(
            parse_header("X-API-Key k"),
            Err(HttpQueryError::HeaderSyntax(_))
        ));
        for bad in ["X API: k", ": k", "X-A: a\u{1}b"] {
            assert!(
                matches!(parse_header(bad), Err(HttpQueryError::Header { .. })),
                "{bad:?}"
            );
        }
        for (method, ok) in [("GET", true), ("get", true), ("G ET", false), ("", false)] {
            let built = query(Some(method), Some("api"), &[]).request(None);
            assert_eq!(built.is_ok(), ok, "{method:?}");
        }
    }
}
