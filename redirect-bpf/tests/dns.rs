//! DNS to the DNS proxy: connect4 / sendmsg4 redirect UDP and TCP to port 53,
//! cgroup_skb/egress (UDP) and sockops (TCP) key the original resolver by the client's
//! address and port, recvmsg4 makes the reply come from the resolver, and the ingress
//! program lets the DNS proxy's answers and a resolver's replies to it through.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::thread;
use std::time::Duration;

use common::*;
use sluice_bpf::{DnsOrigDsts, RedirectPorts, WorkloadEntry, WorkloadFlags};
use sluice_identity::Protocol;

/// What the stub DNS proxy saw for one query: the client as the proxy sees it, and
/// the original destination it found for that client.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    client: SocketAddr,
    proto: Protocol,
    original: Option<SocketAddr>,
}

/// A stub DNS proxy on 127.0.0.1 (UDP and TCP, one port) that looks every query's
/// original destination up as the real one does. It answers plain-text datagrams with
/// `answer:<query> orig:<resolver>` and DNS queries with one A record holding the
/// original resolver's address (REFUSED when there is none), so a client's output
/// shows what the proxy found.
struct StubDnsProxy {
    port: u16,
    seen: Receiver<Seen>,
}

impl StubDnsProxy {
    fn start(dsts: DnsOrigDsts) -> Self {
        let dsts = Arc::new(dsts);
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind stub UDP");
        let port = udp.local_addr().expect("addr").port();
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind stub TCP");
        let (tx, seen) = channel();
        let (udp_dsts, udp_tx) = (dsts.clone(), tx.clone());
        thread::spawn(move || {
            let mut buf = [0; 512];
            while let Ok((n, client)) = udp.recv_from(&mut buf) {
                let original = udp_dsts.get(client, Protocol::Udp).expect("read map");
                let original = original.map(|o| o.addr);
                let reply = stub_answer(&buf[..n], original);
                let _ = udp.send_to(&reply, client);
                let seen = Seen {
                    client,
                    proto: Protocol::Udp,
                    original,
                };
                if udp_tx.send(seen).is_err() {
                    break;
                }
            }
        });
        thread::spawn(move || {
            for stream in tcp.incoming() {
                let Ok(mut stream) = stream else { break };
                let client = stream.peer_addr().expect("peer");
                let original = dsts.get(client, Protocol::Tcp).expect("read map");
                let original = original.map(|o| o.addr);
                let mut len = [0; 2];
                if stream.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut query = vec![0; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut query).is_err() {
                    continue;
                }
                let reply = stub_answer(&query, original);
                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                let _ = stream.write_all(&framed);
                let seen = Seen {
                    client,
                    proto: Protocol::Tcp,
                    original,
                };
                if tx.send(seen).is_err() {
                    break;
                }
            }
        });
        Self { port, seen }
    }

    fn next(&self) -> Seen {
        self.seen
            .recv_timeout(TIMEOUT)
            .expect("the stub DNS proxy saw no query")
    }
}

/// The stub's answer (see [`StubDnsProxy`]).
fn stub_answer(query: &[u8], original: Option<SocketAddr>) -> Vec<u8> {
    if query.first() == Some(&b'q') {
        let orig = original.map_or_else(|| "none".to_owned(), |a| a.to_string());
        return format!("answer:{} orig:{orig}", String::from_utf8_lossy(query)).into_bytes();
    }
    let mut reply = query.to_vec();
    reply[2] = 0x81; // QR, RD
    reply[8..12].fill(0); // no NS / additional (drops dig's EDNS OPT)
    let question_end = 12 + question_len(&query[12..]);
    reply.truncate(question_end);
    match original.map(|a| a.ip()) {
        Some(IpAddr::V4(ip)) => {
            reply[3] = 0x80; // RA, NOERROR
            reply[6..8].copy_from_slice(&1u16.to_be_bytes()); // ANCOUNT
            reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            reply.extend_from_slice(&ip.octets());
        }
        _ => {
            reply[3] = 0x85; // RA, REFUSED
            reply[6..8].fill(0);
        }
    }
    reply
}

/// Length of the question section (QNAME labels + QTYPE + QCLASS).
fn question_len(msg: &[u8]) -> usize {
    let mut i = 0;
    while i < msg.len() && msg[i] != 0 {
        i += usize::from(msg[i]) + 1;
    }
    i + 1 + 4
}

