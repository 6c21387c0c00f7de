//! `sluice up` end to end, as root: real pods (netns + veth + cgroup), the BPF
//! redirects, the proxy, real clients (curl) and servers (Python's http.server handlers), and
//! `sluice observe` for the flows. One scenario, in order, because a machine runs one
//! node at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Addresses below the integration harness's range (10.200.128.0/17).
fn config(dir: &Path, allow: bool) -> String {
    config_with(dir, allow, false, "")
}

/// The scenario's configuration, with audit mode and extra policies.
fn config_with(dir: &Path, allow: bool, audit: bool, extra: &str) -> String {
    let admin = dir.join("admin.sock");
    let allow_rule = if allow {
        r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-to-backend, namespace: e2e}
specs:
- endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
- endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toEndpoints: [{matchLabels: {app: backend}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#
    } else {
        ""
    };
    format!(
        r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {{name: node}}
spec:
  nodeName: e2e-node
  policyAuditMode: {audit}
  proxy: {{port: 15101, adminSocket: "{admin}"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: frontend, namespace: e2e, labels: {{app: frontend}}}}
spec: {{addresses: ["10.200.9.2"], run: {{command: ["sleep", "infinity"]}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: backend, namespace: e2e, labels: {{app: backend}}}}
spec:
  addresses: ["10.200.9.3"]
  ports: [{{name: http, port: 8080, protocol: TCP}}]
  run: {{command: {backend}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: stranger, namespace: e2e, labels: {{app: stranger}}}}
spec: {{addresses: ["10.200.9.4"], run: {{command: ["sleep", "infinity"]}}}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: default-deny, namespace: e2e}}
spec:
  endpointSelector: {{}}
  ingress: [{{}}]
  egress: [{{}}]
{allow_rule}{extra}"#,
        admin = admin.display(),
        backend = serde_json::to_string(&http_server("10.200.9.3", 8080)).unwrap(),
    )
}

/// `python3 …` serving files on `addr:port`. Not `python3 -m http.server`: its
/// `HTTPServer.server_bind` resolves the address (`socket.getfqdn`), a DNS query that
/// would leave the machine for its resolver.
fn http_server(addr: &str, port: u16) -> Vec<String> {
    vec![
        "python3".into(),
        "-c".into(),
        format!(
            "import http.server as h, socketserver as s\n\
             s.ThreadingTCPServer.allow_reuse_address = True\n\
             s.ThreadingTCPServer(('{addr}', {port}), h.SimpleHTTPRequestHandler).serve_forever()"
        ),
    ]
}

/// curl's arguments that print only the HTTP status.
const CURL_STATUS: [&str; 7] = ["-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}"];

/// Runs a curl command: the HTTP status, 0 when the connection failed.
fn http_status(mut curl: Command) -> u16 {
    let out = curl.output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// curl from a pod (its cgroup and netns, through `sluice exec`).
fn curl(pod: &str, url: &str) -> u16 {
    let mut cmd = Command::new(BIN);
    cmd.args(["exec", pod, "--", "curl"])
        .args(CURL_STATUS)
        .arg(url);
    http_status(cmd)
}

/// curl from the host (outside every enrolled cgroup).
fn host_curl(url: &str) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args(CURL_STATUS).arg(url);
    http_status(cmd)
}

const DENY_STRANGER: &str = r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-stranger, namespace: e2e}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress: [{fromEndpoints: [{matchLabels: {app: stranger}}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: stranger}}], toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: stranger-out, namespace: e2e}
spec:
  endpointSelector: {matchLabels: {app: stranger}}
  egress: [{toEndpoints: [{matchLabels: {app: backend}}]}]
"#;

