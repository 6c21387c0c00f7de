//! UDP exchanges with upstream resolvers over shared sockets.
//!
//! A fresh socket per query costs `socket`, `connect`, two `epoll_ctl` and `close` — a
//! fifth of the proxy's CPU per query. Instead, queries to one upstream (from one source
//! address) share a connected socket, as Cilium's DNS proxy shares one per upstream
//! between concurrent requests (its `SharedClient`):
//!
//! - every query leaves with a **random ID** of the proxy's choosing (a CSPRNG, distinct
//!   among the socket's queries in flight); the client's ID is put back in the answer.
//!   Spoofing an answer therefore takes guessing that ID and the socket's port, as
//!   before (where the port was per query and the ID the client's, often predictable);
//! - a socket serves [`ROTATE_AFTER`] queries, then new queries get a fresh one (a new
//!   random port), so no port stays useful to a spoofer for long; the old socket is
//!   closed once its last answers are in (or their deadlines passed);
//! - one reader task per socket checks each datagram against the query whose ID it
//!   carries (a response, to that question) and hands it over only then: a datagram that
//!   does not answer it (stray, late, forged) is ignored and the query keeps waiting, as
//!   a stub resolver does;
//! - the socket is connected: the kernel drops datagrams from any other address. An
//!   ICMP error it reports (the upstream refuses) fails every query waiting on it, as a
//!   fresh socket's send or receive would have failed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::RngExt;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout, timeout_at};

use crate::upstream::{Exchanged, MAX_MESSAGE, UpstreamError};
use crate::wire::{DnsQuery, parse_answer};

/// Queries one socket serves before new ones get a fresh socket (and port).
pub const ROTATE_AFTER: u32 = 1024;

/// How long a socket's reader waits without traffic before it checks again whether the
/// socket is retired and nobody waits on it.
const READER_IDLE: Duration = Duration::from_secs(1);

/// Tries at a random free ID before the socket counts as full (it never is: in-flight
/// queries are bounded far below 65,536).
const ID_TRIES: usize = 64;

/// What a waiting query receives: its answer, or why there is none.
type Delivery = Result<Exchanged, UpstreamError>;

/// A query waiting on a socket.
struct Waiter {
    /// Which registration it is (an ID is reused once freed).
    token: u64,
    /// The query as the client sent it (its ID the client's).
    query: DnsQuery,
    sender: oneshot::Sender<Delivery>,
}

/// Where queries go, and the local address they leave from (any when `None`).
type Route = (SocketAddr, Option<IpAddr>);

/// The shared sockets, per route.
#[derive(Default)]
pub(crate) struct UdpUpstreams {
    current: Mutex<HashMap<Route, Arc<SharedSocket>>>,
}

struct SharedSocket {
    socket: UdpSocket,
    upstream: SocketAddr,
    /// Queries waiting, by the ID they were sent with, with their registration token.
    waiting: Mutex<HashMap<u16, Waiter>>,
    next_token: AtomicU64,
    /// Queries sent on it; past [`ROTATE_AFTER`] it is retired.
    uses: AtomicU32,
    /// No new query picks it; the reader ends once nobody waits.
    retired: AtomicBool,
}

impl UdpUpstreams {
    /// Sends `packet` (a query, parsed as `query`) to `upstream` from `source` and waits
    /// until `deadline` for its answer, returned with the client's ID.
    pub(crate) async fn exchange(
        &self,
        upstream: SocketAddr,
        source: Option<IpAddr>,
        packet: &[u8],
        query: &DnsQuery,
        deadline: Instant,
    ) -> Result<Exchanged, UpstreamError> {
        let socket = self.socket(upstream, source)?;
        let (registration, receiver) = socket.register(query)?;
        let mut sent = packet.to_vec();
        let Some(id) = sent.get_mut(..2) else {
            return Err(UpstreamError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a query shorter than its ID",
            )));
        };
        id.copy_from_slice(&registration.id.to_be_bytes());
        socket.socket.send(&sent).await?;
        let delivered = timeout_at(deadline, receiver)
            .await
            .map_err(|_| UpstreamError::Timeout)?;
        drop(registration);
        // A closed channel: the reader is gone (the runtime is stopping).
        delivered.unwrap_or_else(|_| {
            Err(UpstreamError::Io(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the upstream socket's reader stopped",
            )))
        })
    }

    /// The socket new queries to `upstream` use, made (and its reader started) when there
    /// is none or the current one is retired.
    fn socket(
        &self,
        upstream: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<Arc<SharedSocket>, UpstreamError> {
        let mut current = lock(&self.current);
        if let Some(socket) = current.get(&(upstream, source)) {
            if socket.uses.fetch_add(1, Ordering::Relaxed) < ROTATE_AFTER {
                return Ok(Arc::clone(socket));
            }
            socket.retired.store(true, Ordering::Relaxed);
        }
        let socket = Arc::new(SharedSocket::open(upstream, source)?);
        tokio::spawn(read_answers(Arc::clone(&socket)));
        current.insert((upstream, source), Arc::clone(&socket));
        Ok(socket)
    }
}

