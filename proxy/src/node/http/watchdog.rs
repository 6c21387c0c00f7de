//! A connection's watchdog: closes HTTP connections that hold a slot without using it.
//!
//! hyper's own limits leave holes. Its HTTP/1 header timer starts when hyper starts
//! waiting for a head — right after the previous response — so it doubles as the
//! keep-alive idle limit and cannot be set apart from it; the version detection in front
//! of it (hyper-util's `auto`, which reads up to the 24 bytes of the HTTP/2 preface) has
//! no limit at all, so a client that connects and sends nothing, or half a preface, held
//! its connection forever; and HTTP/2 has only keep-alive pings, which a client that
//! answers them but opens no stream passes forever. The watchdog replaces the first and
//! closes the others. Per connection it knows one phase:
//!
//! ```text
//! Head(since)  a request head is due: from accept for the first request (and for the
//!              HTTP/2 preface), from its first byte for a later HTTP/1 request
//!              → closed, without an answer, `header` after `since`
//! Busy         at least one request in flight (from the service call until the response
//!              body is dropped): never closed here; a slow body holds its own stream,
//!              as a spliced connection would
//! Idle(since)  nothing in flight: an HTTP/1 keep-alive wait, an HTTP/2 connection
//!              without streams (a header block still arriving has none yet: HTTP/2's
//!              slowloris is idle) → graceful shutdown `idle` after `since` (HTTP/1: closed;
//!              HTTP/2: GOAWAY, then closed), and closed outright if it is still idle
//!              `idle` later
//! ```
//!
//! What moves a connection between phases comes from two places: the service ([`Track`]:
//! a request starts, its response body is dropped) and the socket ([`Watched`]: the
//! bytes of the HTTP/2 preface, the first byte of the next HTTP/1 head). HTTP/2 control
//! frames (PING, SETTINGS, WINDOW_UPDATE) are bytes too, which is why the socket counts
//! only for HTTP/1 once the preface has told the versions apart. A connection that is
//! upgraded (WebSocket, CONNECT) leaves the watchdog when hyper hands it over: a tunnel
//! is relayed like a spliced connection.
//!
//! Requests begin in the connection's task (hyper calls the service there) and end
//! wherever their response body is dropped (an HTTP/2 stream's own task); the phase sits
//! behind a lock so that the watchdog always reads it whole.
//!
//! Cost on the hot path: one relaxed atomic load per socket read; an uncontended
//! per-connection lock at request start, at response end and at the first byte of a
//! head. The watchdog is woken by a phase change only when the new deadline comes before
//! the one it sleeps until (`armed`); otherwise it wakes at that earlier instant, finds
//! the phase moved on, and sleeps again until the current deadline. On a busy keep-alive
//! connection that is one wake per header timeout instead of two per request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use sluice_config::HttpTimeouts;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a client must send first to speak HTTP/2 with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One connection's activity, shared by its socket, its service and its watchdog.
#[derive(Debug)]
pub struct Activity {
    timeouts: HttpTimeouts,
    state: Mutex<State>,
    /// HTTP/1 only: nothing is in flight and no byte of the next head has arrived.
    /// Read on every socket read, hence apart from the lock.
    awaiting_head: AtomicBool,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    in_flight: usize,
    http2: bool,
    /// When the watchdog looks again at the latest; `None` while it waits for a change.
    armed: Option<Instant>,
}

impl State {
    fn deadline(&self, timeouts: &HttpTimeouts) -> Option<(Instant, Expiry)> {
        match self.phase {
            Phase::Head(since) => Some((since + timeouts.header, Expiry::Head)),
            Phase::Busy => None,
            Phase::Idle(since) => Some((since + timeouts.idle, Expiry::Idle)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head(Instant),
    Busy,
    Idle(Instant),
}

/// Why the watchdog ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head (or the HTTP/2 preface) did not arrive complete in time: close.
    Head,
    /// Nothing in flight for the idle timeout: shut down gracefully, or close if that was
    /// done once already.
    Idle,
}

impl Expiry {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Head => "the request head did not arrive within the header timeout",
            Self::Idle => "no request for the idle timeout",
        }
    }
}