#[test]
fn explicit_deny_beats_allow_in_the_proxy_then_in_the_kernel() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("node-deny");
    std::fs::write(
        dir.join("config/all.yaml"),
        config_with(&dir, true, false, DENY_STRANGER),
    )
    .unwrap();
    let node = Node::start(&dir);
    let backend = "http://10.200.9.3:8080/";
    eventually("frontend reaches backend", || {
        curl("e2e/frontend", backend) == 200
    });
    // Allowed by no-stranger's ingress and stranger-out's egress, denied by the deny:
    // first by the proxy, then at connect() by the kernel (DENY verdict).
    assert_eq!(curl("e2e/stranger", backend), 0);
    assert_eq!(curl("e2e/stranger", backend), 0);
    let drops = node.observe(&["--verdict", "DROPPED", "--from-pod", "e2e/stranger"]);
    let deny = |kernel: bool| {
        drops.iter().any(|f| {
            f["flow"]["drop_reason_desc"] == "POLICY_DENY"
                && f["flow"]["cgroup_id"].is_string() == kernel
        })
    };
    assert!(deny(false), "no 181 flow from the proxy: {drops:#?}");
    assert!(deny(true), "no 181 flow from the kernel: {drops:#?}");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn authentication_required_is_dropped_until_mutual_tls_lands() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("node-auth");
    let mtls = r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: mtls, namespace: e2e}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    authentication: {mode: required}
