//! The precomputed POLICY map: UDP decided in the kernel (egress at sendmsg, ingress at
//! delivery) with replies let through by UDP_CT, inbound TCP connection requests
//! decided per peer and port range, audit mode, and the generation sweep.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use common::*;
use sluice_bpf::{Action, EventVerdict, KernelDropReason, PolicyEntry, WorkloadFlags};
use sluice_identity::ports::PortRange;
use sluice_identity::{Direction, DropReason, Identity, Protocol};

const ALLOWED_PEER: Identity = Identity(2100);
const OTHER_PEER: Identity = Identity(2200);

fn udp_echo(ip: Ipv4Addr) -> SocketAddr {
    let socket = UdpSocket::bind((ip, 0)).expect("bind echo");
    let addr = socket.local_addr().expect("addr");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

/// Sends one datagram to each destination from one unconnected socket inside the
/// workload's cgroup, printing `reply <text>`, `EPERM` or `timeout` per destination.
fn udp_attempts(node: &Node, destinations: &[SocketAddr]) -> Vec<String> {
    let list: Vec<String> = destinations
        .iter()
        .map(|d| format!("('{}', {})", d.ip(), d.port()))
        .collect();
    let script = format!(
        "import socket, errno\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(1)\n\
         for i, d in enumerate([{}]):\n    \
             try:\n        \
                 s.sendto(b'hello%d' % i, d)\n        \
                 print('reply', s.recvfrom(64)[0].decode(), flush=True)\n    \
             except PermissionError:\n        \
                 print('EPERM', flush=True)\n    \
             except socket.timeout:\n        \
                 print('timeout', flush=True)\n",
        list.join(", ")
    );
    let out = python_in(&node.client, &script);
    stdout(&out).lines().map(str::to_owned).collect()
}

fn add_peer(node: &mut Node, ip: &str, identity: Identity) {
    node.datapath
        .ipcache()
        .insert(format!("{ip}/32").parse().expect("net"), identity)
        .expect("ipcache");
}

fn policy(
    direction: Direction,
    peer: Option<Identity>,
    proto: Protocol,
    lo: u16,
    hi: u16,
    action: Action,
) -> PolicyEntry {
    PolicyEntry {
        endpoint: CLIENT_IDENTITY,
        direction,
        peer,
        proto,
        ports: PortRange { lo, hi },
        action,
    }
}

#[test]
fn udp_egress_follows_the_policy_map_and_replies_come_back() {
    // Ingress default deny too: the echo replies must pass as replies, not as new flows.
    let mut node = Node::new(
        WorkloadFlags::EGRESS_DEFAULT_DENY
            | WorkloadFlags::INGRESS
            | WorkloadFlags::INGRESS_DEFAULT_DENY,
    );
    add_peer(&mut node, "127.0.0.2", ALLOWED_PEER);
    add_peer(&mut node, "127.0.0.3", OTHER_PEER);
    let allowed = udp_echo(Ipv4Addr::new(127, 0, 0, 2));
    let other = udp_echo(Ipv4Addr::new(127, 0, 0, 3));
    let generation = node.datapath.generation().expect("generation");
    let entries = [
        // The allowed peer on a range around the echo port (several LPM prefixes).
        policy(
            Direction::Egress,
            Some(ALLOWED_PEER),
            Protocol::Udp,
            allowed.port() - 3,
            allowed.port() + 5,
            Action::Bypass,
        ),
        // Any peer on the other echo's port: an explicit deny.
        policy(
            Direction::Egress,
            None,
            Protocol::Udp,
            other.port(),
            other.port(),
            Action::Deny(DropReason::PolicyDenyList),
        ),
    ];
    for e in &entries {
        assert!(
            node.datapath
                .policy()
                .insert(e, generation)
                .expect("policy")
                >= 1
        );
    }
    let mut events = node.datapath.take_event_reader().expect("events");

    let out = udp_attempts(
        &node,
        &[
            allowed,
            other,
            SocketAddr::new(allowed.ip(), allowed.port() + 6),
            allowed,
        ],
    );
    assert_eq!(out, ["reply hello0", "EPERM", "EPERM", "reply hello3"]);

    let mut seen = Vec::new();
    while let Ok(Some(e)) = events.next_timeout(Duration::from_millis(300)) {
        seen.push((e.verdict, e.drop_reason, e.dst.port()));
    }
    assert_eq!(
        seen,
        [
            (EventVerdict::Forwarded, None, allowed.port()),
            (
                EventVerdict::Dropped,
                Some(KernelDropReason::Policy(DropReason::PolicyDenyList)),
                other.port()
            ),
            (
                EventVerdict::Dropped,
                Some(KernelDropReason::Policy(DropReason::PolicyDenied)),
                allowed.port() + 6
            ),
        ],
        "one event per new flow: the second datagram to the allowed peer is not reported"
    );
    let counters = node.datapath.counters().expect("counters");
    assert!(counters.udp_flow_hits >= 2, "{counters:?}"); // the reply, the 2nd send
    assert_eq!(counters.ingress_dropped, 0);
}

#[test]
fn udp_egress_without_default_deny_passes_what_no_entry_covers() {
    let mut node = Node::new(WorkloadFlags::NONE);
    add_peer(&mut node, "127.0.0.3", OTHER_PEER);
    let other = udp_echo(Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(udp_attempts(&node, &[other]), ["reply hello0"]);
}

#[test]
fn audit_mode_lets_udp_policy_drops_pass_and_reports_them() {
    let mut node = Node::new(WorkloadFlags::EGRESS_DEFAULT_DENY);
    node.datapath.set_audit(true).expect("audit");
    add_peer(&mut node, "127.0.0.3", OTHER_PEER);
    let other = udp_echo(Ipv4Addr::new(127, 0, 0, 3));
    let mut events = node.datapath.take_event_reader().expect("events");

    assert_eq!(udp_attempts(&node, &[other]), ["reply hello0"]);
    let e = events
        .next_timeout(Duration::from_secs(2))
        .expect("poll")
        .expect("an AUDIT event");
    assert_eq!(e.verdict, EventVerdict::Audit);
    assert_eq!(
        e.drop_reason,
        Some(KernelDropReason::Policy(DropReason::PolicyDenied))
    );
    assert_eq!(node.datapath.counters().expect("counters").audited, 1);
}

/// A TCP listener inside the client cgroup: prints its port, then "accepted <ip>" for
/// the first connection it gets (within 15 s), and exits.
const TCP_LISTENER: &str = "import socket\n\
    s = socket.socket()\n\
    s.bind(('127.0.0.1', 0))\n\
    s.listen(8)\n\
    print(s.getsockname()[1], flush=True)\n\
    s.settimeout(15)\n\
    c, a = s.accept(); print('accepted', a[0], flush=True)\n";

#[test]
fn inbound_tcp_follows_the_policy_map_per_peer_and_port_range() {
    let mut node = Node::new(WorkloadFlags::INGRESS | WorkloadFlags::INGRESS_DEFAULT_DENY);
    let mut listener = spawn_python_in(&node.client, TCP_LISTENER);
    let port: u16 = first_line(&mut listener).parse().expect("listener port");
    add_peer(&mut node, "127.0.0.4", Identity(4000));
    add_peer(&mut node, "127.0.0.6", Identity(6000));
    add_peer(&mut node, "127.0.0.7", Identity(7000));
    let generation = node.datapath.generation().expect("generation");
    for e in [
        policy(
            Direction::Ingress,
            Some(Identity(4000)),
            Protocol::Tcp,
            1024,
            65535,
            Action::Bypass,
        ),
        // Needs L7: only through the proxy, so a direct SYN is dropped.
        policy(
            Direction::Ingress,
            Some(Identity(6000)),
            Protocol::Tcp,
            port,
            port,
            Action::Redirect,
        ),
        // Allowed on other ports only.
        policy(
            Direction::Ingress,
            Some(Identity(7000)),
            Protocol::Tcp,
            1,
            port - 1,
            Action::Bypass,
        ),
    ] {
        node.datapath
            .policy()
            .insert(&e, generation)
            .expect("policy");
    }
    let dst = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // The allowed peer last: the listener reports only the first connection it gets.
    for (src, expect) in [(5, false), (6, false), (7, false), (4, true)] {
        let ok = connect_from_source(Ipv4Addr::new(127, 0, 0, src), dst).is_ok();
        assert_eq!(ok, expect, "connect from 127.0.0.{src}");
    }
    let out = wait_with_timeout(listener);
    assert_eq!(stdout(&out), "accepted 127.0.0.4");
    let mut events = node.datapath.take_event_reader().expect("events");
    let mut dropped = Vec::new();
    while let Ok(Some(e)) = events.next_timeout(Duration::from_millis(300)) {
        assert_eq!(e.verdict, EventVerdict::Dropped);
        dropped.push(e.src.ip().to_string());
    }
    dropped.dedup(); // a retransmitted SYN is dropped again
    assert_eq!(dropped, ["127.0.0.5", "127.0.0.6", "127.0.0.7"]);
}

#[test]
fn entries_of_an_older_generation_are_ignored_then_swept() {
    let mut node = Node::new(WorkloadFlags::EGRESS_DEFAULT_DENY);
    add_peer(&mut node, "127.0.0.2", ALLOWED_PEER);
    let allowed = udp_echo(Ipv4Addr::new(127, 0, 0, 2));
    let old = node.datapath.generation().expect("generation");
    let entry = policy(
        Direction::Egress,
        Some(ALLOWED_PEER),
        Protocol::Udp,
        0,
        65535,
        Action::Bypass,
    );
    node.datapath.policy().insert(&entry, old).expect("policy");
    node.datapath.set_generation(old + 1).expect("generation");
    assert_eq!(udp_attempts(&node, &[allowed]), ["EPERM"]);
    assert_eq!(
        node.datapath
            .policy()
            .retain_generation(old + 1)
            .expect("sweep"),
        1
    );
    assert_eq!(
        node.datapath
            .policy()
            .retain_generation(old + 1)
            .expect("sweep"),
        0
    );
}

/// Connects from `src` (python in the test's own cgroup, outside the workload).
fn connect_from_source(src: Ipv4Addr, dst: SocketAddr) -> Result<(), String> {
    let script = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.bind(('{src}', 0))\n\
         s.settimeout(1)\n\
         s.connect(('{}', {}))\n",
        dst.ip(),
        dst.port()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn an_ipcache_prefix_the_policy_no_longer_names_stops_giving_its_identity() {
    let mut node = Node::new(WorkloadFlags::EGRESS_DEFAULT_DENY);
    add_peer(&mut node, "127.0.0.2", ALLOWED_PEER);
    add_peer(&mut node, "127.0.0.3", OTHER_PEER);
    let allowed = udp_echo(Ipv4Addr::new(127, 0, 0, 2));
    let generation = node.datapath.generation().expect("generation");
    let entry = policy(
        Direction::Egress,
        Some(ALLOWED_PEER),
        Protocol::Udp,
        0,
        65535,
        Action::Bypass,
    );
    node.datapath
        .policy()
        .insert(&entry, generation)
        .expect("policy");
    assert_eq!(udp_attempts(&node, &[allowed]), ["reply hello0"]);

    // A reload whose policy names 127.0.0.1 (the test server) and 127.0.0.3 only:
    // 127.0.0.2 is `world` again.
    let keep: Vec<_> = ["127.0.0.1/32", "127.0.0.3/32", "0.0.0.0/0"]
        .iter()
        .map(|n| n.parse().expect("net"))
        .collect();
    assert_eq!(node.datapath.ipcache().retain(&keep).expect("sweep"), 1);
    assert_eq!(udp_attempts(&node, &[allowed]), ["EPERM"]);
    // What it keeps stays, and a second sweep finds nothing.
    assert_eq!(node.datapath.ipcache().retain(&keep).expect("sweep"), 0);
}
