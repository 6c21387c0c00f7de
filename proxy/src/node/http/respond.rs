//! The answers the proxy gives itself instead of forwarding: a policy denial (403, or a
//! gRPC PERMISSION_DENIED), a request refused by normalisation, an upstream failure.
//! Pure: built from the request head, tested without sockets.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use sluice_config::HttpDenial;
use sluice_l7::http::RequestRejection;
use tracing::warn;

/// The 403 of a denied request, as `NodeConfig.spec.http` sets it (Cilium's
/// `Access denied` and a CRLF by default, spec §11). Built once per policy snapshot, so a
/// denial copies no body and parses no header; a reload brings a new one.
#[derive(Debug, Clone)]
pub struct DeniedResponse {
    body: Bytes,
    content_type: HeaderValue,
}

impl DeniedResponse {
    pub fn new(settings: &HttpDenial) -> Self {
        // Validation checked the content type; should one slip through, the denial
        // still goes out, as text/plain.
        let content_type = HeaderValue::from_str(&settings.content_type).unwrap_or_else(|_| {
            warn!(content_type = %settings.content_type, "deniedContentType is not a header value; using text/plain");
            HeaderValue::from_static(HttpDenial::DEFAULT_CONTENT_TYPE)
        });
        Self {
            body: Bytes::from(settings.body.clone()),
            content_type,
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }
}

impl Default for DeniedResponse {
    fn default() -> Self {
        Self::new(&HttpDenial::default())
    }
}

/// gRPC's PERMISSION_DENIED, the mapping of 403 (spec §12).
const GRPC_PERMISSION_DENIED: &str = "7";
/// Envoy's wording, which Cilium users see.
const GRPC_ACCESS_DENIED: &str = "Access denied";

/// Whether the request is a gRPC call: its content type is `application/grpc` or one of
/// its `+proto`, `+json` … variants (gRPC over HTTP/2, "Requests").
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.trim_start();
            ct.len() >= 16
                && ct[..16].eq_ignore_ascii_case("application/grpc")
                && matches!(ct.as_bytes().get(16), None | Some(b'+' | b';'))
        })
}

/// The answer to a request the L7 rules denied. A gRPC call gets a trailers-only
/// response — HTTP 200, `grpc-status: 7` in the only HEADERS frame — because gRPC clients
/// read the status from there and would report a bare 403 as UNIMPLEMENTED or
/// UNAVAILABLE, hiding that policy refused it.
pub fn denied(grpc: bool, answer: &DeniedResponse) -> Response<Full<Bytes>> {
    if grpc {
        let mut r = Response::new(Full::new(Bytes::new()));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert(
            "grpc-status",
            HeaderValue::from_static(GRPC_PERMISSION_DENIED),
        );
        h.insert("grpc-message", HeaderValue::from_static(GRPC_ACCESS_DENIED));
        r
    } else {
        let mut r = Response::new(Full::new(answer.body.clone()));
        *r.status_mut() = StatusCode::FORBIDDEN;
        r.headers_mut()
            .insert(CONTENT_TYPE, answer.content_type.clone());
        r
    }
}

/// The answer to a request normalisation refused: its status, the reason as text (a
/// fixed sentence that never quotes the request), `Location` for a redirect, and
/// `connection: close` when the request's framing cannot be trusted.
pub fn rejected(rejection: &RequestRejection) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{rejection}\r\n"))));
    *r.status_mut() = rejection.status();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let RequestRejection::Redirect { location } = rejection
        && let Ok(v) = HeaderValue::from_str(location)
    {
        h.insert(LOCATION, v);
    }
    if rejection.closes_connection() {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The answer when the upstream cannot be reached or fails mid-request (spec §11: 503).
pub fn upstream_failed(grpc: bool) -> Response<Full<Bytes>> {
    if grpc {
        let mut r = Response::new(Full::new(Bytes::new()));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        // UNAVAILABLE: the client may retry.
        h.insert("grpc-status", HeaderValue::from_static("14"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("upstream connect error"),
        );
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::from_static(
        b"upstream connect error or disconnect\r\n",
    )));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(r: Response<Full<Bytes>>) -> Bytes {
        futures_body(r.into_body())
    }

    fn futures_body(b: Full<Bytes>) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { b.collect().await.unwrap().to_bytes() })
    }

    #[test]
    fn a_denial_is_cilium_403_text() {
        let r = denied(false, &DeniedResponse::default());
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/plain");
        let b = body(r);
        assert_eq!(&b[..], b"Access denied\r\n");
        assert_eq!(b.len(), 15, "spec \u{a7}11: 15 bytes");
    }

    #[test]
    fn a_configured_denial_sends_its_body_and_content_type_and_grpc_ignores_them() {
        let answer = DeniedResponse::new(&HttpDenial {
            body: "{\"error\":\"denied\"}\r\n".into(),
            content_type: "application/json".into(),
        });
        let r = denied(false, &answer);
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(&body(r)[..], b"{\"error\":\"denied\"}\r\n");
        let r = denied(true, &answer);
        assert_eq!(r.headers()["grpc-message"], "Access denied");
        assert!(body(r).is_empty());
        // Not a header value: the denial still goes out, as text/plain.
        let answer = DeniedResponse::new(&HttpDenial {
            body: "no\r\n".into(),
            content_type: "text/plain\r\nx: y".into(),
        });
        assert_eq!(denied(false, &answer).headers()[CONTENT_TYPE], "text/plain");
    }

    #[test]
    fn a_grpc_denial_is_trailers_only_permission_denied() {
        let r = denied(true, &DeniedResponse::default());
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "7");
        assert_eq!(r.headers()["grpc-message"], "Access denied");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/grpc");
        assert!(body(r).is_empty(), "trailers-only: no DATA frame");
    }

    #[test]
    fn grpc_is_told_by_content_type_and_its_variants_only() {
        let ct = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            is_grpc(&h)
        };
        assert!(ct("application/grpc"));
        assert!(ct("application/grpc+proto"));
        assert!(ct("Application/GRPC;charset=utf-8"));
        assert!(!ct("application/grpc-web"), "grpc-web is HTTP/1 framing");
        assert!(!ct("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn a_smuggling_rejection_closes_the_connection_and_a_redirect_says_where() {
        let r = rejected(&RequestRejection::ContentLengthWithTransferEncoding);
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()[CONNECTION], "close");
        let r = rejected(&RequestRejection::EscapedSlash);
        assert_eq!(r.status(), 400);
        assert!(r.headers().get(CONNECTION).is_none());
        let r = rejected(&RequestRejection::Redirect {
            location: "/api/admin".into(),
        });
        assert_eq!(r.status(), 307);
        assert_eq!(r.headers()[LOCATION], "/api/admin");
    }
}
