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

/// A directory under the target dir, unique per test and process, removed first.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
