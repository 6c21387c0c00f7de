//! `toFQDNs` end to end, as root: a resolver pod (dnsmasq serving a local zone), a
//! client pod whose egress allows DNS (`rules.dns`) and, by name, HTTP to servers in a
//! network namespace outside the node; `dig` (UDP and TCP) and `curl` from the client,
//! `sluice fqdn cache list`, TTL expiry, a restart that restores the cache, and a
//! corrupt cache file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Addresses outside the node, in a network namespace of their own.
const STRIPE: &str = "10.200.10.100"; // api.stripe.test (inside the toCIDR prefix)
const SHORT: &str = "10.200.10.101"; // short.stripe.test, TTL 4 s (inside the prefix)
const EDGE: &str = "10.200.10.102"; // www.shop.test → edge.cdn.test
const OTHER: &str = "10.200.10.103"; // other.test: resolvable, selected by no toFQDNs
const RESOLVER: &str = "10.200.9.6";

/// The `toFQDNs` selectors of the scenario.
const SELECTORS: &str =
    r#"{matchName: api.stripe.test}, {matchName: short.stripe.test}, {matchPattern: "*.cdn.test"}"#;

fn config(dir: &Path, selectors: &str) -> String {
    format!(
        r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {{name: node}}
spec:
  nodeName: fqdn-node
  proxy: {{port: 15101, adminSocket: "{admin}"}}
  dns: {{minTTL: 0, maxIPsPerHostname: 10, stateFile: "{state}"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: client, namespace: e2e, labels: {{app: client}}}}
spec: {{addresses: ["10.200.9.2"], run: {{command: ["sleep", "infinity"]}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: resolver, namespace: e2e, labels: {{app: resolver}}}}
spec:
  addresses: ["{RESOLVER}"]
  run: {{command: {resolver}}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: default-deny, namespace: e2e}}
spec:
  endpointSelector: {{}}
  ingress: [{{}}]
  egress: [{{}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: client-egress, namespace: e2e}}
specs:
- endpointSelector: {{matchLabels: {{app: client}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{app: resolver}}}}]
    toPorts:
    - ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]
      rules:
        dns: [{{matchPattern: "*"}}]
  - toFQDNs: [{selectors}]
    toPorts: [{{ports: [{{port: "8000", protocol: TCP}}]}}]
  # Covers api. and short.stripe.test's addresses on another port: their FQDN
  # identities keep the prefix's labels (a new label set, compiled at the answer).
  - toCIDR: ["10.200.10.100/31"]
    toPorts: [{{ports: [{{port: "9000", protocol: TCP}}]}}]
- endpointSelector: {{matchLabels: {{app: resolver}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: client}}}}]
    toPorts: [{{ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]}}]
"#,
        admin = dir.join("admin.sock").display(),
        state = state_file(dir).display(),
        resolver = dnsmasq(
            RESOLVER,
            &[
                "--local-ttl=300".into(),
                format!("--host-record=api.stripe.test,{STRIPE},300"),
                format!("--host-record=short.stripe.test,{SHORT},4"),
                format!("--host-record=edge.cdn.test,{EDGE},300"),
                "--cname=www.shop.test,edge.cdn.test,300".into(),
                format!("--host-record=other.test,{OTHER},300"),
            ]
        ),
    )
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("fqdn-cache.json")
}

/// A network namespace outside the node with the four server addresses and an HTTP
/// server on port 8000 of each; routed through the host. Removed on drop.
struct Outside {
    server: Option<Child>,
}

impl Outside {
    const NETNS: &'static str = "sluice-fqdn-outside";
    const HOST_VETH: &'static str = "sfq-out-h";
    const PEER_VETH: &'static str = "sfq-out-p";
    const HOST_SIDE: &'static str = "10.200.10.254";

