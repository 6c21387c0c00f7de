//! `sluice policy validate` and `sluice policy trace`, run as a user runs them: the
//! built binary as a subprocess, on the shipped examples and on broken files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run sluice")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn trace_json(config: &str, from: &str, to: &str, port: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "policy", "trace", "--config", config, "--from", from, "--to", to, "--port", port, "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = sluice(&args);
    assert!(out.status.success(), "trace failed: {}", stderr(&out));
    serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&out)))
}

#[test]
fn every_example_validates() {
    let dirs = std::fs::read_dir(repo().join("examples")).expect("examples/");
    let mut checked = 0;
    for dir in dirs {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let rel = dir
            .strip_prefix(repo())
            .expect("inside repo")
            .to_string_lossy()
            .into_owned();
        let out = sluice(&["policy", "validate", &rel]);
        assert!(
            out.status.success(),
            "{rel} does not validate:\n{}",
            stderr(&out)
        );
        assert!(stdout(&out).starts_with("valid: "), "{}", stdout(&out));
        checked += 1;
    }
    assert!(
        checked >= 8,
        "expected the playbook examples, found {checked}"
    );
}

#[test]
fn validate_reports_file_line_field_and_exits_1() {
    let dir = tempdir("validate");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad, namespace: shop}\nspec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http:\n        - path: \"/api/(\"\n",
    )
    .expect("write");
    let out = sluice(&["policy", "validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let expected_prefix = format!("{}:11:", file.display());
    assert!(err.contains(&expected_prefix), "no file:line in {err}");
    assert!(
        err.contains("spec.ingress[0].toPorts[0].rules.http[0].path"),
        "no field path in {err}"
    );

    let out = sluice(&[
        "policy",
        "validate",
        "-o",
        "json",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"][0]["line"], 11);
    assert_eq!(
        report["errors"][0]["field"],
        "spec.ingress[0].toPorts[0].rules.http[0].path"
    );
}

#[test]
fn validate_of_a_missing_path_is_an_error() {
    let out = sluice(&["policy", "validate", "does/not/exist"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("does/not/exist"), "{}", stderr(&out));
}

#[test]
fn quickstart_trace_allowed_json() {
    let r = trace_json(
        "examples/quickstart",
        "production/frontend",
        "production/backend",
        "8080/TCP",
        &[],
    );
    assert_eq!(r["apiVersion"], "sluice.io/v1alpha1");
    assert_eq!(r["kind"], "PolicyTrace");
    assert_eq!(r["verdict"], "allowed");
    assert_eq!(r["drop_reason"], Value::Null);
    assert_eq!(r["source"]["name"], "production/frontend");
    assert_eq!(r["destination"]["name"], "production/backend");
    assert_eq!(r["egress"]["verdict"], "allowed");
    assert_eq!(r["ingress"]["verdict"], "allowed");
    let by = |dir: &str| r[dir]["allowed_by"].as_array().cloned().unwrap_or_default();
    assert!(
        by("ingress")
            .iter()
            .any(|p| p["name"] == "frontend-to-backend"
                && p["namespace"] == "production"
                && p["kind"] == "CiliumNetworkPolicy"),
        "{r:#}"
    );
    assert!(
        by("egress")
            .iter()
            .any(|p| p["name"] == "frontend-to-backend"),
        "{r:#}"
    );
    assert_eq!(r["l7_proxy"], false);
    assert_eq!(r["authentication"]["mode"], "disabled");
}

#[test]
fn quickstart_trace_denied_by_default_deny() {
    let r = trace_json(
        "examples/quickstart",
        "production/stranger",
        "production/backend",
        "8080/TCP",
        &[],
    );
    assert_eq!(r["verdict"], "denied");
    assert_eq!(r["drop_reason"], 133);
    assert_eq!(r["drop_reason_desc"], "POLICY_DENIED");
    // The packet leaves stranger first: its egress is what drops it.
    assert_eq!(r["egress"]["verdict"], "denied");
    assert_eq!(r["egress"]["kind"], "default-deny");
}

#[test]
fn quickstart_trace_by_address_and_dns_through_proxy() {
    let r = trace_json(
        "examples/quickstart",
        "10.200.1.2",
        "10.200.1.3",
        "8080/TCP",
        &[],
    );
    assert_eq!(r["verdict"], "allowed");
    assert_eq!(r["source"]["name"], "production/frontend");

    let r = trace_json(
        "examples/quickstart",
        "production/frontend",
        "kube-system/coredns",
        "53/UDP",
        &[],
    );
    assert_eq!(r["verdict"], "allowed");
    assert_eq!(r["l7_proxy"], true);
    assert_eq!(r["l7"][0]["kind"], "dns");
    assert_eq!(r["l7"][0]["direction"], "EGRESS");

    let r = trace_json(
        "examples/quickstart",
        "production/frontend",
        "203.0.113.7",
        "443/TCP",
        &[],
    );
    assert_eq!(r["verdict"], "denied");
    assert_eq!(
        r["destination"]["identity"], 9,
        "an unknown IPv4 address is world-ipv4"
    );
    assert_eq!(r["ingress"], Value::Null);
}

#[test]
fn trace_text_output_is_short_and_says_why() {
    let out = sluice(&[
        "policy",
        "trace",
        "--config",
        "examples/quickstart",
        "--from",
        "production/stranger",
        "--to",
        "production/backend",
        "--port",
        "8080/TCP",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Final verdict: DENIED (133 Policy denied)"),
        "{text}"
    );
    assert!(text.lines().count() <= 8, "{text}");
}

#[test]
fn trace_rejects_bad_arguments_clearly() {
    for (args, needle) in [
        (
            vec![
                "--from",
                "production/nobody",
                "--to",
                "production/backend",
                "--port",
                "80",
            ],
            "no workload production/nobody",
        ),
        (
            vec![
                "--from",
                "production/frontend",
                "--to",
                "production/backend",
                "--port",
                "http",
            ],
            "--port",
        ),
        (
            vec![
                "--from",
                "production/frontend",
                "--to",
                "production/backend",
                "--port",
                "80/QUIC",
            ],
            "protocol",
        ),
        (
            vec![
                "--from",
                "a/b/c",
                "--to",
                "production/backend",
                "--port",
                "80",
            ],
            "--from",
        ),
    ] {
        let mut full = vec!["policy", "trace", "--config", "examples/quickstart"];
        full.extend(args);
        let out = sluice(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}");
        assert!(stderr(&out).contains(needle), "{full:?}: {}", stderr(&out));
    }
}

/// The Cilium playbook's API gateway (examples/api-gateway-l7) grown by what a trace must
/// show: a `headerMatches` secret, each mismatch action, a gRPC service, and DNS rules
/// with `toFQDNs` for the gateway's egress.
const L7_CONFIG: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: gateway, namespace: shop, labels: {app: api-gateway}}
spec: {addresses: ["10.200.8.2"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: users-api, namespace: shop, labels: {app: users-api}}
spec: {addresses: ["10.200.8.3"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: greeter, namespace: shop, labels: {app: greeter}}
spec: {addresses: ["10.200.8.4"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: stranger, namespace: shop, labels: {app: stranger}}
spec: {addresses: ["10.200.8.5"]}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec: {addresses: ["10.200.8.53"]}
---
apiVersion: v1
kind: Secret
metadata: {name: api-key, namespace: shop}
stringData: {key: s3cret}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: users-api-l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: users-api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: api-gateway}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
        - {method: "GET|POST", path: "/api/.*"}
        - {method: DELETE, path: "/api/users/[0-9]+", headers: ["X-API-Key"]}
        - method: PUT
          path: "/api/users/[0-9]+"
          headerMatches: [{name: X-Role, value: admin}]
        - method: PUT
          path: "/api/keys"
          headerMatches: [{name: X-Key, secret: {name: api-key}}]
        - method: PATCH
          path: "/tagged"
          headerMatches: [{name: X-Tag, value: sluice, mismatch: ADD}]
        - method: PATCH
          path: "/logged"
          headerMatches: [{name: X-Trace, value: "yes", mismatch: LOG}]
        - method: PATCH
          path: "/replaced"
          headerMatches: [{name: X-Key, secret: {name: api-key}, mismatch: REPLACE}]
        - method: PATCH
          path: "/cleaned"
          headerMatches: [{name: X-Debug, value: "off", mismatch: DELETE}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: greeter-l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: greeter}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: api-gateway}}]
    toPorts:
    - ports: [{port: "50051", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: "/demo.Greeter/SayHello"}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: gateway-egress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api-gateway}}
  egress:
  - toEndpoints: [{matchLabels: {app: users-api}}, {matchLabels: {app: greeter}}]
  - toEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}
    toPorts:
    - ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]
      rules:
        dns:
        - matchPattern: "*.stripe.com"
        - matchName: "api.example.com"
        - matchPattern: "**.internal.test"
  - toFQDNs: [{matchPattern: "*.stripe.com"}, {matchName: "api.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: stranger-egress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: stranger}}
  egress:
  - toEndpoints: [{matchLabels: {app: users-api}}]
"#;

const NODE_CONFIG: &str = r#"
---
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec:
  dns: {rejectResponse: nxdomain}
  http: {deniedBody: "Blocked by policy"}
"#;

/// A configuration directory holding `L7_CONFIG` (and `extra`).
fn l7_config(name: &str, extra: &str) -> String {
    let dir = tempdir(name);
    std::fs::write(dir.join("all.yaml"), format!("{L7_CONFIG}{extra}")).expect("write");
    dir.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn trace_http_requests_final_verdicts() {
    let config = l7_config("trace-http", "");
    let gw = "shop/gateway";
    let users = "shop/users-api";
    // (what, from, to, port, request flags, final verdict, proxy's status, grpc-status).
    // Expected values: Cilium semantics, spec §11 (full-match regexes, entries ORed,
    // fields ANDed, headers, headerMatches, 403), §12 (gRPC PERMISSION_DENIED = 7), and the
    // engine's normalisation (dot segments removed; escaped slashes refused with 400).
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Vec<&'a str>,
        &'a str,
        Option<u64>,
        Option<&'a str>,
    );
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("GET under /api", gw, users, "8080/TCP", vec!["--http-method", "GET", "--http-path", "/api/v1/users"], "allowed", None, None),
        ("POST under /api", gw, users, "8080/TCP", vec!["--http-method", "POST", "--http-path", "/api/users"], "allowed", None, None),
        ("method is a full match", gw, users, "8080/TCP", vec!["--http-method", "GETS", "--http-path", "/api/users"], "denied", Some(403), None),
        ("methods are case-sensitive", gw, users, "8080/TCP", vec!["--http-method", "get", "--http-path", "/api/users"], "denied", Some(403), None),
        ("path is a full match", gw, users, "8080/TCP", vec!["--http-path", "/apix"], "denied", Some(403), None),
        ("the query is part of the path", gw, users, "8080/TCP", vec!["--http-path", "/api/users?x=1"], "allowed", None, None),
        ("dot segments are removed first", gw, users, "8080/TCP", vec!["--http-path", "/api/../admin"], "denied", Some(403), None),
        ("dot segments can reach an allowed path", gw, users, "8080/TCP", vec!["--http-path", "/public/../api/users"], "allowed", None, None),
        ("an escaped slash is refused before policy", gw, users, "8080/TCP", vec!["--http-path", "/api/..%2Fadmin"], "denied", Some(400), None),
        ("DELETE without the required header", gw, users, "8080/TCP", vec!["--http-method", "DELETE", "--http-path", "/api/users/7"], "denied", Some(403), None),
        ("DELETE with the required header", gw, users, "8080/TCP", vec!["--http-method", "DELETE", "--http-path", "/api/users/7", "--http-header", "X-API-Key: k"], "allowed", None, None),
        ("headerMatches value right", gw, users, "8080/TCP", vec!["--http-method", "PUT", "--http-path", "/api/users/7", "--http-header", "X-Role: admin"], "allowed", None, None),
        ("headerMatches value wrong", gw, users, "8080/TCP", vec!["--http-method", "PUT", "--http-path", "/api/users/7", "--http-header", "X-Role: user"], "denied", Some(403), None),
        ("headerMatches secret right", gw, users, "8080/TCP", vec!["--http-method", "PUT", "--http-path", "/api/keys", "--http-header", "X-Key: s3cret"], "allowed", None, None),
        ("headerMatches secret wrong", gw, users, "8080/TCP", vec!["--http-method", "PUT", "--http-path", "/api/keys", "--http-header", "X-Key: guess"], "denied", Some(403), None),
        ("gRPC method allowed", gw, "shop/greeter", "50051/TCP", vec!["--http-path", "/demo.Greeter/SayHello", "--http-header", "content-type: application/grpc"], "allowed", None, None),
        ("gRPC method denied", gw, "shop/greeter", "50051/TCP", vec!["--http-path", "/demo.Greeter/Admin", "--http-header", "content-type: application/grpc+proto"], "denied", Some(200), Some("7")),
        ("gRPC needs POST", gw, "shop/greeter", "50051/TCP", vec!["--http-method", "GET", "--http-path", "/demo.Greeter/SayHello", "--http-header", "content-type: application/grpc"], "denied", Some(200), Some("7")),
        ("a port L3/L4 denies", gw, users, "9090/TCP", vec!["--http-path", "/api/users"], "denied", None, None),
        ("L3/L4 denial comes first", "shop/stranger", users, "8080/TCP", vec!["--http-path", "/api/users"], "denied", None, None),
        ("no rules.http: not inspected", users, gw, "8080/TCP", vec!["--http-path", "/admin"], "allowed", None, None),
        ("DNS rules on the port: not HTTP", gw, "kube-system/coredns", "53/TCP", vec!["--http-path", "/admin"], "allowed", None, None),
    ];
    let mut failures = Vec::new();
    for (what, from, to, port, flags, verdict, status, grpc) in &table {
        let r = trace_json(&config, from, to, port, flags);
        let got_status = r["http"]["response"]["status"].as_u64();
        let got_grpc = r["http"]["response"]["grpc_status"].as_str();
        if r["verdict"] != *verdict || got_status != *status || got_grpc != *grpc {
            failures.push(format!(
                "{what}: verdict {} status {got_status:?} grpc {got_grpc:?}, expected {verdict} {status:?} {grpc:?}\n{:#}",
                r["verdict"], r["http"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn trace_http_says_who_denied_and_what_was_matched() {
    let config = l7_config("trace-http-why", "");
    let r = trace_json(
        &config,
        "shop/gateway",
        "shop/users-api",
        "8080/TCP",
        &["--http-path", "/api/../admin", "--http-host", "API:80"],
    );
    assert_eq!(r["l3l4_verdict"], "allowed");
    assert_eq!(r["verdict"], "denied");
    assert_eq!(r["drop_reason"], Value::Null, "an L7 denial is not a drop");
    let http = &r["http"];
    assert_eq!(http["request"]["path"], "/api/../admin");
    assert_eq!(http["normalized"]["path"], "/admin");
    assert_eq!(http["normalized"]["host"], "api");
    assert_eq!(http["denied_by"]["direction"], "INGRESS");
    assert_eq!(http["denied_by"]["endpoint"], "shop/users-api");
    assert_eq!(http["denied_by"]["policies"][0]["name"], "users-api-l7");
    assert_eq!(http["response"]["status"], 403);
    assert_eq!(http["response"]["content_type"], "text/plain");
    assert_eq!(http["response"]["body"], "Access denied\r\n");

    let r = trace_json(
        &config,
        "shop/gateway",
        "shop/users-api",
        "8080/TCP",
        &[
            "--http-method",
            "DELETE",
            "--http-path",
            "/api/users/7",
            "--http-header",
            "X-API-Key: k",
        ],
    );
    let ingress = &r["http"]["sides"][1];
    assert_eq!(ingress["matched"]["policy"]["name"], "users-api-l7");
    assert_eq!(ingress["matched"]["rule"]["method"], "DELETE");
    assert_eq!(r["http"]["sides"][0]["rules"], "unrestricted");

    let r = trace_json(
        &config,
        "shop/gateway",
        "shop/users-api",
        "8080/TCP",
        &["--http-path", "/api//%2e%2E/x%2Fy"],
    );
    assert_eq!(r["http"]["verdict"], "rejected");
    assert_eq!(r["http"]["rejection"]["reason"], "escaped_slash_in_path");
    assert_eq!(r["http"]["response"]["status"], 400);

    // Without a request to trace the document is the connection's, as before.
    let r = trace_json(&config, "shop/gateway", "shop/users-api", "8080/TCP", &[]);
    assert!(
        r.get("http").is_none() && r.get("l3l4_verdict").is_none(),
        "{r:#}"
    );
    let r = trace_json(
        &config,
        "shop/stranger",
        "shop/users-api",
        "8080/TCP",
        &["--http-path", "/api/users"],
    );
    assert_eq!(r["drop_reason"], 133);
    assert_eq!(r["http"]["verdict"], Value::Null);
}

#[test]
fn trace_http_header_actions_are_reported_and_secrets_redacted() {
    let config = l7_config("trace-http-actions", "");
    let run = |path: &str, header: &str| {
        let mut args = vec!["--http-method", "PATCH", "--http-path", path];
        if !header.is_empty() {
            args.extend(["--http-header", header]);
        }
        let out = sluice(
            &[
                &[
                    "policy",
                    "trace",
                    "--config",
                    &config,
                    "--from",
                    "shop/gateway",
                    "--to",
                    "shop/users-api",
                    "--port",
                    "8080/TCP",
                    "-o",
                    "json",
                ][..],
                &args,
            ]
            .concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains("s3cret"), "a secret value leaked:\n{text}");
        serde_json::from_str::<Value>(&text).expect("json")
    };
    // (path, header sent, action, edited header, value written, header log kinds).
    // Expected: cilium/proxy cilium/network_policy.cc HeaderMatch::allowed, spec §11.
    let r = run("/tagged", "");
    assert_eq!(r["verdict"], "allowed");
    assert_eq!(r["http"]["header_edits"][0]["action"], "ADD");
    assert_eq!(r["http"]["header_edits"][0]["name"], "x-tag");
    assert_eq!(r["http"]["header_edits"][0]["value"], "sluice");

    let r = run("/logged", "X-Trace: no");
    assert_eq!(r["verdict"], "allowed");
    assert_eq!(r["http"]["header_edits"], serde_json::json!([]));
    let log = &r["http"]["sides"][1]["header_log"][0];
    assert_eq!(
        (&log["kind"], &log["name"], &log["value"]),
        (&"missing".into(), &"x-trace".into(), &"yes".into())
    );

    let r = run("/replaced", "X-Key: wrong");
    assert_eq!(r["verdict"], "allowed");
    let edit = &r["http"]["header_edits"][0];
    assert_eq!(
        (&edit["action"], &edit["value"]),
        (&"REPLACE".into(), &"[redacted]".into())
    );
    assert_eq!(r["http"]["request"]["headers"][0]["value"], "[redacted]");
    let kinds: Vec<_> = r["http"]["sides"][1]["header_log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|l| format!("{} {}", l["kind"], l["value"]))
        .collect();
    assert_eq!(
        kinds,
        ["\"rejected\" \"[redacted]\"", "\"missing\" \"[redacted]\""]
    );

    let r = run("/cleaned", "X-Debug: on");
    assert_eq!(r["verdict"], "allowed");
    let edit = &r["http"]["header_edits"][0];
    assert_eq!(
        (&edit["action"], &edit["value"]),
        (&"DELETE".into(), &Value::Null)
    );

    // A secret compared without a mismatch action: denied, and the try stays hidden.
    let out = sluice(&[
        "policy",
        "trace",
        "--config",
        &config,
        "--from",
        "shop/gateway",
        "--to",
        "shop/users-api",
        "--port",
        "8080/TCP",
        "--http-method",
        "PUT",
        "--http-path",
        "/api/keys",
        "--http-header",
        "X-Key: s3cre",
    ]);
    let text = stdout(&out);
    assert!(text.contains("header missing x-key: [redacted]"), "{text}");
    assert!(!text.contains("s3cre"), "{text}");
    assert!(
        text.contains(
            "Final verdict: DENIED by ingress rules of shop/users-api (403 \"Access denied\\r\\n\")"
        ),
        "{text}"
    );
}

#[test]
fn trace_http_denial_body_and_grpc_status_follow_node_config() {
    let config = l7_config("trace-http-body", NODE_CONFIG);
    let r = trace_json(
        &config,
        "shop/gateway",
        "shop/users-api",
        "8080/TCP",
        &["--http-path", "/admin"],
    );
    assert_eq!(r["http"]["response"]["body"], "Blocked by policy\r\n");
    let out = sluice(&[
        "policy",
        "trace",
        "--config",
        &config,
        "--from",
        "shop/gateway",
        "--to",
        "shop/greeter",
        "--port",
        "50051/TCP",
        "--http-path",
        "/demo.Greeter/Admin",
        "--http-header",
        "content-type: application/grpc",
    ]);
    let text = stdout(&out);
    assert!(text.starts_with("shop/gateway"), "{text}");
    assert!(
        text.contains("HTTP/2 POST /demo.Greeter/Admin (host 10.200.8.4:50051, gRPC)"),
        "{text}"
    );
    assert!(
        text.contains("Final verdict: DENIED by ingress rules of shop/greeter (gRPC status 7 PERMISSION_DENIED)"),
        "{text}"
    );
}

#[test]
fn trace_dns_queries_final_verdicts() {
    let plain = l7_config("trace-dns", "");
    let nxdomain = l7_config("trace-dns-nx", NODE_CONFIG);
    let gw = "shop/gateway";
    let dns = "kube-system/coredns";
    // (what, config, from, to, port, name, verdict, answer, dns.verdict).
    // Expected: spec §14 matching (cilium pkg/fqdn/matchpattern: `*` inside one label,
    // leading `**.` one or more labels, lowercase, trailing dot) and DNS proxy behaviour
    // (REFUSED, or NXDOMAIN with tofqdns-dns-reject-response-code=nameError; an L3/L4
    // denial is a drop, no answer).
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Value,
        &'a str,
    );
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("matchPattern *.stripe.com", &plain, gw, dns, "53/UDP", "api.stripe.com", "allowed", Value::Null, "forwarded"),
        ("* takes part of one label only", &plain, gw, dns, "53/UDP", "a.b.stripe.com", "denied", "REFUSED".into(), "refused"),
        ("*. needs a label", &plain, gw, dns, "53/UDP", "stripe.com", "denied", "REFUSED".into(), "refused"),
        ("matchName", &plain, gw, dns, "53/TCP", "api.example.com", "allowed", Value::Null, "forwarded"),
        ("case folding and a trailing dot", &plain, gw, dns, "53/UDP", "API.Example.COM.", "allowed", Value::Null, "forwarded"),
        ("matchName is literal", &plain, gw, dns, "53/UDP", "www.api.example.com", "denied", "REFUSED".into(), "refused"),
        ("leading **. takes labels", &plain, gw, dns, "53/UDP", "a.b.internal.test", "allowed", Value::Null, "forwarded"),
        ("leading **. needs one label", &plain, gw, dns, "53/UDP", "internal.test", "denied", "REFUSED".into(), "refused"),
        ("name not allowed: NXDOMAIN per NodeConfig", &nxdomain, gw, dns, "53/UDP", "evil.test", "denied", "NXDOMAIN".into(), "refused"),
        ("L3/L4 denied: dropped", &plain, "shop/stranger", dns, "53/UDP", "api.stripe.com", "denied", Value::Null, "dropped"),
        ("resolver not allowed: dropped", &plain, gw, "192.0.2.53", "53/UDP", "api.stripe.com", "denied", Value::Null, "dropped"),
    ];
    let mut failures = Vec::new();
    for (what, config, from, to, port, name, verdict, answer, dns_verdict) in &table {
        let r = trace_json(config, from, to, port, &["--dns-name", name]);
        if r["verdict"] != *verdict
            || r["dns"]["answer"] != *answer
            || r["dns"]["verdict"] != *dns_verdict
        {
            failures.push(format!("{what}: got {} / {:#}", r["verdict"], r["dns"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let r = trace_json(&plain, gw, dns, "53/UDP", &["--dns-name", "Pay.Stripe.com"]);
    assert_eq!(r["dns"]["query"], "pay.stripe.com.");
    assert_eq!(r["dns"]["allowed_by"][0]["matchPattern"], "*.stripe.com");
    assert_eq!(r["dns"]["to_fqdns"][0]["matchPattern"], "*.stripe.com");
    assert_eq!(r["dns"]["to_fqdns"][0]["policy"]["name"], "gateway-egress");
    assert_eq!(r["dns"]["to_fqdns"][0]["ports"][0], "443/TCP");
    let r = trace_json(
        &plain,
        gw,
        dns,
        "53/UDP",
        &["--dns-name", "a.internal.test"],
    );
    assert_eq!(
        r["dns"]["to_fqdns"],
        serde_json::json!([]),
        "no toFQDNs selects it"
    );
    let r = trace_json(
        &plain,
        "shop/stranger",
        dns,
        "53/UDP",
        &["--dns-name", "x.test"],
    );
    assert_eq!(r["drop_reason"], 133);
    assert_eq!(r["dns"]["dropped_by"], "EGRESS");

    let out = sluice(&[
        "policy",
        "trace",
        "--config",
        &nxdomain,
        "--from",
        gw,
        "--to",
        dns,
        "--port",
        "53/UDP",
        "--dns-name",
        "evil.test",
    ]);
    let text = stdout(&out);
    assert!(text.contains("DNS query evil.test."), "{text}");
    assert!(
        text.contains("Final verdict: DENIED (answered NXDOMAIN by the DNS proxy)"),
        "{text}"
    );
}

#[test]
fn trace_l7_flags_that_make_no_sense_are_usage_errors() {
    let config = l7_config("trace-l7-usage", "");
    let base = [
        "policy",
        "trace",
        "--config",
        config.as_str(),
        "--from",
        "shop/gateway",
    ];
    for (args, needle) in [
        (
            vec![
                "--to",
                "kube-system/coredns",
                "--port",
                "53/UDP",
                "--dns-name",
                "a.test",
                "--http-path",
                "/",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "--to",
                "kube-system/coredns",
                "--port",
                "53/UDP",
                "--http-method",
                "GET",
            ],
            "TCP",
        ),
        (
            vec![
                "--to",
                "kube-system/coredns",
                "--port",
                "5353/UDP",
                "--dns-name",
                "a.test",
            ],
            "53/UDP or 53/TCP",
        ),
        (
            vec![
                "--to",
                "kube-system/coredns",
                "--port",
                "53/UDP",
                "--dns-name",
                "a..test",
            ],
            "empty label",
        ),
        (
            vec![
                "--to",
                "shop/users-api",
                "--port",
                "8080/TCP",
                "--http-header",
                "X-API-Key k",
            ],
            "Name: value",
        ),
        (
            vec![
                "--to",
                "shop/users-api",
                "--port",
                "8080/TCP",
                "--http-path",
                "/a b",
            ],
            "--http-path",
        ),
        (
            vec!["--to", "world", "--port", "80/TCP", "--http-path", "/"],
            "--http-host",
        ),
    ] {
        let full = [&base[..], &args].concat();
        let out = sluice(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{full:?}: {}", stderr(&out));
    }
}

/// A directory under the target dir, unique per test and process, removed first.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
