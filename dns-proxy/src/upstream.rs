//! Sending a query's original bytes to its upstream and getting the matching answer back.
//!
//! Over TCP, one fresh connection per query (the client's ID kept as sent). UDP shares
//! sockets between queries: see `shared_udp`.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};

use crate::wire::{AnswerError, DnsAnswer, DnsQuery, parse_answer};

/// The largest DNS message (TCP's 2-byte length, and UDP over IPv4 and IPv6 below it).
pub const MAX_MESSAGE: usize = 65_535;

/// How an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no answer before the deadline")]
    Timeout,
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The upstream answered this query, but the answer is broken (UDP), or answered
    /// something else (TCP, where nothing else can arrive). The bytes are kept: a broken
    /// answer with TC set is still relayed.
    #[error("{error}")]
    Answer { error: AnswerError, packet: Vec<u8> },
}

/// A checked answer and its bytes as received.
pub struct Exchanged {
    pub packet: Vec<u8>,
    pub answer: DnsAnswer,
}

/// Over TCP (RFC 7766 framing: a 2-byte length before each message), one query on a fresh
/// connection from `source` when given.
pub async fn exchange_tcp(
    upstream: SocketAddr,
    source: Option<IpAddr>,
    packet: &[u8],
    query: &DnsQuery,
    deadline: Instant,
) -> Result<Exchanged, UpstreamError> {
    let exchange = async {
        let mut stream = connect_tcp(upstream, source).await?;
        stream.set_nodelay(true)?;
        let len = u16::try_from(packet.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query over 65535 bytes"))?;
        let mut framed = Vec::with_capacity(packet.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(packet);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut answer = vec![0u8; usize::from(len)];
        stream.read_exact(&mut answer).await?;
        Ok::<_, io::Error>(answer)
    };
    let received = timeout_at(deadline, exchange)
        .await
        .map_err(|_| UpstreamError::Timeout)??;
    match parse_answer(&received, query) {
        Ok(answer) => Ok(Exchanged {
            packet: received,
            answer,
        }),
        Err(error) => Err(UpstreamError::Answer {
            error,
            packet: received,
        }),
    }
}

async fn connect_tcp(upstream: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(upstream).await;
    };
    let socket = match upstream {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind((source, 0).into())?;
    socket.connect(upstream).await
}
