//! The proxy against a scripted upstream: the cases a real resolver will not produce on
//! demand (stray and forged packets, silence, broken answers) and hostile clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{
    FixedPolicy, HookMode, PatternPolicy, query, start_proxy, tcp_recv, tcp_send, udp_exchange,
};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use sluice_dns::{PolicyAnswer, Reason, ResolvedIp, Transport, Verdict};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(3);

/// What the scripted upstream sends back for a query (each entry one UDP datagram; over
/// TCP only the first, after the given delay).
type Script = Arc<dyn Fn(&Message, &[u8]) -> (Duration, Vec<Vec<u8>>) + Send + Sync>;

/// A UDP and TCP "resolver" on one port of 127.0.0.1 that answers from a script.
async fn fake_upstream(script: Script) -> SocketAddr {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let udp_script = Arc::clone(&script);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let (len, peer) = udp.recv_from(&mut buf).await.unwrap();
            let packet = buf[..len].to_vec();
            let query = Message::from_vec(&packet).unwrap();
            let (delay, replies) = udp_script(&query, &packet);
            tokio::time::sleep(delay).await;
            for reply in replies {
                udp.send_to(&reply, peer).await.unwrap();
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = tcp.accept().await.unwrap();
            let script = Arc::clone(&script);
            tokio::spawn(async move {
                while let Some(packet) = tcp_recv(&mut stream).await {
                    let query = Message::from_vec(&packet).unwrap();
                    let (delay, replies) = script(&query, &packet);
                    tokio::time::sleep(delay).await;
                    if let Some(reply) = replies.first() {
                        tcp_send(&mut stream, reply).await;
                    }
                }
            });
        }
    });
    addr
}

/// The answer a resolver would give: the question echoed, one A record per address.
fn answer(query: &Message, ips: &[[u8; 4]], ttl: u32) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.add_queries(query.queries.clone());
    for ip in ips {
        m.add_answer(Record::from_rdata(
            query.queries[0].name().clone(),
            ttl,
            RData::A(A(Ipv4Addr::from(*ip))),
        ));
    }
    m
}

fn answering(ips: &'static [[u8; 4]]) -> Script {
    Arc::new(move |q, _| (Duration::ZERO, vec![answer(q, ips, 30).to_vec().unwrap()]))
}

fn allow_all() -> Arc<PatternPolicy> {
    PatternPolicy::allowing(&["*"])
}

fn rcode(packet: &[u8]) -> ResponseCode {
    Message::from_vec(packet).unwrap().metadata.response_code
}

fn v4(ip: [u8; 4], ttl: u32) -> ResolvedIp {
    ResolvedIp {
        addr: IpAddr::V4(Ipv4Addr::from(ip)),
        ttl,
    }
}

#[tokio::test]
async fn stray_and_forged_packets_are_ignored_until_the_real_answer() {
    let upstream = fake_upstream(Arc::new(|q, _| {
        let real = answer(q, &[[192, 0, 2, 1]], 30);
        let mut wrong_id = answer(q, &[[203, 0, 113, 66]], 30);
        wrong_id.metadata.id ^= 0xffff;
        let mut not_response = real.clone();
        not_response.metadata.message_type = MessageType::Query;
        let mut other_name = query(q.metadata.id, "evil.example.", RecordType::A);
        other_name.metadata.message_type = MessageType::Response;
        (
            Duration::ZERO,
            vec![
                wrong_id.to_vec().unwrap(),
                not_response.to_vec().unwrap(),
                other_name.to_vec().unwrap(),
                b"garbage".to_vec(),
                real.to_vec().unwrap(),
            ],
        )
    }))
    .await;
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Succeed).await;

    let q = query(0x4242, "www.example.", RecordType::A)
        .to_vec()
        .unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))));

    let event = proxy.event().await;
    assert_eq!(event.verdict, Verdict::Forwarded);
    assert_eq!(event.ips, vec![v4([192, 0, 2, 1], 30)]);
    assert_eq!(event.upstream, Some(upstream));
    assert_eq!(proxy.hook_calls().len(), 1);
}

