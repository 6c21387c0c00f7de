//! connect4 + sockops: redirect to the proxy, DENY, BYPASS, stale generations, and
//! processes outside the enrolled cgroup.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use sluice_bpf::{Action, EventVerdict, Hook, KernelDropReason, VerdictKey, WorkloadFlags};
use sluice_identity::{Direction, DropReason, Protocol};

fn egress_key(port: u16) -> VerdictKey {
    VerdictKey {
        src: CLIENT_IDENTITY,
        dst: SERVER_IDENTITY,
        port,
        proto: Protocol::Tcp,
        direction: Direction::Egress,
    }
}

/// Runs the client against `dst` while the test plays the proxy: returns what the
/// client printed and the original destination the proxy recovered, if the connection
/// reached the proxy.
fn connect_through(node: &mut Node, dst: std::net::SocketAddr) -> (String, sluice_bpf::OrigDst) {
    let client = spawn_python_in(&node.client, &tcp_client_script(dst));
    let (stream, peer) = accept_one(&node.proxy);
    let orig = node
        .datapath
        .orig_dst_by_client(peer)
        .expect("read ORIG_DST_BY_CLIENT")
        .unwrap_or_else(|| panic!("no original destination recorded for client {peer}"));
    answer(stream, "proxied");
    let out = wait_with_timeout(client);
    (stdout(&out), orig)
}

#[test]
fn enrolled_tcp_connect_is_redirected_and_proxy_recovers_original_destination() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let server = answering_listener("direct");

    let (printed, orig) = connect_through(&mut node, server);

    assert_eq!(printed, "proxied");
    assert_eq!(orig.addr, server);
    assert_eq!(orig.proto, Protocol::Tcp);
    assert_eq!(orig.src_identity, CLIENT_IDENTITY);
    assert_eq!(orig.dst_identity, SERVER_IDENTITY);
    assert_eq!(orig.cgroup, node.client_id);
    let counters = node.datapath.counters().expect("counters");
    assert_eq!(counters.redirected, 1);

    let mut events = node.datapath.take_event_reader().expect("event reader");
    let event = events
        .next_timeout(Duration::from_secs(2))
        .expect("poll events")
        .expect("a REDIRECTED event");
    assert_eq!(event.verdict, EventVerdict::Redirected);
    assert_eq!(event.dst, server);
    assert_eq!(event.cgroup, node.client_id);
}

#[test]
fn claimed_original_destination_is_gone() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let server = answering_listener("direct");
    let client = spawn_python_in(&node.client, &tcp_client_script(server));
    let (stream, peer) = accept_one(&node.proxy);

    assert!(
        node.datapath
            .orig_dst_by_client(peer)
            .expect("read")
            .is_some()
    );
    assert_eq!(node.datapath.orig_dst_by_client(peer).expect("read"), None);
    answer(stream, "proxied");
    wait_with_timeout(client);
}

#[test]
fn deny_verdict_fails_connect_with_eperm_and_reports_the_drop() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let server = answering_listener("direct");
    let generation = node.datapath.generation().expect("generation");
    node.datapath
        .verdicts()
        .insert(
            egress_key(server.port()),
            Action::Deny(DropReason::PolicyDenyList),
            generation,
        )
        .expect("insert verdict");

    let out = python_in(&node.client, &tcp_client_script(server));

    assert_eq!(
        stdout(&out),
        "EPERM",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut events = node.datapath.take_event_reader().expect("event reader");
    let event = events
        .next_timeout(Duration::from_secs(2))
        .expect("poll events")
        .expect("a DROPPED event");
    assert_eq!(event.verdict, EventVerdict::Dropped);
    assert_eq!(
        event.drop_reason,
        Some(KernelDropReason::Policy(DropReason::PolicyDenyList))
    );
    assert_eq!(event.dst, server);
    assert_eq!(event.src_identity, CLIENT_IDENTITY);
    assert_eq!(event.dst_identity, SERVER_IDENTITY);
    assert_eq!(event.direction, Direction::Egress);
    assert_eq!(event.hook, Hook::Connect);
    assert_eq!(event.cgroup, node.client_id);
    assert_eq!(node.datapath.counters().expect("counters").denied, 1);
}

