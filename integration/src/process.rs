//! Running programs inside a pod (its cgroup, then its netns) or inside a host cgroup.
//!
//! Order matters (KERNEL.md): sockets keep the cgroup they were created in, and
//! `ip netns exec` remounts /sys, which hides the cgroup tree. So the launcher is a tiny
//! `sh` that writes its own pid into `cgroup.procs` first, then `exec`s
//! `ip netns exec <netns> <program>` (which `exec`s the program without forking): the
//! pid the caller sees is the program's, and every process it forks stays in the cgroup.
//! A shell instead of a `pre_exec` hook keeps the crate free of `unsafe`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long [`crate::Pod::exec`] lets a command run before killing it, so that a hung
/// client fails the test instead of hanging CI.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server may take to start listening.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the launcher may take to join the cgroup and enter the netns.
const PLACE_TIMEOUT: Duration = Duration::from_secs(10);

const POLL: Duration = Duration::from_millis(10);

/// Exit status the launcher uses when it cannot join the cgroup.
const JOIN_FAILED: i32 = 125;

/// `$1` = cgroup.procs, `$2` = netns, then the program and its arguments.
const POD_LAUNCHER: &str = r#"echo $$ > "$1" || { echo "sluice-integration: cannot join cgroup $1" >&2; exit 125; }
ns=$2; shift 2; exec ip netns exec "$ns" "$@""#;

/// `$1` = cgroup.procs, then the program and its arguments.
const HOST_LAUNCHER: &str = r#"echo $$ > "$1" || { echo "sluice-integration: cannot join cgroup $1" >&2; exit 125; }
shift; exec "$@""#;

/// Where the logs of spawned processes go: the topology's scratch directory.
#[derive(Debug)]
pub(crate) struct LogDir {
    dir: PathBuf,
    next: AtomicU32,
}

impl LogDir {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            next: AtomicU32::new(0),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn create(&self, label: &str, program: &OsStr) -> Result<(PathBuf, File)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let program = Path::new(program)
            .file_name()
            .map_or_else(|| "process".into(), |p| p.to_string_lossy().into_owned());
        let path = self
            .dir
            .join(format!("{n:03}-{}-{program}.log", label.replace('/', ".")));
        let file = File::create(&path).map_err(|e| Error::io("create log", &path, e))?;
        Ok((path, file))
    }
}

/// Launches programs in one place: a cgroup, and optionally a netns.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    label: String,
    cgroup_procs: PathBuf,
    netns: Option<String>,
    logs: Arc<LogDir>,
}

impl Runner {
    pub(crate) fn new(
        label: String,
        cgroup: &Path,
        netns: Option<String>,
        logs: Arc<LogDir>,
    ) -> Self {
        Self {
            label,
            cgroup_procs: cgroup.join("cgroup.procs"),
            netns,
            logs,
        }
    }

    /// A `Command` that runs `program` here; add arguments and stdio as usual.
    pub(crate) fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c");
        match &self.netns {
            Some(netns) => cmd
                .arg(POD_LAUNCHER)
                .arg("sluice-pod")
                .arg(&self.cgroup_procs)
                .arg(netns),
            None => cmd
                .arg(HOST_LAUNCHER)
                .arg("sluice-host")
                .arg(&self.cgroup_procs),
        };
        cmd.arg(program).stdin(Stdio::null());
        cmd
    }

    /// Runs `argv` to completion (at most `timeout`) and collects its output.
    pub(crate) fn exec<I, S>(&self, argv: I, timeout: Duration) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (program, args) = split_argv(argv)?;
        let mut cmd = self.command(&program);
        cmd.args(&args);
        let description = self.describe(&program, &args);
        let output = output_within(cmd, &description, timeout)?;
        if output.status.code() == Some(JOIN_FAILED) {
            return Err(Error::command(
                description,
                Some(output.status),
                &output.stderr,
            ));
        }
        Ok(output)
    }

    /// Starts `argv` in the background, stdout and stderr into a log file.
    pub(crate) fn spawn<I, S>(&self, argv: I) -> Result<Process>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (program, args) = split_argv(argv)?;
        let (log, file) = self.logs.create(&self.label, &program)?;
        let stderr = file
            .try_clone()
            .map_err(|e| Error::io("duplicate", &log, e))?;
        let description = self.describe(&program, &args);
        let child = self
            .command(&program)
            .args(&args)
            .stdout(file)
            .stderr(stderr)
            .spawn()
            .map_err(|e| Error::Command {
                command: description.clone(),
                status: "did not start".to_owned(),
                stderr: e.to_string(),
            })?;
        let mut process = Process {
            child,
            description,
            log,
        };
        self.wait_placed(&mut process)?;
        Ok(process)
    }

    /// Waits until the launcher has joined the cgroup and (for a pod) entered the netns,
    /// so that the caller never sees the process half-way.
    fn wait_placed(&self, process: &mut Process) -> Result<()> {
        let pid = process.pid();
        let target_netns = match &self.netns {
            Some(name) => Some(inode(&crate::net::netns_path(name))?),
            None => None,
        };
        let placed = || {
            let in_cgroup = std::fs::read_to_string(&self.cgroup_procs)
                .is_ok_and(|procs| procs.lines().any(|l| l.trim() == pid.to_string()));
            let in_netns = target_netns.is_none_or(|target| {
                inode(Path::new(&format!("/proc/{pid}/ns/net"))).is_ok_and(|ino| ino == target)
            });
            in_cgroup && in_netns
        };
        let deadline = Instant::now() + PLACE_TIMEOUT;
        while !placed() {
            if !process.is_running() {
                // Done already (or failed to join: its log says why); nothing to place.
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("`{}` joining its cgroup and netns", process.description),
                    timeout: PLACE_TIMEOUT,
                    detail: format!("; its log:\n{}", process.log()),
                });
            }
            thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn describe(&self, program: &OsStr, args: &[OsString]) -> String {
        let mut line = format!("[{}] {}", self.label, program.to_string_lossy());
        for arg in args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }
}

