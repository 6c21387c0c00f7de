//! The node's HTTP engine: redirected connections whose policy has `rules.http` on either
//! side are served here instead of being spliced.
//!
//! ```text
//! accepted TCP (Watched) ─▶ hyper server (HTTP/1.1 keep-alive, or h2 prior knowledge: auto)
//!   under the watchdog       └▶ Track     requests in flight, for the watchdog
//!   (header and idle             └▶ Enforce   normalise · decide (egress ∧ ingress) · flow
//!    timeouts)                       │        · 403/4xx
//!                                    └▶ Forward   upstream connections per (source,
//!                                                 destination): HTTP/1.1 held by the
//!                                                 downstream connection, HTTP/2 pooled ·
//!                                                 streamed bodies · upgrades spliced, to
//!                                                 the original destination only
//! ```
//!
//! Per request, the decision reads the *current* policy snapshot: a reload applies to the
//! next request of a live connection, not only to new connections. The compiled rules
//! of a connection are kept with it and recomputed only when the generation changed.
//!
//! Time limits against slow clients (slowloris), from `spec.http` of the NodeConfig as it
//! was when the connection was accepted: a request head must arrive complete within the
//! header timeout (from accept for the first; the HTTP/2 preface too), and a connection
//! with no request in flight is shut down after the idle timeout (HTTP/2: GOAWAY). The
//! [`watchdog`] enforces both; see there for why hyper's own header timer is off. HTTP/2
//! connections are also pinged every [`H2_KEEPALIVE_INTERVAL`] and closed when a ping
//! goes unanswered for [`H2_KEEPALIVE_TIMEOUT`], which finds dead peers during long
//! streams. A slow body is not limited here: it holds one stream and flows as fast as the
//! upstream takes it, as a spliced connection would.

pub(crate) mod enforce;
mod forward;
mod record;
pub(crate) mod respond;
pub mod rules;
pub(crate) mod secrets;
mod upstream;
mod watchdog;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use sluice_identity::policy::Decision;
use tokio::net::TcpStream;
use tower::ServiceBuilder;
use tracing::debug;

use self::enforce::EnforceLayer;
use self::forward::Forward;
use self::record::Parties;
use self::rules::{ConnKey, Enforcement, RuleCache};
use self::upstream::{H1Pool, H1Sender, H2Client, H2Clients, UpstreamKey};
use self::watchdog::{Activity, Track, Watched};
use super::proxy::Shared;
use super::state::Snapshot;

pub use self::rules::wants_http;

pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams one client may have open at once on one HTTP/2 connection.
const H2_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Largest HTTP/2 header list (decoded), as normalisation's header-bytes limit.
const H2_MAX_HEADER_LIST: u32 = 64 << 10;

/// Why a request got no response from upstream.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Connect(#[from] upstream::H1ConnectError),
    #[error("upstream request: {0}")]
    Request(hyper::Error),
    #[error("upstream request: {0}")]
    Pooled(hyper_util::client::legacy::Error),
}

/// Response bodies: the upstream's, streamed, or one the proxy wrote.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

fn full(body: Full<Bytes>) -> ProxyBody {
    Either::Right(body)
}

/// What the HTTP engine keeps across connections.
#[derive(Debug, Default)]
pub struct Engine {
    pub rules: RuleCache,
    h1: H1Pool,
    h2: H2Clients,
}

/// A redirected connection handed to the engine.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Its original destination.
    pub destination: SocketAddr,
    pub key: ConnKey,
    /// The address to connect upstream from (see `node/proxy.rs`).
    pub bind: Option<IpAddr>,
}

/// One connection's state, shared by its requests.
pub struct ConnState {
    shared: Arc<Shared>,
    info: ConnInfo,
    enforcement: ArcSwap<Enforcement>,
    parties: ArcSwap<Parties>,
    /// The HTTP/1.1 upstream connection this connection's requests go through, between
    /// two requests (taken while one is sent); back to the pool when this ends.
    h1: std::sync::Mutex<Option<H1Sender>>,
    /// The pooled HTTP/2 client of (source, destination), looked up once.
    h2: std::sync::OnceLock<H2Client>,
}

