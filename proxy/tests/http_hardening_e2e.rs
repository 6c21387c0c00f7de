//! The HTTP engine's upgrade paths and time limits end to end, as root: each scenario
//! tries a bypass with a real client against the real node and asserts it fails, and that
//! what policy allows still works. The clients are raw Python sockets (client.py: a
//! trickled head, bytes smuggled behind an upgrade, HTTP/2 by hand) and curl; the backend
//! is a hand-written HTTP/1.1 server (backend.py) that does whatever a permissive upstream
//! would — WebSocket, CONNECT, h2c — and logs every request line it sees, so a test can
//! say what never reached it.
//!
//! One node runs per machine: the scenarios of this file take turns (ONE_NODE), and a
//! node of another test binary makes `sluice up` wait (see `Node::start`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Debian's interpreter, as in http_e2e.rs.
const PYTHON: &str = "/usr/bin/python3";

const CLIENT: &str = "10.200.12.2";
const BACKEND: &str = "10.200.12.3";
const H2WEB: &str = "10.200.12.4";
/// Listens on 9000; the client may not reach it (no egress rule).
const OUTSIDER: &str = "10.200.12.5";

/// The node's time limits in these scenarios (`spec.http`): short, so that the tests wait
/// seconds, and apart, so that a test can tell which one acted.
const HEADER_TIMEOUT: f64 = 2.0;
const IDLE_TIMEOUT: f64 = 3.0;
/// How late the node may act on a shared two-core machine.
const SLACK: f64 = 2.5;

const BACKEND_PY: &str = include_str!("http_hardening/backend.py");
const CLIENT_PY: &str = include_str!("http_hardening/client.py");
const OUTSIDER_PY: &str = include_str!("http_hardening/outsider.py");

fn config(dir: &Path) -> String {
    let admin = dir.join("admin.sock");
    let backend = dir.join("backend.py");
    let backend_log = dir.join("backend.log");
    let outsider = dir.join("outsider.py");
    let outsider_log = dir.join("outsider.log");
    let docroot = dir.join("h2root");
    format!(
        r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {{name: node}}
spec:
  nodeName: http-hardening-node
  proxy: {{port: 15103, adminSocket: "{admin}"}}
  http: {{headerTimeout: {HEADER_TIMEOUT}s, idleTimeout: {IDLE_TIMEOUT}s}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: client, namespace: e2e, labels: {{app: client}}}}
spec: {{addresses: ["{CLIENT}"], run: {{command: ["sleep", "infinity"]}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: backend, namespace: e2e, labels: {{app: backend}}}}
spec:
  addresses: ["{BACKEND}"]
  run: {{command: ["{PYTHON}", "{backend}", "8080", "{BACKEND}", "{backend_log}"]}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: h2web, namespace: e2e, labels: {{app: backend}}}}
spec:
  addresses: ["{H2WEB}"]
  run: {{command: ["/usr/sbin/nghttpd", "--no-tls", "-d", "{docroot}", "8080"]}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: outsider, namespace: e2e, labels: {{app: outsider}}}}
spec:
  addresses: ["{OUTSIDER}"]
  run: {{command: ["{PYTHON}", "{outsider}", "9000", "{OUTSIDER}", "{outsider_log}"]}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: client-out, namespace: e2e}}
spec:
  endpointSelector: {{matchLabels: {{app: client}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{app: backend}}}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: backend-l7, namespace: e2e}}
spec:
  endpointSelector: {{matchLabels: {{app: backend}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: client}}}}]
    toPorts:
    - ports: [{{port: "8080", protocol: TCP}}]
      rules:
        http:
        - {{method: "GET|POST", path: "/api/.*"}}
        - {{method: GET, path: "/ws"}}
        # CONNECT has no path: only a rule without one can match it, and `host` is the
        # target it names. The tunnel still goes to the original destination.
        - {{method: CONNECT, host: "db\\.internal:5432|{outsider_re}:9000"}}
"#,
        admin = admin.display(),
        backend = backend.display(),
        backend_log = backend_log.display(),
        outsider = outsider.display(),
        outsider_log = outsider_log.display(),
        outsider_re = OUTSIDER.replace('.', "\\\\."),
        docroot = docroot.display(),
    )
}

