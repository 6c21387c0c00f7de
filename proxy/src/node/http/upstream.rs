//! Connections to the original destinations, per (source identity, destination).
//!
//! Two workloads must never share an upstream connection (the upstream would see one
//! client's requests arrive on the other's connection, and a connection-scoped credential
//! or policy would leak across), and the authority a request names is not where a
//! transparent proxy sends it — the original destination is. So connections are kept per
//! (source identity, destination, bind address), and always dial that destination.
//!
//! - HTTP/1.1 ([`H1Pool`]): a downstream connection takes one upstream connection at its
//!   first request and keeps it for the next ones (its requests come one at a time), so
//!   a request costs no pool lookup; when the downstream connection ends, the upstream
//!   one goes back to the pool, open, for the next downstream connection of the same
//!   source and destination. A request a pooled connection could not even send (the
//!   server had closed it) is sent again on another connection; anything else that fails
//!   is the upstream's failure.
//! - HTTP/2 (gRPC above all, which needs trailers): hyper-util's pooled `Client` per
//!   (source, destination), with prior knowledge, multiplexing the streams of every
//!   downstream connection of that pair.
//!
//! Trade-off: the maps grow with the distinct (source, destination) pairs seen. They are
//! bounded by [`MAX_CLIENTS`]; past it, the HTTP/2 map is cleared (requests in flight keep
//! their own handle to their client, and idle pooled connections of the dropped clients
//! close) and the HTTP/1.1 map drops its stale entries first, then everything.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_identity::Identity;
use tokio::net::TcpStream;
use tracing::debug;

use crate::node::proxy::connect;

/// An idle pooled connection is closed after this long (servers commonly close at 60 s
/// or more; closing first avoids sending a request on a connection being closed).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// See the module documentation.
const MAX_CLIENTS: usize = 4096;
/// Idle HTTP/1.1 connections kept per (source, destination, bind).
const MAX_IDLE_PER_KEY: usize = 64;
/// How long an HTTP/1.1 connection checked in before its last response was complete
/// may take to become idle and join the pool.
const SETTLE: Duration = Duration::from_secs(1);
/// How often idle HTTP/1.1 connections past [`POOL_IDLE_TIMEOUT`] are closed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The pooled HTTP/2 client type: request bodies stream straight from the downstream.
pub type H2Client = Client<Connector, Incoming>;

/// The HTTP/2 clients of every (source, destination, bind) seen.
#[derive(Debug, Default)]
pub struct H2Clients {
    clients: Mutex<HashMap<UpstreamKey, H2Client>>,
}

impl H2Clients {
    /// The client for `key`, created on first use.
    pub fn client(&self, key: UpstreamKey) -> H2Client {
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
            .http2_only(true);
        let client = builder.build(Connector {
            destination: key.destination,
            bind: key.bind,
        });
        clients.insert(key, client.clone());
        client
    }
}

/// A held HTTP/1.1 upstream connection: requests go through it one at a time.
pub type H1Sender = hyper::client::conn::http1::SendRequest<Incoming>;

/// Which upstream connections a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamKey {
    pub source: Identity,
    pub destination: SocketAddr,
    /// Bind to this address first (the proxy's own source for local pods, which their
    /// ingress program lets in; see node/proxy.rs).
    pub bind: Option<IpAddr>,
}

struct Idle {
    sender: H1Sender,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        now.duration_since(self.since) < POOL_IDLE_TIMEOUT && self.sender.is_ready()
    }
}

type IdleMap = Mutex<HashMap<UpstreamKey, Vec<Idle>>>;

/// Open, idle HTTP/1.1 upstream connections, waiting for the next downstream connection
/// of their (source, destination, bind); see the module documentation.
#[derive(Default)]
pub struct H1Pool {
    idle: Arc<IdleMap>,
    sweeper: std::sync::OnceLock<()>,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("H1Pool")
            .field("keys", &idle.len())
            .finish_non_exhaustive()
    }
}

impl H1Pool {
    /// The most recently returned idle connection of `key` that is still open.
    pub fn checkout(&self, key: &UpstreamKey) -> Option<H1Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        // Dropping the others here closes them.
        while let Some(c) = list.pop() {
            if c.usable(now) {
                return Some(c.sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next downstream connection of `key`, once it is idle. One
    /// that has not taken in the end of its last response yet (its downstream connection
    /// ended first, as with `Connection: close`) gets [`SETTLE`] to become idle; one
    /// still busy then (a body the client left unread), closed, or upgraded is let go:
    /// it closes when done.
    pub fn checkin(&self, key: UpstreamKey, mut sender: H1Sender) {
        if sender.is_closed() {
            return;
        }
        self.start_sweeper();
        if sender.is_ready() {
            keep(&self.idle, key, sender);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let idle = Arc::downgrade(&self.idle);
        runtime.spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(SETTLE, sender.ready()).await
                && let Some(idle) = idle.upgrade()
            {
                keep(&idle, key, sender);
            }
        });
    }

    /// Idle connections past the idle timeout are closed every [`SWEEP_INTERVAL`] (the
    /// task ends with the pool). Started with the first check-in, inside the runtime.
    fn start_sweeper(&self) {
        self.sweeper.get_or_init(|| {
            let idle: Weak<IdleMap> = Arc::downgrade(&self.idle);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_INTERVAL);
                loop {
                    tick.tick().await;
                    let Some(idle) = idle.upgrade() else { return };
                    let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
                    sweep(&mut idle, Instant::now());
                }
            });
        });
    }
}

