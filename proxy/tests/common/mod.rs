//! What the node end-to-end tests share: a `sluice up` child that waits for the machine
//! to be free, `sluice observe`, waiting for a condition, and scenario directories.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// One node per machine: the scenarios of a test binary take turns.
pub static ONE_NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running `sluice up`; SIGTERM (and wait) on drop.
pub struct Node {
    pub child: Child,
    pub dir: PathBuf,
}

impl Node {
    /// Starts `sluice up` on `dir/config`; while another node holds the machine (another
    /// test binary, a benchmark), waits for it (up to five minutes) instead of failing.
    pub fn start(dir: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match Self::try_start(dir) {
                Ok(node) => return node,
                Err(e) if e.contains("another sluice node") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_secs(5));
                }
                Err(e) => panic!("sluice up ended before it was up: {e}"),
            }
        }
    }

    fn try_start(dir: &Path) -> Result<Self, String> {
        Self::spawn_up(dir, &["--config".as_ref(), dir.join("config").as_os_str()])
    }

    /// `sluice up --takeover --config <config> <extra>`: a node that takes over from the
    /// one running with `dir`'s admin socket. The new node once it says it is up, or what
    /// it printed before it exited.
    pub fn takeover(dir: &Path, config: &Path, extra: &[&str]) -> Result<Self, String> {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--takeover".as_ref(), "--config".as_ref()];
        args.push(config.as_os_str());
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        Self::spawn_up(dir, &args)
    }

    fn spawn_up(dir: &Path, args: &[&std::ffi::OsStr]) -> Result<Self, String> {
        let mut child = Command::new(BIN)
            .args(["up", "--quiet"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice up");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("node up") => break,
                Some(Ok(line)) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                _ => {
                    let _ = child.wait();
                    return Err(seen);
                }
            }
        }
        // Keep draining stderr so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            dir: dir.to_owned(),
        })
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    fn observe_output(&self, json: bool, extra: &[&str]) -> String {
        let socket = self.dir.join("admin.sock");
        let mut args = vec!["observe", "--socket", socket.to_str().unwrap()];
        if json {
            args.extend(["-o", "json"]);
        }
        args.extend(["--last", "1000"]);
        args.extend_from_slice(extra);
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "observe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sluice observe -o json --last 1000 <extra>`, one value per flow.
    pub fn observe(&self, extra: &[&str]) -> Vec<Value> {
        self.observe_output(true, extra)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `sluice observe --last 1000 <extra>` in the compact format.
    pub fn observe_compact(&self, extra: &[&str]) -> String {
        self.observe_output(false, extra)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Already reaped (it exited by itself): its pid may belong to another process.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 200 ms for up to 20 s.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A fresh `<target tmp>/<name>-<pid>/config` directory (fails unless root).
pub fn scenario_dir(name: &str) -> PathBuf {
    assert!(
        rustix::process::geteuid().is_root(),
        "the node end-to-end tests need root (netns, cgroups, BPF); CI runs them as root"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    dir
}

/// A cgroup the test creates outside the node's own, enrolled with `spec.cgroup` (as a
/// systemd unit would be); removed on drop, after the node has detached from it.
pub struct UnitCgroup {
    pub path: PathBuf,
    /// The path below the cgroup2 mount, as `spec.cgroup` names it.
    pub relative: String,
}

impl UnitCgroup {
    /// `/sluice-<tag>-unit-<pid>` under the cgroup2 mount.
    pub fn create(tag: &str) -> Self {
        let relative = format!("/sluice-{tag}-unit-{}", std::process::id());
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .find(|m| Path::new(m).join("cgroup.controllers").exists())
            .expect("a cgroup2 mount");
        let path = Path::new(root).join(relative.trim_start_matches('/'));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).unwrap();
        Self { path, relative }
    }

    /// `sh -c` that moves itself into the cgroup, then runs `shell` (in the host's
    /// network namespace); arguments added to the command are `$0`, `$1`, ….
    pub fn command(&self, shell: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!(
                "echo $$ > {}/cgroup.procs && exec {shell}",
                self.path.display()
            ),
        ]);
        cmd
    }
}

impl Drop for UnitCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A pod's `run.command` (a flow-style YAML list) for dnsmasq on `addr`, answering names
/// under `test` from its own records only: `extra` adds them (`--host-record=…`,
/// `--cname=…`, `--local-ttl=…`).
pub fn dnsmasq(addr: &str, extra: &[String]) -> String {
    let mut command: Vec<String> = [
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--pid-file=",
        "--log-facility=-",
        "--bind-interfaces",
        "--local=/test/",
    ]
    .map(str::to_owned)
    .to_vec();
    command.push(format!("--listen-address={addr}"));
    command.extend_from_slice(extra);
    serde_json::to_string(&command).unwrap()
}