"#;
    std::fs::write(
        dir.join("config/all.yaml"),
        config_with(&dir, true, false, mtls),
    )
    .unwrap();
    let node = Node::start(&dir);
    let backend = "http://10.200.9.3:8080/";
    // Served (the server is up, seen from the host), but the frontend's connection
    // needs an authentication the node cannot do yet: dropped with 189, every time.
    eventually("backend serves", || {
        let host = host_curl(backend);
        host == 200
    });
    assert_eq!(curl("e2e/frontend", backend), 0);
    assert_eq!(curl("e2e/frontend", backend), 0);
    let drops = node.observe(&["--verdict", "DROPPED", "--from-pod", "e2e/frontend"]);
    let auth = drops
        .iter()
        .filter(|f| {
            f["flow"]["drop_reason_desc"] == "AUTH_REQUIRED" && f["flow"]["event_type"]["type"] == 5
        })
        .count();
    assert_eq!(
        auth, 2,
        "each connection dropped by the proxy with 189: {drops:#?}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn audit_mode_lets_denied_traffic_through_and_reports_audit() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("node-audit");
    std::fs::write(
        dir.join("config/all.yaml"),
        config_with(&dir, true, true, ""),
    )
    .unwrap();
    let node = Node::start(&dir);
    let backend = "http://10.200.9.3:8080/";
    eventually("frontend reaches backend", || {
        curl("e2e/frontend", backend) == 200
    });
    // Default deny would drop stranger; audit mode forwards it, every time (an audited
    // connection is never written back as a kernel verdict).
    assert_eq!(curl("e2e/stranger", backend), 200);
    assert_eq!(curl("e2e/stranger", backend), 200);
    let audited = node.observe(&["--verdict", "AUDIT", "--from-pod", "e2e/stranger"]);
    assert!(
        audited.len() >= 2,
        "expected an AUDIT flow per connection: {audited:#?}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn node_enforces_policy_writes_verdicts_back_and_reloads() {
    let _turn = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("node-e2e");
    let policy = dir.join("config/all.yaml");
    std::fs::write(&policy, config(&dir, true)).unwrap();

    let node = Node::start(&dir);
    let backend = "http://10.200.9.3:8080/";

    // Allowed through the proxy, then (BYPASS written back) straight in the kernel.
    eventually("frontend reaches backend", || {
        curl("e2e/frontend", backend) == 200
    });
    assert_eq!(curl("e2e/frontend", backend), 200);
    eventually("a kernel-decided (BYPASS) flow", || {
        node.observe(&["--verdict", "FORWARDED"]).iter().any(|f| {
            f["flow"]["cgroup_id"].is_string() && f["flow"]["source"]["pod_name"] == "frontend"
        })
    });

    // Default deny: stranger is dropped with 133, on the proxy then in the kernel.
    assert_eq!(curl("e2e/stranger", backend), 0);
    assert_eq!(curl("e2e/stranger", backend), 0);
    let drops = node.observe(&["--verdict", "DROPPED", "--from-pod", "e2e/stranger"]);
    assert!(!drops.is_empty(), "no DROPPED flow for stranger");
    assert!(
        drops
            .iter()
            .all(|f| f["flow"]["drop_reason_desc"] == "POLICY_DENIED"),
        "{drops:#?}"
    );

    // A process outside the enrolled cgroups is untouched (the host reaches the pod).
    let host = host_curl(backend);
    assert_eq!(host, 200);

    // A second node on the same machine is refused.
    let second = Command::new(BIN)
        .args(["up", "--config"])
        .arg(dir.join("config"))
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another sluice node"));

    // Policy change mid-run, picked up by watching the files (no signal): the allow
    // goes, and the BYPASS verdict written for it must not outlive it.
    std::fs::write(&policy, config(&dir, false)).unwrap();
    eventually("frontend denied after reload", || {
        curl("e2e/frontend", backend) == 0
    });
    assert_eq!(curl("e2e/frontend", backend), 0);

    // A broken configuration keeps the last good one.
    std::fs::write(&policy, config(&dir, true)).unwrap();
    node.signal("-HUP");
    eventually("frontend allowed again", || {
        curl("e2e/frontend", backend) == 200
    });
    std::fs::write(&policy, "kind: [unclosed").unwrap();
    node.signal("-HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(curl("e2e/frontend", backend), 200);

    // Fail closed: the node is killed without cleaning up. A connection with no valid
    // kernel verdict (a reload made a new generation) is still redirected, to a proxy
    // that is gone: it fails instead of reaching the server unenforced.
    std::fs::write(&policy, config(&dir, true)).unwrap();
    node.signal("-HUP");
    std::thread::sleep(Duration::from_millis(500));
    node.signal("-KILL");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        curl("e2e/frontend", backend),
        0,
        "a dead proxy must fail closed"
    );
    let host = host_curl(backend);
    assert_eq!(host, 200, "the server itself is up");
    drop(node);

    // A new node takes over what the killed one left (pods, cgroups, pinned links).
    let node = Node::start(&dir);
    eventually("frontend reaches backend again", || {
        curl("e2e/frontend", backend) == 200
    });

    // Stopping removes every pod, veth and cgroup.
    drop(node);
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("sluice-e2e-"),
        "netns left behind"
    );
    let cg = sluice_proxy::node::node_cgroup().unwrap();
    assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A network namespace outside the node (not enrolled, not a pod), routed through the
/// host like a machine on the node's network: 10.200.9.100 and .101 inside, the host
/// side 10.200.9.254. Removed on drop.
struct Outside {
    netns: &'static str,
    host_veth: &'static str,
    server: Option<Child>,
}

impl Outside {
    const NETNS: &'static str = "sluice-e2e-outside";
    const HOST_VETH: &'static str = "se2e-out-h";
    const ALLOWED: &'static str = "10.200.9.100";
    const OTHER: &'static str = "10.200.9.101";

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
        let this = Self {
            netns: Self::NETNS,
            host_veth: Self::HOST_VETH,
            server: None,
        };
        ip(&["netns", "add", Self::NETNS]);
        ip(&[
            "link",
            "add",
            Self::HOST_VETH,
            "type",
            "veth",
            "peer",
            "name",
            "se2e-out-p",
        ]);
        ip(&["link", "set", "se2e-out-p", "netns", Self::NETNS]);
        ip(&["addr", "add", "10.200.9.254/32", "dev", Self::HOST_VETH]);
        ip(&["link", "set", Self::HOST_VETH, "up"]);
        std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{}/forwarding", Self::HOST_VETH),
            "1",
        )
        .unwrap();
        for addr in [Self::ALLOWED, Self::OTHER] {
            ip(&[
                "route",
                "replace",
                &format!("{addr}/32"),
                "dev",
                Self::HOST_VETH,
            ]);
            inside(&["addr", "add", &format!("{addr}/32"), "dev", "se2e-out-p"]);
        }
        inside(&["link", "set", "lo", "up"]);
        inside(&["link", "set", "se2e-out-p", "up"]);
        inside(&[
            "route",
            "add",
            "10.200.9.254",
            "dev",
            "se2e-out-p",
            "scope",
            "link",
        ]);
        inside(&[
            "route",
            "add",
            "default",
            "via",
            "10.200.9.254",
            "dev",
            "se2e-out-p",
        ]);
        this
    }

    fn remove_leftovers() {
        // Only one that exists: a failure to remove it is then worth its message.
        if std::path::Path::new("/run/netns")
            .join(Self::NETNS)
            .exists()
        {
            let _ = Command::new("ip")
                .args(["netns", "del", Self::NETNS])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", Self::HOST_VETH])
            .stderr(Stdio::null())
            .status();
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.netns, program]);
        cmd
    }

    /// curl from one of the outside addresses.
    fn curl(&self, from: &str, url: &str) -> u16 {
        let mut cmd = self.command("curl");
        cmd.args(["--interface", from]).args(CURL_STATUS).arg(url);
        http_status(cmd)
    }

    /// An HTTP server on 10.200.9.100:8000.
    fn serve_http(&mut self) {
        let child = self
            .command("python3")
            .args(&http_server(Self::ALLOWED, 8000)[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(child);
        eventually("the outside HTTP server listens", || {
            let mut cmd = self.command("curl");
            cmd.args(CURL_STATUS).arg("http://10.200.9.100:8000/");
            http_status(cmd) == 200
        });
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", self.netns])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", self.host_veth])
            .status();
    }
}

