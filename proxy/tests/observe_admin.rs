#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The admin socket itself: how it binds, its permissions, its protocol, and what a
//! follower that falls behind is told.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use sluice_proxy::admin::{self, AdminError, AdminServer, ObserveRequest};
use sluice_proxy::flow::{Flow, FlowRing, FlowVerdict, FlowsResponse, ResponseEvent};

fn flow(n: u32) -> Flow {
    Flow {
        verdict: FlowVerdict::Forwarded,
        node_name: "node-a".into(),
        proxy_port: n,
        summary: "x".repeat(400),
        ..Flow::default()
    }
}

#[tokio::test]
async fn binds_0600_refuses_a_live_socket_replaces_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/run/admin.sock");
    let server = AdminServer::bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let parent = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(parent, 0o700);
    // A second node on the same path is refused while the first answers.
    assert!(matches!(
        AdminServer::bind(&path),
        Err(AdminError::InUse(_))
    ));
    drop(server);
    assert!(!path.exists(), "dropping the server removes its socket");

    // A stale socket (nothing listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = AdminServer::bind(&path).unwrap();
    drop(server);

    // Anything that is not a socket is left alone.
    std::fs::write(&path, "precious").unwrap();
    let err = AdminServer::bind(&path).unwrap_err();
    assert!(matches!(err, AdminError::NotASocket(_)), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let ring = Arc::new(FlowRing::new(2));
    for n in 0..3 {
        ring.push(flow(n));
    }
    let server = AdminServer::bind(&path).unwrap();
    let task = tokio::spawn(server.run(Arc::clone(&ring)));

    let p = path.clone();
    let status = tokio::task::spawn_blocking(move || admin::status(&p))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (status.num_flows, status.max_flows, status.seen_flows),
        (2, 2, 3)
    );

    let p = path.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = UnixStream::connect(&p).unwrap();
        s.write_all(b"{\"shutdown\":{}}\n").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(
        reply.starts_with(r#"{"error":"invalid request: "#),
        "{reply}"
    );

    // A filter the server cannot compile comes back as the client's error.
    let p = path.clone();
    let err = tokio::task::spawn_blocking(move || {
        let mut req = ObserveRequest::default();
        req.filters.whitelist.push(Default::default());
        req.filters.whitelist[0].http_path.push("(".into());
        admin::observe(&p, req)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err()
    })
    .await
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("the node refused the request: invalid http path filter"),
        "{err}"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_falls_behind_is_told_how_many_flows_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let ring = Arc::new(FlowRing::with_follow_buffer(16, 4));
    let server = AdminServer::bind(&path).unwrap();
    let task = tokio::spawn(server.run(Arc::clone(&ring)));

    // The client reads one line, then stops reading until told to go on.
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let mut lines = admin::observe(
            &p,
            ObserveRequest {
                last: Some(0),
                follow: true,
                ..ObserveRequest::default()
            },
        )
        .unwrap();
        let _ = first_tx.send(lines.next().unwrap().unwrap());
        go_rx.recv().unwrap();
        let _ = lost_tx.send(
            lines
                .map(Result::unwrap)
                .find(|l| l.starts_with(r#"{"lost_events":"#)),
        );
    });
    // Record until the follower is subscribed and has a flow...
    let first = loop {
        ring.push(flow(0));
        if let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(100), first_rx.recv()).await
        {
            break line;
        }
    };
    assert!(first.starts_with(r#"{"flow":{"#), "{first}");
    // ...then far more than the socket buffer and the follow buffer hold while the
    // client reads nothing.
    for n in 1..=5000 {
        ring.push(flow(n));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    go_tx.send(()).unwrap();
    let line = tokio::time::timeout(Duration::from_secs(30), lost_rx)
        .await
        .expect("no lost_events line within 30 s")
        .unwrap()
        .expect("stream ended without a lost_events line");
    let resp = FlowsResponse::from_json_line(&line).unwrap();
    let ResponseEvent::LostEvents(lost) = resp.event else {
        panic!("{line}")
    };
    assert!(lost.num_events_lost > 0);
    assert!(line.contains(r#""source":"HUBBLE_RING_BUFFER""#), "{line}");
    assert!(ring.lost_events() >= lost.num_events_lost);
    task.abort();
}

struct FakeCache;

impl admin::FqdnSource for FakeCache {
    fn fqdn_cache(&self) -> Vec<admin::FqdnCacheEntry> {
        vec![admin::FqdnCacheEntry {
            endpoint: "shop/web".into(),
            name: "api.example.test.".into(),
            selectors: vec!["*.example.test".into()],
            ips: vec![admin::FqdnCacheIp {
                ip: "192.0.2.10".parse().unwrap(),
                identity: Some(16_777_300),
                ttl: 60,
                expires_at: "2030-01-01T00:01:00Z".into(),
                expires_in: 42,
                source: "lookup".into(),
            }],
        }]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fqdn_cache_requests_are_answered_by_the_node_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let server = AdminServer::bind(&path).unwrap();
    let source: Arc<dyn admin::FqdnSource> = Arc::new(FakeCache);
    let task = tokio::spawn(server.run_with(Arc::new(FlowRing::new(2)), Some(source)));
    let p = path.clone();
    let entries = tokio::task::spawn_blocking(move || admin::fqdn_cache(&p))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entries, admin::FqdnSource::fqdn_cache(&FakeCache));
    task.abort();
    let _ = task.await;

    // A server without a cache (a test harness, an older node) says so.
    let path = dir.path().join("plain.sock");
    let server = AdminServer::bind(&path).unwrap();
    let task = tokio::spawn(server.run(Arc::new(FlowRing::new(2))));
    let p = path.clone();
    let err = tokio::task::spawn_blocking(move || admin::fqdn_cache(&p))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("does not learn FQDN addresses"),
        "{err}"
    );
    task.abort();
    let _ = task.await;
}
