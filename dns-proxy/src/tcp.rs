//! DNS over TCP (RFC 7766): 2-byte length framing, several queries per connection handled
//! concurrently and answered as they complete (the ID tells them apart), an idle timeout.
//!
//! A connection's reader stops when the client closes, sends a frame the proxy cannot read
//! in time, stays idle past `tcp_idle_timeout`, sends a query that policy drops
//! (`PolicyAnswer::Drop`: the rest would be dropped alike), or [`STOP_GRACE`] after the
//! proxy began to stop (a node handing over: the client reconnects to the successor,
//! which reads the same listener, as RFC 7766 asks clients to when a server closes); queries
//! already read still get their answers before the connection closes. The grace serves a
//! client that connected just before the stop and is about to send; a frame cut off by
//! it was not a query yet, and the client sends it again on its next connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use crate::handler::Shared;
use crate::hooks::{AnswerHook, Transport};

/// How long a stopping proxy still reads queries on its open connections.
pub(crate) const STOP_GRACE: Duration = Duration::from_millis(500);

/// When the proxy is stopping: the instant its connections stop reading.
pub(crate) type StopAt = watch::Receiver<Option<Instant>>;

/// Accepts connections while `connections` has room (one permit each, held until the
/// connection is closed); each stops reading at the instant `stop` announces.
pub(crate) async fn accept_loop<H: AnswerHook>(
    listener: TcpListener,
    shared: Arc<Shared<H>>,
    connections: Arc<Semaphore>,
    stop: StopAt,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Per-connection failures (reset before accept) and descriptor exhaustion
                // alike: log and keep accepting; a short pause keeps the latter from spinning.
                tracing::warn!(%error, "DNS proxy TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::debug!(%peer, "too many DNS TCP connections; closing a new one");
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, shared, stop).await;
            drop(permit);
        });
    }
}

async fn serve_connection<H: AnswerHook>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<H>>,
    mut stop: StopAt,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(Mutex::new(writer));
    let pipelined = Arc::new(Semaphore::new(shared.config.max_tcp_pipelined));
    let idle = shared.config.tcp_idle_timeout;
    let mut queries = JoinSet::new();
    // Told by a query that policy dropped. `notify_one` keeps the wake-up when the reader
    // is not waiting yet, so none is lost.
    let dropped = Arc::new(Notify::new());

    loop {
        // Between queries the idle timeout applies; a frame once started must arrive within
        // it too, so a client cannot hold the connection with a trickle of bytes.
        let len = tokio::select! {
            read = timeout(idle, reader.read_u16()) => match read {
                Ok(Ok(len)) => len,
                Ok(Err(_)) | Err(_) => break,
            },
            () = dropped.notified() => break,
            () = reading_ends(&mut stop) => break,
        };
        let mut packet = vec![0u8; usize::from(len)];
        tokio::select! {
            read = timeout(idle, reader.read_exact(&mut packet)) => match read {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => break,
            },
            () = reading_ends(&mut stop) => break,
        }
        let Ok(permit) = Arc::clone(&pipelined).acquire_owned().await else {
            break;
        };
        let shared = Arc::clone(&shared);
        let writer = Arc::clone(&writer);
        let dropped = Arc::clone(&dropped);
        queries.spawn(async move {
            let handled = shared.handle(&packet, peer, Transport::Tcp).await;
            drop(permit);
            if let Some(reply) = &handled.reply {
                write_frame(&writer, peer, reply).await;
            }
            if handled.closes_connection() {
                dropped.notify_one();
            }
            shared.handlers.events.record(handled.event);
        });
        // Reap finished queries so the set does not grow with the connection's life.
        while queries.try_join_next().is_some() {}
    }
    while queries.join_next().await.is_some() {}
    let _ = writer.lock().await.shutdown().await;
}

/// Completes when a connection must stop reading: at the instant a stopping proxy set,
/// or at once when the proxy is gone.
async fn reading_ends(stop: &mut StopAt) {
    let at = match stop.wait_for(Option::is_some).await {
        Ok(at) => *at,
        Err(_) => return,
    };
    if let Some(at) = at {
        sleep_until(at).await;
    }
}

async fn write_frame(writer: &Mutex<OwnedWriteHalf>, peer: SocketAddr, reply: &[u8]) {
    let Ok(len) = u16::try_from(reply.len()) else {
        tracing::warn!(%peer, len = reply.len(), "DNS answer too large for TCP framing; dropped");
        return;
    };
    let mut frame = Vec::with_capacity(reply.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(reply);
    if let Err(error) = writer.lock().await.write_all(&frame).await {
        tracing::debug!(%peer, %error, "cannot send a DNS answer over TCP");
    }
}
