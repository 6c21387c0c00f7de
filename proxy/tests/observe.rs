#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sluice observe` against an in-process admin server: the built binary runs as a
//! subprocess, the server and its ring live in the test.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_identity::{Direction, DropReason, Identity, Label, LabelSet, PolicyRef, Protocol};
use sluice_proxy::admin::AdminServer;
use sluice_proxy::flow::{
    Endpoint, Flow, FlowRing, FlowVerdict, HttpEvent, HttpVersion, L4Event, Layer4,
    PolicyMatchType, Timestamp,
};

fn labels(ls: &[&str]) -> LabelSet {
    ls.iter().map(|l| Label::parse(l)).collect()
}

fn pod(id: u32, name: &str) -> std::sync::Arc<Endpoint> {
    std::sync::Arc::new(Endpoint::workload(
        Identity(id),
        "default",
        "shop",
        name,
        &labels(&[
            &format!("k8s:app={name}"),
            "k8s:io.kubernetes.pod.namespace=shop",
        ]),
    ))
}

/// A policy verdict from `src` to backend:8080 at `secs`.
fn verdict(
    secs: i64,
    src: (&str, u32, u8),
    verdict: FlowVerdict,
    denied_by: &[Arc<PolicyRef>],
) -> Flow {
    Flow::policy_verdict(&L4Event {
        time: Timestamp::new(secs, 0),
        node_name: "node-a",
        source: pod(src.1, src.0),
        destination: pod(301, "backend"),
        source_ip: IpAddr::V4(Ipv4Addr::new(10, 200, 1, src.2)),
        destination_ip: IpAddr::V4(Ipv4Addr::new(10, 200, 1, 3)),
        l4: Layer4::connection(Protocol::Tcp, 40000 + u16::from(src.2), 8080),
        direction: Direction::Ingress,
        verdict,
        drop_reason: (verdict == FlowVerdict::Dropped).then_some(DropReason::PolicyDenied),
        match_type: if verdict == FlowVerdict::Dropped {
            PolicyMatchType::None
        } else {
            PolicyMatchType::L3L4
        },
        allowed_by: &[],
        denied_by,
        policy_revision: 1,
        auth: None,
        proxy_port: None,
        socket_cookie: None,
        cgroup_id: None,
    })
}

fn http_request(secs: i64) -> Flow {
    let ev = HttpEvent {
        node_name: "node-a",
        source: pod(300, "frontend"),
        destination: pod(301, "backend"),
        source_addr: SocketAddr::from(([10, 200, 1, 2], 41000)),
        destination_addr: SocketAddr::from(([10, 200, 1, 3], 8080)),
        direction: Direction::Ingress,
        method: "GET",
        url: "http://backend:8080/api",
        version: HttpVersion::Http11,
        proxy_port: Some(15001),
    };
    Flow::http_request(&ev, Timestamp::new(secs, 0), FlowVerdict::Forwarded, vec![])
}

/// The quickstart's story: frontend allowed, stranger denied, an HTTP request.
fn filled_ring() -> Arc<FlowRing> {
    let ring = Arc::new(FlowRing::new(64));
    let deny = [Arc::new(PolicyRef {
        kind: "CiliumNetworkPolicy",
        namespace: Some("shop".into()),
        name: "backend-ingress".into(),
    })];
    ring.push(verdict(
        1_700_000_000,
        ("frontend", 300, 2),
        FlowVerdict::Forwarded,
        &[],
    ));
    ring.push(verdict(
        1_700_000_001,
        ("stranger", 302, 9),
        FlowVerdict::Dropped,
        &deny,
    ));
    ring.push(http_request(1_700_000_002));
    ring.push(verdict(
        1_700_000_003,
        ("stranger", 302, 9),
        FlowVerdict::Dropped,
        &deny,
    ));
    ring
}

struct Node {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    ring: Arc<FlowRing>,
    task: tokio::task::JoinHandle<()>,
}

