//! A successor serves the sockets its predecessor bound: a query that arrives while
//! neither reads waits in the socket and is answered by the successor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FixedOriginalDst, HookMode, PatternPolicy, RecordingHook, query, tcp_recv, tcp_send};
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use sluice_dns::{DnsProxy, Handlers, ProxyConfig};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(3);

/// A UDP resolver on 127.0.0.1 answering every A query with 192.0.2.1.
async fn resolver() -> SocketAddr {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = udp.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let (len, peer) = udp.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..len]).unwrap();
            let mut m = Message::response(q.metadata.id, q.metadata.op_code);
            m.add_queries(q.queries.clone());
            m.add_answer(Record::from_rdata(
                q.queries[0].name().clone(),
                30,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            ));
            udp.send_to(&m.to_vec().unwrap(), peer).await.unwrap();
        }
    });
    addr
}

fn handlers(upstream: SocketAddr) -> Handlers<RecordingHook> {
    let (events, _) = mpsc::channel(1024);
    Handlers {
        policy: PatternPolicy::allowing(&["*"]),
        original_dst: Arc::new(FixedOriginalDst(Some(upstream))),
        answer_hook: Arc::new(RecordingHook {
            mode: HookMode::Succeed,
            calls: Mutex::new(Vec::new()),
            started: mpsc::unbounded_channel().0,
        }),
        events: Arc::new(events),
    }
}

fn answered(reply: &[u8], id: u16) -> bool {
    let m = Message::from_vec(reply).unwrap();
    m.metadata.id == id && m.answers.len() == 1
}

#[tokio::test]
async fn a_successor_answers_what_arrived_while_nobody_was_reading() {
    let upstream = resolver().await;
    let first = DnsProxy::bind(
        ProxyConfig::new((Ipv4Addr::LOCALHOST, 0).into()),
        handlers(upstream),
    )
    .await
    .unwrap();
    let addr = first.local_addr();
    let handed_over = first.try_clone_sockets().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(first.serve(async move {
        let _ = stopped.await;
    }));

    // Answered by the first proxy.
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let q = |id| query(id, "www.example.", RecordType::A).to_vec().unwrap();
    client.send_to(&q(1), addr).await.unwrap();
    let (len, _) = tokio::time::timeout(WAIT, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(answered(&buf[..len], 1));

    // The first one stops reading; a query and a connection arrive in between.
    stop.send(()).unwrap();
    serving.await.unwrap();
    client.send_to(&q(2), addr).await.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    tcp_send(&mut stream, &q(3)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The successor serves the same sockets and answers both.
    let second =
        DnsProxy::from_sockets(ProxyConfig::new(addr), handlers(upstream), handed_over).unwrap();
    assert_eq!(second.local_addr(), addr);
    tokio::spawn(second.serve(std::future::pending()));
    let (len, _) = tokio::time::timeout(WAIT, client.recv_from(&mut buf))
        .await
        .expect("the query sent during the switch is answered")
        .unwrap();
    assert!(answered(&buf[..len], 2));
    // TCP answers come from the resolver over TCP, which this one does not serve: the
    // accepted connection is what counts (no reset), with an answer or a SERVFAIL.
    let reply = tokio::time::timeout(Duration::from_secs(15), tcp_recv(&mut stream))
        .await
        .expect("the connection made during the switch is served");
    assert!(
        reply.is_some(),
        "the connection was accepted by the successor"
    );
}

#[tokio::test]
async fn sockets_bound_elsewhere_are_refused() {
    let upstream = resolver().await;
    let first = DnsProxy::bind(
        ProxyConfig::new((Ipv4Addr::LOCALHOST, 0).into()),
        handlers(upstream),
    )
    .await
    .unwrap();
    let sockets = first.try_clone_sockets().unwrap();
    let other: SocketAddr = (Ipv4Addr::LOCALHOST, 1).into();
    assert!(DnsProxy::from_sockets(ProxyConfig::new(other), handlers(upstream), sockets).is_err());
}