#[tokio::test]
async fn upstream_silence_means_no_answer() {
    let upstream = fake_upstream(Arc::new(|_, _| (Duration::ZERO, vec![]))).await;
    let mut proxy = start_proxy(
        |c| c.upstream_timeout = Duration::from_millis(200),
        allow_all(),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let q = query(7, "www.example.", RecordType::A).to_vec().unwrap();
    assert_eq!(
        udp_exchange(proxy.addr, &q, Duration::from_secs(1)).await,
        None
    );
    let event = proxy.event().await;
    assert_eq!(
        (event.verdict, event.reason),
        (Verdict::Dropped, Reason::UpstreamTimeout)
    );
    assert_eq!(event.rcode, None);
}

#[tokio::test]
async fn broken_answer_becomes_servfail() {
    // The question echoed, then an A record whose data is 5 bytes long.
    let upstream = fake_upstream(Arc::new(|q, _| {
        let mut bytes = answer(q, &[], 30).to_vec().unwrap();
        bytes[7] = 1; // ANCOUNT = 1
        bytes.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 5, 1, 2, 3, 4, 5]);
        (Duration::ZERO, vec![bytes])
    }))
    .await;
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Succeed).await;
    let q = query(9, "www.example.", RecordType::A).to_vec().unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
    let event = proxy.event().await;
    assert_eq!(event.verdict, Verdict::Dropped);
    assert!(
        matches!(event.reason, Reason::BadAnswer(_)),
        "{:?}",
        event.reason
    );
    assert!(proxy.hook_calls().is_empty());
}

#[tokio::test]
async fn truncated_answer_cut_mid_record_is_relayed_as_is() {
    let upstream = fake_upstream(Arc::new(|q, _| {
        let mut m = answer(q, &[[192, 0, 2, 1], [192, 0, 2, 2]], 30);
        m.metadata.truncation = true;
        let bytes = m.to_vec().unwrap();
        (Duration::ZERO, vec![bytes[..bytes.len() - 6].to_vec()])
    }))
    .await;
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Succeed).await;
    let q = query(10, "www.example.", RecordType::A).to_vec().unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    let mut want = answer(
        &Message::from_vec(&q).unwrap(),
        &[[192, 0, 2, 1], [192, 0, 2, 2]],
        30,
    );
    want.metadata.truncation = true;
    let want = want.to_vec().unwrap();
    assert_eq!(reply, want[..want.len() - 6]);
    let event = proxy.event().await;
    assert_eq!(event.verdict, Verdict::Forwarded);
    assert!(event.truncated && event.ips.is_empty());
    assert!(proxy.hook_calls().is_empty());
}

#[tokio::test]
async fn hook_failure_becomes_servfail() {
    let upstream = fake_upstream(answering(&[[192, 0, 2, 1]])).await;
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Fail).await;
    let q = query(11, "www.example.", RecordType::A).to_vec().unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
    let event = proxy.event().await;
    assert_eq!(event.verdict, Verdict::Dropped);
    assert_eq!(event.reason, Reason::HookFailed("kernel map full".into()));
    assert_eq!(event.ips, vec![v4([192, 0, 2, 1], 30)]);
}

#[tokio::test]
async fn a_hook_that_panics_is_a_failed_hook_and_the_proxy_keeps_serving() {
    let upstream = fake_upstream(answering(&[[192, 0, 2, 1]])).await;
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Panic).await;
    for id in [12, 13] {
        let q = query(id, "www.example.", RecordType::A).to_vec().unwrap();
        let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
        assert_eq!(rcode(&reply), ResponseCode::ServFail);
        let event = proxy.event().await;
        assert_eq!(event.verdict, Verdict::Dropped);
        assert!(
            matches!(&event.reason, Reason::HookFailed(why) if why.contains("panicked")),
            "{:?}",
            event.reason
        );
    }
}

/// One valid query, built by hand so the hostile variants below can change single bytes.
fn valid_query() -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
    p
}

