//! DNS over TCP (RFC 7766): 2-byte length framing, several queries per connection handled
//! concurrently and answered as they complete (the ID tells them apart), an idle timeout.
//!
//! A connection's reader stops when the client closes, sends a frame the proxy cannot read
//! in time, stays idle past `tcp_idle_timeout`, or sends a query that policy drops
//! (`PolicyAnswer::Drop`: the rest would be dropped alike); queries already read still get
//! their answers before the connection closes.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::handler::Shared;
use crate::hooks::{AnswerHook, Transport};

pub(crate) async fn accept_loop<H: AnswerHook>(listener: TcpListener, shared: Arc<Shared<H>>) {
    let connections = Arc::new(Semaphore::new(shared.config.max_tcp_connections));
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
        tokio::spawn(async move {
            serve_connection(stream, peer, shared).await;
            drop(permit);
        });
    }
}

async fn serve_connection<H: AnswerHook>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<H>>,
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
        };
        let mut packet = vec![0u8; usize::from(len)];
        match timeout(idle, reader.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
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