/// A scenario directory with the scripts, the HTTP/2 document root and the configuration.
fn hardening_dir(name: &str) -> PathBuf {
    let dir = common::scenario_dir(name);
    std::fs::create_dir_all(dir.join("h2root/api")).unwrap();
    std::fs::write(dir.join("h2root/api/users"), "users over h2\n").unwrap();
    std::fs::write(dir.join("backend.py"), BACKEND_PY).unwrap();
    std::fs::write(dir.join("client.py"), CLIENT_PY).unwrap();
    std::fs::write(dir.join("outsider.py"), OUTSIDER_PY).unwrap();
    std::fs::write(dir.join("backend.log"), "").unwrap();
    std::fs::write(dir.join("outsider.log"), "").unwrap();
    std::fs::write(dir.join("config/all.yaml"), config(&dir)).unwrap();
    dir
}

/// A started node with the backend answering through it; on drop, the node stops first,
/// then its directory goes (kept when the test failed).
struct Scenario {
    node: Option<Node>,
    dir: PathBuf,
}

impl Scenario {
    fn start(name: &str) -> Self {
        let dir = hardening_dir(name);
        let node = Node::start(&dir);
        let s = Self {
            node: Some(node),
            dir,
        };
        eventually("the backend answers through the proxy", || {
            s.curl(&[], &format!("http://{BACKEND}:8080/api/ready")) == "200"
        });
        s
    }