/// Each hostile packet: what the client gets back (an RCODE in a bare header, or nothing).
fn hostile_packets() -> Vec<(&'static str, Vec<u8>, Option<ResponseCode>)> {
    let valid = valid_query();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = valid.clone();
        f(&mut p);
        p
    };
    let mut long_name = valid[..12].to_vec();
    for _ in 0..5 {
        long_name.push(63);
        long_name.extend([b'a'; 63]);
    }
    long_name.extend_from_slice(&[0, 0, 1, 0, 1]);
    vec![
        ("empty", vec![], None),
        ("half a header", valid[..6].to_vec(), None),
        ("a response", with(&|p| p[2] |= 0x80), None),
        (
            "opcode UPDATE",
            with(&|p| p[2] |= 5 << 3),
            Some(ResponseCode::NotImp),
        ),
        (
            "two questions, one present",
            with(&|p| p[5] = 2),
            Some(ResponseCode::FormErr),
        ),
        (
            "65535 questions",
            with(&|p| p[4..6].copy_from_slice(&[0xff, 0xff])),
            Some(ResponseCode::FormErr),
        ),
        (
            "65535 additionals",
            with(&|p| p[10..12].copy_from_slice(&[0xff, 0xff])),
            Some(ResponseCode::FormErr),
        ),
        (
            "question cut short",
            valid[..valid.len() - 3].to_vec(),
            Some(ResponseCode::FormErr),
        ),
        (
            "pointer to itself",
            with(&|p| p[12..14].copy_from_slice(&[0xc0, 12])),
            Some(ResponseCode::FormErr),
        ),
        (
            "label length 64",
            with(&|p| p[12] = 64),
            Some(ResponseCode::FormErr),
        ),
        (
            "name over 255 bytes",
            long_name,
            Some(ResponseCode::FormErr),
        ),
        (
            "trailing garbage",
            with(&|p| p.extend_from_slice(b"\xde\xad")),
            Some(ResponseCode::FormErr),
        ),
        (
            "random bytes after the header",
            valid[..12]
                .iter()
                .copied()
                .chain((0u8..=200).map(|b| b.wrapping_mul(37)))
                .collect(),
            Some(ResponseCode::FormErr),
        ),
    ]
}

#[tokio::test]
async fn hostile_queries_get_formerr_notimp_or_silence_and_an_event() {
    let upstream = fake_upstream(answering(&[[192, 0, 2, 1]])).await;
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Succeed).await;
    for (what, packet, want) in hostile_packets() {
        let wait = if want.is_some() {
            WAIT
        } else {
            Duration::from_millis(300)
        };
        let reply = udp_exchange(proxy.addr, &packet, wait).await;
        assert_eq!(reply.as_deref().map(rcode), want, "{what}");
        if let Some(reply) = reply {
            assert_eq!(reply[..2], packet[..2], "{what}: ID echoed");
            assert_eq!(reply.len(), 12, "{what}: a bare header");
        }
        let event = proxy.event().await;
        assert_eq!(event.verdict, Verdict::Dropped, "{what}");
        assert!(
            matches!(event.reason, Reason::InvalidQuery(_)),
            "{what}: {:?}",
            event.reason
        );
        assert_eq!(event.rcode, want, "{what}");
        assert_eq!(event.upstream, None, "{what}: never forwarded");
    }
    // Still serving.
    let reply = udp_exchange(proxy.addr, &valid_query(), WAIT)
        .await
        .unwrap();
    assert_eq!(rcode(&reply), ResponseCode::NoError);
}

#[tokio::test]
async fn hostile_frames_over_tcp_leave_the_connection_usable() {
    let upstream = fake_upstream(answering(&[[192, 0, 2, 1]])).await;
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Succeed).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    for (what, packet, want) in hostile_packets() {
        tcp_send(&mut stream, &packet).await;
        if let Some(want) = want {
            let reply = tcp_recv(&mut stream).await.unwrap();
            assert_eq!(rcode(&reply), want, "{what}");
        }
        let event = proxy.event().await;
        assert_eq!(event.transport, Transport::Tcp);
        assert!(
            matches!(event.reason, Reason::InvalidQuery(_)),
            "{what}: {:?}",
            event.reason
        );
    }
    tcp_send(&mut stream, &valid_query()).await;
    let reply = tcp_recv(&mut stream).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(reply[..2], [0x12, 0x34]);
}

