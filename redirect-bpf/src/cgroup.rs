//! Which cgroup the programs attach to, and the guard against a second instance on it.
//!
//! Attaching to the root cgroup would steer every socket on the machine, so only a
//! strict descendant of a cgroup2 mount is accepted. aya's cgroup links detach when
//! the process exits, but a second loader can attach beside the first and both would
//! rewrite the same connects: an exclusive `flock` per cgroup path refuses that. The
//! kernel drops the lock when the process dies, so a crash never leaves it stale.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::Error;
use crate::types::CgroupId;

/// Default directory of the per-cgroup instance locks.
pub const DEFAULT_LOCK_DIR: &str = "/run/sluice";

/// A cgroup v2 directory that is safe to attach to: it exists, lies strictly below a
/// cgroup2 mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachCgroup {
    path: PathBuf,
}

impl AttachCgroup {
    /// Checks `path` against the cgroup2 mounts of this process's mount namespace.
    pub fn new(path: &Path) -> Result<Self, Error> {
        let refused = |reason: String| Error::CgroupRefused {
            path: path.to_owned(),
            reason,
        };
        let canonical = fs::canonicalize(path).map_err(|source| Error::CgroupOpen {
            path: path.to_owned(),
            source,
        })?;
        let mounts =
            cgroup2_mounts().map_err(|e| refused(format!("cannot read /proc/self/mounts: {e}")))?;
        if mounts.is_empty() {
            return Err(refused("no cgroup2 filesystem is mounted".to_owned()));
        }
        if mounts.contains(&canonical) {
            return Err(refused(
                "it is the root of the cgroup2 hierarchy".to_owned(),
            ));
        }
        if !mounts.iter().any(|m| canonical.starts_with(m)) {
            let list: Vec<String> = mounts.iter().map(|m| m.display().to_string()).collect();
            return Err(refused(format!(
                "it is not inside a cgroup2 mount ({})",
                list.join(", ")
            )));
        }
        Ok(Self { path: canonical })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn open(&self) -> Result<File, Error> {
        File::open(&self.path).map_err(|source| Error::CgroupOpen {
            path: self.path.clone(),
            source,
        })
    }
}

impl CgroupId {
    /// The id the kernel programs see for the cgroup at `path` (its inode number).
    pub fn of_path(path: &Path) -> io::Result<Self> {
        Ok(Self(fs::metadata(path)?.ino()))
    }
}

pub(crate) fn cgroup2_mounts() -> io::Result<Vec<PathBuf>> {
    let mounts = fs::read_to_string("/proc/self/mounts")?;
    Ok(mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_source, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount_path(target)))
        })
        .collect())
}

/// /proc/self/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Held for as long as the datapath is attached to a cgroup. The lock file is removed
/// on drop (while still locked); an acquirer that locked a file which was removed in
/// the meantime notices the changed inode and retries on the new file.
///
/// An `flock` belongs to the open file, not to the process: a predecessor that hands
/// its descriptor to a successor (the node's live restart) shares one lock with it,
/// which stays held until both have closed it. `released`: the other process owns the
/// lock file, so dropping only closes the descriptor.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    path: PathBuf,
    /// `None` once closed for good ([`InstanceLock::close`]).
    file: Option<File>,
    pub(crate) released: bool,
}

impl InstanceLock {
    pub(crate) fn acquire(lock_dir: &Path, cgroup: &AttachCgroup) -> Result<Self, Error> {
        let lock = lock_dir.join(lock_file_name(cgroup.path()));
        let lock_err = |source| Error::Lock {
            lock: lock.clone(),
            source,
        };
        fs::create_dir_all(lock_dir).map_err(lock_err)?;
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .map_err(lock_err)?;
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(Error::AlreadyAttached {
                        cgroup: cgroup.path().to_owned(),
                        lock,
                    });
                }
                Err(e) => return Err(lock_err(e.into())),
            }
            let locked_inode = file.metadata().map_err(lock_err)?.ino();
            match fs::metadata(&lock) {
                Ok(current) if current.ino() == locked_inode => {
                    return Ok(Self {
                        path: lock,
                        file: Some(file),
                        released: false,
                    });
                }
                // The previous holder removed it between our open and our flock.
                _ => continue,
            }
        }
    }

    /// Takes over the lock a predecessor holds, from a duplicate of its descriptor.
    /// Locking again succeeds at once only on the open file that holds the lock, and the
    /// file must still be the one at the lock's path. Starts released.
    pub(crate) fn adopt(lock_dir: &Path, cgroup: &AttachCgroup, file: File) -> Result<Self, Error> {
        let lock = lock_dir.join(lock_file_name(cgroup.path()));
        let not_held = |reason: &str| Error::Handover {
            reason: format!("instance lock {}: {reason}", lock.display()),
        };
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(not_held(
                    "the descriptor handed over is not the one holding it",
                ));
            }
            Err(e) => {
                return Err(Error::Lock {
                    lock,
                    source: e.into(),
                });
            }
        }
        let same = match (file.metadata(), fs::metadata(&lock)) {
            (Ok(held), Ok(current)) => held.ino() == current.ino() && held.dev() == current.dev(),
            _ => false,
        };
        if !same {
            return Err(not_held("the lock file was removed or replaced"));
        }
        Ok(Self {
            path: lock,
            file: Some(file),
            released: true,
        })
    }

    /// A duplicate of the locked descriptor, for a successor.
    pub(crate) fn try_clone_file(&self) -> io::Result<File> {
        match &self.file {
            Some(file) => file.try_clone(),
            None => Err(io::Error::other("the instance lock was closed")),
        }
    }

    /// Lets go of this process's hold on the lock for good: released to a successor that
    /// holds it, so that the lock is free as soon as that successor is gone, even while
    /// this process is still finishing its connections.
    pub(crate) fn close(&mut self) {
        self.released = true;
        self.file = None;
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Unlink before the lock is released (when `file` closes), never after.
        if !self.released {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// One file per cgroup path; '%' and '/' escaped so that distinct paths never share one.
fn lock_file_name(cgroup: &Path) -> String {
    let escaped = cgroup
        .to_string_lossy()
        .replace('%', "%25")
        .replace('/', "%2F");
    format!("cgroup{escaped}.lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_do_not_collide() {
        assert_ne!(
            lock_file_name(Path::new("/a/b_c")),
            lock_file_name(Path::new("/a_b/c"))
        );
        assert_ne!(
            lock_file_name(Path::new("/a/b")),
            lock_file_name(Path::new("/a%2Fb"))
        );
    }
}
