//! Live restart end to end, as root: `sluice up --takeover` replaces the running node
//! while a pod asks DNS in a loop (every query must be answered), a connection through
//! the proxy stays open, and policy keeps being enforced; then SIGTERM of the last node
//! removes everything and a plain `sluice up` starts again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The resolver pod (dnsmasq) and what the client asks it.
const RESOLVER: &str = "10.200.10.6";
/// A resolver that answers after 300 ms, so that queries are in flight at the switch.
const SLOW_RESOLVER: &str = "10.200.10.7";
const BACKEND: &str = "10.200.10.3";
const ECHO_PORT: u16 = 9000;
/// Where the proxy's own connections to pods come from (`node::pods::PROXY_SOURCE`).
const PROXY_SOURCE: &str = "169.254.1.2";

/// How many live restarts the main scenario does.
const RESTARTS: usize = 8;

/// The client pod's main command: DNS query loops on four threads, one query every
/// 10 ms each, alternating connected UDP (as glibc does), unconnected UDP, every fifth
/// over TCP, every fourth to the slow resolver; each waits 2 s for its answer (as `dig
/// +tries=1 +timeout=2`) and logs one line: `<thread>.<n> <kind> ok|bad|fail <latency>
/// <start, unix time>`. The first line is `start <pid>`.
fn query_loop(log: &Path) -> Vec<String> {
    let script = format!(
        r#"
import os, socket, struct, threading, time
log = open({log:?}, "a", buffering=1)
log.write("start %d\n" % os.getpid())

def query(qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in "api.allowed.test".split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)

def ask(kind, server, qid):
    if kind == "tcp":
        s = socket.create_connection(server, timeout=2)
        q = query(qid)
        s.sendall(struct.pack(">H", len(q)) + q)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
            chunk = s.recv(4096)
            if not chunk:
                raise EOFError("closed")
            data += chunk
        s.close()
        return data[2:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    if kind == "udp":
        s.sendto(query(qid), server)
    else:
        s.connect(server)
        s.send(query(qid))
    reply = s.recv(4096)
    s.close()
    return reply

def loop(thread):
    i = 0
    while True:
        i += 1
        qid = (thread << 14 | i) & 0xFFFF
        kind = "tcp" if i % 5 == 0 else ("udp-connected" if i % 2 else "udp")
        server = ({RESOLVER:?}, 53)
        if i % 4 == 0 and kind != "tcp":
            kind, server = "udp-slow", ({SLOW_RESOLVER:?}, 53)
        wall = time.time()
        start = time.monotonic()
        try:
            reply = ask(kind, server, qid)
            rid, flags, qd, an = struct.unpack(">HHHH", reply[:8])
            result = "ok" if rid == qid and flags & 0xF == 0 and an >= 1 else "bad"
        except Exception as e:
            result = "fail-" + type(e).__name__
        log.write("%d.%d %s %s %.3f %.3f\n" % (thread, i, kind, result, time.monotonic() - start, wall))
        time.sleep(0.01)

for thread in range(4):
    threading.Thread(target=loop, args=(thread,), daemon=True).start()
while True:
    time.sleep(3600)
"#,
        log = log.display().to_string(),
    );
    vec!["python3".into(), "-c".into(), script]
}

/// The slow resolver pod: answers every A query with 192.0.2.30, 300 ms later.
fn slow_resolver() -> Vec<String> {
    let script = format!(
        r#"
import socket, struct, threading, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(({SLOW_RESOLVER:?}, 53))
def answer(q, peer):
    time.sleep(0.3)
    header = struct.pack(">HHHHHH", struct.unpack(">H", q[:2])[0], 0x8180, 1, 1, 0, 0)
    record = struct.pack(">HHHIH", 0xC00C, 1, 1, 30, 4) + bytes([192, 0, 2, 30])
    s.sendto(header + q[12:] + record, peer)
while True:
    q, peer = s.recvfrom(4096)
    threading.Thread(target=answer, args=(q, peer), daemon=True).start()
"#
    );
    vec!["python3".into(), "-c".into(), script]
}

/// The backend pod's echo server: each line comes back prefixed with the address the
/// server saw the connection come from.
fn echo_server() -> Vec<String> {
    let script = format!(
        r#"
import socket, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(({BACKEND:?}, {ECHO_PORT}))
srv.listen(64)
def serve(c, peer):
    f = c.makefile("rb")
    for line in f:
        c.sendall(peer[0].encode() + b" " + line)
    c.close()
while True:
    c, peer = srv.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"#
    );
    vec!["python3".into(), "-c".into(), script]
}

/// The scenario: a resolver (dnsmasq answering from its own records), a client running
/// the query loop, an echo backend, a stranger; default deny, the client may ask the
/// resolver for `*.allowed.test` and reach the backend's echo port.
fn config(dir: &Path, extra: &str) -> String {
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    format!(
        r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {{name: node}}
spec:
  nodeName: handover-node
  proxy: {{port: 15201, dnsPort: 15253, adminSocket: "{admin}"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: client, namespace: hov, labels: {{app: client}}}}
spec: {{addresses: ["10.200.10.2"], run: {{command: {client}}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: backend, namespace: hov, labels: {{app: backend}}}}
spec: {{addresses: ["{BACKEND}"], run: {{command: {backend}}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: stranger, namespace: hov, labels: {{app: stranger}}}}
spec: {{addresses: ["10.200.10.4"], run: {{command: ["sleep", "infinity"]}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: resolver, namespace: hov, labels: {{app: resolver}}}}
spec:
  addresses: ["{RESOLVER}"]
  run: {{command: {resolver}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: slow, namespace: hov, labels: {{app: resolver}}}}
spec: {{addresses: ["{SLOW_RESOLVER}"], run: {{command: {slow}}}}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: default-deny, namespace: hov}}
spec:
  endpointSelector: {{}}
  ingress: [{{}}]
  egress: [{{}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: client, namespace: hov}}
specs:
- endpointSelector: {{matchLabels: {{app: client}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{app: resolver}}}}]
    toPorts:
    - ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]
      rules:
        dns: [{{matchPattern: "*.allowed.test"}}]
  - toEndpoints: [{{matchLabels: {{app: backend}}}}]
    toPorts: [{{ports: [{{port: "{ECHO_PORT}", protocol: TCP}}]}}]
- endpointSelector: {{matchLabels: {{app: resolver}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: client}}}}]
    toPorts: [{{ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]}}]
