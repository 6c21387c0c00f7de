//! The listeners: one UDP socket and one TCP listener on the same address.
//!
//! UDP: each datagram is one query, handled on its own task (at most `max_in_flight` at
//! once), answered from the listening socket to the sender's address.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, watch};

use crate::config::ProxyConfig;
use crate::handler::{Handled, Handlers, Shared};
use crate::hooks::{AnswerHook, Transport};
use crate::tcp;
use crate::upstream::MAX_MESSAGE;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "cannot bind the DNS proxy's UDP socket on {addr}: {source} (is another DNS server or proxy using the port?)"
    )]
    Udp { addr: SocketAddr, source: io::Error },
    #[error(
        "cannot bind the DNS proxy's TCP listener on {addr}: {source} (is another DNS server or proxy using the port?)"
    )]
    Tcp { addr: SocketAddr, source: io::Error },
}

/// A bound DNS proxy, ready to serve.
pub struct DnsProxy<H> {
    pub(crate) udp: Arc<UdpSocket>,
    pub(crate) tcp: TcpListener,
    pub(crate) shared: Arc<Shared<H>>,
}

impl<H: AnswerHook> DnsProxy<H> {
    /// Binds UDP and TCP on `config.listen`. With port 0 the kernel picks the UDP port and
    /// TCP binds the same one.
    pub async fn bind(config: ProxyConfig, handlers: Handlers<H>) -> Result<Self, BindError> {
        let addr = config.listen;
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| BindError::Udp { addr, source })?;
        let local_addr = udp
            .local_addr()
            .map_err(|source| BindError::Udp { addr, source })?;
        let tcp = TcpListener::bind(local_addr)
            .await
            .map_err(|source| BindError::Tcp {
                addr: local_addr,
                source,
            })?;
        tracing::info!(addr = %local_addr, upstream = ?config.fixed_upstream, "DNS proxy bound");
        Ok(Self::assemble(config, handlers, udp, tcp, local_addr))
    }

    pub(crate) fn assemble(
        config: ProxyConfig,
        handlers: Handlers<H>,
        udp: UdpSocket,
        tcp: TcpListener,
        local_addr: SocketAddr,
    ) -> Self {
        let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
        Self {
            udp: Arc::new(udp),
            tcp,
            shared: Arc::new(Shared {
                config,
                local_addr,
                handlers,
                in_flight,
                udp_upstreams: Default::default(),
            }),
        }
    }

    /// The address both listeners are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Serves until `shutdown` completes: then no new datagram or connection is accepted,
    /// open TCP connections read for a short grace more and close (their clients
    /// reconnect to whatever serves the port next: a successor reads the same listener),
    /// and what was read, UDP queries and TCP queries alike, is answered before this
    /// returns (each is bounded by the upstream and hook timeouts, all together by the
    /// grace and their sum), so that what the answers teach is installed when this
    /// returns — a node handing over to a successor saves it next.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let config = &self.shared.config;
        let connections = Arc::new(Semaphore::new(config.max_tcp_connections));
        let (stopping, stop) = watch::channel(None);
        let udp = udp_loop(Arc::clone(&self.udp), Arc::clone(&self.shared));
        let tcp = tcp::accept_loop(
            self.tcp,
            Arc::clone(&self.shared),
            Arc::clone(&connections),
            stop,
        );
        tokio::select! {
            () = shutdown => tracing::info!(addr = %self.shared.local_addr, "DNS proxy stopping"),
            () = udp => {}
            () = tcp => {}
        }
        stopping.send_replace(Some(tokio::time::Instant::now() + tcp::STOP_GRACE));
        let bound = tcp::STOP_GRACE + config.upstream_timeout + config.answer_hook_timeout;
        let queries = u32::try_from(config.max_in_flight).unwrap_or(u32::MAX);
        let open = u32::try_from(config.max_tcp_connections).unwrap_or(u32::MAX);
        let started = std::time::Instant::now();
        let finished = tokio::time::timeout(bound, async {
            let udp = self.shared.in_flight.acquire_many(queries).await;
            let tcp = connections.acquire_many(open).await;
            (udp, tcp)
        });
        match finished.await {
            Ok(_) => {
                tracing::debug!(addr = %self.shared.local_addr, waited_ms = started.elapsed().as_millis(), "DNS proxy stopped with no query in flight");
            }
            Err(_) => {
                tracing::warn!(addr = %self.shared.local_addr, "DNS proxy stopped with queries still in flight or TCP answers unsent");
            }
        }
    }
}

async fn udp_loop<H: AnswerHook>(socket: Arc<UdpSocket>, shared: Arc<Shared<H>>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                // Errors queued by ICMP for earlier sends, or a datagram too large: neither
                // is a reason to stop serving. The pause keeps a persistent error from
                // spinning.
                tracing::debug!(%error, "DNS proxy UDP receive error");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                continue;
            }
        };
        let packet = buf[..len].to_vec();
        let socket = Arc::clone(&socket);
        let shared = Arc::clone(&shared);
        match Arc::clone(&shared.in_flight).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    let handled = shared.handle(&packet, peer, Transport::Udp).await;
                    drop(permit);
                    send_udp(&socket, peer, handled, &shared).await;
                });
            }
            Err(_) => {
                let handled = shared.overloaded(&packet, peer, Transport::Udp);
                tokio::spawn(async move { send_udp(&socket, peer, handled, &shared).await });
            }
        }
    }
}

async fn send_udp<H>(socket: &UdpSocket, peer: SocketAddr, handled: Handled, shared: &Shared<H>) {
    if let Some(reply) = &handled.reply
        && let Err(error) = socket.send_to(reply, peer).await
    {
        tracing::debug!(%peer, %error, "cannot send a DNS answer over UDP");
    }
    shared.handlers.events.record(handled.event);
}
