//! The node's DNS proxy with a fixed upstream (`spec.dns.upstream`), end to end as root:
//! pods ask whatever resolver they like and get the configured resolver's answer, while
//! policy (L3/L4 and `rules.dns`) stays on the resolver they addressed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// The resolver pods address (its own answer for `api.allowed.test`: 192.0.2.10).
const ADDRESSED: &str = "10.200.14.6";
/// The NodeConfig upstream (its answer for `api.allowed.test`: 192.0.2.99).
const UPSTREAM: &str = "10.200.14.8";
/// An address where nothing listens, allowed by CIDR.
const NOBODY: &str = "192.0.2.53";

/// dnsmasq answering `name,address` pairs from its own records only.
fn dnsmasq_records(addr: &str, records: &[(&str, &str)]) -> String {
    let records: Vec<String> = records
        .iter()
        .map(|(name, ip)| format!("--host-record={name},{ip}"))
        .collect();
    dnsmasq(addr, &records)
}

/// Two resolvers, a client that may ask the addressed one for `*.allowed.test` and the
/// address where nobody listens for `api.allowed.test` only, and a stranger that may ask
/// nothing; the node forwards every query to the upstream.
fn config(dir: &Path) -> String {
    format!(
        r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {{name: node}}
spec:
  nodeName: dns-e2e-node
  proxy: {{port: 15111, dnsPort: 15163, adminSocket: "{admin}"}}
  dns: {{upstream: "{UPSTREAM}"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: client, namespace: dns-e2e, labels: {{app: client}}}}
spec: {{addresses: ["10.200.14.2"], run: {{command: ["sleep", "infinity"]}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: stranger, namespace: dns-e2e, labels: {{app: stranger}}}}
spec: {{addresses: ["10.200.14.4"], run: {{command: ["sleep", "infinity"]}}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: resolver, namespace: dns-e2e, labels: {{app: resolver}}}}
spec:
  addresses: ["{ADDRESSED}"]
  run: {{command: {addressed}}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: upstream, namespace: dns-e2e, labels: {{app: upstream}}}}
spec:
  addresses: ["{UPSTREAM}"]
  run: {{command: {upstream}}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: default-deny, namespace: dns-e2e}}
spec:
  endpointSelector: {{}}
  ingress: [{{}}]
  egress: [{{}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: dns, namespace: dns-e2e}}
specs:
- endpointSelector: {{matchLabels: {{app: client}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{app: resolver}}}}]
    toPorts:
    - ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]
      rules:
        dns: [{{matchPattern: "*.allowed.test"}}]
  - toCIDR: ["{NOBODY}/32"]
    toPorts:
    - ports: [{{port: "53", protocol: UDP}}]
      rules:
        dns: [{{matchName: "api.allowed.test"}}]
- endpointSelector: {{matchLabels: {{app: resolver}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: client}}}}]
    toPorts: [{{ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]}}]
"#,
        admin = dir.join("admin.sock").display(),
        addressed = dnsmasq_records(
            ADDRESSED,
            &[
                ("api.allowed.test", "192.0.2.10"),
                ("other.allowed.test", "192.0.2.11")
            ]
        ),
        upstream = dnsmasq_records(
            UPSTREAM,
            &[
                ("api.allowed.test", "192.0.2.99"),
                ("other.allowed.test", "192.0.2.98"),
                ("api.denied.test", "192.0.2.97")
            ]
        ),
    )
}

/// `dig @server <args>` from a pod: what it printed and whether it got an answer at all.
fn dig(pod: &str, server: &str, args: &[&str]) -> (String, bool) {
    let mut command = Command::new(BIN);
    command
        .args(["exec", pod, "--", "dig", "+time=2", "+tries=1"])
        .arg(format!("@{server}"))
        .args(args);
    dig_result(command)
}

/// What a `dig` printed, and whether it got an answer at all.
fn dig_result(mut dig: Command) -> (String, bool) {
    let out = dig.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let answered = out.status.success() && text.contains("status:");
    (text, answered)
}

