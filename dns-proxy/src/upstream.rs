//! Sending a query's original bytes to its upstream and getting the matching answer back.
//!
//! One fresh socket per query: its random source port is the only extra entropy a spoofer
//! must guess (the ID is the client's, kept as sent), the kernel routes answers for it to this
//! query alone, and no ID table is shared between queries.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
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

/// Over UDP, from `source` when given (any local address otherwise). Packets that are not
/// the answer to `query` (other ID, other question, not a response) are ignored and the
/// wait goes on until `deadline`, as a stub resolver does: a forged packet must not cost
/// the client the real answer.
pub async fn exchange_udp(
    upstream: SocketAddr,
    source: Option<IpAddr>,
    packet: &[u8],
    query: &DnsQuery,
    deadline: Instant,
) -> Result<Exchanged, UpstreamError> {
    let bind: SocketAddr = match (source, upstream) {
        (Some(ip), _) => (ip, 0).into(),
        (None, SocketAddr::V4(_)) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (None, SocketAddr::V6(_)) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).await?;
    // Connected: the kernel drops datagrams from any other source.
    socket.connect(upstream).await?;
    socket.send(packet).await?;
    loop {
        let received = timeout_at(deadline, recv_datagram(&socket))
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        match parse_answer(&received, query) {
            Ok(answer) => {
                return Ok(Exchanged {
                    packet: received,
                    answer,
                });
            }
            Err(error) if error.is_mismatch() => {
                tracing::debug!(%upstream, id = query.id, %error, "ignoring a UDP packet that does not answer the query");
            }
            Err(error) => {
                return Err(UpstreamError::Answer {
                    error,
                    packet: received,
                });
            }
        }
    }
}

thread_local! {
    /// Where datagrams land before the proxy knows their size. A datagram may be as large
    /// as [`MAX_MESSAGE`] and answers are a few hundred bytes: allocating (and zeroing)
    /// 64 KiB per query for them cost about a tenth of the proxy's CPU per query.
    /// Borrowed only inside a synchronous `try_recv`, never across an await.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; MAX_MESSAGE].into_boxed_slice());
}

/// The next datagram on a connected socket, in a buffer of its own size.
async fn recv_datagram(socket: &UdpSocket) -> io::Result<Vec<u8>> {
    loop {
        socket.readable().await?;
        let received = SCRATCH.with_borrow_mut(|buf| {
            let len = socket.try_recv(buf)?;
            Ok::<_, io::Error>(buf[..len].to_vec())
        });
        match received {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            received => return received,
        }
    }
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
