//! The listening sockets themselves, for a process that takes over serving the same
//! address without a gap (the node's live restart): the successor serves the very
//! sockets its predecessor bound, so a query that arrives during the switch waits in the
//! socket's queue for whichever process reads next, and none is refused.

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsFd;

use crate::config::ProxyConfig;
use crate::handler::Handlers;
use crate::hooks::AnswerHook;
use crate::server::{BindError, DnsProxy};

/// A DNS proxy's UDP socket and TCP listener, bound to the same address.
#[derive(Debug)]
pub struct Sockets {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Sockets {
    /// Duplicates of both descriptors (the same sockets).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            udp: self.udp.try_clone()?,
            tcp: self.tcp.try_clone()?,
        })
    }
}

impl<H: AnswerHook> DnsProxy<H> {
    /// Serves sockets bound elsewhere (by a predecessor) instead of binding anew. Both
    /// must be bound to `config.listen`. Must be called within a tokio runtime.
    pub fn from_sockets(
        config: ProxyConfig,
        handlers: Handlers<H>,
        sockets: Sockets,
    ) -> Result<Self, BindError> {
        let addr = config.listen;
        let udp_err = |source| BindError::Udp { addr, source };
        let tcp_err = |source| BindError::Tcp { addr, source };
        let local_addr = sockets.udp.local_addr().map_err(udp_err)?;
        let tcp_addr = sockets.tcp.local_addr().map_err(tcp_err)?;
        let mismatch = |what: &str, got| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the {what} socket handed over is bound to {got}"),
            )
        };
        if local_addr != addr {
            return Err(udp_err(mismatch("UDP", local_addr)));
        }
        if tcp_addr != addr {
            return Err(tcp_err(mismatch("TCP", tcp_addr)));
        }
        sockets.udp.set_nonblocking(true).map_err(udp_err)?;
        sockets.tcp.set_nonblocking(true).map_err(tcp_err)?;
        let udp = tokio::net::UdpSocket::from_std(sockets.udp).map_err(udp_err)?;
        let tcp = tokio::net::TcpListener::from_std(sockets.tcp).map_err(tcp_err)?;
        tracing::info!(addr = %local_addr, upstream = ?config.fixed_upstream, "DNS proxy serving sockets handed over");
        Ok(Self::assemble(config, handlers, udp, tcp, local_addr))
    }

    /// Duplicates of the listening sockets, for a successor.
    pub fn try_clone_sockets(&self) -> io::Result<Sockets> {
        Ok(Sockets {
            udp: self.udp.as_fd().try_clone_to_owned()?.into(),
            tcp: self.tcp.as_fd().try_clone_to_owned()?.into(),
        })
    }
}
