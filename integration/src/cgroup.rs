//! cgroup2 directories: create, identify, empty and remove.
//!
//! The harness only ever creates directories under its own `sluice-test-<run>` parent
//! below the cgroup2 root, and only ever kills processes and removes directories below
//! such a parent: the root cgroup is never written to.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::error::{Error, Result};
use crate::naming::PREFIX;

/// Where cgroup2 is mounted on a hybrid machine (v1 controllers at /sys/fs/cgroup/*).
const HYBRID_ROOT: &str = "/sys/fs/cgroup/unified";
/// Where cgroup2 is mounted on a unified machine.
const UNIFIED_ROOT: &str = "/sys/fs/cgroup";

/// How long a killed cgroup may take to empty before teardown reports it.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// The cgroup2 mount point: hybrid first, then unified.
pub fn cgroup2_root() -> Result<PathBuf> {
    [HYBRID_ROOT, UNIFIED_ROOT]
        .iter()
        .map(Path::new)
        // Only a cgroup2 root has cgroup.controllers; the hybrid tmpfs at /sys/fs/cgroup has not.
        .find(|root| root.join("cgroup.controllers").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::NoCgroup2 {
            looked_at: format!("{HYBRID_ROOT}, {UNIFIED_ROOT}"),
        })
}

/// Creates `path`; it must not exist yet (names are unique per run, so an existing one is
/// a leftover or a collision worth hearing about).
pub(crate) fn create(path: &Path) -> Result<()> {
    fs::create_dir(path).map_err(|e| Error::io("create cgroup", path, e))
}

/// The cgroup id: the inode number of its directory, which is what
/// `bpf_get_current_cgroup_id()` returns for processes inside it.
pub(crate) fn id(path: &Path) -> Result<u64> {
    fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| Error::io("stat cgroup", path, e))
}

/// The path of `path` as `/proc/<pid>/cgroup` prints it (`0::<this>`).
pub(crate) fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).map_or_else(
        |_| path.display().to_string(),
        |p| format!("/{}", p.display()),
    )
}

/// Kills every process in `path` and below, waits until each cgroup is empty, removes
/// them bottom up. Refuses anything outside a `sluice-test-*` directory of `root`.
pub(crate) fn kill_and_remove(root: &Path, path: &Path) -> Result<()> {
    ensure_harness_cgroup(root, path)?;
    if !path.exists() {
        return Ok(());
    }
    kill_all(path)?;
    for child in children(path)? {
        kill_and_remove(root, &child)?;
    }
    remove_when_empty(path)
}

/// The last line of defence for the safety rules: whatever the caller computed, the
/// harness kills and removes only below `<root>/sluice-test-*`.
fn ensure_harness_cgroup(root: &Path, path: &Path) -> Result<()> {
    let first = path
        .strip_prefix(root)
        .ok()
        .and_then(|rel| rel.components().next())
        .and_then(|c| c.as_os_str().to_str());
    match first {
        Some(name)
            if name.starts_with(PREFIX) && !path.components().any(|c| c.as_os_str() == "..") =>
        {
            Ok(())
        }
        _ => Err(Error::io(
            "refuse to touch cgroup (not below a sluice-test-* cgroup)",
            path,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        )),
    }
}

fn remove_when_empty(path: &Path) -> Result<()> {
    let deadline = Instant::now() + EMPTY_TIMEOUT;
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // EBUSY while killed processes are still exiting.
            Err(_) if Instant::now() < deadline => {
                if !has_cgroup_kill(path) {
                    // Without cgroup.kill a process may have forked between read and kill.
                    kill_all(path)?;
                }
                thread::sleep(POLL);
            }
            Err(e) => return Err(Error::io("remove cgroup", path, e)),
        }
    }
}

fn has_cgroup_kill(path: &Path) -> bool {
    path.join("cgroup.kill").exists()
}

/// cgroup.kill (Linux 5.14+) kills the whole subtree atomically, forks included; older
/// kernels get SIGKILL for each pid listed in cgroup.procs.
fn kill_all(path: &Path) -> Result<()> {
    let kill_file = path.join("cgroup.kill");
    if kill_file.exists() {
        return fs::write(&kill_file, "1").map_err(|e| Error::io("write", kill_file, e));
    }
    for pid in pids(path)? {
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            // ESRCH: it exited on its own; nothing else can go wrong for root.
            let _ = kill_process(pid, Signal::KILL);
        }
    }
    Ok(())
}

/// Pids in `path` (not its children).
pub(crate) fn pids(path: &Path) -> Result<Vec<u32>> {
    let procs = path.join("cgroup.procs");
    let text = fs::read_to_string(&procs).map_err(|e| Error::io("read", &procs, e))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Child cgroup directories of `path`.
pub(crate) fn children(path: &Path) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(path).map_err(|e| Error::io("list", path, e))?;
    Ok(entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harness_cgroups_may_be_killed() {
        let root = Path::new("/sys/fs/cgroup/unified");
        assert!(ensure_harness_cgroup(root, &root.join("sluice-test-a.1.0")).is_ok());
        assert!(
            ensure_harness_cgroup(root, &root.join("sluice-test-a.1.0/pod.default.web")).is_ok()
        );
        for bad in ["", "system.slice", "sluice-test-a.1.0/../system.slice"] {
            assert!(
                ensure_harness_cgroup(root, &root.join(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(ensure_harness_cgroup(root, Path::new("/sys/fs/cgroup/sluice-test-a")).is_err());
    }
}
