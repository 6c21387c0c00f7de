//! Kernel test helpers: a private cgroup tree per test, clients run inside it, and a
//! loaded datapath. Everything is removed on drop, also when the test panics.
//!
//! These tests need root and a kernel that accepts the programs. They never skip: when
//! either is missing they fail and say so.
// Helpers fail the test by panicking, like the tests themselves; not every test file
// uses every helper.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sluice_bpf::{CgroupId, Datapath, LoadOptions, RedirectPorts, WorkloadEntry, WorkloadFlags};
use sluice_identity::Identity;

pub const CGROUP2_ROOT: &str = "/sys/fs/cgroup/unified";
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Fails the test (never skips) when not root.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "kernel tests must run as root (they load BPF programs and create cgroups); \
         run `sudo cargo test -p sluice-bpf` — they are never skipped"
    );
}

/// A cgroup directory this test created; removed on drop after its processes are
/// killed.
pub struct TestCgroup {
    pub path: PathBuf,
    children: Vec<PathBuf>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestCgroup {
    /// `/sys/fs/cgroup/unified/sluice-test-<pid>-<n>`.
    pub fn new() -> Self {
        require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(CGROUP2_ROOT).join(format!("sluice-test-{}-{n}", std::process::id()));
        fs::create_dir(&path).unwrap_or_else(|e| {
            panic!(
                "cannot create test cgroup {}: {e} (is cgroup2 mounted at {CGROUP2_ROOT}?)",
                path.display()
            )
        });
        Self {
            path,
            children: Vec::new(),
        }
    }

    /// A child cgroup (removed with this one).
    pub fn child(&mut self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        self.children.push(path.clone());
        path
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for dir in self
            .children
            .iter()
            .rev()
            .chain(std::iter::once(&self.path))
        {
            kill_all_in(dir);
        }
        for dir in self
            .children
            .iter()
            .rev()
            .chain(std::iter::once(&self.path))
        {
            // A killed process leaves the cgroup asynchronously: retry a little.
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::remove_dir(dir).is_err() && Instant::now() < deadline {
                kill_all_in(dir);
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn kill_all_in(dir: &Path) {
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// `program args...` started inside `cgroup`: the shell moves itself there and execs,
/// so every socket the program opens belongs to that cgroup.
pub fn command_in(cgroup: &Path, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > '{}/cgroup.procs' && exec \"$@\"",
            cgroup.display()
        ))
        .arg("sh")
        .arg(program)
        .args(args);
    cmd
}

/// Runs a python3 snippet inside `cgroup` and waits for it (with a timeout).
pub fn python_in(cgroup: &Path, script: &str) -> Output {
    let child = command_in(cgroup, "python3", &["-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 (installed by scripts/deps)");
    wait_with_timeout(child)
}

pub fn spawn_python_in(cgroup: &Path, script: &str) -> Child {
    command_in(cgroup, "python3", &["-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 (installed by scripts/deps)")
}

pub fn wait_with_timeout(mut child: Child) -> Output {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if child.try_wait().expect("wait for client").is_some() {
            return child.wait_with_output().expect("client output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("client output");
            panic!(
                "client timed out; stdout: {} stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Reads the first line a still-running child printed.
pub fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read child line");
    line.trim().to_owned()
}

/// A TCP client in python: connects to `dst`, sends "hello", prints the reply, or
/// prints the errno name if connect fails.
pub fn tcp_client_script(dst: SocketAddr) -> String {
    format!(
        "import socket, errno\n\
         s = socket.socket()\n\
         s.settimeout(5)\n\
         try:\n    s.connect(('{}', {}))\n\
         except OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno)); raise SystemExit(0)\n\
         s.sendall(b'hello')\n\
         print(s.recv(100).decode())\n",
        dst.ip(),
        dst.port()
    )
}

/// A listener on 127.0.0.1 answering every connection with `reply`, in a thread.
/// Returns its address.
pub fn answering_listener(reply: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind listener");
    let addr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(stream, reply);
        }
    });
    addr
}

pub fn answer(mut stream: TcpStream, reply: &str) {
    use std::io::{Read, Write};
    let mut buf = [0; 16];
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.read(&mut buf);
    let _ = stream.write_all(reply.as_bytes());
}

/// Accepts one connection within the timeout.
pub fn accept_one(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                return (stream, peer);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection reached the proxy listener"
                );
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

pub const CLIENT_IDENTITY: Identity = Identity(1000);
pub const SERVER_IDENTITY: Identity = Identity(2000);

/// A datapath attached to a fresh test cgroup, with one enrolled child cgroup
/// ("client") that redirects to 127.0.0.1 (host-netns workload, loopback included),
/// and a proxy listener.
pub struct Node {
    pub datapath: Datapath,
    pub client: PathBuf,
    pub client_id: CgroupId,
    pub proxy: TcpListener,
    // Last: the datapath detaches before its cgroup is removed.
    pub cgroup: TestCgroup,
}

impl Node {
    pub fn new(flags: WorkloadFlags) -> Self {
        let mut cgroup = TestCgroup::new();
        let client = cgroup.child("client");
        let client_id = CgroupId::of_path(&client).expect("cgroup id");
        let mut datapath = Datapath::load(&LoadOptions::new(&cgroup.path))
            .unwrap_or_else(|e| panic!("loading the datapath failed: {e}"));
        datapath
            .workloads()
            .insert(
                client_id,
                WorkloadEntry {
                    identity: CLIENT_IDENTITY,
                    flags: flags | WorkloadFlags::LOOPBACK,
                    proxy_v4: Some(Ipv4Addr::LOCALHOST),
                    proxy_v6: Some(std::net::Ipv6Addr::LOCALHOST),
                    // The proxy's connections to the workload come from here too.
                    proxy_source_v4: Some(Ipv4Addr::LOCALHOST),
                    proxy_source_v6: Some(std::net::Ipv6Addr::LOCALHOST),
                },
            )
            .expect("enroll client cgroup");
        let proxy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind proxy");
        let proxy_port = proxy.local_addr().expect("proxy addr").port();
        datapath
            .set_redirect_ports(RedirectPorts {
                proxy: proxy_port,
                dns_proxy: 0,
            })
            .expect("set proxy port");
        datapath
            .ipcache()
            .insert("127.0.0.1/32".parse().expect("net"), SERVER_IDENTITY)
            .expect("ipcache");
        Self {
            datapath,
            client,
            client_id,
            proxy,
            cgroup,
        }
    }
}