/// The addresses of an answer (`+short`), from a pod.
fn dig_short(pod: &str, server: &str, args: &[&str]) -> String {
    let mut full = vec!["+short"];
    full.extend_from_slice(args);
    dig(pod, server, &full).0.trim().to_owned()
}

/// The host (no redirect) asking a resolver pod directly.
fn host_dig_short(server: &str, name: &str) -> String {
    let out = Command::new("dig")
        .args(["+short", "+time=1", "+tries=1"])
        .arg(format!("@{server}"))
        .arg(name)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_node_config_upstream_answers_every_query_and_policy_stays_on_the_addressed_resolver() {
    let _one = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("dns-upstream");
    std::fs::write(dir.join("config/all.yaml"), config(&dir)).unwrap();
    let node = Node::start(&dir);
    eventually("both resolvers answer", || {
        host_dig_short(ADDRESSED, "api.allowed.test") == "192.0.2.10"
            && host_dig_short(UPSTREAM, "api.allowed.test") == "192.0.2.99"
    });

    // The client asks the resolver it knows and gets the upstream's answer, over UDP and TCP.
    const CLIENT: &str = "dns-e2e/client";
    assert_eq!(
        dig_short(CLIENT, ADDRESSED, &["api.allowed.test"]),
        "192.0.2.99"
    );
    assert_eq!(
        dig_short(CLIENT, ADDRESSED, &["+tcp", "other.allowed.test"]),
        "192.0.2.98"
    );
    // An address where nothing listens answers too: the query never goes there.
    assert_eq!(
        dig_short(CLIENT, NOBODY, &["api.allowed.test"]),
        "192.0.2.99"
    );

    // rules.dns are those of the addressed resolver: the upstream knows api.denied.test, but
    // no rule allows it; other.allowed.test is allowed to the resolver pod, not to NOBODY.
    for (server, name) in [
        (ADDRESSED, "api.denied.test"),
        (NOBODY, "other.allowed.test"),
    ] {
        let (out, answered) = dig(CLIENT, server, &[name]);
        assert!(
            answered && out.contains("status: REFUSED"),
            "@{server} {name}: {out}"
        );
    }
    // L3/L4 too: the stranger may not reach the addressed resolver, so nothing is forwarded.
    let (out, answered) = dig("dns-e2e/stranger", ADDRESSED, &["api.allowed.test"]);
    assert!(!answered && out.contains("timed out"), "{out}");

    // Flows name the resolver the pod addressed, as Cilium's do.
    let l7 = |flow: &Value| flow["flow"]["l7"].clone();
    let requests = node.observe(&["--protocol", "dns", "--from-pod", CLIENT]);
    let to_addressed = requests.iter().any(|f| {
        l7(f)["type"] == "REQUEST"
            && l7(f)["dns"]["query"] == "api.allowed.test."
            && f["flow"]["verdict"] == "FORWARDED"
            && f["flow"]["IP"]["destination"] == ADDRESSED
            && f["flow"]["destination"]["pod_name"] == "resolver"
    });
    assert!(to_addressed, "{requests:#?}");
    let answered = node
        .observe(&["--protocol", "dns", "--to-pod", CLIENT])
        .into_iter()
        .find(|f| {
            l7(f)["type"] == "RESPONSE"
                && l7(f)["dns"]["query"] == "api.allowed.test."
                && f["flow"]["IP"]["source"] == NOBODY
        })
        .expect("a DNS response flow from the address where nothing listens");
    assert_eq!(l7(&answered)["dns"]["ips"][0], "192.0.2.99");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A resolver pod for the enrolled-cgroup test.
const CG_RESOLVER: &str = "10.200.16.6";

/// A workload in the host's network namespace (`spec.cgroup`) that may ask the resolver
/// pod for `*.allowed.test` only, and the resolver, which lets it in on port 53.
fn cgroup_config(dir: &Path, unit: &UnitCgroup) -> String {
    format!(
        r#"
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {{name: node}}
spec:
  nodeName: dns-cgroup-node
  proxy: {{port: 15112, dnsPort: 15164, adminSocket: "{admin}"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: unit, namespace: dns-cg, labels: {{app: unit}}}}
spec: {{cgroup: "{cgroup}"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {{name: resolver, namespace: dns-cg, labels: {{app: resolver}}}}
spec:
  addresses: ["{CG_RESOLVER}"]
  run: {{command: {resolver}}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: dns, namespace: dns-cg}}
specs:
- endpointSelector: {{matchLabels: {{app: unit}}}}
  egress:
  - toEndpoints: [{{matchLabels: {{app: resolver}}}}]
    toPorts:
    - ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]
      rules:
        dns: [{{matchPattern: "*.allowed.test"}}]
- endpointSelector: {{matchLabels: {{app: resolver}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: unit}}}}]
    toPorts: [{{ports: [{{port: "53", protocol: UDP}}, {{port: "53", protocol: TCP}}]}}]
"#,
        admin = dir.join("admin.sock").display(),
        cgroup = unit.relative,
        resolver = dnsmasq_records(
            CG_RESOLVER,
            &[
                ("api.allowed.test", "192.0.2.10"),
                ("other.allowed.test", "192.0.2.11"),
                ("api.denied.test", "192.0.2.97")
            ]
        ),
    )
}

