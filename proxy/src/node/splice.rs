//! Zero-copy relay of an accepted connection and its upstream with splice(2), through
//! one pipe per direction: bytes go socket → pipe → socket inside the kernel and never
//! through user memory. An idle connection costs its two pipes (no pages until data
//! flows) and no buffers, which keeps memory per idle connection small; bulk transfers
//! skip two copies per byte.
//!
//! Each direction waits for readiness through tokio, splices what the socket has into
//! its pipe, then drains the pipe into the other socket before reading again, so a
//! pipe never holds more than one chunk and never fills. End of stream on one side is
//! passed on as a half-close (`shutdown(SHUT_WR)`) and the other direction goes on, as
//! `tokio::io::copy_bidirectional` does.

use std::io;
use std::net::Shutdown;

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// At most this much per splice call while the pipe has its default capacity (16
/// pages).
const CHUNK: usize = 64 * 1024;

/// The pipe capacity a bulk transfer gets (the kernel's default `pipe-max-size`): 16×
/// fewer splice calls per byte. Only a direction that fills a whole default chunk pays
/// for the larger pipe's slot array, so idle and chatty connections stay small.
const BULK_CHUNK: usize = 1024 * 1024;

/// Relays both directions until both ended; returns the bytes moved each way
/// (`a` → `b`, `b` → `a`). The first error ends both.
pub async fn relay(a: &TcpStream, b: &TcpStream) -> io::Result<(u64, u64)> {
    tokio::try_join!(one_way(a, b), one_way(b, a))
}

async fn one_way(from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
    let (pipe_out, pipe_in) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let mut total = 0u64;
    let mut chunk = CHUNK;
    loop {
        let n = from
            .async_io(Interest::READABLE, || {
                Ok(splice(from, None, &pipe_in, None, chunk, flags)?)
            })
            .await?;
        if n == CHUNK && chunk == CHUNK {
            // A bulk transfer: grow the pipe once (it holds at most one chunk, already
            // drained below before the next read). Refused (pipe-max-size, memory
            // limits): keep the default.
            if let Ok(size) = fcntl_setpipe_size(&pipe_in, BULK_CHUNK) {
                chunk = size.min(BULK_CHUNK);
            }
        }
        if n == 0 {
            // The peer finished sending: pass it on, keep the other direction open.
            // A peer that is already gone makes this fail, which changes nothing.
            let _ = socket2::SockRef::from(to).shutdown(Shutdown::Write);
            return Ok(total);
        }
        let mut pending = n;
        while pending > 0 {
            pending -= to
                .async_io(Interest::WRITABLE, || {
                    Ok(splice(&pipe_out, None, to, None, pending, flags)?)
                })
                .await?;
        }
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// client ⇄ (accepted, upstream) ⇄ server, relayed by `relay`.
    async fn relayed_pair() -> (
        TcpStream,
        TcpStream,
        tokio::task::JoinHandle<io::Result<(u64, u64)>>,
    ) {
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let back = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(front.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = front.accept().await.unwrap();
        let upstream = TcpStream::connect(back.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = back.accept().await.unwrap();
        let task = tokio::spawn(async move { relay(&accepted, &upstream).await });
        (client, server, task)
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_unchanged_and_half_close_is_passed_on() {
        let (mut client, mut server, task) = relayed_pair().await;
        // More than a pipe holds, with a pattern that shows reordering or loss.
        let up: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let up2 = up.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&up2).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), up.len());
        assert!(got == up, "the upstream received different bytes");
        // The client's half-close reached the server; the other direction still works.
        server.write_all(b"reply after half-close").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"reply after half-close");
        let (a, b) = task.await.unwrap().unwrap();
        assert_eq!((a, b), (1_000_000, 22));
    }

    #[tokio::test]
    async fn a_reset_upstream_ends_the_relay_with_an_error() {
        let (mut client, server, task) = relayed_pair().await;
        socket2::SockRef::from(&server)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(server);
        let mut buf = [0u8; 16];
        // The client sees the connection end (reset or EOF), never hangs.
        let r =
            tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap();
    }
}
