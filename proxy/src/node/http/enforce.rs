//! The decision layer: every request is normalised, decided against the current policy
//! snapshot (egress rules of the source and ingress rules of the destination must both
//! allow it), recorded as a flow, and then either answered here or passed to the inner
//! service (forwarding) with the normalised target and the header edits applied.
//!
//! The request the upstream sees is the one the rules saw: the URI is rebuilt from the
//! normalised path, never copied from what the client sent, so a spelling the rules
//! could not see (dot segments, `//`, percent-encoded unreserved characters) cannot
//! reach the upstream either.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, Uri};
use hyper::body::Incoming;
use sluice_l7::http::{
    HeaderEdit, HttpDecision, NormalizeConfig, RequestHead, RequestRejection, normalize,
};
use tracing::debug;

use super::record::RequestRecord;
use super::respond;
use super::rules::Enforcement;
use super::{ConnState, ProxyBody, full};
use crate::node::state::Snapshot;
use sluice_identity::Direction;

/// Normalisation settings of the node's listener: plain TCP, defaults otherwise (escaped
/// slashes refused, Cilium-sized limits; see `sluice_l7::http::normalize`).
pub(crate) const NORMALIZE: NormalizeConfig = NormalizeConfig {
    limits: sluice_l7::http::Limits {
        max_target_len: 8 << 10,
        max_header_count: 100,
        max_header_bytes: 64 << 10,
    },
    escaped_slashes: sluice_l7::http::EscapedSlashAction::Reject,
    transport: sluice_l7::http::Transport::Plain,
};

/// The layer; see the module documentation.
#[derive(Clone)]
pub struct EnforceLayer {
    conn: Arc<ConnState>,
}

impl EnforceLayer {
    pub fn new(conn: Arc<ConnState>) -> Self {
        Self { conn }
    }
}