- endpointSelector: {{matchLabels: {{app: backend}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: client}}}}]
    toPorts: [{{ports: [{{port: "{ECHO_PORT}", protocol: TCP}}]}}]
{extra}"#,
        admin = dir.join("admin.sock").display(),
        client = json(query_loop(&dir.join("queries.log"))),
        backend = json(echo_server()),
        slow = json(slow_resolver()),
        resolver = dnsmasq(
            RESOLVER,
            &[
                "--host-record=api.allowed.test,192.0.2.10".into(),
                "--host-record=api.denied.test,192.0.2.20".into(),
            ]
        ),
    )
}

/// What the query loop logged: its pid and each query's line.
struct QueryLog {
    pids: Vec<u32>,
    lines: Vec<String>,
}

impl QueryLog {
    fn read(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join("queries.log")).unwrap_or_default();
        let mut pids = Vec::new();
        let mut lines = Vec::new();
        // A line still being written has no newline yet: leave it for the next read.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            match line.trim().strip_prefix("start ") {
                Some(pid) => pids.push(pid.parse().unwrap()),
                None => lines.push(line.trim().to_owned()),
            }
        }
        Self { pids, lines }
    }

    /// Queries in flight at some point of `windows` (unix time, seconds).
    fn in_flight_during(&self, windows: &[(f64, f64)]) -> usize {
        self.lines
            .iter()
            .filter_map(|l| {
                let mut fields = l.split(' ').rev();
                let start: f64 = fields.next()?.parse().ok()?;
                let latency: f64 = fields.next()?.parse().ok()?;
                Some((start, start + latency))
            })
            .filter(|(from, to)| windows.iter().any(|(a, b)| from <= b && to >= a))
            .count()
    }

    fn answered(&self) -> usize {
        self.lines.iter().filter(|l| l.contains(" ok ")).count()
    }

    /// The queries sent at or after `since` (unix time).
    fn sent_since(&self, since: f64) -> Vec<&String> {
        self.lines
            .iter()
            .filter(|l| {
                l.rsplit(' ')
                    .next()
                    .and_then(|t| t.parse::<f64>().ok())
                    .is_some_and(|t| t >= since)
            })
            .collect()
    }
}

