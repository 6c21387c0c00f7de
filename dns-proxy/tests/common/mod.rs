//! A proxy in-process with test doubles for the node's side, and DNS clients built on
//! hickory-proto, shared by the proxy's integration tests.

#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use sluice_dns::{
    AnswerHook, ClientInfo, DnsEvent, DnsPolicy, DnsProxy, Handlers, HookError, Origin,
    OriginalDst, PolicyAnswer, ProxyConfig, ResolvedAnswer, Transport,
};
use sluice_l7::dns::{DnsPatternSet, FqdnPattern};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot};

/// `rules.dns` as the node would enforce it: `matchPattern` selectors in a set.
pub struct PatternPolicy(pub DnsPatternSet);

impl PatternPolicy {
    pub fn allowing(patterns: &[&str]) -> Arc<Self> {
        Arc::new(Self(DnsPatternSet::new(
            patterns
                .iter()
                .map(|p| FqdnPattern::match_pattern(p).unwrap()),
        )))
    }
}

impl DnsPolicy for PatternPolicy {
    fn check(&self, _: &ClientInfo, qname: &str, _: RecordType) -> PolicyAnswer {
        if self.0.allows_query(qname) {
            PolicyAnswer::Allow
        } else {
            PolicyAnswer::Deny
        }
    }
}

/// The same answer for every query.
pub struct FixedPolicy(pub PolicyAnswer);

impl DnsPolicy for FixedPolicy {
    fn check(&self, _: &ClientInfo, _: &str, _: RecordType) -> PolicyAnswer {
        self.0
    }
}

/// Every client was going to `0`.
pub struct FixedOriginalDst(pub Option<SocketAddr>);

impl OriginalDst for FixedOriginalDst {
    fn original_dst(&self, _: SocketAddr, _: Transport) -> Option<Origin> {
        self.0.map(|server| Origin {
            server,
            client_identity: 0,
        })
    }
}

/// What the answer hook does.
#[derive(Clone)]
pub enum HookMode {
    Succeed,
    Fail,
    /// Finish after this long.
    Sleep(Duration),
    /// Wait until the test calls `Notify::notify_one`.
    Gate(Arc<Notify>),
    /// Panic at once (a bug in the node's hook).
    Panic,
}

/// An answer hook that records every call, with the instant it finished.
pub struct RecordingHook {
    pub mode: HookMode,
    pub calls: Mutex<Vec<(ClientInfo, ResolvedAnswer, Instant)>>,
    /// Told when a call starts.
    pub started: mpsc::UnboundedSender<ResolvedAnswer>,
}

impl AnswerHook for RecordingHook {
    async fn on_answer(
        &self,
        client: &ClientInfo,
        answer: &ResolvedAnswer,
    ) -> Result<(), HookError> {
        let _ = self.started.send(answer.clone());
        match &self.mode {
            HookMode::Succeed => {}
            HookMode::Fail => return Err("kernel map full".into()),
            HookMode::Sleep(d) => tokio::time::sleep(*d).await,
            HookMode::Gate(gate) => gate.notified().await,
            HookMode::Panic => panic!("the hook has a bug"),
        }
        self.calls
            .lock()
            .unwrap()
            .push((*client, answer.clone(), Instant::now()));
        Ok(())
    }
}

/// A running proxy and what the test needs to watch it.
pub struct Proxy {
    pub addr: SocketAddr,
    pub hook: Arc<RecordingHook>,
    pub hook_started: mpsc::UnboundedReceiver<ResolvedAnswer>,
    pub events: mpsc::Receiver<DnsEvent>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Proxy {
    /// The next event, within a few seconds.
    pub async fn event(&mut self) -> DnsEvent {
        tokio::time::timeout(Duration::from_secs(15), self.events.recv())
            .await
            .expect("no DNS event in time")
            .expect("event channel closed")
    }

    /// Stops the proxy and waits until `serve` returned.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
    }

    pub fn hook_calls(&self) -> Vec<(ClientInfo, ResolvedAnswer, Instant)> {
        self.hook.calls.lock().unwrap().clone()
    }
}

/// A proxy on 127.0.0.1 with a random port.
pub async fn start_proxy(
    configure: impl FnOnce(&mut ProxyConfig),
    policy: Arc<dyn DnsPolicy>,
    original_dst: Option<SocketAddr>,
    hook_mode: HookMode,
) -> Proxy {
    let mut config = ProxyConfig::new((Ipv4Addr::LOCALHOST, 0).into());
    configure(&mut config);
    let (started_tx, hook_started) = mpsc::unbounded_channel();
    let hook = Arc::new(RecordingHook {
        mode: hook_mode,
        calls: Mutex::new(Vec::new()),
        started: started_tx,
    });
    let (events_tx, events) = mpsc::channel(1024);
    let proxy = DnsProxy::bind(
        config,
        Handlers {
            policy,
            original_dst: Arc::new(FixedOriginalDst(original_dst)),
            answer_hook: Arc::clone(&hook),
            events: Arc::new(events_tx),
        },
    )
    .await
    .unwrap();
    let addr = proxy.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(proxy.serve(async move {
        let _ = stopped.await;
    }));
    Proxy {
        addr,
        hook,
        hook_started,
        events,
        stop: Some(stop),
        served: Some(served),
    }
}

/// A query message, the name's case kept as given.
pub fn query(id: u16, name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

/// Sends `packet` over UDP and returns the first answer, or `None` after `wait`.
pub async fn udp_exchange(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        Ok(Err(e)) => panic!("UDP receive: {e}"),
        Err(_) => None,
    }
}

/// Writes one framed message on a TCP stream.
pub async fn tcp_send(stream: &mut TcpStream, packet: &[u8]) {
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).await.unwrap();
}

/// Reads one framed message from a TCP stream; `None` at EOF.
pub async fn tcp_recv(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let len = match stream.read_u16().await {
        Ok(len) => len,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) => panic!("TCP receive: {e}"),
    };
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    Some(buf)
}