#[tokio::test]
async fn tcp_queries_on_one_connection_are_answered_as_they_complete() {
    // "slow." answers after 400 ms, everything else at once.
    let upstream = fake_upstream(Arc::new(|q, _| {
        let slow = q.queries[0].name().to_ascii().starts_with("slow");
        let delay = if slow {
            Duration::from_millis(400)
        } else {
            Duration::ZERO
        };
        (
            delay,
            vec![answer(q, &[[192, 0, 2, 1]], 30).to_vec().unwrap()],
        )
    }))
    .await;
    let proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Succeed).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    tcp_send(
        &mut stream,
        &query(1, "slow.example.", RecordType::A).to_vec().unwrap(),
    )
    .await;
    tcp_send(
        &mut stream,
        &query(2, "fast.example.", RecordType::A).to_vec().unwrap(),
    )
    .await;
    tcp_send(
        &mut stream,
        &query(3, "fast2.example.", RecordType::A).to_vec().unwrap(),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = tcp_recv(&mut stream).await.unwrap();
        ids.push(Message::from_vec(&reply).unwrap().metadata.id);
    }
    assert_eq!(ids.last(), Some(&1), "the slow answer comes last: {ids:?}");
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3]);
}

#[tokio::test]
async fn idle_tcp_connection_is_closed() {
    let upstream = fake_upstream(answering(&[[192, 0, 2, 1]])).await;
    let proxy = start_proxy(
        |c| c.tcp_idle_timeout = Duration::from_millis(200),
        allow_all(),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    tcp_send(&mut stream, &valid_query()).await;
    assert!(tcp_recv(&mut stream).await.is_some());
    // Then nothing: the proxy closes the connection after the idle timeout.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut byte))
        .await
        .expect("connection not closed");
    assert_eq!(read.unwrap(), 0);
}

/// A node handing over stops its DNS proxy: its TCP connections must not go on answering
/// (what those answers teach would be installed by the old node only, unknown to the
/// successor). A query read before the stop, or within its short grace (a client that
/// connected just before it), is answered and its answer installed before the stop
/// returns; then every connection closes and its client reconnects.
#[tokio::test]
async fn a_stopping_proxy_answers_what_it_read_over_tcp_then_closes() {
    // The upstream says when it has a query, and answers it 300 ms later.
    let (asked, mut asked_rx) = tokio::sync::mpsc::unbounded_channel();
    let upstream = fake_upstream(Arc::new(move |q, _| {
        let _ = asked.send(q.metadata.id);
        (
            Duration::from_millis(300),
            vec![answer(q, &[[192, 0, 2, 7]], 30).to_vec().unwrap()],
        )
    }))
    .await;
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(upstream), HookMode::Succeed).await;
    let ask = |id| query(id, "www.example.", RecordType::A).to_vec().unwrap();
    // Idle from the start (the idle timeout is seconds): the stop closes it too.
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    // Served once, then idle until it asks again during the stop's grace.
    let mut again = TcpStream::connect(proxy.addr).await.unwrap();
    tcp_send(&mut again, &ask(1)).await;
    let reply = tokio::time::timeout(WAIT, tcp_recv(&mut again)).await;
    assert!(reply.unwrap().is_some());
    assert_eq!(asked_rx.recv().await, Some(1));
    // Its query in flight when the stop begins.
    let mut busy = TcpStream::connect(proxy.addr).await.unwrap();
    tcp_send(&mut busy, &ask(2)).await;
    let id = tokio::time::timeout(WAIT, asked_rx.recv()).await.unwrap();
    assert_eq!(id, Some(2), "the proxy forwarded the query");

    let (stopped, ()) = tokio::join!(tokio::time::timeout(WAIT, proxy.stop()), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tcp_send(&mut again, &ask(3)).await;
    });
    stopped.expect("the stop waits for the answers in flight, not for idle connections");
    let learned = proxy.hook_calls();
    assert_eq!(
        learned.len(),
        3,
        "every answer read before the stop or in its grace is installed before it returns"
    );
    assert_eq!(
        learned[1].1.ips[0].addr,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
    );

    for (id, stream) in [(2, &mut busy), (3, &mut again)] {
        let reply = tokio::time::timeout(WAIT, tcp_recv(stream))
            .await
            .expect("the answer in flight is sent")
            .expect("an answer, not the end of the connection");
        assert_eq!(Message::from_vec(&reply).unwrap().metadata.id, id);
    }
    for (name, stream) in [
        ("busy", &mut busy),
        ("again", &mut again),
        ("idle", &mut idle),
    ] {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .unwrap_or_else(|_| panic!("the {name} connection is still open after the stop"));
        assert_eq!(read.unwrap(), 0, "the {name} connection is closed");
    }
}