impl Activity {
    /// A connection just accepted: its first request head (or preface) is due.
    pub fn new(timeouts: HttpTimeouts) -> Arc<Self> {
        Arc::new(Self {
            timeouts,
            state: Mutex::new(State {
                phase: Phase::Head(Instant::now()),
                in_flight: 0,
                http2: false,
                armed: None,
            }),
            awaiting_head: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the watchdog must look again, and what it finds then if nothing changes;
    /// `None` while a request is in flight.
    pub fn deadline(&self) -> Option<(Instant, Expiry)> {
        self.state().deadline(&self.timeouts)
    }

    /// Where the watchdog's timer goes: the current deadline when it comes first or the
    /// timer has fired (`current` is `None`), else the timer stays; recorded as `armed`.
    fn arm(&self, current: Option<Instant>) -> Option<Instant> {
        let mut s = self.state();
        let target = s
            .deadline(&self.timeouts)
            .map(|(at, _)| current.map_or(at, |c| c.min(at)));
        s.armed = target;
        target
    }

    /// Wakes the watchdog if the phase just set has a deadline before the one it sleeps
    /// until (or it sleeps without one).
    fn changed_to(&self, s: MutexGuard<'_, State>) {
        let sooner = match (s.deadline(&self.timeouts), s.armed) {
            (Some((at, _)), Some(armed)) => at < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        drop(s);
        if sooner {
            self.changed.notify_one();
        }
    }

    /// Waits until the phase may have changed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        let mut s = self.state();
        s.in_flight += 1;
        s.phase = Phase::Busy;
        self.awaiting_head.store(false, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn end(&self) {
        let mut s = self.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.phase = Phase::Idle(Instant::now());
            if !s.http2 {
                self.awaiting_head.store(true, Ordering::Relaxed);
            }
            self.changed_to(s);
        }
    }

    /// The connection speaks HTTP/2: from now on only streams count.
    fn http2(&self) {
        let mut s = self.state();
        s.http2 = true;
        if s.in_flight == 0 {
            s.phase = Phase::Idle(Instant::now());
        }
        self.changed_to(s);
    }

    /// Restarts the idle wait (after a graceful shutdown began).
    fn idle_again(&self) {
        let mut s = self.state();
        if let Phase::Idle(_) = s.phase {
            s.phase = Phase::Idle(Instant::now());
        }
    }

    /// The first byte of the next HTTP/1 head arrived.
    fn head_started(&self) {
        let mut s = self.state();
        if s.in_flight == 0 && !s.http2 {
            s.phase = Phase::Head(Instant::now());
            self.changed_to(s);
        }
    }
}

/// One request in flight; dropped with its response body (or with the call, when the
/// client gives up first).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The client socket, reporting the bytes that move the phase (see the module
/// documentation).
#[derive(Debug)]
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
    /// Bytes of the HTTP/2 preface seen so far; `None` once the version is known.
    preface: Option<usize>,
}

impl<T> Watched<T> {
    pub fn new(io: T, activity: Arc<Activity>) -> Self {
        Self {
            io,
            activity,
            preface: Some(0),
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        if let Some(seen) = self.preface {
            let want = &H2_PREFACE[seen..];
            let n = want.len().min(bytes.len());
            if bytes[..n] != want[..n] {
                // HTTP/1: its first head has been due since accept.
                self.preface = None;
            } else if seen + n == H2_PREFACE.len() {
                self.preface = None;
                self.activity.http2();
            } else {
                self.preface = Some(seen + n);
            }
            return;
        }
        if self.activity.awaiting_head.load(Ordering::Relaxed)
            && self.activity.awaiting_head.swap(false, Ordering::Relaxed)
        {
            self.activity.head_started();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            this.on_bytes(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The outermost service: counts a request in flight from its call until its response
/// body is dropped.
#[derive(Clone)]
pub struct Track<S> {
    activity: Arc<Activity>,
    inner: S,
}

impl<S> Track<S> {
    pub fn new(activity: Arc<Activity>, inner: S) -> Self {
        Self { activity, inner }
    }
}

impl<S, B, ReqBody> tower::Service<Request<ReqBody>> for Track<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<B>>,
    S::Future: Unpin,
{
    type Response = Response<Tracked<B>>;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        TrackFuture {
            in_flight: Some(self.activity.begin()),
            inner: self.inner.call(req),
        }
    }
}

/// The inner service's future (already boxed, hence `Unpin`: no second allocation).
pub struct TrackFuture<F> {
    in_flight: Option<InFlight>,
    inner: F,
}

impl<F, B, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = Result<Response<Tracked<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(response.map(|r| {
            r.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            })
        }))
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
pub struct Tracked<B> {
    body: B,
    _in_flight: Option<InFlight>,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Drives `conn` (a hyper connection) under the watchdog until it ends; `shutdown` starts
/// its graceful shutdown. Returns the connection's own result, or the expiry that ended it.
pub async fn run<F, T>(
    conn: F,
    activity: &Activity,
    mut shutdown: impl FnMut(Pin<&mut F>),
) -> Result<T, Expiry>
where
    F: Future<Output = T>,
{
    let mut conn = std::pin::pin!(conn);
    // One timer for the connection's life, moved rather than made anew per request.
    let mut sleep = std::pin::pin!(tokio::time::sleep_until(Instant::now()));
    let mut fired = true;
    let mut draining = false;
    loop {
        let target = activity.arm((!fired).then(|| sleep.deadline()));
        if let Some(at) = target
            && (fired || sleep.deadline() != at)
        {
            sleep.as_mut().reset(at);
            fired = false;
        }
        tokio::select! {
            // The connection first: it is what wakes this task nearly every time.
            biased;
            done = conn.as_mut() => return Ok(done),
            () = activity.changed() => {}
            () = sleep.as_mut(), if target.is_some() => {
                fired = true;
                // The phase may have moved since the timer was set: look again.
                let Some((at, expiry)) = activity.deadline() else { continue };
                if Instant::now() < at {
                    continue;
                }
                match expiry {
                    Expiry::Idle if !draining => {
                        draining = true;
                        shutdown(conn.as_mut());
                        // Give the graceful shutdown a full idle period of its own.
                        activity.idle_again();
                    }
                    expiry => return Err(expiry),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The unit of the tests' timeouts (tokio's clock is paused: no test waits for real).
    const TICK: Duration = Duration::from_millis(100);

    fn timeouts() -> HttpTimeouts {
        HttpTimeouts {
            header: TICK * 3,
            idle: TICK * 6,
        }
    }

    /// Reads through a `Watched` duplex end whatever `client` writes.
    fn watched_pair(
        activity: &Arc<Activity>,
    ) -> (tokio::io::DuplexStream, Watched<tokio::io::DuplexStream>) {
        let (client, server) = tokio::io::duplex(1024);
        (client, Watched::new(server, activity.clone()))
    }

    /// A connection whose first request has been read and answered: idle, the next head
    /// not begun.
    async fn after_one_request(
        activity: &Arc<Activity>,
    ) -> (tokio::io::DuplexStream, Watched<tokio::io::DuplexStream>) {
        let (mut client, mut server) = watched_pair(activity);
        let mut buf = [0; 64];
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let _ = server.read(&mut buf).await.unwrap();
        drop(activity.begin());
        (client, server)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_is_due_from_accept() {
        let activity = Activity::new(timeouts());
        let started = Instant::now();
        let got = run(std::future::pending::<()>(), &activity, |_| {}).await;
        assert_eq!(got, Err(Expiry::Head));
        assert_eq!(started.elapsed(), timeouts().header);
    }

    #[tokio::test(start_paused = true)]
    async fn a_preface_turns_the_connection_idle_and_idle_shuts_down_then_closes() {
        let activity = Activity::new(timeouts());
        let (mut client, mut server) = watched_pair(&activity);
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        let mut buf = [0; 64];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(n, 10);
        assert!(matches!(activity.deadline(), Some((_, Expiry::Head))));
        client.write_all(&H2_PREFACE[10..]).await.unwrap();
        let _ = server.read(&mut buf).await.unwrap();
        assert!(matches!(activity.deadline(), Some((_, Expiry::Idle))));

        let started = Instant::now();
        let mut shutdowns = 0;
        let got = run(std::future::pending::<()>(), &activity, |_| {
            shutdowns += 1;
        })
        .await;
        assert_eq!((got, shutdowns), (Err(Expiry::Idle), 1));
        assert_eq!(started.elapsed(), timeouts().idle * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_timed_out_and_its_end_starts_the_idle_wait() {
        let activity = Activity::new(timeouts());
        let (mut client, mut server) = watched_pair(&activity);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0; 64];
        let _ = server.read(&mut buf).await.unwrap();
        let in_flight = activity.begin();
        assert_eq!(activity.deadline(), None);
        let watch = run(std::future::pending::<()>(), &activity, |_| {});
        let ended = async {
            tokio::time::sleep(TICK * 20).await;
            drop(in_flight);
            Instant::now()
        };
        let (got, ended) = tokio::join!(watch, ended);
        assert_eq!(got, Err(Expiry::Idle));
        // Idle, then shut down gracefully and idle once more.
        assert_eq!(ended.elapsed(), timeouts().idle * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_http1_head_is_due_from_its_first_byte() {
        let activity = Activity::new(timeouts());
        let (mut client, mut server) = after_one_request(&activity).await;
        let mut buf = [0; 64];
        assert!(matches!(activity.deadline(), Some((_, Expiry::Idle))));
        tokio::time::sleep(TICK).await;
        client.write_all(b"G").await.unwrap();
        let _ = server.read(&mut buf).await.unwrap();
        let started = Instant::now();
        let got = run(std::future::pending::<()>(), &activity, |_| {}).await;
        assert_eq!(got, Err(Expiry::Head));
        assert_eq!(started.elapsed(), timeouts().header);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_while_the_watchdog_waits_on_idle_is_timed_from_its_first_byte() {
        let activity = Activity::new(timeouts());
        let (mut client, mut server) = after_one_request(&activity).await;
        let mut buf = [0; 64];
        let started = Instant::now();
        let watch = run(std::future::pending::<()>(), &activity, |_| {});
        let trickle = async {
            tokio::time::sleep(TICK).await;
            client.write_all(b"G").await.unwrap();
            let _ = server.read(&mut buf).await.unwrap();
        };
        let (got, ()) = tokio::join!(watch, trickle);
        // The head's deadline (1 + 3 ticks) comes before the idle one (6): it is the one.
        assert_eq!(got, Err(Expiry::Head));
        assert_eq!(started.elapsed(), TICK + timeouts().header);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_hold_on_a_busy_keep_alive_connection() {
        let activity = Activity::new(timeouts());
        let (mut client, mut server) = watched_pair(&activity);
        let mut buf = [0; 64];
        let watch = run(std::future::pending::<()>(), &activity, |_| {});
        // Requests back to back for 10 ticks, longer than both timeouts: the watchdog
        // wakes at deadlines that have moved on and must never act on them.
        let requests = async {
            let mut last_end = Instant::now();
            for _ in 0..20 {
                client.write_all(b"G").await.unwrap();
                let _ = server.read(&mut buf).await.unwrap();
                let in_flight = activity.begin();
                tokio::time::sleep(TICK / 4).await;
                drop(in_flight);
                last_end = Instant::now();
                tokio::time::sleep(TICK / 4).await;
            }
            last_end
        };
        let (got, last_end) = tokio::join!(watch, requests);
        // Then idle: graceful shutdown after `idle`, closed after another `idle`.
        assert_eq!(got, Err(Expiry::Idle));
        assert_eq!(last_end.elapsed(), timeouts().idle * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_sooner_deadline_wakes_the_watchdog() {
        let no_wake = |a: &Arc<Activity>| {
            let a = a.clone();
            async move {
                tokio::time::timeout(Duration::ZERO, a.changed())
                    .await
                    .is_err()
            }
        };
        let activity = Activity::new(timeouts());
        // The watchdog sleeps until the first head is due (3 ticks).
        assert!(activity.arm(None).is_some());
        // A request and its end: the idle deadline (6 ticks) comes later.
        drop(activity.begin());
        assert!(no_wake(&activity).await, "woken for a later deadline");
        // A watchdog waiting with no timer (a request in flight) hears of any deadline.
        let in_flight = activity.begin();
        assert_eq!(activity.arm(None), None);
        drop(in_flight);
        assert!(
            !no_wake(&activity).await,
            "not woken for a deadline it had none of"
        );
        // Idle until 6 ticks from now; a head begun now is due in 3: sooner.
        assert!(activity.arm(None).is_some());
        activity.awaiting_head.store(true, Ordering::Relaxed);
        activity.head_started();
        assert!(!no_wake(&activity).await, "not woken for a sooner deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn http2_control_frames_do_not_count_as_a_head() {
        let activity = Activity::new(timeouts());
        let (mut client, mut server) = watched_pair(&activity);
        let mut buf = [0; 64];
        client.write_all(H2_PREFACE).await.unwrap();
        let _ = server.read(&mut buf).await.unwrap();
        drop(activity.begin());
        // A PING frame, as a client answering keep-alive pings sends.
        client
            .write_all(&[0, 0, 8, 6, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let _ = server.read(&mut buf).await.unwrap();
        assert!(matches!(activity.deadline(), Some((_, Expiry::Idle))));
    }
}