    fn create() -> Self {
        Self::remove_leftovers();
        let ip = |args: &[&str]| {
            let ok = Command::new("ip").args(args).status().unwrap().success();
            assert!(ok, "ip {}", args.join(" "));
        };
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", Self::NETNS, "ip"];
            full.extend_from_slice(args);
            ip(&full);
        };
        let this = Self { server: None };
        ip(&["netns", "add", Self::NETNS]);
        ip(&[
            "link",
            "add",
            Self::HOST_VETH,
            "type",
            "veth",
            "peer",
            "name",
            Self::PEER_VETH,
        ]);
        ip(&["link", "set", Self::PEER_VETH, "netns", Self::NETNS]);
        ip(&[
            "addr",
            "add",
            &format!("{}/32", Self::HOST_SIDE),
            "dev",
            Self::HOST_VETH,
        ]);
        ip(&["link", "set", Self::HOST_VETH, "up"]);
        std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{}/forwarding", Self::HOST_VETH),
            "1",
        )
        .unwrap();
        for addr in [STRIPE, SHORT, EDGE, OTHER] {
            ip(&[
                "route",
                "replace",
                &format!("{addr}/32"),
                "dev",
                Self::HOST_VETH,
            ]);
            inside(&["addr", "add", &format!("{addr}/32"), "dev", Self::PEER_VETH]);
        }
        inside(&["link", "set", "lo", "up"]);
        inside(&["link", "set", Self::PEER_VETH, "up"]);
        inside(&[
            "route",
            "add",
            Self::HOST_SIDE,
            "dev",
            Self::PEER_VETH,
            "scope",
            "link",
        ]);
        inside(&[
            "route",
            "add",
            "default",
            "via",
            Self::HOST_SIDE,
            "dev",
            Self::PEER_VETH,
        ]);
        this
    }

    fn remove_leftovers() {
        let _ = Command::new("ip")
            .args(["netns", "del", Self::NETNS])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", Self::HOST_VETH])
            .stderr(Stdio::null())
            .status();
    }

    /// Python's threading HTTP server on every address, port 8000 (not
    /// `python3 -m http.server`, which resolves names off the machine), serving one
    /// small page from `root` (not a directory listing of whatever is around).
    fn serve_http(&mut self, root: &Path) {
        std::fs::create_dir_all(root).unwrap();
        std::fs::write(root.join("index.html"), "ok\n").unwrap();
        let script = "import http.server as h, socketserver as s\n\
             s.ThreadingTCPServer.allow_reuse_address = True\n\
             s.ThreadingTCPServer(('', 8000), h.SimpleHTTPRequestHandler).serve_forever()";
        let child = Command::new("ip")
            .args(["netns", "exec", Self::NETNS, "python3", "-c", script])
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(child);
        eventually("the outside HTTP server listens", || {
            let out = Command::new("ip")
                .args(["netns", "exec", Self::NETNS, "curl"])
                .args(CURL_STATUS)
                .arg(format!("http://{STRIPE}:8000/"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "200"
        });
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        Self::remove_leftovers();
    }
}

/// curl's arguments that print only the HTTP status.
const CURL_STATUS: [&str; 7] = ["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"];

/// curl from the client pod: the HTTP status, 0 when the connection failed.
fn curl(ip: &str) -> u16 {
    let out = Command::new(BIN)
        .args(["exec", "e2e/client", "--", "curl"])
        .args(CURL_STATUS)
        .arg(format!("http://{ip}:8000/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// What `connect()` from the client pod to `ip:8000` does: `connected`, `EPERM` (the
/// kernel refused), `timeout`, or another errno name.
fn connect(ip: &str) -> String {
    let script = format!(
        "import socket, errno\n\
         s = socket.socket()\n\
         s.settimeout(3)\n\
         try:\n    \
             s.connect(('{ip}', 8000))\n    \
             print('connected')\n\
         except PermissionError:\n    \
             print('EPERM')\n\
         except socket.timeout:\n    \
             print('timeout')\n\
         except OSError as e:\n    \
             print(errno.errorcode.get(e.errno, str(e.errno)))\n"
    );
    let out = Command::new(BIN)
        .args(["exec", "e2e/client", "--", "python3", "-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `dig @resolver +short <args>` from the client pod.
fn dig(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args([
            "exec",
            "e2e/client",
            "--",
            "dig",
            &format!("@{RESOLVER}"),
            "+short",
            "+time=2",
            "+tries=1",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `sluice fqdn cache list -o json`: the entries.
fn cache_list(node: &Node) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(["fqdn", "cache", "list", "-o", "json", "--socket"])
        .arg(node.dir.join("admin.sock"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fqdn cache list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "FqdnCache");
    doc["entries"].as_array().cloned().unwrap_or_default()
}

/// The cache entry of (e2e/client, name), if any.
fn entry(entries: &[Value], name: &str) -> Option<Value> {
    entries
        .iter()
        .find(|e| e["endpoint"] == "e2e/client" && e["name"] == name)
        .cloned()
}

/// Denied before any answer: the first connection is decided by the proxy (reset), the
/// verdict goes into the kernel, and from then on `connect()` fails there with EPERM.
fn assert_closed(ip: &str, why: &str) {
    let started = Instant::now();
    assert_eq!(curl(ip), 0, "{why}: {ip} answered");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{why}: a denial, not a timeout ({:?})",
        started.elapsed()
    );
    assert_eq!(connect(ip), "EPERM", "{why}: {ip} not refused at connect()");
}

#[test]
fn dns_answers_open_exactly_the_learned_addresses_until_their_ttl_ends() {
    let _one = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("fqdn");
    std::fs::write(dir.join("config/all.yaml"), config(&dir, SELECTORS)).unwrap();
    let mut outside = Outside::create();
    outside.serve_http(&dir.join("www"));
    let node = Node::start(&dir);
    eventually("dnsmasq answers", || {
        let out = Command::new("dig")
            .args([&format!("@{RESOLVER}"), "+short", "+time=1", "+tries=1"])
            .arg("api.stripe.test")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == STRIPE
    });

    // Nothing resolved yet: the addresses are world, which nothing allows.
    assert_closed(STRIPE, "before the lookup");

    // A lookup over UDP opens exactly its address, before dig sees the answer.
    assert_eq!(dig(&["api.stripe.test"]), STRIPE);
    assert_eq!(connect(STRIPE), "connected");
    assert_eq!(curl(STRIPE), 200);
    let entries = cache_list(&node);
    let stripe = entry(&entries, "api.stripe.test.").expect("api.stripe.test is cached");
    assert_eq!(stripe["selectors"], serde_json::json!(["api.stripe.test"]));
    assert_eq!(stripe["ips"][0]["ip"], STRIPE);
    assert_eq!(stripe["ips"][0]["source"], "lookup");
    assert!(stripe["ips"][0]["identity"].as_u64().unwrap() > 16_777_216);
    assert!(stripe["ips"][0]["expires_in"].as_u64().unwrap() > 200);

    // A CNAME chain over TCP: www.shop.test matches no selector, its target does.
    let answer = dig(&["+tcp", "www.shop.test"]);
    assert!(answer.ends_with(EDGE), "{answer}");
    assert_eq!(curl(EDGE), 200);
    let entries = cache_list(&node);
    for name in ["www.shop.test.", "edge.cdn.test."] {
        let e = entry(&entries, name).unwrap_or_else(|| panic!("{name}: {entries:#?}"));
        assert_eq!(e["ips"][0]["ip"], EDGE, "{name}");
    }
    assert_eq!(
        entry(&entries, "edge.cdn.test.").unwrap()["selectors"],
        serde_json::json!(["*.cdn.test"])
    );

    // A name that resolves but that no toFQDNs selector matches opens nothing, and an
    // address no answer gave stays closed.
    assert_eq!(dig(&["other.test"]), OTHER);
    assert_closed(OTHER, "an answer no selector matches");
    assert!(entry(&cache_list(&node), "other.test.").unwrap()["ips"][0]["identity"].is_null());

    // The connection to the learned address is a flow with its FQDN identity's labels.
    eventually("the allowed connection is a flow with fqdn labels", || {
        node.observe(&["--verdict", "FORWARDED"]).iter().any(|f| {
            f["flow"]["IP"]["destination"] == STRIPE
                && f["flow"]["destination"]["labels"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|l| l == "fqdn:api.stripe.test"))
        })
    });

    // A short TTL: open, then closed for new connections once it ends; a connection
    // opened before lives on.
    assert_eq!(dig(&["short.stripe.test"]), SHORT);
    let held = long_request(SHORT, 7);
    assert_eq!(curl(SHORT), 200);
    eventually("short.stripe.test expires", || {
        entry(&cache_list(&node), "short.stripe.test.").is_none()
    });
    assert_eq!(connect(SHORT), "EPERM", "closed at its TTL");
    assert_eq!(connect(STRIPE), "connected", "the other name is still open");
    let out = held.wait_with_output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains("200"),
        "a connection made before expiry lives on: {status} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The cache outlives the node: after a restart, without a new lookup, the learned
    // address is open again, and listed as restored.
    eventually("the cache is written", || {
        std::fs::read_to_string(state_file(&dir)).is_ok_and(|s| s.contains("api.stripe.test."))
    });
    drop(node);
    let node = Node::start(&dir);
    assert_eq!(curl(STRIPE), 200, "restored without a lookup");
    let restored = entry(&cache_list(&node), "api.stripe.test.").unwrap();
    assert_eq!(restored["ips"][0]["source"], "restored");
    assert_closed(OTHER, "still closed after the restart");

    // A corrupt cache file: the node starts empty (and says so), it does not crash.
    drop(node);
    std::fs::write(state_file(&dir), "{\"version\":1,\"lookups\":[{\"endp").unwrap();
    let node = Node::start(&dir);
    assert!(cache_list(&node).is_empty());
    assert!(dir.join("fqdn-cache.json.corrupt").exists());
    assert_closed(STRIPE, "nothing restored from a corrupt file");
    assert_eq!(dig(&["api.stripe.test"]), STRIPE);
    assert_eq!(curl(STRIPE), 200);

    assert_eq!(dig(&["edge.cdn.test"]), EDGE);
    assert_eq!(curl(EDGE), 200);

    // A reload labels the cache again: a selector that is gone opens nothing any more.
    let without_stripe = SELECTORS.replace("{matchName: api.stripe.test}, ", "");
    std::fs::write(dir.join("config/all.yaml"), config(&dir, &without_stripe)).unwrap();
    eventually("the reload closes api.stripe.test's address", || {
        curl(STRIPE) == 0
    });
    let stripe = entry(&cache_list(&node), "api.stripe.test.").unwrap();
    assert_eq!(stripe["selectors"], serde_json::json!([]));
    assert!(stripe["ips"][0]["identity"].is_null());
    // What the selectors still in the policy learned before the reload stays open
    // (the reload's sweep of IPCACHE keeps learned addresses), and they still learn.
    assert_eq!(curl(EDGE), 200, "learned before the reload");
    assert_eq!(dig(&["edge.cdn.test"]), EDGE);
    assert_eq!(
        curl(EDGE),
        200,
        "the selectors still in the policy still learn"
    );
    drop(node);
    drop(outside);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens a connection from the client pod now, sends a request after `wait_s` seconds,
/// and prints the status line: a connection that outlives its address's TTL.
fn long_request(ip: &str, wait_s: u64) -> Child {
    let script = format!(
        "import socket, time\n\
         s = socket.create_connection(('{ip}', 8000), timeout=3)\n\
         time.sleep({wait_s})\n\
         s.settimeout(5)\n\
         s.sendall(b'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n\
         print(s.recv(64).decode(errors='replace').splitlines()[0])\n"
    );
    let child = Command::new(BIN)
        .args(["exec", "e2e/client", "--", "python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The connection is made before the caller goes on.
    std::thread::sleep(Duration::from_millis(700));
    child
}