#[tokio::test]
async fn no_original_destination_and_no_fixed_upstream_is_refused() {
    let mut proxy = start_proxy(|_| {}, allow_all(), None, HookMode::Succeed).await;
    let q = query(12, "www.example.", RecordType::A).to_vec().unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::Refused);
    let event = proxy.event().await;
    assert_eq!(
        (event.verdict, event.reason),
        (Verdict::Dropped, Reason::NoOriginalDst)
    );
}

#[tokio::test]
async fn fixed_upstream_takes_the_query_and_policy_sees_the_original_server() {
    let upstream = fake_upstream(answering(&[[192, 0, 2, 1]])).await;
    let original: SocketAddr = (Ipv4Addr::new(192, 0, 2, 53), 53).into();
    let mut proxy = start_proxy(
        |c| c.fixed_upstream = Some(upstream),
        allow_all(),
        Some(original),
        HookMode::Succeed,
    )
    .await;
    let q = query(13, "www.example.", RecordType::A).to_vec().unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    let event = proxy.event().await;
    assert_eq!(event.server, Some(original));
    assert_eq!(event.upstream, Some(upstream));
    assert_eq!(proxy.hook_calls()[0].0.server, original);
}

#[tokio::test]
async fn forwarding_to_the_proxy_itself_is_refused() {
    // Learn a free port, then have the redirect claim queries were going to the proxy.
    let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let me: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let mut proxy = start_proxy(|c| c.listen = me, allow_all(), Some(me), HookMode::Succeed).await;
    let q = query(14, "www.example.", RecordType::A).to_vec().unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::Refused);
    let event = proxy.event().await;
    assert_eq!(event.reason, Reason::ForwardingLoop(me));
}

#[tokio::test]
async fn upstream_that_refuses_the_connection_gets_the_client_refused() {
    // A TCP port nobody listens on.
    let closed = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        l.local_addr().unwrap()
    };
    let mut proxy = start_proxy(|_| {}, allow_all(), Some(closed), HookMode::Succeed).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    tcp_send(
        &mut stream,
        &query(15, "www.example.", RecordType::A).to_vec().unwrap(),
    )
    .await;
    let reply = tcp_recv(&mut stream).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::Refused);
    let event = proxy.event().await;
    assert_eq!(event.verdict, Verdict::Dropped);
    assert!(
        matches!(event.reason, Reason::Upstream(_)),
        "{:?}",
        event.reason
    );
}

#[tokio::test]
async fn overload_is_refused_without_forwarding() {
    let upstream = fake_upstream(answering(&[[192, 0, 2, 1]])).await;
    let mut proxy = start_proxy(
        |c| c.max_in_flight = 0,
        allow_all(),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let q = query(16, "www.example.", RecordType::A).to_vec().unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::Refused);
    let event = proxy.event().await;
    assert_eq!(
        (event.verdict, event.reason),
        (Verdict::Dropped, Reason::Overloaded)
    );
    assert_eq!(event.upstream, None);
}

#[tokio::test]
async fn denied_query_is_never_forwarded() {
    let upstream = fake_upstream(Arc::new(|_, _| {
        panic!("a denied query reached the upstream")
    }))
    .await;
    let mut proxy = start_proxy(
        |_| {},
        PatternPolicy::allowing(&["*.allowed.example"]),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let q = query(17, "www.denied.example.", RecordType::A)
        .to_vec()
        .unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::Refused);
    let event = proxy.event().await;
    assert_eq!(
        (event.verdict, event.reason),
        (Verdict::Refused, Reason::PolicyDenied)
    );
    assert_eq!(event.qname.as_deref(), Some("www.denied.example."));
}

fn never_reached() -> Script {
    Arc::new(|_, _| panic!("a dropped query reached the upstream"))
}

