//! The proxy between real clients and a real resolver: `dig` asks, dnsmasq answers from a
//! local zone on 127.0.0.1, the proxy (in-process) decides and relays.
//!
//! Both programs must be installed (`scripts/deps`); a test fails, never skips, without
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HookMode, PatternPolicy, Proxy, query, start_proxy, udp_exchange};
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use sluice_dns::{ProxyConfig, Reason, RejectResponse, ResolvedIp, Transport, Verdict};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

/// The zone dnsmasq serves. `www → edge → web` is a CNAME chain whose smallest TTL is 45.
const ZONE: &[&str] = &[
    "--local=/zone.test/",
    "--host-record=web.zone.test,192.0.2.10,2001:db8::10,300",
    "--host-record=blocked.zone.test,192.0.2.99,300",
    "--cname=www.zone.test,edge.zone.test,600",
    "--cname=edge.zone.test,web.zone.test,45",
    "--local-ttl=77",
];

/// Names the test policy allows (`rules.dns` matchPatterns).
const ALLOWED: &[&str] = &[
    "web.zone.test",
    "www.zone.test",
    "big.zone.test",
    "*.nx.zone.test",
];

/// Addresses of `big.zone.test`: too many for a 512-byte UDP answer.
const BIG: u8 = 40;

/// dnsmasq in the foreground on a random high port of 127.0.0.1, killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

impl Dnsmasq {
    async fn start() -> Self {
        // A port is free when we look; dnsmasq may still lose a race for it, so retry.
        for attempt in 0..5 {
            let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = std::env::temp_dir().join(format!(
                "sluice-dnsmasq-{}-{port}-{attempt}.log",
                std::process::id()
            ));
            let mut args: Vec<String> = [
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--log-queries",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(format!("--port={port}"));
            args.push(format!("--log-facility={}", log.display()));
            args.extend(ZONE.iter().map(|s| s.to_string()));
            args.extend((1..=BIG).map(|i| format!("--address=/big.zone.test/10.0.0.{i}")));
            let child = Command::new("dnsmasq")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run dnsmasq ({e}): install it with scripts/deps (package dnsmasq-base)")
                });
            let mut dnsmasq = Self {
                child,
                addr: (Ipv4Addr::LOCALHOST, port).into(),
                log,
            };
            if dnsmasq.wait_ready().await {
                return dnsmasq;
            }
        }
        panic!("dnsmasq did not start on any of 5 ports");
    }

    /// Whether dnsmasq answers a query within a few seconds (false: it exited).
    async fn wait_ready(&mut self) -> bool {
        let probe = query(1, "web.zone.test.", RecordType::A).to_vec().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = stderr.read_to_string(&mut err);
                }
                eprintln!("dnsmasq exited ({status}): {err}");
                return false;
            }
            if udp_exchange(self.addr, &probe, Duration::from_millis(200))
                .await
                .is_some()
            {
                return true;
            }
        }
        false
    }

    /// The names dnsmasq was asked for, from its query log.
    fn queried(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// What `dig` printed, read back.
#[derive(Debug)]
struct Dig {
    status: String,
    flags: Vec<String>,
    /// The question as the answer echoed it.
    question: String,
    /// `(owner, ttl, type, data)` of the answer section.
    answers: Vec<(String, u32, String, String)>,
    elapsed: Duration,
    output: String,
}

impl Dig {
    fn addresses(&self) -> Vec<String> {
        self.answers
            .iter()
            .filter(|a| a.2 == "A" || a.2 == "AAAA")
            .map(|a| a.3.clone())
            .collect()
    }
}

/// Runs `dig @127.0.0.1 -p PORT <args>` and reads its output.
async fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let started = Instant::now();
    let output = dig_command(server, args)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run dig ({e}): install it with scripts/deps (package dnsutils)")
        });
    parse_dig(
        String::from_utf8_lossy(&output.stdout).into_owned(),
        started.elapsed(),
    )
}

