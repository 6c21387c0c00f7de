#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The topology harness itself, against the real kernel. Run as root (CI does); without
//! root every test fails with the harness's "must run as root" error, never skips.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use sluice_integration::{
    Error, HostCgroup, Pod, Result, Topology, cgroup2_root, cleanup_stale, link_exists, netns_path,
};

#[test]
fn two_pods_reach_each_other_through_the_host() -> Result<()> {
    let topology = Topology::new("two_pods_reach_each_other_through_the_host")?;
    let frontend = topology
        .pod("frontend")
        .namespace("production")
        .address("10.200.77.2")
        .build()?;
    let backend = topology
        .pod("backend")
        .namespace("production")
        .address("10.200.77.3")
        .build()?;
    let _backend_server = backend.serve_http(8080)?;
    let _frontend_server = frontend.serve_http(8080)?;

    let reply = frontend.curl("http://10.200.77.3:8080/hello")?;
    assert!(reply.is_ok(), "{reply:?}");
    // The server names itself and the peer it saw: the pod's own address, no NAT.
    assert_eq!(
        reply.body,
        "production/backend GET /hello from 10.200.77.2\n"
    );

    let reply = backend.curl(&frontend.http_url(8080, "/status/418"))?;
    assert_eq!((reply.exit_code, reply.status), (0, Some(418)), "{reply:?}");
    assert_eq!(
        reply.body,
        "production/frontend GET /status/418 from 10.200.77.3\n"
    );
    topology.close()
}

#[test]
fn pods_exchange_tcp_and_reach_a_server_on_their_host_address() -> Result<()> {
    let topology = Topology::new("pods_exchange_tcp")?;
    let client = topology.pod("client").build()?;
    let echo = topology.pod("echo").build()?;
    let _echo_server = echo.tcp_listen_echo(9000)?;

    let exchange = client.tcp_exchange(echo.socket(9000), b"ping through the host")?;
    assert_eq!(exchange.into_result()?, b"ping through the host");

    // Where a node listens for this pod's redirected connections.
    let node = topology.host_cgroup("node")?;
    let _node_server = node.serve_http(client.host_address(), 15001)?;
    let reply = client.curl(&format!("http://{}:15001/", client.host_address()))?;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(
        reply.body,
        format!("host/node GET / from {}\n", client.address())
    );

    let refused = client.tcp_exchange(echo.socket(9001), b"nobody listens")?;
    let error = refused.error.expect("port 9001 has no listener");
    assert!(error.starts_with("ConnectionRefusedError"), "{error}");
    topology.close()
}

#[test]
fn pod_processes_run_in_the_pod_cgroup_and_netns() -> Result<()> {
    let topology = Topology::new("pod_processes_run_in_the_pod")?;
    let pod = topology.pod("worker").namespace("batch").build()?;
    let sleeper = pod.spawn(["sleep", "300"])?;
    let pid = sleeper.pid();

    let cgroup_line = format!("0::{}", pod.cgroup_relative());
    assert_eq!(
        cgroup_line,
        format!("0::/sluice-test-{}/pod.batch.worker", topology.run_id())
    );
    assert!(
        proc_cgroup(pid).lines().any(|l| l == cgroup_line),
        "{}",
        proc_cgroup(pid)
    );
    assert!(cgroup_pids(pod.cgroup_path()).contains(&pid));
    // The id a BPF program sees is the inode of the directory the kernel says it is in.
    let kernel_view = topology
        .cgroup_root()
        .join(pod.cgroup_relative().trim_start_matches('/'));
    assert_eq!(pod.cgroup_id(), inode(&kernel_view));
    assert_ne!(pod.cgroup_id(), inode(topology.cgroup_path()));

    assert_eq!(netns_of(pid), format!("net:[{}]", pod.netns_inode()?));
    assert_ne!(netns_of(pid), netns_of(std::process::id()));

    // exec goes through the same door: cgroup first, then netns.
    assert!(
        stdout(pod.exec(["cat", "/proc/self/cgroup"])?)
            .lines()
            .any(|l| l == cgroup_line)
    );
    let addresses = stdout(pod.exec(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])?);
    assert!(
        addresses.contains(&format!("inet {}/32", pod.address())),
        "{addresses}"
    );
    let default_route = stdout(pod.exec(["ip", "route", "show", "default"])?);
    assert_eq!(
        default_route.trim(),
        format!("default via {} dev eth0", pod.host_address())
    );
    let loopback = stdout(pod.exec(["ip", "-o", "link", "show", "lo"])?);
    assert!(loopback.contains("UP"), "{loopback}");
    drop(sleeper);
    topology.close()
}