/// A connection from the client pod to the echo backend, held open by a Python process
/// (through `sluice exec`) that sends each line it reads and prints the echo.
struct HeldConnection {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl HeldConnection {
    fn open() -> Self {
        let script = format!(
            r#"
import socket, sys
s = socket.create_connection(({BACKEND:?}, {ECHO_PORT}), timeout=5)
f = s.makefile("rb")
for line in sys.stdin:
    s.sendall(line.encode())
    print(f.readline().decode().strip(), flush=True)
"#
        );
        let mut child = Command::new(BIN)
            .args(["exec", "hov/client", "--", "python3", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends `ping <n>`; the echo (`<address the server saw> ping <n>`), empty when the
    /// connection is gone.
    fn ping(&mut self, n: usize) -> String {
        let _ = writeln!(self.stdin, "ping {n}");
        let _ = self.stdin.flush();
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim().to_owned()
    }

    fn close(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

/// Whether the stranger pod gets an echo from the backend. (A connection the proxy
/// denies is accepted by the kernel first and reset once decided: only an exchange
/// shows whether it went through.)
fn stranger_reaches_backend() -> bool {
    let script = format!(
        r#"
import socket
try:
    s = socket.create_connection(({BACKEND:?}, {ECHO_PORT}), timeout=3)
    s.sendall(b"hello\n")
    print("echoed" if s.recv(4096) else "closed")
except OSError as e:
    print("refused", e)
"#
    );
    let out = Command::new(BIN)
        .args(["exec", "hov/stranger", "--", "python3", "-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).starts_with("echoed")
}

/// `dig` from the client pod: the status of the answer (`NOERROR`, `REFUSED`, …).
fn dig_status(name: &str) -> String {
    let out = Command::new(BIN)
        .args(["exec", "hov/client", "--", "dig", "+time=2", "+tries=1"])
        .arg(format!("@{RESOLVER}"))
        .arg(name)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_owned()
}

/// Waits until the echo backend listens (seen from the host, which no redirect touches).
fn wait_for_backend() {
    eventually("the echo backend listens", || {
        std::net::TcpStream::connect((BACKEND, ECHO_PORT)).is_ok()
    });
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// A copy of the scenario's configuration directory with `yaml` as its only file.
fn other_config(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let config = dir.join(name);
    let _ = std::fs::remove_dir_all(&config);
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("all.yaml"), yaml).unwrap();
    config
}

/// Kernel objects a node leaves behind when it did not clean up. The node-wide ones
/// (the node's cgroup, pinned links, lock files) are checked only while no node runs:
/// the check holds the node lock, as a node would, so that another test's node cannot
/// start in the middle of it.
fn leftovers() -> Vec<String> {
    let mut found = Vec::new();
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&netns.stdout).lines() {
        if line.starts_with("sluice-hov-") {
            found.push(format!("netns {line}"));
        }
    }
    let cgroup = sluice_proxy::node::node_cgroup().unwrap();
    if cgroup.join("hov").exists() {
        found.push(format!("cgroup {}/hov", cgroup.display()));
    }
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/sluice/node.lock")
        .unwrap();
    if lock.try_lock().is_err() {
        eprintln!("another node runs already: node-wide leftovers not checked");
        return found;
    }
    if cgroup.exists() {
        found.push(format!("cgroup {}", cgroup.display()));
    }
    if let Ok(pins) = std::fs::read_dir("/sys/fs/bpf/sluice/links") {
        for pin in pins.flatten() {
            found.push(format!("pin {}", pin.path().display()));
        }
    }
    if let Ok(locks) = std::fs::read_dir("/run/sluice") {
        for lock in locks.flatten() {
            let name = lock.file_name().to_string_lossy().into_owned();
            if name.starts_with("cgroup") && name.ends_with(".lock") {
                found.push(format!("lock file {name}"));
            }
        }
    }
    found
}

#[test]
fn takeover_without_a_running_node_is_a_clear_error() {
    let dir = scenario_dir("handover-none");
    std::fs::write(dir.join("config/all.yaml"), config(&dir, "")).unwrap();
    let out = Command::new(BIN)
        .args(["up", "--quiet", "--takeover", "--config"])
        .arg(dir.join("config"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no sluice node answers on")
            && stderr.contains("nothing to take over")
            && stderr.contains("admin.sock"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_restarts_lose_no_query_keep_workloads_connections_and_policy() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("handover");
    std::fs::write(dir.join("config/all.yaml"), config(&dir, "")).unwrap();
    let mut node = Node::start(&dir);

    // The loop runs and the resolver answers; failures before this point (the
    // resolver starting) do not count.
    eventually("the query loop gets answers", || {
        QueryLog::read(&dir).answered() >= 20
    });
    // Queries sent from now on must all be answered.
    let baseline = unix_now();
    let client_pid = QueryLog::read(&dir).pids[0];

    // A connection through the proxy, opened before any restart (the first of its kind,
    // so the proxy splices it: the backend sees the proxy's address).
    wait_for_backend();
    let mut held = HeldConnection::open();
    assert_eq!(held.ping(0), format!("{PROXY_SOURCE} ping 0"));

    let mut predecessors = Vec::new();
    let mut switches = Vec::new();
    for round in 1..=RESTARTS {
        let before = QueryLog::read(&dir).answered();
        std::thread::sleep(Duration::from_millis(500));
        // The first predecessor keeps the held connection until it ends: give it time.
        let drain = if round == 1 { "120" } else { "10" };
        let started = Instant::now();
        let from = unix_now();
        let successor = Node::takeover(&dir, &dir.join("config"), &["--drain-timeout", drain])
            .unwrap_or_else(|e| panic!("takeover {round} failed:\n{e}"));
        switches.push((from, unix_now()));
        eprintln!(
            "restart {round}: pid {} took over from pid {} in {:?}",
            successor.pid(),
            node.pid(),
            started.elapsed()
        );
        predecessors.push(std::mem::replace(&mut node, successor));
        eventually("queries answered after the restart", || {
            QueryLog::read(&dir).answered() >= before + 100
        });
        assert_eq!(
            held.ping(round),
            format!("{PROXY_SOURCE} ping {round}"),
            "the connection opened before restart 1 still works after restart {round}"
        );
        // A predecessor that holds nothing exits at once; the first one holds the
        // connection and serves it on.
        if round > 1 {
            let previous = predecessors.last_mut().unwrap();
            let status = previous
                .wait_exit(Duration::from_secs(15))
                .expect("a predecessor holding nothing exits");
            assert!(status.success(), "predecessor exited with {status}");
        }
        // A plain second node is still refused: the lock moved, it was never free.
        let second = Command::new(BIN)
            .args(["up", "--quiet", "--config"])
            .arg(dir.join("config"))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&second.stderr).contains("another sluice node"));
    }
    assert!(alive(predecessors[0].pid()), "the first predecessor drains");
    held.close();
    let status = predecessors[0]
        .wait_exit(Duration::from_secs(15))
        .expect("the first predecessor exits once its connection ended");
    assert!(status.success(), "first predecessor exited with {status}");

    // Policy is still enforced by the last node: denied connect, refused name.
    assert!(!stranger_reaches_backend(), "stranger reached the backend");
    assert_eq!(dig_status("api.denied.test"), "REFUSED");
    assert_eq!(dig_status("api.allowed.test"), "NOERROR");
    // A new connection goes through the last node's proxy (its verdicts are new).
    let mut fresh = HeldConnection::open();
    assert!(fresh.ping(99).ends_with("ping 99"));
    fresh.close();

    // A takeover with a configuration that does not load is refused before it asks;
    // one that would change the pods is refused by the running node's check. The
    // running node keeps serving through both.
    let broken = other_config(&dir, "broken", "kind: [unclosed");
    let err = Node::takeover(&dir, &broken, &[]).err().expect("refused");
    assert!(err.contains("loading the configuration"), "{err}");
    let more_pods = config(
        &dir,
        "---\napiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: extra, namespace: hov}\nspec: {addresses: [\"10.200.10.9\"], run: {command: [\"sleep\", \"infinity\"]}}\n",
    );
    let changed = other_config(&dir, "changed", &more_pods);
    let err = Node::takeover(&dir, &changed, &[]).err().expect("refused");
    assert!(
        err.contains("keeps the running pods") && err.contains("hov/extra is new"),
        "{err}"
    );
    let before = QueryLog::read(&dir).answered();
    eventually("the running node keeps answering", || {
        QueryLog::read(&dir).answered() >= before + 50
    });
    assert!(
        alive(node.pid()),
        "the running node survived the refused takeovers"
    );
    assert!(
        !stranger_reaches_backend(),
        "policy enforced after the refused takeover"
    );
    assert_eq!(dig_status("api.denied.test"), "REFUSED");

    // Every query of the loop across all of it was answered, by one client process.
    let log = QueryLog::read(&dir);
    let sent = log.sent_since(baseline);
    let failures: Vec<_> = sent.iter().filter(|l| !l.contains(" ok ")).collect();
    let in_flight = log.in_flight_during(&switches);
    eprintln!(
        "query loop: {} queries after the baseline, {} answered, {} failed, {} restarts, \
         {in_flight} queries in flight while a successor took over",
        sent.len(),
        sent.len() - failures.len(),
        failures.len(),
        RESTARTS
    );
    assert!(failures.is_empty(), "queries lost: {failures:#?}");
    assert!(in_flight > 0, "no query was in flight during a switch");
    assert_eq!(
        log.pids,
        vec![client_pid],
        "the client process never restarted"
    );
    assert!(alive(client_pid), "the client process still runs");

    // SIGTERM of the last node removes everything, and a plain `sluice up` starts again.
    drop(node);
    let left = leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!dir.join("admin.sock").exists(), "admin socket left behind");
    assert!(!alive(client_pid), "the pods' processes were stopped");
    drop(predecessors);

    let node = Node::start(&dir);
    eventually("a fresh node answers", || {
        dig_status("api.allowed.test") == "NOERROR"
    });
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_successor_killed_after_taking_over_fails_closed_and_the_next_node_cleans_up() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("handover-crash");
    std::fs::write(dir.join("config/all.yaml"), config(&dir, "")).unwrap();
    let mut first = Node::start(&dir);
    eventually("DNS answers", || {
        dig_status("api.allowed.test") == "NOERROR"
    });
    // The first node will have a connection to finish: it outlives its successor.
    wait_for_backend();
    let mut held = HeldConnection::open();
    assert_eq!(held.ping(0), format!("{PROXY_SOURCE} ping 0"));
    let successor = Node::takeover(&dir, &dir.join("config"), &["--drain-timeout", "120"])
        .unwrap_or_else(|e| panic!("takeover failed:\n{e}"));
    successor.signal("-KILL");
    drop(successor);

    // Nothing serves: the pinned programs still redirect, so DNS fails closed instead
    // of reaching the resolver unenforced; the first node only finishes what it holds.
    assert_eq!(dig_status("api.allowed.test"), "no answer");
    assert!(alive(first.pid()), "the first node still drains");
    assert_eq!(held.ping(1), format!("{PROXY_SOURCE} ping 1"));

    // It let go of the locks when it handed over: a plain node starts at once, and
    // cleans up what the killed one left (pods restarted, links re-attached).
    let second = Node::start(&dir);
    eventually("the new node answers", || {
        dig_status("api.allowed.test") == "NOERROR"
    });
    assert!(
        !stranger_reaches_backend(),
        "policy enforced by the new node"
    );
    // The held connection's backend was restarted with its pod: the first node's last
    // connection ends, and it exits.
    held.close();
    let status = first
        .wait_exit(Duration::from_secs(30))
        .expect("the first node exits once its connection ended");
    assert!(status.success(), "first node exited with {status}");
    drop(second);
    let left = leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_enrolled_cgroup_is_taken_over_with_the_node() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("handover-unit");
    let unit = UnitCgroup::create("hov");
    let extra = format!(
        r#"---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: unit, namespace: hov, labels: {{app: unit}}}}
spec: {{cgroup: "{}"}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: unit-to-backend, namespace: hov}}
specs:
- endpointSelector: {{matchLabels: {{app: unit}}}}
  egress: [{{toEndpoints: [{{matchLabels: {{app: backend}}}}], toPorts: [{{ports: [{{port: "{ECHO_PORT}", protocol: TCP}}]}}]}}]
- endpointSelector: {{matchLabels: {{app: backend}}}}
  ingress: [{{fromEndpoints: [{{matchLabels: {{app: unit}}}}], toPorts: [{{ports: [{{port: "{ECHO_PORT}", protocol: TCP}}]}}]}}]
"#,
        unit.relative
    );
    std::fs::write(dir.join("config/all.yaml"), config(&dir, &extra)).unwrap();
    let mut node = Node::start(&dir);
    wait_for_backend();
    // Through the proxy on 127.0.0.1 (a host-netns workload always is).
    assert_eq!(unit_echo(&unit), format!("{PROXY_SOURCE} unit"));

    let successor = Node::takeover(&dir, &dir.join("config"), &[])
        .unwrap_or_else(|e| panic!("takeover failed:\n{e}"));
    let status = node
        .wait_exit(Duration::from_secs(15))
        .expect("the predecessor exits");
    assert!(status.success(), "predecessor exited with {status}");
    // The unit is still steered (pinned links adopted), through the adopted listener.
    assert_eq!(unit_echo(&unit), format!("{PROXY_SOURCE} unit"));

    // A configuration without the unit would leave its programs with no owner: refused.
    let without = other_config(&dir, "without-unit", &config(&dir, ""));
    let err = Node::takeover(&dir, &without, &[]).err().expect("refused");
    assert!(
        err.contains("enrolls cgroups this configuration does not"),
        "{err}"
    );
    assert_eq!(unit_echo(&unit), format!("{PROXY_SOURCE} unit"));

    drop(successor);
    // The node detached from the unit's cgroup and left it to its owner.
    assert!(unit.path.exists());
    let left = leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The echo the backend sends a process of `unit` (host network namespace).
fn unit_echo(unit: &UnitCgroup) -> String {
    let script = format!(
        "import socket\ntry:\n    s = socket.create_connection(({BACKEND:?}, {ECHO_PORT}), timeout=3)\n    s.sendall(b'unit\\n')\n    print(s.recv(4096).decode().strip())\nexcept OSError as e:\n    print('failed', e)"
    );
    let out = unit
        .command("python3 -c \"$0\"")
        .arg(&script)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
