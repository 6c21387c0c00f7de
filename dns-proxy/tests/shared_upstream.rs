//! UDP queries share sockets to their upstream: what that must not change for a client
//! (its ID, its answer and nobody else's, a refusing upstream answered REFUSED at once),
//! and what it must keep from a spoofer (random IDs, ports that change).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{HookMode, PatternPolicy, query, start_proxy, udp_exchange};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use sluice_dns::{Reason, UDP_SOCKET_QUERIES, Verdict};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);

/// What the upstream saw of each query: the ID and the source port it came with.
type Seen = Arc<Mutex<Vec<(u16, u16)>>>;

/// A UDP resolver on 127.0.0.1 answering `name-N.test.` with 10.0.0.N after a delay that
/// shrinks with N (so answers come back in the reverse order of the queries), and
/// recording what it saw.
async fn upstream(delay_for: fn(u8) -> Duration) -> (SocketAddr, Seen) {
    let socket = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
    let addr = socket.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let (len, peer) = socket.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..len]).unwrap();
            record.lock().unwrap().push((q.metadata.id, peer.port()));
            let name = q.queries[0].name().to_ascii();
            let n: u8 = name
                .trim_start_matches("name-")
                .trim_end_matches(".test.")
                .parse()
                .unwrap_or(0);
            let mut m = Message::response(q.metadata.id, q.metadata.op_code);
            m.add_queries(q.queries.clone());
            m.add_answer(Record::from_rdata(
                q.queries[0].name().clone(),
                30,
                RData::A(A(Ipv4Addr::new(10, 0, 0, n))),
            ));
            let reply = m.to_vec().unwrap();
            let socket = Arc::clone(&socket);
            let delay = delay_for(n);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                socket.send_to(&reply, peer).await.unwrap();
            });
        }
    });
    (addr, seen)
}

fn address(reply: &[u8]) -> Ipv4Addr {
    match Message::from_vec(reply).unwrap().answers[0].data {
        RData::A(A(ip)) => ip,
        ref other => panic!("not an A record: {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_clients_with_the_same_id_each_get_their_own_answer() {
    let (upstream, seen) = upstream(|n| Duration::from_millis(u64::from(50 - n) * 4)).await;
    let proxy = start_proxy(
        |_| {},
        PatternPolicy::allowing(&["*"]),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    // 40 clients, every one with ID 7, all in flight together; answered last-first.
    let clients = (1..=40u8).map(|n| {
        let packet = query(7, &format!("name-{n}.test."), RecordType::A)
            .to_vec()
            .unwrap();
        tokio::spawn(async move { (n, udp_exchange(proxy.addr, &packet, WAIT).await) })
    });
    for client in clients.collect::<Vec<_>>() {
        let (n, reply) = client.await.unwrap();
        let reply = reply.unwrap_or_else(|| panic!("client {n} got no answer"));
        assert_eq!(Message::from_vec(&reply).unwrap().metadata.id, 7);
        assert_eq!(address(&reply), Ipv4Addr::new(10, 0, 0, n), "client {n}");
    }
    // The upstream saw the proxy's IDs, not the clients' 7s: random and distinct among
    // the queries in flight.
    let ids: HashSet<u16> = seen.lock().unwrap().iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 40, "{ids:?}");
    drop(proxy);
}

#[tokio::test]
async fn the_upstream_socket_and_its_port_change_after_a_bounded_number_of_queries() {
    let (upstream, seen) = upstream(|_| Duration::ZERO).await;
    let mut proxy = start_proxy(
        |_| {},
        PatternPolicy::allowing(&["*"]),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let total = usize::try_from(UDP_SOCKET_QUERIES).unwrap() * 2 + 10;
    let packet = query(99, "name-1.test.", RecordType::A).to_vec().unwrap();
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut buf = vec![0u8; 65535];
    for _ in 0..total {
        client.send_to(&packet, proxy.addr).await.unwrap();
        let len = tokio::time::timeout(WAIT, client.recv(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(address(&buf[..len]), Ipv4Addr::new(10, 0, 0, 1));
        proxy.event().await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), total);
    let ports: Vec<u16> = seen.iter().map(|(_, port)| *port).collect();
    // Each socket served its share and no more: three ports, in runs of the bound.
    let mut runs: Vec<(u16, usize)> = Vec::new();
    for port in ports {
        match runs.last_mut() {
            Some((p, count)) if *p == port => *count += 1,
            _ => runs.push((port, 1)),
        }
    }
    let bound = usize::try_from(UDP_SOCKET_QUERIES).unwrap();
    assert_eq!(
        runs.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [bound, bound, 10],
        "{runs:?}"
    );
    let distinct: HashSet<u16> = runs.iter().map(|(p, _)| *p).collect();
    assert_eq!(distinct.len(), 3);
    // Sequential queries: still a fresh random ID each (not a counter).
    let ids: HashSet<u16> = seen.iter().map(|(id, _)| *id).collect();
    assert!(ids.len() > total * 9 / 10, "{} distinct IDs", ids.len());
}

#[tokio::test]
async fn an_upstream_that_refuses_udp_gets_the_client_refused_at_once() {
    // A UDP port nobody listens on: the kernel answers ICMP port unreachable.
    let closed = {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        s.local_addr().unwrap()
    };
    let mut proxy = start_proxy(
        |_| {},
        PatternPolicy::allowing(&["*"]),
        Some(closed),
        HookMode::Succeed,
    )
    .await;
    for id in [1, 2, 3] {
        let started = Instant::now();
        let packet = query(id, "name-1.test.", RecordType::A).to_vec().unwrap();
        let reply = udp_exchange(proxy.addr, &packet, WAIT)
            .await
            .expect("an answer");
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.metadata.id, id);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(started.elapsed() < Duration::from_secs(2));
        let event = proxy.event().await;
        assert_eq!(event.verdict, Verdict::Dropped);
        assert!(
            matches!(event.reason, Reason::Upstream(_)),
            "{:?}",
            event.reason
        );
    }
}

#[tokio::test]
async fn stopping_waits_for_the_udp_queries_in_flight_and_their_hook() {
    let (upstream, _) = upstream(|_| Duration::from_millis(400)).await;
    let mut proxy = start_proxy(
        |_| {},
        PatternPolicy::allowing(&["*"]),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let addr = proxy.addr;
    let packet = query(5, "name-3.test.", RecordType::A).to_vec().unwrap();
    let client = tokio::spawn(async move { udp_exchange(addr, &packet, WAIT).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = Instant::now();
    proxy.stop().await;
    // `serve` returned only once the query in flight was answered and its answer
    // installed (the hook ran): what a node handing over saves next includes it.
    assert!(
        stopping.elapsed() >= Duration::from_millis(200),
        "{:?}",
        stopping.elapsed()
    );
    assert_eq!(proxy.hook_calls().len(), 1);
    let reply = client
        .await
        .unwrap()
        .expect("the query in flight is answered");
    assert_eq!(address(&reply), Ipv4Addr::new(10, 0, 0, 3));
}