impl Drop for ConnState {
    fn drop(&mut self) {
        let held = self
            .h1
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(sender) = held {
            self.shared.http.h1.checkin(self.upstream_key(), sender);
        }
    }
}

impl ConnState {
    /// The rules for the current snapshot: the connection's own, recomputed once after a
    /// reload.
    fn enforcement(&self, snapshot: &Snapshot) -> Arc<Enforcement> {
        let current = self.enforcement.load_full();
        if current.generation == snapshot.generation {
            return current;
        }
        let fresh = Arc::new(Enforcement::decide(
            snapshot,
            &self.shared.http.rules,
            self.info.key,
        ));
        self.enforcement.store(fresh.clone());
        fresh
    }

    fn upstream_key(&self) -> UpstreamKey {
        UpstreamKey {
            source: self.info.key.source,
            destination: self.info.destination,
            bind: self.info.bind,
        }
    }

    /// The HTTP/2 client for this connection's requests.
    fn h2_client(&self) -> H2Client {
        self.h2
            .get_or_init(|| self.shared.http.h2.client(self.upstream_key()))
            .clone()
    }

    /// Sends an HTTP/1.x request upstream: over the connection this one holds, else a
    /// pooled one, else a new one. A request a held or pooled connection returned unsent
    /// (the server had closed it) goes over the next one.
    async fn send_h1(&self, mut req: Request<Incoming>) -> Result<Response<Incoming>, SendError> {
        let key = self.upstream_key();
        loop {
            let held = self
                .h1
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .or_else(|| self.shared.http.h1.checkout(&key));
            let (mut sender, fresh) = match held {
                Some(sender) => (sender, false),
                None => (upstream::connect_h1(&key).await?, true),
            };
            if let Err(e) = sender.ready().await {
                if fresh {
                    return Err(SendError::Request(e));
                }
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => {
                    *self
                        .h1
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sender);
                    return Ok(response);
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(SendError::Request(e.into_error())),
                },
            }
        }
    }

    /// The connection's ends as flows show them, for the current snapshot.
    fn parties(&self, snapshot: &Snapshot) -> Arc<Parties> {
        let current = self.parties.load_full();
        if current.generation == snapshot.generation {
            return current;
        }
        let fresh = Arc::new(Parties::of(snapshot, &self.info));
        self.parties.store(fresh.clone());
        fresh
    }
}

/// Serves one connection until the client or a timeout ends it. `egress` and `ingress`
/// are the connection's decisions (already allowed at L3/L4) from `snapshot`.
pub async fn serve(
    client: TcpStream,
    info: ConnInfo,
    shared: Arc<Shared>,
    snapshot: &Snapshot,
    egress: &Decision,
    ingress: &Decision,
) {
    let enforcement = Enforcement::from_decisions(snapshot, &shared.http.rules, egress, ingress);
    let parties = Parties::of(snapshot, &info);
    let conn = Arc::new(ConnState {
        shared,
        info,
        enforcement: ArcSwap::from_pointee(enforcement),
        parties: ArcSwap::from_pointee(parties),
        h1: std::sync::Mutex::new(None),
        h2: std::sync::OnceLock::new(),
    });
    let _ = client.set_nodelay(true);
    let timeouts = snapshot.config.node.http;
    let activity = Activity::new(timeouts);
    let service = Track::new(
        activity.clone(),
        ServiceBuilder::new()
            .layer(EnforceLayer::new(conn.clone()))
            .service(Forward::new(conn)),
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog times heads; hyper's timer would also cut keep-alive waits.
        .header_read_timeout(None)
        // Header fields per request: hyper's default, 100, is normalisation's limit too
        // (431 beyond it; http_e2e holds both to it). Not set explicitly: a configured
        // limit makes hyper build its header arrays element by element on every parse.
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    let io = TokioIo::new(Watched::new(client, activity.clone()));
    let connection = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
    let ended = watchdog::run(connection, &activity, |c| c.graceful_shutdown()).await;
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            debug!(peer = %info.peer, destination = %info.destination, error = %e, "HTTP connection ended with an error");
        }
        Err(expiry) => {
            debug!(peer = %info.peer, destination = %info.destination, reason = expiry.reason(), "HTTP connection closed by the watchdog");
        }
    }
}