/// A node whose DNS goes to a stub DNS proxy.
fn node_with_dns_proxy(flags: WorkloadFlags) -> (Node, StubDnsProxy) {
    let mut node = Node::new(flags);
    let dsts = node
        .datapath
        .take_dns_orig_dsts()
        .expect("the DNS proxy's map reader");
    let stub = StubDnsProxy::start(dsts);
    let proxy_port = node.proxy.local_addr().expect("proxy addr").port();
    node.datapath
        .set_redirect_ports(RedirectPorts {
            proxy: proxy_port,
            dns_proxy: stub.port,
        })
        .expect("set ports");
    (node, stub)
}

fn resolver(last_octet: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, last_octet), 53))
}

/// Sends `q` to 127.0.0.53:53 and prints the reply and whom it came from. `setup` is
/// python run on the socket `s` first (connect, bind, …); `send` sends `q`.
fn udp_client(setup: &str, send: &str) -> String {
    format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(5)\n\
         {setup}\n\
         {send}\n\
         data, addr = s.recvfrom(512)\n\
         print(data.decode(), addr[0], addr[1])\n"
    )
}

fn run_python(node: &Node, script: &str) -> String {
    let out = python_in(&node.client, script);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

#[test]
fn unconnected_udp_dns_reaches_the_dns_proxy_which_finds_the_resolver() {
    let (node, stub) = node_with_dns_proxy(WorkloadFlags::NONE);
    // Nothing listens on 127.0.0.53:53 in this test; only the redirect can answer.
    let script = udp_client("", "s.sendto(b'q1', ('127.0.0.53', 53))");

    let printed = run_python(&node, &script);

    assert_eq!(printed, "answer:q1 orig:127.0.0.53:53 127.0.0.53 53");
    let seen = stub.next();
    assert_eq!(seen.original, Some(resolver(53)));
    assert_eq!(seen.proto, Protocol::Udp);
    let counters = node.datapath.counters().expect("counters");
    assert_eq!(counters.dns_redirected, 1);
    assert_eq!(counters.dns_replies_rewritten, 1);
}

#[test]
fn connected_udp_without_bind_is_keyed_by_the_port_it_gets_after_connect() {
    let (node, stub) = node_with_dns_proxy(WorkloadFlags::NONE);
    // glibc's resolver: connect() on an unbound socket, then send(). connect4 runs
    // before the kernel picks the source port and sendmsg4 never runs, so only the
    // egress program can key this query by the port the proxy sees.
    let script = udp_client(
        "s.connect(('127.0.0.53', 53))",
        "print(s.getsockname()[1], flush=True); s.send(b'q2')",
    );

    let printed = run_python(&node, &script);

    let mut lines = printed.lines();
    let port: u16 = lines.next().expect("port line").parse().expect("port");
    assert_eq!(
        lines.next(),
        Some("answer:q2 orig:127.0.0.53:53 127.0.0.53 53")
    );
    let seen = stub.next();
    assert_eq!(seen.client.port(), port);
    assert_eq!(seen.original, Some(resolver(53)));
}

#[test]
fn one_socket_asking_two_resolvers_in_turn_is_keyed_to_each() {
    let (node, stub) = node_with_dns_proxy(WorkloadFlags::NONE);
    // Bound first (as libuv-based clients such as dig do), then unconnected sends to
    // two resolvers, each reply awaited before the next send.
    let script = "import socket\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        s.settimeout(5)\n\
        s.bind(('0.0.0.0', 0))\n\
        for r in ('127.0.0.54', '127.0.0.55'):\n    \
            s.sendto(b'q', (r, 53))\n    \
            data, addr = s.recvfrom(512)\n    \
            print(data.decode(), addr[0])\n";

    let printed = run_python(&node, script);

    assert_eq!(
        printed,
        "answer:q orig:127.0.0.54:53 127.0.0.54\nanswer:q orig:127.0.0.55:53 127.0.0.55"
    );
    let (first, second) = (stub.next(), stub.next());
    assert_eq!(first.client, second.client, "the same socket");
    assert_eq!(first.original, Some(resolver(54)));
    assert_eq!(second.original, Some(resolver(55)));
}

fn dig(node: &Node, args: &[&str]) -> String {
    let mut full = vec!["+short", "+tries=1", "+timeout=3"];
    full.extend_from_slice(args);
    let out = wait_with_timeout(
        command_in(&node.client, "dig", &full)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn dig (dnsutils, installed by scripts/deps)"),
    );
    assert!(
        out.status.success(),
        "dig {args:?}: {} {}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

#[test]
fn dig_over_udp_gets_the_answer_the_dns_proxy_made_for_its_resolver() {
    let (node, stub) = node_with_dns_proxy(WorkloadFlags::NONE);

    // The stub answers with the resolver's own address: what it found for the client.
    assert_eq!(
        dig(&node, &["@127.0.0.54", "sluice.test", "A"]),
        "127.0.0.54"
    );
    assert_eq!(stub.next().original, Some(resolver(54)));
}

#[test]
fn dig_over_tcp_goes_to_the_dns_proxy_not_the_proxy() {
    let (node, stub) = node_with_dns_proxy(WorkloadFlags::NONE);

    assert_eq!(
        dig(&node, &["+tcp", "@127.0.0.55", "sluice.test", "A"]),
        "127.0.0.55"
    );
    let seen = stub.next();
    assert_eq!(seen.proto, Protocol::Tcp);
    assert_eq!(seen.original, Some(resolver(55)));
    // sockops moved the entry by client; the L4 proxy's map and listener saw nothing.
    node.proxy.set_nonblocking(true).expect("nonblocking");
    assert!(
        node.proxy.accept().is_err(),
        "TCP DNS must not reach the proxy"
    );
    let counters = node.datapath.counters().expect("counters");
    assert_eq!(counters.redirected, 0);
    assert_eq!(counters.dns_redirected, 1);
}

#[test]
fn tcp_to_other_ports_still_goes_to_the_proxy() {
    let (mut node, _stub) = node_with_dns_proxy(WorkloadFlags::NONE);
    let server = answering_listener("direct");
    let client = spawn_python_in(&node.client, &tcp_client_script(server));
    let (stream, peer) = accept_one(&node.proxy);
    let orig = node
        .datapath
        .orig_dst_by_client(peer)
        .expect("read")
        .expect("the proxy's original destination");
    assert_eq!(orig.addr, server);
    answer(stream, "proxied");
    assert_eq!(stdout(&wait_with_timeout(client)), "proxied");
}

#[test]
fn dns_proxy_answers_pass_a_default_deny_ingress() {
    let (mut node, stub) =
        node_with_dns_proxy(WorkloadFlags::INGRESS | WorkloadFlags::INGRESS_DEFAULT_DENY);
    // The proxy's own source is elsewhere: the answer (from the redirect address, the
    // DNS proxy port) must pass on its own merits, not as the proxy's traffic.
    let mut entry: WorkloadEntry = node
        .datapath
        .workloads()
        .get(node.client_id)
        .expect("read")
        .expect("enrolled");
    entry.proxy_source_v4 = Some(Ipv4Addr::new(127, 0, 0, 9));
    node.datapath
        .workloads()
        .insert(node.client_id, entry)
        .expect("update");
    let script = udp_client("", "s.sendto(b'q3', ('127.0.0.53', 53))");

    let printed = run_python(&node, &script);

    assert_eq!(printed, "answer:q3 orig:127.0.0.53:53 127.0.0.53 53");
    assert_eq!(stub.next().original, Some(resolver(53)));
    assert_eq!(
        node.datapath.counters().expect("counters").ingress_dropped,
        0
    );
}

/// A UDP echo server: prints its port, echoes datagrams for 3 s.
const ECHO: &str = "import socket\n\
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
    s.bind(('127.0.0.1', 0))\n\
    print(s.getsockname()[1], flush=True)\n\
    s.settimeout(3)\n\
    try:\n    \
        while True:\n        \
            d, a = s.recvfrom(100); s.sendto(d, a)\n\
    except socket.timeout:\n    \
        pass\n";

#[test]
fn a_resolver_replies_to_the_dns_proxy_through_its_default_deny_egress() {
    // A resolver workload with default deny both ways. The DNS proxy's query comes from
    // the proxy source (127.0.0.1 here): the ingress program lets it in and remembers
    // the flow, so the reply passes the egress default deny.
    let node = Node::new(
        WorkloadFlags::INGRESS
            | WorkloadFlags::INGRESS_DEFAULT_DENY
            | WorkloadFlags::EGRESS_DEFAULT_DENY,
    );
    let mut echo = spawn_python_in(&node.client, ECHO);
    let port: u16 = first_line(&mut echo).parse().expect("echo port");
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");

    socket
        .send_to(b"query", (Ipv4Addr::LOCALHOST, port))
        .expect("send");
    let mut buf = [0; 16];
    let (n, _) = socket.recv_from(&mut buf).expect("the resolver's reply");

    assert_eq!(&buf[..n], b"query");
    let counters = node.datapath.counters().expect("counters");
    assert_eq!(counters.denied, 0);
    assert!(counters.udp_flow_hits >= 1, "{counters:?}");
    let _ = echo.kill();
}
