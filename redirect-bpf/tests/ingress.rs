//! cgroup_skb/ingress: explicit ingress DENY verdicts drop packets to a listener inside
//! the enrolled cgroup; other senders and the proxy's address pass.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use sluice_bpf::{Action, EventVerdict, Hook, KernelDropReason, VerdictKey, WorkloadFlags};
use sluice_identity::{Direction, DropReason, Identity, Protocol};

const DENIED_PEER: Identity = Identity(3000);

/// A UDP listener inside the client cgroup: prints its port, then every datagram it
/// gets until 1.5 s pass without one.
const UDP_LISTENER: &str = "import socket, sys\n\
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
    s.bind(('127.0.0.1', 0))\n\
    print(s.getsockname()[1], flush=True)\n\
    s.settimeout(1.5)\n\
    try:\n    \
        while True:\n        \
            print(s.recv(100).decode(), flush=True)\n\
    except socket.timeout:\n    \
        pass\n";

fn send_from(src: Ipv4Addr, dst: SocketAddr, payload: &str) {
    let socket = UdpSocket::bind((src, 0)).expect("bind sender");
    socket.send_to(payload.as_bytes(), dst).expect("send");
}

#[test]
fn ingress_deny_drops_datagrams_from_the_denied_identity_only() {
    let mut node = Node::new(WorkloadFlags::INGRESS);
    node.datapath
        .ipcache()
        .insert("127.0.0.2/32".parse().expect("net"), DENIED_PEER)
        .expect("ipcache");
    let mut listener = spawn_python_in(&node.client, UDP_LISTENER);
    let port: u16 = first_line(&mut listener).parse().expect("listener port");
    let generation = node.datapath.generation().expect("generation");
    node.datapath
        .verdicts()
        .insert(
            VerdictKey {
                src: DENIED_PEER,
                dst: CLIENT_IDENTITY,
                port,
                proto: Protocol::Udp,
                direction: Direction::Ingress,
            },
            Action::Deny(DropReason::PolicyDenied),
            generation,
        )
        .expect("verdict");
    // 127.0.0.1 is the workload's proxy address: even a DENY for its identity must
    // not stop it.
    node.datapath
        .verdicts()
        .insert(
            VerdictKey {
                src: SERVER_IDENTITY,
                dst: CLIENT_IDENTITY,
                port,
                proto: Protocol::Udp,
                direction: Direction::Ingress,
            },
            Action::Deny(DropReason::PolicyDenied),
            generation,
        )
        .expect("verdict");
    let dst = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    send_from(Ipv4Addr::new(127, 0, 0, 2), dst, "from-denied");
    send_from(Ipv4Addr::new(127, 0, 0, 3), dst, "from-other");
    send_from(Ipv4Addr::LOCALHOST, dst, "from-proxy");

    let out = wait_with_timeout(listener);
    let received: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(received, ["from-other", "from-proxy"]);
    assert_eq!(
        node.datapath.counters().expect("counters").ingress_dropped,
        1
    );
    let mut events = node.datapath.take_event_reader().expect("event reader");
    let event = events
        .next_timeout(Duration::from_secs(2))
        .expect("poll")
        .expect("a DROPPED event");
    assert_eq!(event.verdict, EventVerdict::Dropped);
    assert_eq!(event.direction, Direction::Ingress);
    assert_eq!(event.hook, Hook::Ingress);
    assert_eq!(
        event.drop_reason,
        Some(KernelDropReason::Policy(DropReason::PolicyDenied))
    );
    assert_eq!(event.src.ip(), Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(event.dst, dst);
    assert_eq!(event.src_identity, DENIED_PEER);
    assert_eq!(event.dst_identity, CLIENT_IDENTITY);
    assert_eq!(event.cgroup, node.client_id);
}

/// A TCP listener inside the client cgroup: prints its port, then "accepted" for each
/// connection it gets within 3 s.
const TCP_LISTENER: &str = "import socket\n\
    s = socket.socket()\n\
    s.bind(('127.0.0.1', 0))\n\
    s.listen(8)\n\
    print(s.getsockname()[1], flush=True)\n\
    s.settimeout(3)\n\
    try:\n    \
        while True:\n        \
            c, a = s.accept(); print('accepted', a[0], flush=True)\n\
    except socket.timeout:\n    \
        pass\n";

#[test]
fn ingress_default_deny_drops_tcp_connection_requests_without_a_bypass_verdict() {
    let mut node = Node::new(WorkloadFlags::INGRESS | WorkloadFlags::INGRESS_DEFAULT_DENY);
    let mut listener = spawn_python_in(&node.client, TCP_LISTENER);
    let port: u16 = first_line(&mut listener).parse().expect("listener port");
    let generation = node.datapath.generation().expect("generation");
    node.datapath
        .ipcache()
        .insert("127.0.0.4/32".parse().expect("net"), Identity(4000))
        .expect("ipcache");
    node.datapath
        .verdicts()
        .insert(
            VerdictKey {
                src: Identity(4000),
                dst: CLIENT_IDENTITY,
                port,
                proto: Protocol::Tcp,
                direction: Direction::Ingress,
            },
            Action::Bypass,
            generation,
        )
        .expect("verdict");
    let dst = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let connect_from = |src: Ipv4Addr| connect_from_source(src, dst).is_ok();

    assert!(
        !connect_from(Ipv4Addr::new(127, 0, 0, 5)),
        "no verdict: SYN dropped"
    );
    assert!(
        connect_from(Ipv4Addr::new(127, 0, 0, 4)),
        "BYPASS verdict: accepted"
    );

    let out = wait_with_timeout(listener);
    assert_eq!(stdout(&out), "accepted 127.0.0.4");
    assert!(node.datapath.counters().expect("counters").ingress_dropped >= 1);
}

/// Connects from `src` by running python in the test's own cgroup (std cannot bind a
/// TCP client's source address). Returns Err on failure within 1 s.
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