#[test]
fn a_host_process_in_a_harness_cgroup_is_outside_every_pod() -> Result<()> {
    let topology = Topology::new("host_process_outside_pods")?;
    let pod = topology.pod("web").build()?;
    let outsider = topology.host_cgroup("outsider")?;
    let sleeper = outsider.spawn(["sleep", "300"])?;
    let pid = sleeper.pid();

    let cgroups = proc_cgroup(pid);
    assert!(
        cgroups
            .lines()
            .any(|l| l == format!("0::{}", outsider.cgroup_relative())),
        "{cgroups}"
    );
    assert!(!cgroups.contains("pod."), "{cgroups}");
    assert_ne!(outsider.cgroup_id(), pod.cgroup_id());
    assert_eq!(netns_of(pid), netns_of(std::process::id()));
    assert_ne!(netns_of(pid), format!("net:[{}]", pod.netns_inode()?));

    // From the root netns it reaches the pod by its /32 route, from the pod's host side.
    let _server = pod.serve_http(8080)?;
    let reply = outsider.curl(&pod.http_url(8080, "/"))?;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(
        reply.body,
        format!("default/web GET / from {}\n", pod.host_address())
    );
    drop(sleeper);
    topology.close()
}

#[test]
fn forwarded_pod_traffic_stays_inside_the_test_space() -> Result<()> {
    let topology = Topology::new("forwarded_traffic_stays_inside")?;
    let pod = topology.pod("curious").build()?;
    let started = Instant::now();
    // 192.0.2.1 is TEST-NET-1: if the guard failed, the SYN would leave and time out (28).
    let reply = pod.curl("http://192.0.2.1/")?;
    assert_eq!(
        reply.exit_code, 7,
        "expected 'no route to host' from the host: {reply:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    topology.close()
}

#[test]
fn close_removes_everything_and_kills_every_process() -> Result<()> {
    let topology = Topology::new("close_removes_everything")?;
    let a = topology.pod("a").build()?;
    let b = topology.pod("b").namespace("other").build()?;
    let host = topology.host_cgroup("outsider")?;
    let tracked = a.spawn(["sleep", "300"])?;
    // A grandchild nobody holds a handle to: only the cgroup knows about it.
    let untracked = stdout(b.exec(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"])?);
    let in_host_cgroup = host.spawn(["sleep", "300"])?;
    let created = Created::by(&topology, &[&a, &b], &[&host]).with_pids([
        tracked.pid(),
        in_host_cgroup.pid(),
        untracked.trim().parse().unwrap(),
    ]);
    created.assert_all_present();

    topology.close()?;
    created.assert_all_gone();
    drop((tracked, in_host_cgroup));
    Ok(())
}

#[test]
fn drop_cleans_up_when_the_scenario_panics() {
    let (report, created) = mpsc::channel();
    let scenario = thread::spawn(move || {
        let topology = Topology::new("drop_cleans_up_on_panic").unwrap();
        let pod = topology.pod("doomed").build().unwrap();
        let host = topology.host_cgroup("bystander").unwrap();
        let server = pod.serve_http(8080).unwrap();
        report
            .send(Created::by(&topology, &[&pod], &[&host]).with_pids([server.pid()]))
            .unwrap();
        panic!("the scenario fails on purpose");
    });
    assert!(
        scenario.join().is_err(),
        "the scenario should have panicked"
    );
    let created = created
        .recv()
        .expect("the scenario reports what it created");
    created.assert_all_gone();
}

#[test]
fn names_and_addresses_are_unique_across_parallel_topologies() {
    const PARALLEL: usize = 4;
    let all_alive = Arc::new(Barrier::new(PARALLEL));
    let runs: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let all_alive = Arc::clone(&all_alive);
            thread::spawn(move || -> Result<Vec<String>> {
                // Same test name on purpose: the pid and counter must still tell them apart.
                let topology = Topology::new("same_name")?;
                let web = topology.pod("web").build()?;
                let client = topology.pod("client").build()?;
                let _server = web.serve_http(8080)?;
                all_alive.wait();
                // All four exist at once and each pair still talks to its own server.
                let reply = client.curl(&web.http_url(8080, "/"))?;
                assert!(reply.is_ok(), "{reply:?}");
                assert_eq!(
                    reply.body,
                    format!("default/web GET / from {}\n", client.address())
                );
                let names = vec![
                    topology.run_id().to_string(),
                    topology.cgroup_path().display().to_string(),
                    web.netns_name().to_owned(),
                    web.host_link().to_owned(),
                    web.address().to_string(),
                    web.host_address().to_string(),
                    client.host_link().to_owned(),
                    client.address().to_string(),
                ];
                all_alive.wait();
                topology.close()?;
                Ok(names)
            })
        })
        .collect();
    let names: Vec<String> = runs
        .into_iter()
        .flat_map(|run| run.join().expect("no panic").expect("topology works"))
        .collect();
    let distinct: HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:#?}");
    assert!(
        names
            .iter()
            .filter(|n| n.starts_with("slt"))
            .all(|link| link.len() <= 15)
    );
}

#[test]
fn pod_descriptions_are_checked_and_failed_builds_leave_nothing() -> Result<()> {
    let topology = Topology::new("pod_descriptions_are_checked")?;
    for address in [
        "192.168.1.2",
        "10.200.200.2",
        "10.200.1.0",
        "not-an-address",
    ] {
        let refused = topology.pod("a").address(address).build();
        assert!(
            matches!(refused, Err(Error::InvalidPod { .. })),
            "{address}: {refused:?}"
        );
    }
    assert!(matches!(
        topology.pod("Not_A_Label").build(),
        Err(Error::InvalidPod { .. })
    ));

    topology.pod("first").address("10.200.78.2").build()?;
    let taken = topology.pod("second").address("10.200.78.2").build();
    assert!(
        matches!(taken, Err(Error::AddressInUse { .. })),
        "{taken:?}"
    );
    let duplicate = topology.pod("first").build();
    assert!(
        matches!(duplicate, Err(Error::InvalidPod { .. })),
        "{duplicate:?}"
    );

    let run = format!("sluice-test-{}", topology.run_id());
    assert_eq!(
        netns_of_run(&run).len(),
        2,
        "first and the half-built second"
    );
    topology.close()?;
    assert_eq!(netns_of_run(&run), Vec::<String>::new());
    Ok(())
}

#[test]
fn cleanup_stale_removes_dead_runs_only() -> Result<()> {
    let root = cgroup2_root()?;
    let dead_pid = {
        let mut exited = Command::new("true").spawn().unwrap();
        let pid = exited.id();
        exited.wait().unwrap();
        pid
    };
    // A crashed run: its pid is gone, a process still sits in its pod cgroup.
    let dead = format!("sluice-test-crashed.{dead_pid}.0");
    let dead_pod_cgroup = root.join(&dead).join("pod.default.web");
    std::fs::create_dir_all(&dead_pod_cgroup).unwrap();
    let survivor = spawn_in_cgroup(&dead_pod_cgroup);
    let dead_netns = format!("{dead}.default.web");
    ip(&["netns", "add", &dead_netns]);
    // A link and guard rule of a block no live topology holds.
    ip(&[
        "link",
        "add",
        "slt255p62",
        "type",
        "veth",
        "peer",
        "name",
        "slt255p61",
    ]);
    ip(&[
        "rule",
        "add",
        "pref",
        "10201",
        "iif",
        "slt255p62",
        "unreachable",
    ]);
    // A run that is still alive (this process): left alone.
    let alive = format!("sluice-test-alive.{}.999", std::process::id());
    std::fs::create_dir(root.join(&alive)).unwrap();
    ip(&["netns", "add", &format!("{alive}.default.web")]);

    let removed = cleanup_stale();
    let alive_was_kept =
        root.join(&alive).exists() && netns_path(&format!("{alive}.default.web")).exists();
    std::fs::remove_dir(root.join(&alive)).unwrap();
    ip(&["netns", "delete", &format!("{alive}.default.web")]);
    let removed = removed?;

    assert!(alive_was_kept, "a live run was removed: {removed:#?}");
    assert!(!root.join(&dead).exists(), "{removed:#?}");
    assert!(!netns_path(&dead_netns).exists(), "{removed:#?}");
    assert!(
        !link_exists("slt255p62") && !link_exists("slt255p61"),
        "{removed:#?}"
    );
    assert!(!ip(&["rule", "show"]).contains("slt255p62"), "{removed:#?}");
    assert!(
        dies_soon(survivor),
        "pid {survivor} survived the stale cgroup's removal"
    );
    Ok(())
}

/// Names of everything a topology made, taken while it was alive.
#[derive(Debug)]
struct Created {
    netns: Vec<PathBuf>,
    links: Vec<String>,
    routes: Vec<Ipv4Addr>,
    cgroups: Vec<PathBuf>,
    log_dir: PathBuf,
    pids: Vec<u32>,
}

impl Created {
    fn by(topology: &Topology, pods: &[&Pod], hosts: &[&HostCgroup]) -> Self {
        let mut cgroups = vec![topology.cgroup_path().to_owned()];
        cgroups.extend(pods.iter().map(|p| p.cgroup_path().to_owned()));
        cgroups.extend(hosts.iter().map(|h| h.cgroup_path().to_owned()));
        Self {
            netns: pods.iter().map(|p| p.netns_path()).collect(),
            links: pods.iter().map(|p| p.host_link().to_owned()).collect(),
            routes: pods.iter().map(|p| p.address()).collect(),
            cgroups,
            log_dir: topology.log_dir().to_owned(),
            pids: Vec::new(),
        }
    }

    fn with_pids(mut self, pids: impl IntoIterator<Item = u32>) -> Self {
        self.pids.extend(pids);
        self
    }

    fn assert_all_present(&self) {
        assert!(self.netns.iter().all(|n| n.exists()), "{self:#?}");
        assert!(self.links.iter().all(|l| link_exists(l)), "{self:#?}");
        assert!(self.cgroups.iter().all(|c| c.is_dir()), "{self:#?}");
        assert!(self.log_dir.is_dir(), "{self:#?}");
        let rules = ip(&["rule", "show"]);
        assert!(
            self.links
                .iter()
                .all(|l| rules.contains(&format!("iif {l} "))),
            "{rules}"
        );
        assert!(
            self.routes
                .iter()
                .all(|r| !ip(&["route", "show", "exact", &format!("{r}/32")]).is_empty())
        );
        assert!(self.pids.iter().all(|&p| !is_gone(p)), "{self:#?}");
    }

    fn assert_all_gone(&self) {
        for netns in &self.netns {
            assert!(!netns.exists(), "{} is left", netns.display());
        }
        for link in &self.links {
            assert!(!link_exists(link), "link {link} is left");
        }
        let rules = ip(&["rule", "show"]);
        for link in &self.links {
            assert!(!rules.contains(link), "a rule on {link} is left:\n{rules}");
        }
        for address in &self.routes {
            let route = ip(&["route", "show", "exact", &format!("{address}/32")]);
            assert!(route.is_empty(), "route to {address} is left: {route}");
        }
        for cgroup in &self.cgroups {
            assert!(!cgroup.exists(), "cgroup {} is left", cgroup.display());
        }
        assert!(!self.log_dir.exists(), "{} is left", self.log_dir.display());
        for &pid in &self.pids {
            assert!(dies_soon(pid), "pid {pid} is still running");
        }
    }
}

fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn stdout(output: std::process::Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn proc_cgroup(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

fn netns_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .display()
        .to_string()
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

fn cgroup_pids(cgroup: &Path) -> Vec<u32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn netns_of_run(run: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("{run}.")))
                .collect()
        })
        .unwrap_or_default()
}

/// Gone, or a zombie waiting for a parent that no longer cares.
fn is_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(true)
}

/// SIGKILL is delivered asynchronously: give the process a moment to die.
fn dies_soon(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_gone(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A `sleep` that joined `cgroup` and was then orphaned: no handle, only the cgroup knows.
fn spawn_in_cgroup(cgroup: &Path) -> u32 {
    let script = "echo $$ > \"$1\"/cgroup.procs && exec sleep 300";
    let output = Command::new("sh")
        .args([
            "-c",
            &format!("sh -c '{script}' sh \"$0\" >/dev/null 2>&1 & echo $!"),
        ])
        .arg(cgroup)
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cgroup_pids(cgroup).contains(&pid) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never joined {}",
            cgroup.display()
        );
        thread::sleep(Duration::from_millis(10));
    }
    pid
}
