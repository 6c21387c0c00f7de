//! The forwarding service: sends an allowed request to the original destination over
//! the pooled client of its (source identity, destination, version), streams both
//! bodies, and completes protocol upgrades (WebSocket, CONNECT) by splicing the two
//! upgraded streams. It only ever sees requests the decision layer allowed, so an
//! upgrade is never made for a request the policy denied.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) are removed both ways: they describe one
//! connection, and the two connections here are different. One exception is the
//! `Upgrade` / `Connection: upgrade` pair of an upgrade the proxy carries through. An
//! HTTP/1.1 `Upgrade: h2c` is not carried: the proxy drops it and the exchange stays
//! HTTP/1.1, which RFC 9113 §3.1 lets a server do (clients that want HTTP/2 in clear
//! text use prior knowledge, which the listener detects).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONNECTION, HeaderName, PROXY_AUTHENTICATE, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::debug;

use super::{ConnState, ProxyBody, full, respond};

/// Headers that are about one connection only, besides those `Connection` names (typed
/// names: removing them hashes a known name instead of parsing a string per request).
const HOP_BY_HOP: [HeaderName; 7] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    TRANSFER_ENCODING,
    UPGRADE,
    HeaderName::from_static("http2-settings"),
    CONNECTION,
];

#[derive(Clone)]
pub struct Forward {
    conn: Arc<ConnState>,
}

impl Forward {
    pub fn new(conn: Arc<ConnState>) -> Self {
        Self { conn }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<Request<Incoming>> for Forward {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let conn = self.conn.clone();
        Box::pin(async move {
            let grpc = respond::is_grpc(req.headers());
            let upgrade = upgrade_kind(&req);
            let downstream_upgrade = upgrade.map(|_| hyper::upgrade::on(&mut req));
            strip_hop_by_hop(req.headers_mut(), upgrade);
            let http2 = req.version() == Version::HTTP_2;
            if !http2 && req.version() != Version::HTTP_10 {
                *req.version_mut() = Version::HTTP_11;
            }
            let info = &conn.info;
            let sent = if http2 {
                conn.h2_client()
                    .request(req)
                    .await
                    .map_err(super::SendError::Pooled)
            } else {
                conn.send_h1(req).await
            };
            let mut response = match sent {
                Ok(r) => r,
                Err(e) => {
                    debug!(destination = %info.destination, error = %e, "upstream request failed");
                    return Ok(respond::upstream_failed(grpc).map(full));
                }
            };
            let upgraded = match (upgrade, downstream_upgrade) {
                (Some(kind), Some(down)) if kind.accepted_by(response.status()) => {
                    let up = hyper::upgrade::on(&mut response);
                    // The tunnel holds the node's shared state as a connection does: a
                    // node that hands over drains it instead of cutting it at exit.
                    let held = Arc::clone(&conn.shared);
                    tokio::spawn(async move {
                        splice_upgraded(down, up).await;
                        drop(held);
                    });
                    Some(kind)
                }
                _ => None,
            };
            strip_hop_by_hop(response.headers_mut(), upgraded);
            Ok(response.map(Either::Left))
        })
    }
}

/// An upgrade the proxy carries through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeKind {
    /// `Upgrade:` other than h2c, typically WebSocket: completes on 101.
    Protocol,
    /// HTTP/1.1 `CONNECT`: completes on a 2xx.
    Connect,
}

impl UpgradeKind {
    fn accepted_by(self, status: StatusCode) -> bool {
        match self {
            Self::Protocol => status == StatusCode::SWITCHING_PROTOCOLS,
            Self::Connect => status.is_success(),
        }
    }
}

/// The upgrade an HTTP/1.1 request asks for, if the proxy carries it.
pub fn upgrade_kind<B>(req: &Request<B>) -> Option<UpgradeKind> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    if req.method() == Method::CONNECT {
        return Some(UpgradeKind::Connect);
    }
    let wants = connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"));
    let protocol = req.headers().get(UPGRADE).and_then(|v| v.to_str().ok())?;
    let h2c = protocol
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("h2c"));
    (wants && !h2c).then_some(UpgradeKind::Protocol)
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers; keeps `Upgrade` and sets `Connection: upgrade` for an
/// upgrade being carried through. `TE: trailers` survives (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<UpgradeKind>) {
    let keep_upgrade = upgrade == Some(UpgradeKind::Protocol);
    // A token that is not a header name names no header there is to remove.
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        if keep_upgrade && name == UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    let trailers_only = headers.get_all(TE).iter().all(|v| {
        v.to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("trailers"))
    });
    if !trailers_only {
        headers.remove(TE);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Relays the two upgraded connections until both ends are done.
async fn splice_upgraded(down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let (down, up) = match tokio::try_join!(down, up) {
        Ok(pair) => pair,
        Err(e) => {
            debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut down = TokioIo::new(down);
    let mut up = TokioIo::new(up);
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        debug!(error = %e, "upgraded connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get("/chat");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn websocket_is_carried_and_h2c_is_declined() {
        let ws = req(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_kind(&ws), Some(UpgradeKind::Protocol));
        let h2c = req(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert_eq!(upgrade_kind(&h2c), None);
        let no_token = req(&[("upgrade", "websocket")]);
        assert_eq!(upgrade_kind(&no_token), None);
        let connect = Request::connect("api:443").body(()).unwrap();
        assert_eq!(upgrade_kind(&connect), Some(UpgradeKind::Connect));
    }

    #[test]
    fn hop_by_hop_headers_go_and_named_ones_with_them() {
        let (mut parts, ()) = req(&[
            ("connection", "close, X-Secret-Hop, not a name"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ("x-kept", "yes"),
        ])
        .into_parts();
        strip_hop_by_hop(&mut parts.headers, None);
        let names: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["te", "x-kept"]);

        let (mut parts, ()) = req(&[
            ("te", "gzip"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
        ])
        .into_parts();
        strip_hop_by_hop(&mut parts.headers, Some(UpgradeKind::Protocol));
        assert!(parts.headers.get(TE).is_none());
        assert_eq!(parts.headers[UPGRADE], "websocket");
        assert_eq!(parts.headers[CONNECTION], "upgrade");
    }
}
