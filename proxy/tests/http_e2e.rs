//! The node's HTTP engine end to end, as root: real pods, the BPF redirect, `sluice up`,
//! real clients (curl over HTTP/1.1 and HTTP/2 prior knowledge, Python grpcio) and
//! servers (a Python echo server, nghttpd, a Python grpcio server), and the L7 flows in
//! `sluice observe`. The policy is the Cilium playbook's API gateway (users-api-l7 in
//! examples/api-gateway-l7), plus a `headerMatches` secret and an ADD action.
//!
//! One node runs per machine: the scenarios of this file take turns (ONE_NODE), and a
//! node of another test binary makes `sluice up` wait (see `Node::start`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Debian's interpreter, where python3-grpcio installs (scripts/deps); a `python3` earlier
/// on PATH may be another one.
const PYTHON: &str = "/usr/bin/python3";

const BACKEND: &str = "10.200.9.3";
const H2WEB: &str = "10.200.9.6";
const GREETER: &str = "10.200.9.5";

/// Echoes the request line, the headers (lowercased) and the body, with keep-alive.
const ECHO_SERVER: &str = r#"
import sys, http.server, socketserver
class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def echo(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        head = "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items())
        out = f"{self.command} {self.path}\n{head}\n".encode() + body
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(out)))
        # Which upstream connection carried the request (the proxy's source port).
        self.send_header("x-upstream-port", str(self.client_address[1]))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = echo
    def log_message(self, *args):
        pass
# Not http.server.HTTPServer: its server_bind resolves the address (a DNS query).
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer((sys.argv[2], int(sys.argv[1])), Echo).serve_forever()
"#;

/// A gRPC service `demo.Greeter` with two methods, no protoc: generic handlers, bytes.
const GRPC_SERVER: &str = r#"
import sys, grpc
from concurrent import futures
def hello(request, context):
    return b"hello " + request
handler = grpc.method_handlers_generic_handler("demo.Greeter", {
    "SayHello": grpc.unary_unary_rpc_method_handler(hello),
    "Admin": grpc.unary_unary_rpc_method_handler(hello),
})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port(f"{sys.argv[2]}:{sys.argv[1]}")
server.start()
server.wait_for_termination()
"#;

/// Calls one method; prints `OK <reply>` or `ERR <status code number> <details>`.
const GRPC_CLIENT: &str = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_http_proxy", 0)])
call = channel.unary_unary(sys.argv[2])
try:
    print("OK", call(b"sluice", timeout=5).decode())
except grpc.RpcError as e:
    print("ERR", e.code().value[0], e.details())
"#;

fn config(dir: &Path) -> String {
    let admin = dir.join("admin.sock");
    let echo = dir.join("echo.py");
    let grpc = dir.join("grpc_server.py");
    let docroot = dir.join("h2root");
    format!(
        r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {{name: node}}
spec:
  nodeName: http-e2e-node
  proxy: {{port: 15102, adminSocket: "{admin}"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: frontend, namespace: e2e, labels: {{app: frontend}}}}
spec: {{addresses: ["10.200.9.2"], run: {{command: ["sleep", "infinity"]}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: backend, namespace: e2e, labels: {{app: users-api}}}}
spec:
  addresses: ["{BACKEND}"]
  run: {{command: ["{PYTHON}", "{echo}", "8080", "{BACKEND}"]}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: h2web, namespace: e2e, labels: {{app: users-api}}}}
spec:
  addresses: ["{H2WEB}"]
  run: {{command: ["/usr/sbin/nghttpd", "--no-tls", "-d", "{docroot}", "8080"]}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: greeter, namespace: e2e, labels: {{app: greeter}}}}
spec:
  addresses: ["{GREETER}"]
  run: {{command: ["{PYTHON}", "{grpc}", "50051", "{GREETER}"]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: api-key, namespace: e2e}}
stringData: {{key: s3cret}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: frontend-out, namespace: e2e}}
spec:
  endpointSelector: {{matchLabels: {{app: frontend}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{app: users-api}}}}, {{matchLabels: {{app: greeter}}}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: users-api-l7, namespace: e2e}}