#[test]
fn bypass_verdict_goes_straight_to_the_destination() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let server = answering_listener("direct");
    let generation = node.datapath.generation().expect("generation");
    node.datapath
        .verdicts()
        .insert(egress_key(server.port()), Action::Bypass, generation)
        .expect("insert verdict");

    let out = python_in(&node.client, &tcp_client_script(server));

    assert_eq!(stdout(&out), "direct");
    let counters = node.datapath.counters().expect("counters");
    assert_eq!((counters.bypassed, counters.redirected), (1, 0));
    let mut events = node.datapath.take_event_reader().expect("event reader");
    let event = events
        .next_timeout(Duration::from_secs(2))
        .expect("poll events")
        .expect("a FORWARDED event");
    assert_eq!(event.verdict, EventVerdict::Forwarded);
}

#[test]
fn verdict_of_an_older_generation_is_ignored() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let server = answering_listener("direct");
    node.datapath.set_generation(7).expect("generation 7");
    node.datapath
        .verdicts()
        .insert(egress_key(server.port()), Action::Bypass, 7)
        .expect("insert verdict");
    assert_eq!(
        stdout(&python_in(&node.client, &tcp_client_script(server))),
        "direct"
    );

    node.datapath.set_generation(8).expect("generation 8");
    let (printed, orig) = connect_through(&mut node, server);

    assert_eq!(printed, "proxied");
    assert_eq!(orig.addr, server);
    assert!(node.datapath.counters().expect("counters").stale_verdicts >= 1);
}

#[test]
fn processes_outside_enrolled_cgroups_are_untouched() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let server = answering_listener("direct");
    // A sibling below the attach point, not enrolled in WORKLOADS.
    let sibling = node.cgroup.child("not-enrolled");

    let out = python_in(&sibling, &tcp_client_script(server));

    assert_eq!(stdout(&out), "direct");
    // The test process itself is outside the attach point altogether.
    let mut direct = std::net::TcpStream::connect(server).expect("connect from the test");
    use std::io::{Read, Write};
    direct.write_all(b"hi").expect("write");
    let mut reply = String::new();
    direct.read_to_string(&mut reply).expect("read");
    assert_eq!(reply, "direct");
    let counters = node.datapath.counters().expect("counters");
    assert_eq!(counters.redirected + counters.bypassed + counters.denied, 0);
}

#[test]
fn redirect_fails_closed_when_no_proxy_port_is_set() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let server = answering_listener("direct");
    node.datapath
        .set_redirect_ports(sluice_bpf::RedirectPorts::default())
        .expect("clear ports");

    let out = python_in(&node.client, &tcp_client_script(server));

    assert_eq!(stdout(&out), "EPERM");
    assert_eq!(node.datapath.counters().expect("counters").not_ready, 1);
}

#[test]
fn enrolled_ipv6_connect_is_redirected_by_connect6() {
    let mut node = Node::new(WorkloadFlags::NONE);
    let proxy_port = node.proxy.local_addr().expect("proxy addr").port();
    // The workload's IPv6 proxy address is ::1, on the same port as the IPv4 one.
    let proxy6 = std::net::TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, proxy_port))
        .expect("bind the IPv6 proxy on the IPv4 proxy's port");
    let server6 =
        std::net::TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)).expect("bind IPv6 server");
    let server = server6.local_addr().expect("server addr");
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET6)\n\
         s.settimeout(5)\n\
         s.connect(('::1', {}))\n\
         s.sendall(b'hello')\n\
         print(s.recv(100).decode())\n",
        server.port()
    );
    let client = spawn_python_in(&node.client, &script);

    let (stream, peer) = accept_one(&proxy6);
    let orig = node
        .datapath
        .orig_dst_by_client(peer)
        .expect("read ORIG_DST_BY_CLIENT")
        .unwrap_or_else(|| panic!("no original destination recorded for client {peer}"));
    answer(stream, "proxied");

    assert_eq!(stdout(&wait_with_timeout(client)), "proxied");
    assert_eq!(orig.addr, server);
    assert_eq!(orig.src_identity, CLIENT_IDENTITY);
    assert_eq!(
        orig.dst_identity,
        sluice_identity::Identity::WORLD,
        "::1 is not in the ipcache"
    );
}