/// Adds an idle `sender` to the pool: at most [`MAX_IDLE_PER_KEY`] per key and
/// [`MAX_CLIENTS`] keys.
fn keep(idle: &IdleMap, key: UpstreamKey, sender: H1Sender) {
    let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    if idle.len() >= MAX_CLIENTS && !idle.contains_key(&key) {
        sweep(&mut idle, now);
        if idle.len() >= MAX_CLIENTS {
            idle.clear();
        }
    }
    let list = idle.entry(key).or_default();
    list.retain(|c| c.usable(now));
    if list.len() < MAX_IDLE_PER_KEY {
        list.push(Idle { sender, since: now });
    }
}

fn sweep(idle: &mut HashMap<UpstreamKey, Vec<Idle>>, now: Instant) {
    idle.retain(|_, list| {
        list.retain(|c| c.usable(now));
        !list.is_empty()
    });
}

/// Why no HTTP/1.1 connection to the destination could be had.
#[derive(Debug, thiserror::Error)]
pub enum H1ConnectError {
    #[error("connecting to {destination}: {source}")]
    Connect {
        destination: SocketAddr,
        source: io::Error,
    },
    #[error("HTTP/1.1 handshake with {destination}: {source}")]
    Handshake {
        destination: SocketAddr,
        source: hyper::Error,
    },
}

/// A new HTTP/1.1 connection for `key`; its connection task runs until the server or
/// the last [`H1Sender`] ends it (upgrades included).
pub async fn connect_h1(key: &UpstreamKey) -> Result<H1Sender, H1ConnectError> {
    let destination = key.destination;
    let stream = async {
        let stream = connect(destination, key.bind).await?;
        stream.set_nodelay(true)?;
        Ok::<_, io::Error>(stream)
    }
    .await
    .map_err(|source| H1ConnectError::Connect {
        destination,
        source,
    })?;
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| H1ConnectError::Handshake {
            destination,
            source,
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            debug!(%destination, error = %e, "upstream HTTP/1.1 connection ended with an error");
        }
    });
    Ok(sender)
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
            let stream = connect(destination, bind).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(stream))
        })
    }
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

    /// A GET over `sender` whose body is a real `Incoming` (the sender type takes
    /// nothing else); the status.
    async fn get(sender: &mut H1Sender) -> u16 {
        let body = empty_incoming().await;
        let req = http::Request::get("/")
            .header("host", "api.example")
            .body(body)
            .unwrap();
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
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
    async fn a_returned_connection_serves_the_same_source_again_and_never_another() {
        let (server, accepted) = counting_server().await;
        let pool = H1Pool::default();
        let key = |id: u32| UpstreamKey {
            source: Identity(id),
            destination: server,
            bind: None,
        };
        assert!(pool.checkout(&key(1000)).is_none(), "an empty pool");
        let mut a = connect_h1(&key(1000)).await.unwrap();
        assert_eq!(get(&mut a).await, 200);
        assert_eq!(get(&mut a).await, 200);
        pool.checkin(key(1000), a);
        assert!(
            pool.checkout(&key(1001)).is_none(),
            "another identity never shares a connection"
        );
        let mut again = pool.checkout(&key(1000)).expect("the idle connection");
        assert_eq!(get(&mut again).await, 200);
        assert!(pool.checkout(&key(1000)).is_none(), "taken: not idle twice");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "keep-alive reuse");
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_handed_out() {
        // A server that answers one request, then closes.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            Empty::<bytes::Bytes>::new(),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        let pool = H1Pool::default();
        let key = UpstreamKey {
            source: Identity(1000),
            destination: addr,
            bind: None,
        };
        let mut a = connect_h1(&key).await.unwrap();
        assert_eq!(get(&mut a).await, 200);
        // The server's close reaches the connection task.
        for _ in 0..100 {
            if a.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pool.checkin(key, a);
        assert!(pool.checkout(&key).is_none());
    }

    #[tokio::test]
    async fn an_unreachable_destination_is_a_connect_error_naming_it() {
        // A port nothing listens on (bound, then closed).
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let key = UpstreamKey {
            source: Identity(1000),
            destination: addr,
            bind: None,
        };
        let err = connect_h1(&key).await.unwrap_err();
        assert!(matches!(err, H1ConnectError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