impl Node {
    async fn start(ring: Arc<FlowRing>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/admin.sock");
        let server = AdminServer::bind(&socket).unwrap();
        let served = Arc::clone(&ring);
        let task = tokio::spawn(async move {
            server.run(served).await.unwrap();
        });
        Self {
            _dir: dir,
            socket,
            ring,
            task,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sluice(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn observe_args(socket: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "observe".to_owned(),
        "--socket".to_owned(),
        socket.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn stdout_lines(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "sluice failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_parse_and_filter_by_verdict() {
    let node = Node::start(filled_ring()).await;
    let out = sluice(observe_args(
        &node.socket,
        &["-o", "json", "--verdict", "DROPPED"],
    ))
    .await;
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["flow"]["verdict"], "DROPPED", "{line}");
        assert_eq!(v["flow"]["drop_reason_desc"], "POLICY_DENIED", "{line}");
        assert_eq!(v["flow"]["source"]["pod_name"], "stranger", "{line}");
        assert_eq!(
            v["flow"]["ingress_denied_by"][0]["name"], "backend-ingress",
            "{line}"
        );
        assert_eq!(v["node_name"], "node-a", "{line}");
        assert_eq!(v["flow"]["uuid"].as_str().unwrap().len(), 36, "{line}");
    }
    // Oldest first, like Hubble.
    let times: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["time"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(times, ["2023-11-14T22:13:21Z", "2023-11-14T22:13:23Z"]);

    // --last picks the newest; --not negates; --protocol http selects the L7 flow.
    let out = sluice(observe_args(&node.socket, &["-o", "jsonpb", "--last", "1"])).await;
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains(r#""time":"2023-11-14T22:13:23Z"}"#),
        "{}",
        lines[0]
    );
    let out = sluice(observe_args(
        &node.socket,
        &["-o", "json", "--not", "--verdict", "DROPPED"],
    ))
    .await;
    assert_eq!(stdout_lines(&out).len(), 2);
    let out = sluice(observe_args(
        &node.socket,
        &["-o", "json", "--protocol", "http"],
    ))
    .await;
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["flow"]["l7"]["http"]["method"], "GET");
    // Different kinds AND: a frontend pod that was dropped does not exist.
    let out = sluice(observe_args(
        &node.socket,
        &["--from-pod", "shop/frontend", "--verdict", "DROPPED"],
    ))
    .await;
    assert_eq!(stdout_lines(&out), Vec::<String>::new());
    // Same kind OR.
    let out = sluice(observe_args(
        &node.socket,
        &[
            "-o",
            "json",
            "--from-pod",
            "shop/frontend",
            "--from-pod",
            "shop/stranger",
        ],
    ))
    .await;
    assert_eq!(stdout_lines(&out).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_output_is_hubbles() {
    let node = Node::start(filled_ring()).await;
    let out = sluice(observe_args(
        &node.socket,
        &["--print-policy-names", "-n", "shop"],
    ))
    .await;
    assert_eq!(
        stdout_lines(&out),
        [
            "Nov 14 22:13:20.000: shop/frontend:40002 (ID:300) -> shop/backend:8080 (ID:301) policy-verdict:L3-L4 INGRESS ALLOWED (TCP Flags: SYN)",
            "Nov 14 22:13:21.000: shop/stranger:40009 (ID:302) -> shop/backend:8080 (ID:301) policy-verdict:none INGRESS DENIED BY backend-ingress (CiliumNetworkPolicy) (TCP Flags: SYN)",
            "Nov 14 22:13:22.000: shop/frontend:41000 (ID:300) -> shop/backend:8080 (ID:301) http-request FORWARDED (HTTP/1.1 GET http://backend:8080/api)",
            "Nov 14 22:13:23.000: shop/stranger:40009 (ID:302) -> shop/backend:8080 (ID:301) policy-verdict:none INGRESS DENIED BY backend-ingress (CiliumNetworkPolicy) (TCP Flags: SYN)",
        ]
    );
    let out = sluice(observe_args(
        &node.socket,
        &[
            "--numeric",
            "--print-node-name",
            "--last",
            "1",
            "--type",
            "policy-verdict",
        ],
    ))
    .await;
    assert_eq!(
        stdout_lines(&out),
        [
            "Nov 14 22:13:23.000 [node-a]: 10.200.1.9:40009 (ID:302) -> 10.200.1.3:8080 (ID:301) policy-verdict:none INGRESS DENIED (TCP Flags: SYN)"
        ]
    );
    let out = sluice(observe_args(
        &node.socket,
        &["-o", "table", "--to-port", "8080", "--first", "1"],
    ))
    .await;
    assert_eq!(
        stdout_lines(&out),
        [
            "TIMESTAMP             SOURCE                DESTINATION         TYPE                           VERDICT   SUMMARY",
            "Nov 14 22:13:20.000   shop/frontend:40002   shop/backend:8080   policy-verdict:L3-L4 INGRESS   ALLOWED   TCP Flags: SYN",
        ]
    );
    let out = sluice(observe_args(
        &node.socket,
        &["-o", "dict", "--last", "2", "--verdict", "FORWARDED"],
    ))
    .await;
    let text = stdout_lines(&out).join("\n");
    assert!(
        text.contains("     SOURCE: shop/frontend:40002\n"),
        "{text}"
    );
    assert!(text.contains("\n------------\n"), "{text}");
    assert!(text.contains("       TYPE: http-request\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_receives_flows_pushed_after_it_started() {
    let node = Node::start(filled_ring()).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(observe_args(
            &node.socket,
            &["--follow", "-o", "json", "--verdict", "DROPPED"],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The follower may not have subscribed yet: keep recording flows (a forwarded one
    // it must skip, then a dropped one it must show) until one arrives.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pushed = 0i64;
    let line = loop {
        assert!(Instant::now() < deadline, "no flow reached the follower");
        pushed += 1;
        node.ring.push(verdict(
            1_800_000_000 + pushed,
            ("frontend", 300, 2),
            FlowVerdict::Forwarded,
            &[],
        ));
        node.ring.push(verdict(
            1_800_000_000 + pushed,
            ("late", 303, 7),
            FlowVerdict::Dropped,
            &[],
        ));
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            break line;
        }
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    // With --follow and no --last, the history (stranger's drops) is not replayed.
    assert_eq!(v["flow"]["source"]["pod_name"], "late", "{line}");
    assert_eq!(v["flow"]["verdict"], "DROPPED");
    // And it keeps following.
    node.ring.push(verdict(
        1_900_000_000,
        ("late", 303, 7),
        FlowVerdict::Dropped,
        &[],
    ));
    let next = loop {
        let l = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if l.contains("2030-03-17T17:46:40Z") {
            break l;
        }
    };
    assert!(next.contains(r#""verdict":"DROPPED""#), "{next}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("admin.sock");
    let out = sluice(observe_args(&missing, &[])).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "sluice: no sluice node is listening on {}; start one with `sluice up`",
            missing.display()
        )
    );
    // A socket file left behind by a node that is gone says the same.
    drop(std::os::unix::net::UnixListener::bind(&missing).unwrap());
    assert!(missing.exists());
    let out = sluice(observe_args(&missing, &[])).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no sluice node is listening on"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_reported_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("admin.sock");
    for (args, want) in [
        (vec!["--http-status", "9xx"], "invalid status code prefix"),
        (vec!["--port", "http"], "invalid port"),
        (
            vec!["--from-pod", "a", "--pod", "b"],
            "filters --from-pod and --pod cannot be combined",
        ),
        (vec!["--verdict", "DROPPED", "--not"], "trailing --not"),
    ] {
        let out = sluice(observe_args(&missing, &args)).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