/// `dig @server <args>` from a process of `unit`: what it printed and whether it got
/// an answer at all.
fn unit_dig(unit: &UnitCgroup, server: &str, args: &[&str]) -> (String, bool) {
    dig_result(unit.command(&format!(
        "dig +time=2 +tries=1 @{server} {}",
        args.join(" ")
    )))
}

#[test]
fn an_enrolled_cgroup_s_dns_goes_through_the_dns_proxy_under_its_own_policy() {
    let _one = ONE_NODE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scenario_dir("dns-cgroup");
    let unit = UnitCgroup::create("dns");
    std::fs::write(dir.join("config/all.yaml"), cgroup_config(&dir, &unit)).unwrap();
    let node = Node::start(&dir);
    eventually("the resolver answers", || {
        host_dig_short(CG_RESOLVER, "api.allowed.test") == "192.0.2.10"
    });

    // Names its rules.dns allow are answered, over UDP and TCP.
    let (out, _) = unit_dig(&unit, CG_RESOLVER, &["+short", "api.allowed.test"]);
    assert_eq!(out.trim(), "192.0.2.10");
    let (out, _) = unit_dig(
        &unit,
        CG_RESOLVER,
        &["+short", "+tcp", "other.allowed.test"],
    );
    assert_eq!(out.trim(), "192.0.2.11");
    // Others are refused by the proxy: the unit's own policy applies, not the host's
    // (which polices nothing) — the query came from loopback, the identity from the
    // kernel's record of the unit's socket.
    let (out, answered) = unit_dig(&unit, CG_RESOLVER, &["api.denied.test"]);
    assert!(answered && out.contains("status: REFUSED"), "{out}");
    // Processes outside the cgroup are untouched (no redirect, no rules.dns).
    assert_eq!(host_dig_short(CG_RESOLVER, "api.denied.test"), "192.0.2.97");

    // What the answers taught is recorded for the unit (not for "127.0.0.1").
    let out = Command::new(BIN)
        .args(["fqdn", "cache", "list", "-o", "json", "--socket"])
        .arg(dir.join("admin.sock"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = doc["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|e| e["endpoint"] == "dns-cg/unit" && e["name"] == "api.allowed.test."),
        "{entries:?}"
    );

    // The flows name the unit as the client.
    eventually("the unit's DNS flows", || {
        let flows = node.observe(&["--from-pod", "dns-cg/unit", "--protocol", "dns"]);
        let request = |verdict: &str| {
            flows.iter().any(|f| {
                f["flow"]["verdict"] == verdict
                    && f["flow"]["l7"]["dns"]["query"]
                        .as_str()
                        .is_some_and(|q| q.starts_with("api."))
            })
        };
        request("FORWARDED") && request("DROPPED")
    });
    drop(node);
}