/// A UDP echo server pod and the policies of the kernel-only scenario: UDP between
/// pods, inbound TCP from a CIDR outside the node, egress to that CIDR, and to the
/// `host` entity.
const KERNEL_PATHS: &str = r#"
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: echo, namespace: e2e, labels: {app: echo}}
spec:
  addresses: ["10.200.9.5"]
  run:
    command:
    - python3
    - -c
    - |
      import socket
      s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      s.bind(('10.200.9.5', 7000))
      while True:
          data, peer = s.recvfrom(512)
          s.sendto(data, peer)
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: kernel-paths, namespace: e2e}
specs:
- endpointSelector: {matchLabels: {app: echo}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "7000", protocol: UDP}]}]
- endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toEndpoints: [{matchLabels: {app: echo}}]
    toPorts: [{ports: [{port: "7000", protocol: UDP}]}]
  - toCIDR: ["10.200.9.100/32"]
    toPorts: [{ports: [{port: "8000", protocol: TCP}]}]
  - toEntities: [host]
    toPorts: [{ports: [{port: "8001", protocol: TCP}]}]
- endpointSelector: {matchLabels: {app: stranger}}
  egress:
  - toEndpoints: [{matchLabels: {app: echo}}]
    toPorts: [{ports: [{port: "7000", protocol: UDP}]}]
- endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromCIDR: ["10.200.9.100/32"]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#;

