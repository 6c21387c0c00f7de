//! sendmsg4 / connect4 / recvmsg4: UDP DNS goes to the DNS proxy, and the reply looks
//! like it came from the resolver the client asked.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::thread;

use common::*;
use sluice_bpf::{RedirectPorts, WorkloadFlags};

/// A stub DNS proxy: answers every datagram with "answer:<query>" and reports the
/// queries it saw.
fn stub_dns_proxy() -> (u16, std::sync::mpsc::Receiver<String>) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind stub");
    let port = socket.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let query = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = socket.send_to(format!("answer:{query}").as_bytes(), from);
            if tx.send(query).is_err() {
                break;
            }
        }
    });
    (port, rx)
}

fn node_with_dns_proxy() -> (Node, std::sync::mpsc::Receiver<String>) {
    let mut node = Node::new(WorkloadFlags::NONE);
    let (dns_port, queries) = stub_dns_proxy();
    let proxy_port = node.proxy.local_addr().expect("proxy addr").port();
    node.datapath
        .set_redirect_ports(RedirectPorts {
            proxy: proxy_port,
            dns_proxy: dns_port,
        })
        .expect("set ports");
    (node, queries)
}

#[test]
fn unconnected_udp_dns_reaches_the_dns_proxy_and_the_reply_comes_from_the_resolver() {
    let (node, queries) = node_with_dns_proxy();
    // Nothing listens on 127.0.0.53:53 in this test; only the redirect can answer.
    let script = "import socket\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  s.settimeout(5)\n\
                  s.sendto(b'q1', ('127.0.0.53', 53))\n\
                  data, addr = s.recvfrom(512)\n\
                  print(data.decode(), addr[0], addr[1])\n";

    let out = python_in(&node.client, script);

    assert_eq!(
        stdout(&out),
        "answer:q1 127.0.0.53 53",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(queries.try_recv().ok().as_deref(), Some("q1"));
    let counters = node.datapath.counters().expect("counters");
    assert_eq!(counters.dns_redirected, 1);
    assert_eq!(counters.dns_replies_rewritten, 1);
}

#[test]
fn connected_udp_dns_is_redirected_too() {
    let (node, queries) = node_with_dns_proxy();
    // dig and glibc use connected UDP: connect4 redirects it, recvmsg4 rewrites.
    let script = "import socket\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  s.settimeout(5)\n\
                  s.connect(('127.0.0.53', 53))\n\
                  s.send(b'q2')\n\
                  data, addr = s.recvfrom(512)\n\
                  print(data.decode(), addr[0], addr[1])\n";

    let out = python_in(&node.client, script);

    assert_eq!(
        stdout(&out),
        "answer:q2 127.0.0.53 53",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(queries.try_recv().ok().as_deref(), Some("q2"));
}

#[test]
fn dig_gets_its_answer_through_the_dns_proxy() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind stub");
    let dns_port = socket.local_addr().expect("addr").port();
    let proxy_port = node.proxy.local_addr().expect("proxy addr").port();
    node.datapath
        .set_redirect_ports(RedirectPorts {
            proxy: proxy_port,
            dns_proxy: dns_port,
        })
        .expect("set ports");
    // A minimal DNS server: answers any A query with 192.0.2.7.
    thread::spawn(move || {
        let mut buf = [0; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let mut reply = buf[..n].to_vec();
            reply[2] = 0x81; // QR, RD
            reply[3] = 0x80; // RA, NOERROR
            reply[6..8].copy_from_slice(&1u16.to_be_bytes()); // ANCOUNT
            reply[8..12].fill(0); // no NS / additional (drops dig's EDNS OPT)
            let question_end = 12 + question_len(&buf[12..n]);
            reply.truncate(question_end);
            reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
            let _ = socket.send_to(&reply, from);
        }
    });

    let out = wait_with_timeout(
        command_in(
            &node.client,
            "dig",
            &[
                "+short",
                "+tries=1",
                "+timeout=3",
                "@127.0.0.53",
                "sluice.test",
                "A",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn dig (dnsutils, installed by scripts/deps)"),
    );

    assert_eq!(
        stdout(&out),
        "192.0.2.7",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Length of the question section (QNAME labels + QTYPE + QCLASS).
fn question_len(msg: &[u8]) -> usize {
    let mut i = 0;
    while i < msg.len() && msg[i] != 0 {
        i += usize::from(msg[i]) + 1;
    }
    i + 1 + 4
}