/// Inode of `path` (following symlinks such as `/proc/<pid>/ns/net`).
fn inode(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| Error::io("stat", path, e))
}

fn split_argv<I, S>(argv: I) -> Result<(OsString, Vec<OsString>)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut argv = argv.into_iter().map(|a| a.as_ref().to_owned());
    let program = argv.next().ok_or_else(|| Error::Command {
        command: String::new(),
        status: "did not start".to_owned(),
        stderr: "empty argv: give at least the program".to_owned(),
    })?;
    Ok((program, argv.collect()))
}

/// `Command::output`, but killed after `timeout`.
fn output_within(mut cmd: Command, description: &str, timeout: Duration) -> Result<Output> {
    let start_error = |e: std::io::Error| Error::Command {
        command: description.to_owned(),
        status: "did not start".to_owned(),
        stderr: e.to_string(),
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(start_error)?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = wait_until(&mut child, deadline).map_err(start_error)?;
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Timeout {
            what: format!("`{description}` exiting"),
            timeout,
            detail: String::new(),
        });
    };
    // A background grandchild may keep a pipe open; do not wait for it past the deadline.
    let remaining = || deadline.saturating_duration_since(Instant::now()) + POLL;
    let stdout = stdout.recv_timeout(remaining()).unwrap_or_default();
    let stderr = stderr.recv_timeout(remaining()).unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// A background process in a pod or host cgroup. Dropping it kills it (SIGKILL) and
/// reaps it; dropping the topology kills anything left in its cgroups anyway.
#[derive(Debug)]
#[must_use = "dropping a Process kills it"]
pub struct Process {
    child: Child,
    description: String,
    log: PathBuf,
}

impl Process {
    /// Its pid (the program's own: the launcher `exec`s into it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        if self.is_running() {
            self.child
                .kill()
                .map_err(|e| Error::io("kill", format!("/proc/{}", self.pid()), e))?;
        }
        self.child
            .wait()
            .map(drop)
            .map_err(|e| Error::io("wait for", format!("/proc/{}", self.pid()), e))
    }

    /// What it wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits until a TCP socket of its netns listens on `address:port` (or on
    /// 0.0.0.0:`port`). Reads `/proc/<pid>/net/tcp` rather than connecting, so readiness
    /// does not depend on whatever policy the test is about to install.
    pub fn wait_listening(
        &mut self,
        address: Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<()> {
        let table = PathBuf::from(format!("/proc/{}/net/tcp", self.pid()));
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                return Err(Error::Command {
                    command: self.description.clone(),
                    status: "exited before listening".to_owned(),
                    stderr: self.log(),
                });
            }
            let text = std::fs::read_to_string(&table).unwrap_or_default();
            let listening = listening_sockets(&text)
                .any(|s| s.port() == port && (*s.ip() == address || s.ip().is_unspecified()));
            if listening {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("`{}` listening on {address}:{port}", self.description),
                    timeout,
                    detail: format!("; its log:\n{}", self.log()),
                });
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.log();
            if !log.is_empty() {
                eprintln!("--- log of `{}` ---\n{}", self.description, tail(&log, 40));
            }
        }
        if let Err(e) = self.kill() {
            eprintln!("sluice-integration: {e}");
        }
    }
}

fn tail(text: &str, lines: usize) -> &str {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let start = body
        .rmatch_indices('\n')
        .nth(lines.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    &text[start..]
}

/// Sockets in state LISTEN from a `/proc/net/tcp` table.
fn listening_sockets(table: &str) -> impl Iterator<Item = SocketAddrV4> + '_ {
    const LISTEN: &str = "0A";
    table.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        if state != LISTEN {
            return None;
        }
        let (ip, port) = local.split_once(':')?;
        // The kernel prints the network-order address as a native-endian u32.
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_listeners_are_found() {
        // Captured from a pod running an HTTP server on 10.200.250.106:8080.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 6AFAC80A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 56325 1 0 100 0 0 10 0\n\
           1: 6AFAC80A:1F90 02FAC80A:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 56326 1 0 100 0 0 10 0\n";
        let found: Vec<_> = listening_sockets(table).collect();
        assert_eq!(
            found,
            [SocketAddrV4::new(Ipv4Addr::new(10, 200, 250, 106), 8080)]
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 1), "c\n");
        assert_eq!(tail("a\nb\nc", 1), "c");
        assert_eq!(tail("a\nb", 5), "a\nb");
    }
}