spec:
  endpointSelector: {{matchLabels: {{app: users-api}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: frontend}}}}]
    toPorts:
    - ports: [{{port: "8080", protocol: TCP}}]
      rules:
        http:
        - method: "GET|POST"
          path: "/api/.*"
        - method: DELETE
          path: "/api/users/[0-9]+"
          headers: ["X-API-Key"]
        - method: PUT
          path: "/api/users/[0-9]+"
          headerMatches: [{{name: X-Role, value: admin}}]
        - method: PUT
          path: "/api/keys"
          headerMatches: [{{name: X-Key, secret: {{name: api-key}}}}]
        - method: GET
          path: "/api/tagged"
          headerMatches: [{{name: X-Tag, value: sluice, mismatch: ADD}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: greeter-l7, namespace: e2e}}
spec:
  endpointSelector: {{matchLabels: {{app: greeter}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: frontend}}}}]
    toPorts:
    - ports: [{{port: "50051", protocol: TCP}}]
      rules:
        http:
        - {{method: POST, path: "/demo.Greeter/SayHello"}}
"#,
        admin = admin.display(),
        echo = echo.display(),
        grpc = grpc.display(),
        docroot = docroot.display(),
    )
}

/// Runs a command in the frontend pod (its cgroup and netns); returns stdout.
fn in_frontend(program: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["exec", "e2e/frontend", "--", program])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// curl from the frontend: the status (0 when the connection failed). `--path-as-is`:
/// curl would otherwise remove dot segments itself, and the proxy must be the one to.
fn status(extra: &[&str], url: &str) -> u16 {
    let mut args = vec![
        "-s",
        "--path-as-is",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    in_frontend("curl", &args).trim().parse().unwrap_or(0)
}

/// curl from the frontend: the response body.
fn body(extra: &[&str], url: &str) -> String {
    let mut args = vec!["-s", "--path-as-is", "-m", "5"];
    args.extend_from_slice(extra);
    args.push(url);
    in_frontend("curl", &args)
}

/// The scenario's directory with its servers' files and configuration.
fn http_scenario_dir(name: &str) -> PathBuf {
    let dir = common::scenario_dir(name);
    std::fs::create_dir_all(dir.join("h2root/api")).unwrap();
    std::fs::write(dir.join("h2root/api/users"), "users over h2\n").unwrap();
    std::fs::write(dir.join("h2root/admin"), "admin over h2\n").unwrap();
    std::fs::write(dir.join("echo.py"), ECHO_SERVER).unwrap();
    std::fs::write(dir.join("grpc_server.py"), GRPC_SERVER).unwrap();
    std::fs::write(dir.join("grpc_client.py"), GRPC_CLIENT).unwrap();
    std::fs::write(dir.join("config/all.yaml"), config(&dir)).unwrap();
    dir
}

#[test]
fn http_rules_are_enforced_per_request_with_flows() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = http_scenario_dir("http-l7");
    let node = Node::start(&dir);
    let api = |path: &str| format!("http://{BACKEND}:8080{path}");
    eventually("frontend reaches the echo backend", || {
        status(&[], &api("/api/users")) == 200
    });

    // Expected statuses: Cilium's semantics (spec §11) — entries ORed, fields ANDed,
    // full-match regexes; 403 for a denial; normalisation refusals per sluice_l7.
    let table: &[(&str, &[&str], &str, u16)] = &[
        ("allowed GET", &[], "/api/users", 200),
        (
            "allowed POST",
            &["-X", "POST", "-d", "x=1"],
            "/api/users",
            200,
        ),
        ("wrong method", &["-X", "PATCH"], "/api/users", 403),
        ("wrong path", &[], "/admin", 403),
        ("path is a full match", &[], "/apix", 403),
        (
            "DELETE without the header",
            &["-X", "DELETE"],
            "/api/users/7",
            403,
        ),
        (
            "DELETE with the header",
            &["-X", "DELETE", "-H", "X-API-Key: k"],
            "/api/users/7",
            200,
        ),
        (
            "PUT as admin",
            &["-X", "PUT", "-H", "X-Role: admin"],
            "/api/users/7",
            200,
        ),
        (
            "PUT as user",
            &["-X", "PUT", "-H", "X-Role: user"],
            "/api/users/7",
            403,
        ),
        (
            "secret header right",
            &["-X", "PUT", "-H", "X-Key: s3cret"],
            "/api/keys",
            200,
        ),
        (
            "secret header wrong",
            &["-X", "PUT", "-H", "X-Key: guess"],
            "/api/keys",
            403,
        ),
        ("escaped slash", &[], "/api/..%2Fadmin", 400),
        ("dot segments reach /admin", &[], "/api/../admin", 403),
        ("dot segments reach /api", &[], "/public/../api/users", 200),
        ("method case", &["-X", "get"], "/api/users", 403),
    ];
    let mut failures = Vec::new();
    for (what, args, path, want) in table {
        let got = status(args, &api(path));
        if got != *want {
            failures.push(format!("{what}: {path} gave {got}, expected {want}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // Size limits: 100 header fields per request (curl sends three of its own), an
    // 8 KiB request-target; beyond them 431 and 414 from the proxy. The backend takes 99
    // fields and answers more with a "Too many headers" page: 100 fields pass the proxy
    // and meet that page, 101 meet the proxy's own 431 (no page).
    let padded = |n: usize| -> Vec<String> {
        (0..n)
            .flat_map(|i| ["-H".to_string(), format!("X-Pad-{i}: {i}")])
            .collect()
    };
    let cases = [
        (90, "200", false),
        (96, "200", false),
        (97, "431", true),
        (98, "431", false),
        (300, "431", false),
    ];
    for (pads, want, backend_page) in cases {
        let mut args = padded(pads);
        args.extend(["-w".to_string(), "\n%{http_code}".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = body(&args, &api("/api/users"));
        let (page, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        let fields = pads + 3;
        assert_eq!(code, want, "{fields} header fields: {out}");
        assert_eq!(
            page.contains("Too many headers"),
            backend_page,
            "{fields} header fields: who answered? {out}"
        );
    }
    let long = format!("/api/{}", "a".repeat(8 << 10));
    assert_eq!(status(&[], &api(&long)), 414, "a target over 8 KiB");

    // The body of a denial is Cilium's.
    assert_eq!(body(&[], &api("/admin")), "Access denied\r\n");
    // The upstream sees the normalised path, and the ADD action's header.
    let echoed = body(&[], &api("/public/../api//users"));
    assert!(echoed.starts_with("GET /api/users\n"), "{echoed}");
    let echoed = body(&[], &api("/api/tagged"));
    assert!(echoed.contains("\nx-tag: sluice\n"), "{echoed}");

    // Keep-alive: allowed, denied, allowed on one connection (one connect in total).
    let reuse = in_frontend(
        "curl",
        &[
            "-s",
            "-m",
            "5",
            "-w",
            "%{http_code}:%{num_connects}\n",
            "-o",
            "/dev/null",
            &api("/api/a"),
            "-o",
            "/dev/null",
            &api("/admin"),
            "-o",
            "/dev/null",
            &api("/api/b"),
        ],
    );
    assert_eq!(reuse, "200:1\n403:0\n200:0\n", "keep-alive across a denial");

    // Client connections that end after one request (`Connection: close`, each its own
    // curl) take turns on one pooled upstream connection: the next one takes it back
    // from the pool, none is closed and made again.
    let ports: Vec<String> = (0..5)
        .map(|_| {
            let head = in_frontend(
                "curl",
                &[
                    "-s",
                    "-m",
                    "5",
                    "-D",
                    "-",
                    "-o",
                    "/dev/null",
                    "-H",
                    "Connection: close",
                    &api("/api/pooled"),
                ],
            );
            head.lines()
                .find_map(|l| l.strip_prefix("x-upstream-port: "))
                .unwrap_or_else(|| panic!("no upstream port in {head}"))
                .trim()
                .to_owned()
        })
        .collect();
    assert!(
        ports.iter().all(|p| *p == ports[0]),
        "one upstream connection for successive client connections: {ports:?}"
    );

    // HTTP/2 with prior knowledge, to an HTTP/2 server.
    let h2 = |path: &str| {
        status(
            &["--http2-prior-knowledge"],
            &format!("http://{H2WEB}:8080{path}"),
        )
    };
    assert_eq!(h2("/api/users"), 200);
    assert_eq!(h2("/admin"), 403);
    assert_eq!(h2("/api/..%2fadmin"), 400);

    // Flows: a REQUEST per request and a RESPONSE per answer, in Hubble's shape.
    let flows = node.observe(&["--protocol", "http", "--http-path", "^/admin$"]);
    let request = flows
        .iter()
        .map(|f| &f["flow"])
        .find(|f| f["l7"]["type"] == "REQUEST" && f["verdict"] == "DROPPED")
        .unwrap_or_else(|| panic!("no denied request flow: {flows:#?}"));
    assert_eq!(request["Type"], "L7");
    assert_eq!(request["l7"]["http"]["method"], "GET");
    assert_eq!(request["source"]["pod_name"], "frontend");
    assert_eq!(request["destination"]["pod_name"], "backend");
    assert_eq!(request["traffic_direction"], "INGRESS");
    assert!(request["l4"]["TCP"]["destination_port"] == 8080);
    let response = flows
        .iter()
        .map(|f| &f["flow"])
        .find(|f| f["l7"]["type"] == "RESPONSE" && f["l7"]["http"]["code"] == 403)
        .unwrap_or_else(|| panic!("no 403 response flow: {flows:#?}"));
    assert_eq!(response["is_reply"], true);
    assert_eq!(response["source"]["pod_name"], "backend");
    assert!(response["l7"]["latency_ns"].is_string());

    // The forwarded request names the policy whose rule allowed it.
    let allowed = node.observe(&["--http-method", "DELETE", "--verdict", "FORWARDED"]);
    let request = allowed
        .iter()
        .map(|f| &f["flow"])
        .find(|f| f["l7"]["type"] == "REQUEST")
        .unwrap_or_else(|| panic!("no forwarded DELETE: {allowed:#?}"));
    assert_eq!(request["ingress_allowed_by"][0]["name"], "users-api-l7");
    let h2_flows = node.observe(&["--protocol", "http", "--http-status", "200"]);
    assert!(
        h2_flows
            .iter()
            .any(|f| f["flow"]["l7"]["http"]["protocol"] == "HTTP/2"),
        "no HTTP/2 response flow"
    );
    let compact = node.observe_compact(&["--protocol", "http", "--http-path", "^/admin$"]);
    assert!(
        compact.contains(&format!(
            "http-request DROPPED (HTTP/1.1 GET http://{BACKEND}:8080/admin)"
        )),
        "{compact}"
    );
    assert!(
        compact.contains("http-response FORWARDED (HTTP/1.1 403 "),
        "{compact}"
    );

    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_denial_body_is_node_configs_and_follows_a_reload() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = http_scenario_dir("http-denied-body");
    let file = dir.join("config/all.yaml");
    let with_http = |http: &str| {
        config(&dir).replace(
            "  nodeName: http-e2e-node\n",
            &format!("  nodeName: http-e2e-node\n  http: {http}\n"),
        )
    };
    std::fs::write(
        &file,
        with_http(r#"{deniedBody: '{"error": "denied"}', deniedContentType: application/json}"#),
    )
    .unwrap();
    let node = Node::start(&dir);
    let admin = format!("http://{BACKEND}:8080/admin");
    eventually("frontend reaches the echo backend", || {
        status(&[], &format!("http://{BACKEND}:8080/api/users")) == 200
    });
    // A CRLF is appended, as Cilium's proxy does.
    assert_eq!(body(&[], &admin), "{\"error\": \"denied\"}\r\n");
    let head = body(
        &["-o", "/dev/null", "-w", "%{http_code} %{content_type}"],
        &admin,
    );
    assert_eq!(head, "403 application/json");

    // The files are watched: a new body applies to the next denial, on a live node.
    std::fs::write(&file, with_http("{deniedBody: Go away}")).unwrap();
    eventually("the reloaded body", || body(&[], &admin) == "Go away\r\n");
    let head = body(
        &["-o", "/dev/null", "-w", "%{http_code} %{content_type}"],
        &admin,
    );
    assert_eq!(head, "403 text/plain");

    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn grpc_calls_are_decided_per_method() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = http_scenario_dir("http-grpc");
    let node = Node::start(&dir);
    let client = dir.join("grpc_client.py");
    let target = format!("{GREETER}:50051");
    let call = |method: &str| {
        in_frontend(PYTHON, &[client.to_str().unwrap(), &target, method])
            .trim()
            .to_owned()
    };
    eventually("the greeter answers", || {
        call("/demo.Greeter/SayHello") == "OK hello sluice"
    });
    // PERMISSION_DENIED is 7, with Envoy's message.
    assert_eq!(call("/demo.Greeter/Admin"), "ERR 7 Access denied");
    let flows = node.observe(&["--protocol", "http", "--http-path", "/demo.Greeter/Admin"]);
    assert!(
        flows.iter().any(|f| f["flow"]["verdict"] == "DROPPED"
            && f["flow"]["l7"]["http"]["protocol"] == "HTTP/2"
            && f["flow"]["l7"]["http"]["method"] == "POST"),
        "{flows:#?}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