fn dig_command(server: SocketAddr, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("dig");
    cmd.arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=5", "+tries=1", "+nocookie"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn parse_dig(output: String, elapsed: Duration) -> Dig {
    let field = |line: &str, key: &str| {
        line.split(key).nth(1).map(|rest| {
            rest.split([',', ';'])
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
    };
    let mut status = String::new();
    let mut flags = Vec::new();
    let mut question = String::new();
    let mut answers = Vec::new();
    let mut section = "";
    for line in output.lines() {
        if line.contains("->>HEADER<<-") {
            status = field(line, "status: ").unwrap_or_default();
        } else if line.starts_with(";; flags:") {
            flags = field(line, "flags: ")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
        } else if let Some(s) = line
            .strip_prefix(";; ")
            .and_then(|l| l.strip_suffix(" SECTION:"))
        {
            section = if s == "QUESTION" {
                "q"
            } else if s == "ANSWER" {
                "a"
            } else {
                ""
            };
        } else if line.is_empty() {
            section = "";
        } else if section == "q" {
            question = line
                .trim_start_matches(';')
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned();
        } else if section == "a" {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [owner, ttl, _class, rtype, data @ ..] = parts.as_slice() {
                answers.push((
                    owner.to_string(),
                    ttl.parse().unwrap(),
                    rtype.to_string(),
                    data.join(" "),
                ));
            }
        }
    }
    Dig {
        status,
        flags,
        question,
        answers,
        elapsed,
        output,
    }
}

async fn proxy_with(
    dnsmasq: &Dnsmasq,
    configure: impl FnOnce(&mut ProxyConfig),
    hook: HookMode,
) -> Proxy {
    start_proxy(
        configure,
        PatternPolicy::allowing(ALLOWED),
        Some(dnsmasq.addr),
        hook,
    )
    .await
}

fn v4(ip: [u8; 4], ttl: u32) -> ResolvedIp {
    ResolvedIp {
        addr: IpAddr::V4(Ipv4Addr::from(ip)),
        ttl,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_name_is_answered_over_udp_and_tcp() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(&dnsmasq, |_| {}, HookMode::Succeed).await;
    for (transport, extra) in [(Transport::Udp, &[][..]), (Transport::Tcp, &["+tcp"][..])] {
        let mut args = vec!["web.zone.test"];
        args.extend_from_slice(extra);
        let d = dig(proxy.addr, &args).await;
        assert_eq!(d.status, "NOERROR", "{}", d.output);
        assert_eq!(
            d.answers,
            vec![(
                "web.zone.test.".into(),
                300,
                "A".into(),
                "192.0.2.10".into()
            )]
        );

        let event = proxy.event().await;
        assert_eq!(event.transport, transport);
        assert_eq!(
            (event.verdict, event.reason.clone()),
            (Verdict::Forwarded, Reason::Allowed)
        );
        assert_eq!(event.qname.as_deref(), Some("web.zone.test."));
        assert_eq!(event.qtype, Some(RecordType::A));
        assert_eq!(event.rcode, Some(ResponseCode::NoError));
        assert_eq!(event.ips, vec![v4([192, 0, 2, 10], 300)]);
        assert_eq!(event.upstream, Some(dnsmasq.addr));
    }
    let calls = proxy.hook_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].1.ips, vec![v4([192, 0, 2, 10], 300)]);
    assert_eq!(calls[1].0.transport, Transport::Tcp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_name_is_refused_and_never_reaches_the_resolver() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(&dnsmasq, |_| {}, HookMode::Succeed).await;
    for extra in [&[][..], &["+tcp"][..]] {
        let mut args = vec!["blocked.zone.test"];
        args.extend_from_slice(extra);
        let d = dig(proxy.addr, &args).await;
        assert_eq!(d.status, "REFUSED", "{}", d.output);
        assert!(d.answers.is_empty());
        assert_eq!(d.question, "blocked.zone.test.");
        let event = proxy.event().await;
        assert_eq!(
            (event.verdict, event.reason),
            (Verdict::Refused, Reason::PolicyDenied)
        );
        assert_eq!(event.rcode, Some(ResponseCode::Refused));
        assert_eq!(event.upstream, None);
    }
    assert!(
        !dnsmasq.queried().contains("blocked"),
        "{}",
        dnsmasq.queried()
    );
    assert!(proxy.hook_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_name_gets_nxdomain_when_configured() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(
        &dnsmasq,
        |c| c.reject_response = RejectResponse::NameError,
        HookMode::Succeed,
    )
    .await;
    let d = dig(proxy.addr, &["blocked.zone.test"]).await;
    assert_eq!(d.status, "NXDOMAIN", "{}", d.output);
    let event = proxy.event().await;
    assert_eq!(event.verdict, Verdict::Refused);
    assert_eq!(event.rcode, Some(ResponseCode::NXDomain));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_nxdomain_is_relayed_and_teaches_nothing() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(&dnsmasq, |_| {}, HookMode::Succeed).await;
    let d = dig(proxy.addr, &["missing.nx.zone.test"]).await;
    assert_eq!(d.status, "NXDOMAIN", "{}", d.output);
    let event = proxy.event().await;
    assert_eq!(event.verdict, Verdict::Forwarded);
    assert_eq!(event.rcode, Some(ResponseCode::NXDomain));
    assert!(event.ips.is_empty());
    assert!(proxy.hook_calls().is_empty());
}

/// spec §14: the chain is followed, every name in it maps to the final address, and the TTL
/// is the chain's smallest (edge → web, 45 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_chain_is_collected() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(&dnsmasq, |_| {}, HookMode::Succeed).await;
    let d = dig(proxy.addr, &["www.zone.test"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.output);
    assert_eq!(d.addresses(), vec!["192.0.2.10"]);
    assert_eq!(d.answers.len(), 3, "{}", d.output);

    let calls = proxy.hook_calls();
    assert_eq!(calls.len(), 1);
    let answer = &calls[0].1;
    assert_eq!(answer.qname, "www.zone.test.");
    assert_eq!(answer.cnames, vec!["edge.zone.test.", "web.zone.test."]);
    assert_eq!(answer.ips, vec![v4([192, 0, 2, 10], 45)]);
    let event = proxy.event().await;
    assert_eq!(event.cnames, answer.cnames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaaa_answer_is_collected() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(&dnsmasq, |_| {}, HookMode::Succeed).await;
    let d = dig(proxy.addr, &["AAAA", "web.zone.test"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.output);
    assert_eq!(d.addresses(), vec!["2001:db8::10"]);
    let event = proxy.event().await;
    assert_eq!(event.qtype, Some(RecordType::AAAA));
    let want = ResolvedIp {
        addr: IpAddr::from_str("2001:db8::10").unwrap(),
        ttl: 300,
    };
    assert_eq!(event.ips, vec![want]);
    assert_eq!(proxy.hook_calls()[0].1.ips, vec![want]);
}

/// The answer is held while the hook runs: dig is still waiting while the hook is, and
/// gets its answer only after the hook finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_is_released_only_after_the_hook_finished() {
    let dnsmasq = Dnsmasq::start().await;
    let gate = Arc::new(Notify::new());
    let mut proxy = proxy_with(
        &dnsmasq,
        |c| c.answer_hook_timeout = Duration::from_secs(4),
        HookMode::Gate(Arc::clone(&gate)),
    )
    .await;
    let mut client = dig_command(proxy.addr, &["web.zone.test"]).spawn().unwrap();

    let seen = tokio::time::timeout(Duration::from_secs(5), proxy.hook_started.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.ips, vec![v4([192, 0, 2, 10], 300)]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        client.try_wait().unwrap().is_none(),
        "dig got an answer while the hook was running"
    );

    gate.notify_one();
    let output = client.wait_with_output().await.unwrap();
    let dig_done = Instant::now();
    let d = parse_dig(
        String::from_utf8_lossy(&output.stdout).into_owned(),
        Duration::ZERO,
    );
    assert_eq!(d.status, "NOERROR", "{}", d.output);
    let hook_done = proxy.hook_calls()[0].2;
    assert!(hook_done < dig_done);
    assert_eq!(proxy.event().await.verdict, Verdict::Forwarded);
}

/// Fail closed: a hook that overruns its bound turns the answer into SERVFAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_timeout_answers_servfail() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(
        &dnsmasq,
        |c| c.answer_hook_timeout = Duration::from_millis(100),
        HookMode::Sleep(Duration::from_millis(1500)),
    )
    .await;
    let d = dig(proxy.addr, &["web.zone.test"]).await;
    assert_eq!(d.status, "SERVFAIL", "{}", d.output);
    assert!(d.answers.is_empty());
    // SERVFAIL at the 100 ms bound, long before the hook ends.
    assert!(d.elapsed < Duration::from_millis(1200), "{:?}", d.elapsed);
    let event = proxy.event().await;
    assert_eq!(
        (event.verdict, event.reason),
        (Verdict::Dropped, Reason::HookTimeout)
    );
    assert_eq!(event.rcode, Some(ResponseCode::ServFail));
    // The install was not cancelled: it finishes in the background.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(proxy.hook_calls().len(), 1);
}

/// The query's bytes go upstream unchanged and the answer's come back unchanged: asked
/// directly or through the proxy, dnsmasq's answer is the same, byte for byte — the ID, the
/// 0x20 case of the question and the EDNS0 record included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_case_and_edns_pass_through_unchanged() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(&dnsmasq, |_| {}, HookMode::Succeed).await;

    let mut q = query(0xa5c3, "wEb.ZoNe.TeSt.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1400);
    q.set_edns(edns);
    let q = q.to_vec().unwrap();
    let direct = udp_exchange(dnsmasq.addr, &q, Duration::from_secs(3))
        .await
        .unwrap();
    let proxied = udp_exchange(proxy.addr, &q, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(proxied, direct);
    let m = Message::from_vec(&proxied).unwrap();
    assert_eq!(m.metadata.id, 0xa5c3);
    assert_eq!(
        m.queries[0].name(),
        &Name::from_ascii("wEb.ZoNe.TeSt.").unwrap()
    );
    assert_eq!(m.queries[0].name().to_ascii(), "wEb.ZoNe.TeSt.");
    assert!(m.edns.is_some());
    assert_eq!(proxy.event().await.qname.as_deref(), Some("web.zone.test."));

    // dig too: it checks the ID and echoes the question as the answer carried it.
    let d = dig(proxy.addr, &["WeB.ZoNe.TeSt"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.output);
    assert_eq!(d.question, "WeB.ZoNe.TeSt.");
    assert!(!d.output.contains("ID mismatch"), "{}", d.output);
}

/// A UDP answer with TC is relayed as is; dig then retries over TCP, which the proxy
/// serves too, and gets every address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_answer_is_relayed_and_tcp_retry_gets_everything() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(&dnsmasq, |_| {}, HookMode::Succeed).await;

    let d = dig(proxy.addr, &["big.zone.test", "+bufsize=512", "+ignore"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.output);
    assert!(d.flags.contains(&"tc".to_owned()), "{}", d.output);
    assert!(d.answers.len() < usize::from(BIG));
    let event = proxy.event().await;
    assert!(event.truncated);
    assert_eq!(event.verdict, Verdict::Forwarded);

    let d = dig(proxy.addr, &["big.zone.test", "+bufsize=512"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.output);
    assert!(!d.flags.contains(&"tc".to_owned()), "{}", d.output);
    assert_eq!(d.answers.len(), usize::from(BIG), "{}", d.output);
    let udp = proxy.event().await;
    assert_eq!((udp.transport, udp.truncated), (Transport::Udp, true));
    let tcp = proxy.event().await;
    assert_eq!((tcp.transport, tcp.truncated), (Transport::Tcp, false));
    assert_eq!(tcp.ips.len(), usize::from(BIG));
    assert!(tcp.ips.iter().all(|ip| ip.ttl == 77));
    let calls = proxy.hook_calls();
    assert_eq!(calls.last().unwrap().1.ips.len(), usize::from(BIG));
}

/// Two questions in one query: FORMERR, as miekg/dns (and so Cilium's proxy) answers, and
/// nothing reaches the resolver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_questions_are_refused() {
    let dnsmasq = Dnsmasq::start().await;
    let mut proxy = proxy_with(&dnsmasq, |_| {}, HookMode::Succeed).await;
    let mut q = query(0x0202, "web.zone.test.", RecordType::A);
    q.add_query(hickory_proto::op::Query::query(
        Name::from_ascii("www.zone.test.").unwrap(),
        RecordType::A,
    ));
    let reply = udp_exchange(proxy.addr, &q.to_vec().unwrap(), Duration::from_secs(3))
        .await
        .unwrap();
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.id, 0x0202);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    let event = proxy.event().await;
    assert_eq!(event.verdict, Verdict::Dropped);
    assert!(
        matches!(event.reason, Reason::InvalidQuery(_)),
        "{:?}",
        event.reason
    );
    assert!(
        !dnsmasq.queried().contains("www.zone.test"),
        "{}",
        dnsmasq.queried()
    );
}