/// Sends one datagram from a pod and prints `reply <text>`, `EPERM` or `timeout`.
fn udp_from(pod: &str, dst: &str, port: u16) -> String {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(2)\n\
         try:\n    \
             s.sendto(b'ping', ('{dst}', {port}))\n    \
             print('reply', s.recvfrom(64)[0].decode())\n\
         except PermissionError:\n    \
             print('EPERM')\n\
         except socket.timeout:\n    \
             print('timeout')\n"
    );
    let out = Command::new(BIN)
        .args(["exec", pod, "--", "python3", "-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_kernel_decides_udp_inbound_connections_cidr_and_host() {
    let _one = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("kernel-paths");
    std::fs::write(
        dir.join("config/node.yaml"),
        config_with(&dir, true, false, KERNEL_PATHS),
    )
    .unwrap();
    let mut outside = Outside::create();
    let node = Node::start(&dir);
    outside.serve_http();
    // The host side: a server on the node's gateway address (entity `host`).
    let mut host_server = Command::new("python3")
        .args(&http_server("169.254.1.1", 8001)[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the backend and the host server listen", || {
        host_curl("http://10.200.9.3:8080/") == 200 && host_curl("http://169.254.1.1:8001/") == 200
    });

    // UDP between pods, decided in the kernel: allowed both ways for frontend; stranger
    // may send (its egress allows it) but echo's ingress drops it.
    assert_eq!(udp_from("e2e/frontend", "10.200.9.5", 7000), "reply ping");
    assert_eq!(udp_from("e2e/frontend", "10.200.9.5", 7001), "EPERM");
    assert_eq!(udp_from("e2e/backend", "10.200.9.5", 7000), "EPERM");
    assert_eq!(udp_from("e2e/stranger", "10.200.9.5", 7000), "timeout");

    // Inbound from outside the node, never through the proxy: fromCIDR allows .100,
    // default deny drops .101 at the backend's socket.
    assert_eq!(
        outside.curl(Outside::ALLOWED, "http://10.200.9.3:8080/"),
        200
    );
    assert_eq!(outside.curl(Outside::OTHER, "http://10.200.9.3:8080/"), 0);

    // Egress to a CIDR and to the host entity, through the proxy.
    assert_eq!(curl("e2e/frontend", "http://10.200.9.100:8000/"), 200);
    assert_eq!(curl("e2e/stranger", "http://10.200.9.100:8000/"), 0);
    assert_eq!(curl("e2e/frontend", "http://169.254.1.1:8001/"), 200);
    assert_eq!(curl("e2e/stranger", "http://169.254.1.1:8001/"), 0);
    let _ = host_server.kill();
    let _ = host_server.wait();

    // Every one of those decisions is a flow.
    eventually("flows for the kernel's decisions", || {
        let flows = node.observe(&[]);
        let has = |verdict: &str, direction: &str, port: u64, proto: &str| {
            flows.iter().any(|f| {
                let f = &f["flow"];
                f["verdict"] == verdict
                    && f["traffic_direction"] == direction
                    && f["l4"][proto]["destination_port"] == port
            })
        };
        has("FORWARDED", "EGRESS", 7000, "UDP")
            && has("DROPPED", "EGRESS", 7001, "UDP")
            && has("DROPPED", "INGRESS", 7000, "UDP")
            && has("DROPPED", "INGRESS", 8080, "TCP")
            && has("FORWARDED", "EGRESS", 8000, "TCP")
            && has("DROPPED", "EGRESS", 8001, "TCP")
    });
    // Decided in the kernel, named like the proxy's decisions: which policy allowed it.
    let udp = node
        .observe(&[
            "--verdict",
            "FORWARDED",
            "--protocol",
            "udp",
            "--from-pod",
            "e2e/frontend",
        ])
        .into_iter()
        .find(|f| f["flow"]["l4"]["UDP"]["destination_port"] == 7000)
        .expect("the kernel's UDP flow");
    assert_eq!(udp["flow"]["egress_allowed_by"][0]["name"], "kernel-paths");
    assert_eq!(udp["flow"]["destination"]["pod_name"], "echo");
    let ingress_drop = node
        .observe(&["--verdict", "DROPPED", "--to-pod", "e2e/backend"])
        .into_iter()
        .find(|f| f["flow"]["IP"]["source"] == Outside::OTHER)
        .expect("the outside drop is reported");
    assert_eq!(ingress_drop["flow"]["drop_reason_desc"], "POLICY_DENIED");
    // Not in any CIDR of the policy: world (IPv4).
    assert_eq!(ingress_drop["flow"]["source"]["identity"], 9);
}

#[test]
fn with_allow_localhost_policy_the_host_is_policed_but_the_proxy_is_not() {
    let _one = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("allow-localhost-policy");
    let config = config(&dir, true).replacen(
        "policyAuditMode: false",
        "policyAuditMode: false\n  allowLocalhost: policy",
        1,
    );
    std::fs::write(dir.join("config/node.yaml"), config).unwrap();
    let node = Node::start(&dir);
    // The pods reach the backend through the proxy, whose connections the backend's
    // ingress program trusts.
    eventually("frontend reaches backend through the proxy", || {
        curl("e2e/frontend", "http://10.200.9.3:8080/") == 200
    });
    // A host process is `host` (no rule allows it, allow-localhost is off): dropped in
    // the kernel at the backend's socket.
    assert_eq!(host_curl("http://10.200.9.3:8080/"), 0);
    eventually("the host's drop is a flow", || {
        node.observe(&["--verdict", "DROPPED", "--to-pod", "e2e/backend"])
            .iter()
            .any(|f| {
                f["flow"]["source"]["identity"] == 1 && f["flow"]["traffic_direction"] == "INGRESS"
            })
    });
}

/// A resolver pod (dnsmasq, answering from its own records only) and a policy: frontend
/// may ask it on 53/UDP and 53/TCP for `*.allowed.test` (plus `extra_names`); stranger
/// may ask nothing (the default deny above).
fn dns_scenario(extra_names: &str) -> String {
    format!(
        r#"
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: resolver, namespace: e2e, labels: {{app: resolver}}}}
spec:
  addresses: ["10.200.9.6"]
  run: {{command: {resolver}}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: dns, namespace: e2e}}
