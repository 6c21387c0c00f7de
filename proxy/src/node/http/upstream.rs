//! Connections to the original destinations, pooled per (source identity, destination,
//! HTTP version).
//!
//! hyper-util's legacy `Client` pools by the request URI's scheme and authority. The
//! authority a request names is not where a transparent proxy sends it — the original
//! destination is — and two workloads must never share an upstream connection (the
//! upstream would see one client's requests arrive on the other's connection, and a
//! connection-scoped credential or policy would leak across). So each (source identity,
//! destination, version) gets a `Client` of its own, whose connector ignores the URI and
//! always dials that one destination; inside it the pool key (the authority) only
//! separates virtual hosts on the same destination, which is harmless.
//!
//! The version follows the client's: an HTTP/2 request (gRPC above all, which needs
//! trailers) goes over HTTP/2 with prior knowledge, HTTP/1.x over HTTP/1.1.
//!
//! Trade-off: the map of clients grows with the distinct (source, destination) pairs seen.
//! It is bounded by [`MAX_CLIENTS`]; past it, the map is cleared — requests in flight keep
//! their own handle to their client, and idle pooled connections of the dropped clients
//! close. Clearing is rare and cheap compared with tracking recency per request.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_identity::Identity;
use tokio::net::TcpStream;

/// How long an upstream connect may take before the request is answered 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle pooled connection is closed after this long (servers commonly close at 60 s
/// or more; closing first avoids sending a request on a connection being closed).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// See the module documentation.
const MAX_CLIENTS: usize = 4096;

/// The pooled client type: request bodies stream straight from the downstream.
pub type UpstreamClient = Client<Connector, Incoming>;

/// Where and how a request goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamKey {
    pub source: Identity,
    pub destination: SocketAddr,
    /// Bind to this address first (the proxy's own source for local pods, which their
    /// ingress program lets in; see node/proxy.rs).
    pub bind: Option<IpAddr>,
    pub http2: bool,
}

/// The clients of every (source, destination, version) seen.
#[derive(Debug, Default)]
pub struct Upstreams {
    clients: Mutex<HashMap<UpstreamKey, UpstreamClient>>,
}

impl Upstreams {
    /// The client for `key`, created on first use.
    pub fn client(&self, key: UpstreamKey) -> UpstreamClient {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get(&key) {
            return c.clone();
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // The client's own Host header (or none, for HTTP/1.0) goes upstream as sent.
            .set_host(false)
            .http2_only(key.http2);
        let client = builder.build(Connector {
            destination: key.destination,
            bind: key.bind,
        });
        clients.insert(key, client.clone());
        client
    }
}

/// Dials one fixed destination whatever the URI says.
#[derive(Debug, Clone, Copy)]
pub struct Connector {
    destination: SocketAddr,
    bind: Option<IpAddr>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TokioIo<TcpStream>>> + Send>>;

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let Connector { destination, bind } = *self;
        Box::pin(async move {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect(destination, bind))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {destination} timed out"),
                    )
                })??;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// Connects from `bind` when given, as the L4 path does.
pub async fn connect(dst: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match dst {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(dst).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use hyper::service::service_fn;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::net::TcpListener;

    /// An HTTP/1.1 server that counts the connections it accepted.
    async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            Empty::<bytes::Bytes>::new(),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    /// A request whose body is a real `Incoming`: the client type takes nothing else.
    async fn get(client: &UpstreamClient, authority: &str) -> u16 {
        // `Incoming` cannot be made by hand: take an empty one from a loopback exchange.
        let body = empty_incoming().await;
        let req = http::Request::get(format!("http://{authority}/"))
            .header("host", authority)
            .body(body)
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        resp.into_body().collect().await.unwrap();
        status
    }

    async fn empty_incoming() -> Incoming {
        let (a, b) = tokio::io::duplex(1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<Incoming>| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(req.into_body());
                }
                async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        Empty::<bytes::Bytes>::new(),
                    ))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(a), svc)
                .await;
        });
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(b))
            .await
            .unwrap();
        tokio::spawn(conn);
        let _ = send
            .send_request(
                http::Request::get("/")
                    .body(Empty::<bytes::Bytes>::new())
                    .unwrap(),
            )
            .await;
        rx.await.unwrap()
    }

    #[tokio::test]
    async fn one_source_reuses_its_connection_and_another_source_gets_its_own() {
        let (server, accepted) = counting_server().await;
        let upstreams = Upstreams::default();
        let key = |id: u32| UpstreamKey {
            source: Identity(id),
            destination: server,
            bind: None,
            http2: false,
        };
        // The authority is not where it goes: the connector dials `server` whatever it says.
        let a = upstreams.client(key(1000));
        assert_eq!(get(&a, "api.example:80").await, 200);
        assert_eq!(
            get(&upstreams.client(key(1000)), "api.example:80").await,
            200
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "keep-alive reuse");
        assert_eq!(
            get(&upstreams.client(key(1001)), "api.example:80").await,
            200
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "another identity never shares a connection"
        );
    }
}