impl SharedSocket {
    fn open(upstream: SocketAddr, source: Option<IpAddr>) -> io::Result<Self> {
        let bind: SocketAddr = match (source, upstream) {
            (Some(ip), _) => (ip, 0).into(),
            (None, SocketAddr::V4(_)) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            (None, SocketAddr::V6(_)) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = std::net::UdpSocket::bind(bind)?;
        // Connected: the kernel drops datagrams from any other source.
        socket.connect(upstream)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: UdpSocket::from_std(socket)?,
            upstream,
            waiting: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(0),
            // Opened for a query: that one is its first use.
            uses: AtomicU32::new(1),
            retired: AtomicBool::new(false),
        })
    }

    /// Picks a random ID no waiting query has and waits on it for `query`'s answer.
    fn register(
        self: &Arc<Self>,
        query: &DnsQuery,
    ) -> Result<(Registration, oneshot::Receiver<Delivery>), UpstreamError> {
        let (sender, receiver) = oneshot::channel();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut waiting = lock(&self.waiting);
        let mut rng = rand::rng();
        for _ in 0..ID_TRIES {
            let id: u16 = rng.random();
            if let Entry::Vacant(free) = waiting.entry(id) {
                free.insert(Waiter {
                    token,
                    query: query.clone(),
                    sender,
                });
                let registration = Registration {
                    socket: Arc::clone(self),
                    id,
                    token,
                };
                return Ok((registration, receiver));
            }
        }
        Err(UpstreamError::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            "no free query ID on the upstream socket",
        )))
    }

    /// Hands a datagram to the query waiting on its ID if it answers that query (with the
    /// client's ID put back); ignores it otherwise.
    fn deliver(&self, mut packet: Vec<u8>) {
        let Some(id) = packet.get(..2).map(|id| u16::from_be_bytes([id[0], id[1]])) else {
            return;
        };
        let mut waiting = lock(&self.waiting);
        let Entry::Occupied(entry) = waiting.entry(id) else {
            tracing::debug!(upstream = %self.upstream, id, "a UDP packet for no waiting query (late, or not from the upstream); ignored");
            return;
        };
        let query = &entry.get().query;
        packet[..2].copy_from_slice(&query.id.to_be_bytes());
        let delivery = match parse_answer(&packet, query) {
            Ok(answer) => Ok(Exchanged { packet, answer }),
            Err(error) if error.is_mismatch() => {
                tracing::debug!(upstream = %self.upstream, id = query.id, %error, "ignoring a UDP packet that does not answer the query");
                return;
            }
            Err(error) => Err(UpstreamError::Answer { error, packet }),
        };
        let _ = entry.remove().sender.send(delivery);
    }

    /// Fails every waiting query with the socket's error.
    fn fail_all(&self, error: &io::Error) {
        for (_, waiter) in lock(&self.waiting).drain() {
            let error = io::Error::new(error.kind(), error.to_string());
            let _ = waiter.sender.send(Err(UpstreamError::Io(error)));
        }
    }

    fn idle(&self) -> bool {
        self.retired.load(Ordering::Relaxed) && lock(&self.waiting).is_empty()
    }
}

/// A query's claim on an ID; dropping it (answered, timed out, cancelled) frees the ID
/// unless the claim was already taken out by a delivery (and the ID perhaps reused).
struct Registration {
    socket: Arc<SharedSocket>,
    id: u16,
    token: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut waiting = lock(&self.socket.waiting);
        if waiting
            .get(&self.id)
            .is_some_and(|waiter| waiter.token == self.token)
        {
            waiting.remove(&self.id);
        }
    }
}

/// Reads a socket's datagrams until it is retired and nobody waits on it.
async fn read_answers(shared: Arc<SharedSocket>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    // Checked after every datagram too: stray datagrams sprayed at a retired socket's
    // port must not keep it open.
    while !shared.idle() {
        match timeout(READER_IDLE, shared.socket.recv(&mut buf)).await {
            Ok(Ok(len)) => shared.deliver(buf[..len].to_vec()),
            Ok(Err(error)) => {
                // On a connected UDP socket: an ICMP error for an earlier send (the
                // upstream refused, or is unreachable).
                tracing::debug!(upstream = %shared.upstream, %error, "DNS upstream socket error");
                shared.fail_all(&error);
            }
            // Nothing for a while: look again whether anybody still waits.
            Err(_) => {}
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single map operation: a panic cannot leave it half
    // done, so a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