specs:
- endpointSelector: {{matchLabels: {{app: frontend}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{app: resolver}}}}]
    toPorts:
    - ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]
      rules:
        dns: [{{matchPattern: "*.allowed.test"}}{extra_names}]
- endpointSelector: {{matchLabels: {{app: resolver}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: frontend}}}}]
    toPorts: [{{ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]}}]
"#,
        resolver = dnsmasq(
            "10.200.9.6",
            &[
                "--host-record=api.allowed.test,192.0.2.10".into(),
                "--host-record=api.denied.test,192.0.2.20".into(),
            ]
        ),
    )
}

/// `dig @10.200.9.6 <args>` from a pod: what it printed (the status line included) and
/// whether it got an answer at all.
fn dig(pod: &str, args: &[&str]) -> (String, bool) {
    let out = Command::new(BIN)
        .args([
            "exec",
            pod,
            "--",
            "dig",
            "@10.200.9.6",
            "+time=2",
            "+tries=1",
        ])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let answered = out.status.success() && text.contains("status:");
    (text, answered)
}

/// The addresses of an answer (`+short`), from a pod.
fn dig_short(pod: &str, args: &[&str]) -> String {
    let mut full = vec!["+short"];
    full.extend_from_slice(args);
    dig(pod, &full).0.trim().to_owned()
}