#[tokio::test]
async fn dropped_query_gets_no_answer_and_is_never_forwarded() {
    let upstream = fake_upstream(never_reached()).await;
    let mut proxy = start_proxy(
        |_| {},
        Arc::new(FixedPolicy(PolicyAnswer::Drop)),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let q = query(18, "www.example.", RecordType::A).to_vec().unwrap();
    assert_eq!(
        udp_exchange(proxy.addr, &q, Duration::from_millis(500)).await,
        None,
        "a policy drop sends nothing back"
    );
    let event = proxy.event().await;
    assert_eq!(
        (event.verdict, event.reason, event.rcode),
        (Verdict::Dropped, Reason::PolicyDropped, None)
    );
    assert_eq!(event.upstream, None);
    assert_eq!(event.server, Some(upstream));
}

#[tokio::test]
async fn dropped_query_over_tcp_closes_the_connection_unanswered() {
    let upstream = fake_upstream(never_reached()).await;
    let mut proxy = start_proxy(
        |_| {},
        Arc::new(FixedPolicy(PolicyAnswer::Drop)),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    tcp_send(&mut stream, &valid_query()).await;
    // Closed well before the idle timeout (8 s), with nothing written.
    let closed = tokio::time::timeout(Duration::from_secs(2), tcp_recv(&mut stream))
        .await
        .expect("the connection stays open after a policy drop");
    assert_eq!(closed, None);
    let event = proxy.event().await;
    assert_eq!(
        (event.transport, event.reason),
        (Transport::Tcp, Reason::PolicyDropped)
    );
}

#[tokio::test]
async fn audited_query_is_forwarded_and_says_so() {
    let upstream = fake_upstream(answering(&[[192, 0, 2, 9]])).await;
    let mut proxy = start_proxy(
        |_| {},
        Arc::new(FixedPolicy(PolicyAnswer::Audit)),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let q = query(19, "www.example.", RecordType::A).to_vec().unwrap();
    let reply = udp_exchange(proxy.addr, &q, WAIT).await.unwrap();
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    let event = proxy.event().await;
    assert_eq!(
        (event.verdict, event.reason),
        (Verdict::Forwarded, Reason::PolicyAudit)
    );
    assert_eq!(event.ips, vec![v4([192, 0, 2, 9], 30)]);
    assert_eq!(proxy.hook_calls().len(), 1, "an audited answer teaches too");
}

/// A UDP and TCP upstream on 127.0.0.1 that answers every query and reports the address
/// each query came from.
async fn source_reporting_upstream()
-> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<SocketAddr>) {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let udp_tx = tx.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((len, peer)) = udp.recv_from(&mut buf).await {
            let query = Message::from_vec(&buf[..len]).unwrap();
            let reply = answer(&query, &[[192, 0, 2, 1]], 30).to_vec().unwrap();
            let _ = udp.send_to(&reply, peer).await;
            let _ = udp_tx.send(peer);
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = tcp.accept().await {
            let _ = tx.send(peer);
            if let Some(packet) = tcp_recv(&mut stream).await {
                let query = Message::from_vec(&packet).unwrap();
                let reply = answer(&query, &[[192, 0, 2, 1]], 30).to_vec().unwrap();
                tcp_send(&mut stream, &reply).await;
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn queries_leave_from_the_source_configured_for_their_upstream() {
    let (upstream, mut sources) = source_reporting_upstream().await;
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let proxy = start_proxy(
        |c| {
            c.upstream_sources.insert(upstream.ip(), source);
        },
        allow_all(),
        Some(upstream),
        HookMode::Succeed,
    )
    .await;
    let q = query(20, "www.example.", RecordType::A).to_vec().unwrap();
    assert!(udp_exchange(proxy.addr, &q, WAIT).await.is_some());
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    tcp_send(&mut stream, &q).await;
    assert!(tcp_recv(&mut stream).await.is_some());

    for transport in ["UDP", "TCP"] {
        let from = tokio::time::timeout(WAIT, sources.recv())
            .await
            .expect("the upstream saw no query")
            .unwrap();
        assert_eq!(from.ip(), source, "{transport}");
    }
}