    /// Runs `client.py COMMAND ARGS…` in the client pod; its JSON report.
    fn client(&self, args: &[&str]) -> Value {
        let script = self.dir.join("client.py");
        let out = Command::new(BIN)
            .args(["exec", "e2e/client", "--", PYTHON])
            .arg(script)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "client.py {args:?}: {e}\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// curl in the client pod: what `-w` prints, the status unless `extra` gives another `-w`.
    fn curl(&self, extra: &[&str], url: &str) -> String {
        let mut args = vec!["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"];
        args.extend_from_slice(extra);
        args.push(url);
        let out = Command::new(BIN)
            .args(["exec", "e2e/client", "--", "curl"])
            .args(&args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// What the backend logged: one request line (or tunnel, WebSocket, post-101 bytes) each.
    fn node(&self) -> &Node {
        self.node.as_ref().unwrap()
    }

    fn backend_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("backend.log")).unwrap()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        drop(self.node.take());
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn secs(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("not a number of seconds: {v}"))
}

/// Takes the machine's node for one scenario.
fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_NODE.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn websocket_upgrades_only_when_the_request_is_allowed() {
    let _turn = turn();
    let s = Scenario::start("hardening-ws");

    // GET /ws is allowed: 101, then frames both ways through the proxy.
    let ws = s.client(&["ws", BACKEND, "8080", "/ws"]);
    assert_eq!(ws["status"], "HTTP/1.1 101 Switching Protocols", "{ws}");
    // RFC 6455 §1.3's example key and accept value: the handshake reached the backend whole.
    assert_eq!(ws["accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "{ws}");
    assert_eq!(
        ws["received"],
        serde_json::json!(["hello from backend", "echo: ping 1", "echo: ping 2"]),
        "{ws}"
    );
    assert_eq!(ws["close_opcode"], 8, "{ws}");

    // GET /other is not: 403, no 101, and the backend never hears of it.
    let denied = s.client(&["ws", BACKEND, "8080", "/other"]);
    assert_eq!(denied["status"], "HTTP/1.1 403 Forbidden", "{denied}");
    assert_eq!(denied["body"], "Access denied\r\n", "{denied}");

    // A client that does not wait for the answer and sends frames right away: the frame is
    // parsed as HTTP (and refused), never relayed.
    let eager = s.client(&["ws", BACKEND, "8080", "/other", "eager"]);
    assert_eq!(eager["status"], "HTTP/1.1 403 Forbidden", "{eager}");
    let after = eager["after"].as_str().unwrap();
    assert!(!after.contains(" 101 "), "{eager}");

    let log = s.backend_log();
    assert!(log.contains("GET /ws upgrade=websocket\n"), "{log}");
    assert!(log.contains("ws frame 1 b'ping 1'\n"), "{log}");
    assert!(
        !log.contains("/other"),
        "the backend saw a denied upgrade:\n{log}"
    );
    assert!(
        !log.contains("sneaked in"),
        "a frame behind a denied upgrade leaked:\n{log}"
    );

    // Both decisions are L7 flows, as any request's.
    let flows = s
        .node()
        .observe(&["--protocol", "http", "--http-path", "^/(ws|other)$"]);
    let verdict = |path: &str| {
        flows
            .iter()
            .map(|f| &f["flow"])
            .find(|f| {
                f["l7"]["type"] == "REQUEST"
                    && f["l7"]["http"]["url"]
                        .as_str()
                        .is_some_and(|u| u.ends_with(path))
            })
            .map(|f| f["verdict"].clone())
    };
    assert_eq!(verdict("/ws"), Some("FORWARDED".into()), "{flows:#?}");
    assert_eq!(verdict("/other"), Some("DROPPED".into()), "{flows:#?}");
}

#[test]
fn a_websocket_outlives_a_live_restart_of_the_node() {
    let _turn = turn();
    let mut s = Scenario::start("hardening-ws-restart");

    // A WebSocket through the proxy, held open by a client that sends a frame per line.
    let mut ws = Command::new(BIN)
        .args(["exec", "e2e/client", "--", PYTHON])
        .arg(s.dir.join("client.py"))
        .args(["ws-hold", BACKEND, "8080", "/ws"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_ws = ws.stdin.take().unwrap();
    let mut from_ws = BufReader::new(ws.stdout.take().unwrap());
    let mut exchange = |line: Option<&str>| -> Value {
        if let Some(line) = line {
            writeln!(to_ws, "{line}").unwrap();
            to_ws.flush().unwrap();
        }
        let mut answer = String::new();
        from_ws.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
    };
    let opened = exchange(None);
    assert_eq!(
        opened["status"], "HTTP/1.1 101 Switching Protocols",
        "{opened}"
    );
    assert_eq!(opened["received"], Value::Null);
    assert_eq!(exchange(Some("before"))["received"], "echo: before");

    // A live restart: the successor takes every new connection, the predecessor keeps
    // serving the tunnel it holds.
    let successor = Node::takeover(&s.dir, &s.dir.join("config"), &["--drain-timeout", "120"])
        .unwrap_or_else(|e| panic!("takeover failed:\n{e}"));
    let mut predecessor = s.node.replace(successor).unwrap();
    assert_eq!(exchange(Some("after"))["received"], "echo: after");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(exchange(Some("later"))["received"], "echo: later");
    assert!(
        predecessor.wait_exit(Duration::from_millis(100)).is_none(),
        "the predecessor exited while its tunnel was open"
    );
    // New requests go to the successor.
    assert_eq!(
        s.curl(&[], &format!("http://{BACKEND}:8080/api/ready")),
        "200"
    );

    // The tunnel ends: the predecessor, holding nothing more, exits.
    drop(to_ws);
    let _ = ws.wait();
    let status = predecessor
        .wait_exit(Duration::from_secs(15))
        .expect("the predecessor exits once its tunnel ended");
    assert!(status.success(), "predecessor exited with {status}");
}

#[test]
fn connect_tunnels_only_to_the_original_destination_and_only_when_allowed() {
    let _turn = turn();
    let s = Scenario::start("hardening-connect");

    // The outsider is out of the client's reach at L3/L4: refused (the proxy resets the
    // first connection, the kernel refuses the next ones), and never accepted (below).
    let direct = s.client(&["hold", OUTSIDER, "9000", "nothing"]);
    assert!(
        direct["error"].is_string() || direct["how"] == "reset",
        "the client reached the outsider directly: {direct}"
    );

    // An allowed CONNECT: the backend (the original destination) answers 200 and the
    // tunnel carries bytes both ways.
    let allowed = s.client(&["connect", BACKEND, "8080", "db.internal:5432"]);
    assert_eq!(
        allowed["status"], "HTTP/1.1 200 Connection established",
        "{allowed}"
    );
    assert_eq!(
        allowed["reply"], "backend tunnel to db.internal:5432: hello through the tunnel",
        "{allowed}"
    );

    // A CONNECT naming a target no rule allows: 403, no tunnel, unseen by the backend.
    let denied = s.client(&["connect", BACKEND, "8080", "other.internal:5432"]);
    assert_eq!(denied["status"], "HTTP/1.1 403 Forbidden", "{denied}");

    // A CONNECT that names the outsider, allowed by the rules: the tunnel still ends at
    // the backend. The proxy never dials the target a CONNECT names — its own
    // connections are not subject to the kernel's policy, so that would be a way around it.
    let target = format!("{OUTSIDER}:9000");
    let renamed = s.client(&["connect", BACKEND, "8080", &target]);
    assert_eq!(
        renamed["status"], "HTTP/1.1 200 Connection established",
        "{renamed}"
    );
    assert_eq!(
        renamed["reply"],
        format!("backend tunnel to {target}: hello through the tunnel"),
        "{renamed}"
    );
    // The same for a request in absolute form (what a client sends to a forward proxy):
    // it goes to the backend, whatever authority it names.
    let proxy = format!("http://{BACKEND}:8080");
    let absolute = format!("http://{OUTSIDER}:9000/api/absolute");
    assert_eq!(s.curl(&["-x", &proxy], &absolute), "200");

    std::thread::sleep(Duration::from_millis(500));
    let outsider = std::fs::read_to_string(s.dir.join("outsider.log")).unwrap();
    assert!(
        outsider.is_empty(),
        "a CONNECT reached the outsider:\n{outsider}"
    );

    let log = s.backend_log();
    assert!(
        log.contains("CONNECT db.internal:5432 upgrade=-\n"),
        "{log}"
    );
    assert!(log.contains("GET /api/absolute upgrade=-\n"), "{log}");
    assert!(
        !log.contains("other.internal"),
        "the backend saw a denied CONNECT:\n{log}"
    );
}

#[test]
fn slow_heads_are_cut_at_the_header_timeout_while_others_are_served() {
    let _turn = turn();
    let s = Scenario::start("hardening-slowloris");
    let api = format!("http://{BACKEND}:8080/api/x");

    // A head trickled one byte every half second: progress does not extend the deadline.
    let trickle = std::thread::scope(|scope| {
        let trickler = scope.spawn(|| s.client(&["trickle", BACKEND, "8080", "0.5"]));
        std::thread::sleep(Duration::from_millis(500));
        // Meanwhile other clients are served at once.
        for _ in 0..3 {
            let started = Instant::now();
            assert_eq!(s.curl(&[], &api), "200");
            assert!(started.elapsed() < Duration::from_secs(2), "slow service");
        }
        trickler.join().unwrap()
    });
    assert_eq!(
        trickle["received"], "",
        "the trickled head got an answer: {trickle}"
    );
    assert_ne!(trickle["how"], "open", "{trickle}");
    let elapsed = secs(&trickle["elapsed"]);
    assert!(
        (HEADER_TIMEOUT - 0.3..HEADER_TIMEOUT + SLACK).contains(&elapsed),
        "closed after {elapsed} s: {trickle}"
    );

    // A connection that sends nothing, half a head, or half the HTTP/2 preface: each is
    // closed at the header timeout (the first and the last used to be held forever, in
    // the version detection in front of hyper's own header timer).
    for what in ["nothing", "half-head", "half-preface"] {
        let held = s.client(&["hold", BACKEND, "8080", what]);
        assert_ne!(held["how"], "open", "{what}: {held}");
        assert_eq!(held["received"], "", "{what}: {held}");
        let elapsed = secs(&held["elapsed"]);
        assert!(
            (HEADER_TIMEOUT - 0.3..HEADER_TIMEOUT + SLACK).contains(&elapsed),
            "{what}: closed after {elapsed} s"
        );
    }
    let log = s.backend_log();
    assert!(
        !log.contains("/api/slow") && !log.contains("/api/half"),
        "{log}"
    );

    // A slow body is a request in flight, not a slow head: it takes longer than both
    // timeouts and completes.
    let slow = s.client(&["slowbody", BACKEND, "8080", "/api/upload", "4"]);
    assert_eq!(slow["status"], 200, "{slow}");
    assert_eq!(slow["body"], "POST /api/upload\nbbbbbbbb", "{slow}");
}

#[test]
fn idle_keep_alive_connections_close_at_the_idle_timeout() {
    let _turn = turn();
    let s = Scenario::start("hardening-idle");
    let idle = s.client(&["keepalive", BACKEND, "8080", "/api/once"]);
    assert_eq!(idle["status"], 200, "{idle}");
    assert_eq!(idle["body"], "GET /api/once\n", "{idle}");
    assert_eq!(idle["received"], "", "{idle}");
    assert_eq!(idle["how"], "eof", "the proxy closes, cleanly: {idle}");
    // The idle timeout, not the (shorter) header timeout: waiting for the next request is
    // not a slow head.
    let after = secs(&idle["idle_closed_after"]);
    assert!(
        (IDLE_TIMEOUT - 0.3..IDLE_TIMEOUT + SLACK).contains(&after),
        "closed {after} s after the response"
    );
}

#[test]
fn idle_http2_connections_get_goaway_even_when_they_answer_pings() {
    let _turn = turn();
    let s = Scenario::start("hardening-h2-idle");

    let idle = s.client(&["h2idle", H2WEB, "8080", "/api/users"]);
    assert_eq!(idle["status200"], true, "{idle}");
    assert_eq!(idle["early_goaway"], false, "{idle}");
    let goaways = idle["goaways"].as_array().unwrap();
    let (Some(first), Some(last)) = (goaways.first(), goaways.last()) else {
        panic!("no GOAWAY: {idle}")
    };
    // Graceful (RFC 9113 §6.8): NO_ERROR, new streams refused first, then the last stream
    // processed named: stream 1, the one request.
    assert!(goaways.iter().all(|g| g["error"] == 0), "{idle}");
    assert_eq!(first["last_stream"], 0x7fff_ffff, "{idle}");
    assert_eq!(last["last_stream"], 1, "{idle}");
    let after = secs(&first["after"]);
    assert!(
        (IDLE_TIMEOUT - 0.3..IDLE_TIMEOUT + SLACK).contains(&after),
        "GOAWAY {after} s after the last stream"
    );
    let closed = secs(&idle["closed_after"]);
    assert!(closed >= after && closed < after + SLACK, "{idle}");

    // A header block trickled in CONTINUATION frames opens no stream: the connection is
    // idle all along, however busy the client looks. (h2's own CONTINUATION-flood limit
    // answers a sixth frame with ENHANCE_YOUR_CALM; at one frame a second that comes after
    // the idle timeout, so the NO_ERROR GOAWAY is the watchdog's.)
    let trickle = s.client(&["h2trickle", H2WEB, "8080", "1"]);
    assert_eq!(trickle["goaway"]["error"], 0, "{trickle}");
    let goaway = secs(&trickle["goaway"]["after"]);
    assert!(
        (IDLE_TIMEOUT - 0.3..IDLE_TIMEOUT + SLACK).contains(&goaway),
        "GOAWAY after {goaway} s: {trickle}"
    );
    let closed = secs(&trickle["closed_after"]);
    assert!(
        (goaway..2.0 * IDLE_TIMEOUT + SLACK).contains(&closed),
        "closed after {closed} s: {trickle}"
    );

    // A stream in flight longer than the idle timeout is not idle.
    let slow = s.client(&["h2slow", H2WEB, "8080", "/api/users", "4.5"]);
    assert_eq!(slow["goaway_while_sending"], false, "{slow}");
    assert_eq!(slow["answered"], true, "{slow}");
}

#[test]
fn h2c_upgrades_are_declined_and_cannot_smuggle_a_request() {
    let _turn = turn();
    let s = Scenario::start("hardening-h2c");
    let url = |path: &str| format!("http://{BACKEND}:8080{path}");
    let h2c = |path: &str| {
        s.curl(
            &["--http2", "-w", "%{http_code} %{http_version}"],
            &url(path),
        )
    };
    // curl --http2 asks for h2c; the answer is HTTP/1.1, decided by policy as any other.
    assert_eq!(h2c("/api/users"), "200 1.1");
    assert_eq!(h2c("/admin"), "403 1.1");

    // The request is answered as HTTP/1.1 and the HTTP/2 bytes behind it are not HTTP/1:
    // the connection ends there. The backend, which would switch to h2c if asked, never
    // sees the Upgrade header nor /admin.
    let smuggle = s.client(&["h2c", BACKEND, "8080"]);
    let received = smuggle["received"].as_str().unwrap();
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{smuggle}");
    assert!(received.contains("GET /api/h2c\n"), "{smuggle}");
    assert!(!received.contains(" 101 "), "{smuggle}");
    assert_eq!(received.matches("HTTP/1.1 200").count(), 1, "{smuggle}");

    // A backend that switches protocols unasked does not get a relay either.
    let switch = s.client(&["switch", BACKEND, "8080"]);
    assert_ne!(switch["how"], "open", "{switch}");
    std::thread::sleep(Duration::from_millis(500));

    let log = s.backend_log();
    assert!(log.contains("GET /api/h2c upgrade=-\n"), "{log}");
    assert!(
        !log.contains("upgrade=h2c"),
        "the backend was asked for h2c:\n{log}"
    );
    assert!(
        !log.contains("/admin"),
        "a request for /admin reached the backend:\n{log}"
    );
}