#[test]
fn the_dns_proxy_enforces_rules_dns_and_reports_dns_flows() {
    let _one = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("dns");
    let policy = dir.join("config/all.yaml");
    std::fs::write(&policy, config_with(&dir, true, false, &dns_scenario(""))).unwrap();
    let node = Node::start(&dir);
    // The resolver is up (asked from the host, which no redirect touches).
    eventually("dnsmasq answers", || {
        let out = Command::new("dig")
            .args([
                "@10.200.9.6",
                "+short",
                "+time=1",
                "+tries=1",
                "api.allowed.test",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "192.0.2.10"
    });

    // An allowed name, over UDP and over TCP: the resolver's answer, through the proxy.
    assert_eq!(
        dig_short("e2e/frontend", &["api.allowed.test"]),
        "192.0.2.10"
    );
    assert_eq!(
        dig_short("e2e/frontend", &["+tcp", "api.allowed.test"]),
        "192.0.2.10"
    );
    // A name rules.dns do not allow: REFUSED by the proxy, on both transports.
    for transport in [&[][..], &["+tcp"][..]] {
        let mut args = transport.to_vec();
        args.push("api.denied.test");
        let (out, answered) = dig("e2e/frontend", &args);
        assert!(
            answered && out.contains("status: REFUSED"),
            "{transport:?}: {out}"
        );
    }
    // A pod whose L3/L4 policy does not allow DNS to the resolver: no answer at all.
    let (out, answered) = dig("e2e/stranger", &["api.allowed.test"]);
    assert!(!answered && out.contains("timed out"), "{out}");

    // Every query is a flow: DNS requests and responses, `--protocol dns` and `--type l7`.
    let dns = node.observe(&["--protocol", "dns", "--from-pod", "e2e/frontend"]);
    let l7 = |flow: &Value| flow["flow"]["l7"].clone();
    let request = |query: &str, verdict: &str| {
        dns.iter().any(|f| {
            l7(f)["type"] == "REQUEST"
                && l7(f)["dns"]["query"] == query
                && f["flow"]["verdict"] == verdict
                && f["flow"]["Type"] == "L7"
                && f["flow"]["traffic_direction"] == "EGRESS"
        })
    };
    assert!(request("api.allowed.test.", "FORWARDED"), "{dns:#?}");
    assert!(request("api.denied.test.", "DROPPED"), "{dns:#?}");
    let tcp_request = dns
        .iter()
        .any(|f| f["flow"]["l4"]["TCP"]["destination_port"] == 53);
    let udp_request = dns
        .iter()
        .any(|f| f["flow"]["l4"]["UDP"]["destination_port"] == 53);
    assert!(tcp_request && udp_request, "{dns:#?}");
    let answered = node
        .observe(&["--protocol", "dns", "--to-pod", "e2e/frontend"])
        .into_iter()
        .find(|f| l7(f)["type"] == "RESPONSE" && l7(f)["dns"]["query"] == "api.allowed.test.")
        .expect("a DNS response flow");
    assert_eq!(l7(&answered)["dns"]["ips"][0], "192.0.2.10");
    assert_eq!(l7(&answered)["dns"]["observation_source"], "proxy");
    assert_eq!(answered["flow"]["is_reply"], true);
    assert_eq!(answered["flow"]["source"]["pod_name"], "resolver");
    let l7_only = node.observe(&["--type", "l7"]);
    assert!(
        !l7_only.is_empty() && l7_only.iter().all(|f| f["flow"]["Type"] == "L7"),
        "{l7_only:#?}"
    );
    // The stranger's query was dropped by L3/L4 policy, as a packet is: a policy drop.
    let dropped = node.observe(&["--verdict", "DROPPED", "--from-pod", "e2e/stranger"]);
    assert!(
        dropped.iter().any(|f| {
            f["flow"]["l4"]["UDP"]["destination_port"] == 53
                && f["flow"]["drop_reason_desc"] == "POLICY_DENIED"
        }),
        "{dropped:#?}"
    );

    // The compiled rules follow a reload: the denied name allowed by name now.
    std::fs::write(
        &policy,
        config_with(
            &dir,
            true,
            false,
            &dns_scenario(r#", {matchName: "API.denied.test"}"#),
        ),
    )
    .unwrap();
    eventually("the reloaded rules allow api.denied.test", || {
        dig_short("e2e/frontend", &["api.denied.test"]) == "192.0.2.20"
    });

    // Audit mode: what L3/L4 policy would drop is forwarded and reported AUDIT; names
    // are still refused (Cilium keeps enforcing L7 rules in audit mode).
    std::fs::write(&policy, config_with(&dir, true, true, &dns_scenario(""))).unwrap();
    eventually("audit mode forwards what L3/L4 policy drops", || {
        dig_short("e2e/stranger", &["api.allowed.test"]) == "192.0.2.10"
    });
    let (out, answered) = dig("e2e/frontend", &["nx.denied.test"]);
    assert!(answered && out.contains("status: REFUSED"), "{out}");
    let audited = node.observe(&["--protocol", "dns", "--verdict", "AUDIT"]);
    assert!(
        audited
            .iter()
            .any(|f| f["flow"]["source"]["pod_name"] == "stranger" && l7(f)["type"] == "REQUEST"),
        "no AUDIT DNS request from stranger: {audited:#?}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_existing_cgroup_is_enrolled_as_a_workload() {
    let _one = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("cgroup-workload");
    let unit = UnitCgroup::create("e2e");
    let extra = format!(
        r#"
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: unit, namespace: e2e, labels: {{app: unit}}}}
spec: {{cgroup: "{}"}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: unit-to-backend, namespace: e2e}}
specs:
- endpointSelector: {{matchLabels: {{app: unit}}}}
  egress: [{{toEndpoints: [{{matchLabels: {{app: backend}}}}], toPorts: [{{ports: [{{port: "8080", protocol: TCP}}]}}]}}]
- endpointSelector: {{matchLabels: {{app: backend}}}}
  ingress: [{{fromEndpoints: [{{matchLabels: {{app: unit}}}}], toPorts: [{{ports: [{{port: "8080", protocol: TCP}}]}}]}}]
"#,
        unit.relative
    );
    std::fs::write(
        dir.join("config/node.yaml"),
        config_with(&dir, false, false, &extra),
    )
    .unwrap();
    let node = Node::start(&dir);
    eventually("the backend listens", || {
        host_curl("http://10.200.9.3:8080/") == 200
    });

    // Allowed through the proxy (never bypassed: a host-netns workload always is).
    assert_eq!(unit_curl(&unit, "http://10.200.9.3:8080/"), 200);
    assert_eq!(unit_curl(&unit, "http://10.200.9.3:8080/"), 200);
    // Default deny for everything else it tries.
    assert_eq!(unit_curl(&unit, "http://10.200.9.4:8080/"), 0);
    // Processes outside the cgroup are untouched.
    assert_eq!(host_curl("http://10.200.9.3:8080/"), 200);
    eventually("the unit's flows carry its identity", || {
        let flows = node.observe(&["--from-pod", "e2e/unit"]);
        flows.iter().any(|f| f["flow"]["verdict"] == "FORWARDED")
            && flows.iter().any(|f| f["flow"]["verdict"] == "DROPPED")
    });
    drop(node);
    // The node detached from the cgroup and left it to its owner.
    assert!(unit.path.exists());
}

/// curl from a process of `unit`: the HTTP status, 0 when the connection failed.
fn unit_curl(unit: &UnitCgroup, url: &str) -> u16 {
    http_status(unit.command(&format!("curl {} {url}", CURL_STATUS.join(" "))))
}

/// Frontend's UDP egress to 192.0.2.0/24 port 9999: by CIDR, by the world entity, or
/// not at all.
fn udp_egress(rule: &str) -> String {
    let egress = match rule {
        "cidr" => {
            r#"[{toCIDR: ["192.0.2.0/24"], toPorts: [{ports: [{port: "9999", protocol: UDP}]}]}]"#
        }
        "world" => {
            r#"[{toEntities: [world], toPorts: [{ports: [{port: "9999", protocol: UDP}]}]}]"#
        }
        _ => {
            r#"[{toEndpoints: [{matchLabels: {app: backend}}], toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]"#
        }
    };
    format!(
        r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: udp-out, namespace: e2e}}
spec:
  endpointSelector: {{matchLabels: {{app: frontend}}}}
  egress: {egress}
"#
    )
}

#[test]
fn a_cidr_a_reload_drops_no_longer_gives_its_identity_in_the_kernel() {
    let _one = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("ipcache-sweep");
    let write = |rule: &str| {
        std::fs::write(
            dir.join("config/node.yaml"),
            config_with(&dir, false, false, &udp_egress(rule)),
        )
        .unwrap()
    };
    write("cidr");
    let _node = Node::start(&dir);
    // Nobody answers there: "timeout" is a datagram the kernel let out, EPERM a drop.
    assert_eq!(udp_from("e2e/frontend", "192.0.2.7", 9999), "timeout");
    write("none");
    eventually("the CIDR allow is gone", || {
        udp_from("e2e/frontend", "192.0.2.7", 9999) == "EPERM"
    });
    // Allowed again, as `world` now: the address must not keep the identity of the
    // prefix the policy dropped (no policy entry names that identity any more).
    write("world");
    eventually("allowed as world", || {
        udp_from("e2e/frontend", "192.0.2.7", 9999) == "timeout"
    });
}