impl<S> tower::Layer<S> for EnforceLayer {
    type Service = Enforce<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Enforce {
            conn: self.conn.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Enforce<S> {
    conn: Arc<ConnState>,
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<Request<Incoming>> for Enforce<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<ProxyBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let conn = self.conn.clone();
        // The clone that was made ready goes into the future; `self` keeps a fresh one
        // (tower's readiness contract).
        let inner = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, inner);
        Box::pin(async move {
            let started = Instant::now();
            let snapshot = conn.shared.state.load();
            let enforcement = conn.enforcement(&snapshot);
            let grpc = respond::is_grpc(req.headers());
            let (mut parts, body) = req.into_parts();

            let outcome = decide(&conn, &snapshot, &enforcement, &parts);
            let record = Arc::new(outcome.record);
            match outcome.verdict {
                Verdict::Rejected(rejection) => {
                    debug!(reason = rejection.reason(), error = %rejection, "request refused before policy");
                    record.request(&conn.shared, &snapshot, false, &parts.headers, Vec::new());
                    let response = respond::rejected(&rejection).map(full);
                    record.response(
                        &conn.shared,
                        &snapshot,
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    Ok(response)
                }
                Verdict::Denied { redact } => {
                    record.request(&conn.shared, &snapshot, false, &parts.headers, redact);
                    let response = respond::denied(grpc, &snapshot.denied).map(full);
                    record.response(
                        &conn.shared,
                        &snapshot,
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    Ok(response)
                }
                Verdict::Allowed { uri, edits, redact } => {
                    record.request(&conn.shared, &snapshot, true, &parts.headers, redact);
                    for edit in &edits {
                        edit.apply(&mut parts.headers);
                    }
                    parts.uri = uri;
                    let response = match inner.call(Request::from_parts(parts, body)).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                    record.response(
                        &conn.shared,
                        &snapshot,
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    Ok(response)
                }
            }
        })
    }
}

/// What happens to one request.
enum Verdict {
    Rejected(RequestRejection),
    Denied {
        /// Header names whose values the flow must not show.
        redact: Vec<String>,
    },
    Allowed {
        uri: Uri,
        edits: Vec<OwnedEdit>,
        redact: Vec<String>,
    },
}

struct Outcome {
    verdict: Verdict,
    record: RequestRecord,
}

/// A header edit that outlives the decision (which borrows the request's headers).
enum OwnedEdit {
    Append(HeaderName, HeaderValue),
    Remove(HeaderName),
    Set(HeaderName, HeaderValue),
}

impl OwnedEdit {
    fn from_edit(e: &HeaderEdit<'_>) -> Self {
        match *e {
            HeaderEdit::Append { name, value } => Self::Append(name.clone(), value.clone()),
            HeaderEdit::Remove { name } => Self::Remove(name.clone()),
            HeaderEdit::Set { name, value } => Self::Set(name.clone(), value.clone()),
        }
    }

    fn apply(&self, headers: &mut HeaderMap) {
        match self {
            Self::Append(n, v) => {
                headers.append(n.clone(), v.clone());
            }
            Self::Remove(n) => {
                headers.remove(n);
            }
            Self::Set(n, v) => {
                headers.insert(n.clone(), v.clone());
            }
        }
    }
}

/// Normalises and decides one request head. Pure apart from reading `conn`'s addresses.
fn decide(
    conn: &ConnState,
    snapshot: &Snapshot,
    enforcement: &Enforcement,
    parts: &http::request::Parts,
) -> Outcome {
    let info = &conn.info;
    let mut record = RequestRecord {
        parties: conn.parties(snapshot),
        source_addr: info.peer,
        destination_addr: info.destination,
        direction: enforcement.reporting_side().direction,
        method: parts.method.clone(),
        // Set below: the normalised URL, or the one as sent when normalisation refuses it.
        url: String::new(),
        version: parts.version,
        allowed_by: Vec::new(),
    };
    let normalized = match normalize(&RequestHead::from_parts(parts), &NORMALIZE) {
        Ok(n) => n,
        Err(rejection) => {
            record.url = url(
                None,
                parts.uri.path_and_query().map(PathAndQuery::as_str),
                info.destination,
            );
            return Outcome {
                verdict: Verdict::Rejected(rejection),
                record,
            };
        }
    };
    record.url = url(
        normalized.host(),
        normalized.path_and_query(),
        info.destination,
    );
    let view = normalized.view();
    let egress = enforcement.egress.rules.set.evaluate(&view);
    let ingress = enforcement.ingress.rules.set.evaluate(&view);
    let redact: Vec<String> = [&egress, &ingress]
        .iter()
        .flat_map(|d| d.log())
        .filter(|entry| entry.value == sluice_l7::http::REDACTED)
        .map(|entry| entry.name.to_owned())
        .collect();

    let (eg_by, in_by) = match (&egress, &ingress) {
        (HttpDecision::Allowed { by: e, .. }, HttpDecision::Allowed { by: i, .. }) => (*e, *i),
        _ => {
            // The side that refused is the one the flow reports; egress first, as the
            // request leaves the source before it reaches the destination.
            record.direction = if egress.is_allowed() {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            return Outcome {
                verdict: Verdict::Denied { redact },
                record,
            };
        }
    };
    for (side, by) in [(&enforcement.egress, eg_by), (&enforcement.ingress, in_by)] {
        match side.rules.origin(by) {
            Some(p) => record.allowed_by.push((side.direction, p.clone())),
            None => record
                .allowed_by
                .extend(side.allowed_by.iter().map(|p| (side.direction, p.clone()))),
        }
    }
    let edits = [&egress, &ingress]
        .iter()
        .flat_map(|d| match d {
            HttpDecision::Allowed { edits, .. } => edits.as_slice(),
            HttpDecision::Denied { .. } => &[],
        })
        .map(OwnedEdit::from_edit)
        .collect();
    match upstream_uri(
        parts,
        normalized.host(),
        normalized.path_and_query(),
        info.destination,
    ) {
        Some(uri) => Outcome {
            verdict: Verdict::Allowed { uri, edits, redact },
            record,
        },
        // Normalisation produced a target the URI type refuses: not expected (it only
        // emits URI characters); refuse rather than forward something else.
        None => Outcome {
            verdict: Verdict::Rejected(RequestRejection::InvalidTarget(
                "the normalised target is not a valid URI",
            )),
            record,
        },
    }
}

/// `http://authority/path?query` for flows: the normalised host, or the destination
/// address when the request named none.
fn url(host: Option<&str>, path: Option<&str>, destination: std::net::SocketAddr) -> String {
    use std::fmt::Write as _;
    let mut url = String::with_capacity(
        "http://".len() + host.map_or(21, str::len) + path.map_or(0, str::len) + 1,
    );
    url.push_str("http://");
    match host {
        Some(h) => url.push_str(h),
        // Writing to a String cannot fail.
        None => {
            let _ = write!(url, "{destination}");
        }
    }
    match path {
        Some(p) if p.starts_with('/') => url.push_str(p),
        Some(p) => {
            url.push('/');
            url.push_str(p);
        }
        None => {}
    }
    url
}

/// The target the upstream sees: the normalised path (origin-form, `/` when the request
/// had none) over HTTP/1.x; over HTTP/2 the absolute URI whose authority is the one the
/// client sent (`:authority`, or the Host header's, which normalisation checked agree), so
/// an HTTP/2 upstream sees it unchanged. CONNECT keeps its authority-form target.
fn upstream_uri(
    parts: &http::request::Parts,
    host: Option<&str>,
    path_and_query: Option<&str>,
    destination: std::net::SocketAddr,
) -> Option<Uri> {
    let path_and_query = path_and_query.unwrap_or("/");
    if parts.method == http::Method::CONNECT {
        return parts.uri.authority().map(|a| Uri::from(a.clone()));
    }
    if parts.version != http::Version::HTTP_2 {
        return path_and_query.parse::<PathAndQuery>().ok().map(Uri::from);
    }
    let authority = match parts.uri.authority() {
        Some(a) => a.clone(),
        None => match parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
        {
            Some(h) => h.parse::<Authority>().ok()?,
            None => host
                .map(str::to_owned)
                .unwrap_or_else(|| destination.to_string())
                .parse::<Authority>()
                .ok()?,
        },
    };
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_urls_use_the_normalised_host_or_the_destination() {
        let dst: std::net::SocketAddr = "10.0.0.3:8080".parse().unwrap();
        assert_eq!(
            url(Some("api"), Some("/v1/users?x=1"), dst),
            "http://api/v1/users?x=1"
        );
        assert_eq!(url(None, Some("/"), dst), "http://10.0.0.3:8080/");
        assert_eq!(url(Some("api:8080"), None, dst), "http://api:8080");
    }

    #[test]
    fn the_upstream_uri_carries_the_normalised_path_and_the_sent_authority() {
        let dst = "10.0.0.3:8080".parse().unwrap();
        let head = |method: &str, target: &str, version: http::Version, host: Option<&str>| {
            let mut b = Request::builder()
                .method(method)
                .uri(target)
                .version(version);
            if let Some(h) = host {
                b = b.header("host", h);
            }
            b.body(()).unwrap().into_parts().0
        };
        // (method, target as sent, version, Host, normalised host, normalised path, upstream)
        let cases = [
            (
                "GET",
                "/api/./v1/../users",
                http::Version::HTTP_11,
                Some("API:8080"),
                Some("api:8080"),
                Some("/api/users"),
                "/api/users",
            ),
            (
                "GET",
                "http://api/a/../b?x=1",
                http::Version::HTTP_11,
                Some("api"),
                Some("api"),
                Some("/b?x=1"),
                "/b?x=1",
            ),
            ("GET", "/x", http::Version::HTTP_10, None, None, None, "/"),
            (
                "CONNECT",
                "db:5432",
                http::Version::HTTP_11,
                Some("db:5432"),
                Some("db:5432"),
                None,
                "db:5432",
            ),
            (
                "GET",
                "/api/./v1/../users",
                http::Version::HTTP_2,
                Some("API:8080"),
                Some("api:8080"),
                Some("/api/users"),
                "http://API:8080/api/users",
            ),
            (
                "GET",
                "/x",
                http::Version::HTTP_2,
                None,
                None,
                Some("/x"),
                "http://10.0.0.3:8080/x",
            ),
        ];
        for (method, target, version, host, nhost, npath, want) in cases {
            let parts = head(method, target, version, host);
            let uri = upstream_uri(&parts, nhost, npath, dst).unwrap();
            assert_eq!(uri.to_string(), want, "{method} {target} {version:?}");
        }
    }
}
