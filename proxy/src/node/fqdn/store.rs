//! The FQDN cache on disk (`NodeConfig.spec.dns.stateFile`): what a restarted node puts
//! back before its workloads run, so that a workload that cached an answer (a JVM, nscd,
//! a process in an enrolled `spec.cgroup` that outlived the node) can still reach the
//! addresses until their TTL ends.
//!
//! JSON, one object: `{"version":1,"lookups":[{endpoint,name,ip,ttl,learned_unix_ms,
//! expires_unix_ms}…]}`. Written whole to `<file>.tmp`, synced, then renamed over the
//! file, so a crash leaves the old file or the new one, never half of one; mode 0600 (it
//! names workloads and what they talk to). A file that cannot be read is moved aside to
//! `<file>.corrupt` and the node starts empty.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_dns::cache::{Lookup, Source, UnixMillis};

/// The layout written; another number is refused (and the node starts empty).
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not an FQDN cache sluice wrote: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    lookups: Vec<StoredLookup>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredLookup {
    endpoint: String,
    name: String,
    ip: IpAddr,
    ttl: u32,
    learned_unix_ms: u64,
    expires_unix_ms: u64,
}

/// Reads the cache a previous run left. No file: nothing to restore.
pub fn read(path: &Path) -> Result<Vec<Lookup>, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != VERSION {
        return Err(corrupt(format!(
            "version {} (this sluice reads version {VERSION})",
            file.version
        )));
    }
    Ok(file
        .lookups
        .into_iter()
        .map(|l| Lookup {
            endpoint: l.endpoint,
            name: l.name,
            ip: l.ip,
            ttl: l.ttl,
            learned: UnixMillis(l.learned_unix_ms),
            expires: UnixMillis(l.expires_unix_ms),
            source: Source::Restored,
        })
        .collect())
}

/// Moves an unreadable file aside (`<file>.corrupt`), so that the next write does not
/// destroy what an operator may want to look at.
pub fn set_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let aside = with_suffix(path, ".corrupt");
    fs::rename(path, &aside).map_err(|source| StoreError::Io {
        action: "move aside",
        path: path.to_owned(),
        source,
    })?;
    Ok(aside)
}

/// Writes the cache atomically (temporary file, sync, rename). The directory is created
/// (0700) when missing: the file names workloads and what they talk to.
pub fn write(path: &Path, lookups: &[Lookup]) -> Result<(), StoreError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create directory", dir))?;
    }
    let file = StateFile {
        version: VERSION,
        lookups: lookups
            .iter()
            .map(|l| StoredLookup {
                endpoint: l.endpoint.clone(),
                name: l.name.clone(),
                ip: l.ip,
                ttl: l.ttl,
                learned_unix_ms: l.learned.0,
                expires_unix_ms: l.expires.0,
            })
            .collect(),
    };
    let text = serde_json::to_string(&file).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        reason: format!("cannot encode: {e}"),
    })?;
    let tmp = with_suffix(path, ".tmp");
    {
        // 0600: the file names workloads and what they talk to, as flows do.
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        out.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        out.sync_all().map_err(io("sync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io("replace", path))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn lookup(name: &str) -> Lookup {
        Lookup {
            endpoint: "shop/web".into(),
            name: name.into(),
            ip: "192.0.2.1".parse().unwrap(),
            ttl: 30,
            learned: UnixMillis(1_000),
            expires: UnixMillis(31_000),
            source: Source::Lookup,
        }
    }

    #[test]
    fn round_trip_restores_as_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/fqdn.json");
        write(&path, &[lookup("a.test."), lookup("b.test.")]).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].name, "a.test.");
        assert_eq!(back[0].expires, UnixMillis(31_000));
        assert!(back.iter().all(|l| l.source == Source::Restored));
        assert!(!with_suffix(&path, ".tmp").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn a_missing_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("none.json")).unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it_and_can_be_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fqdn.json");
        for bad in [
            "{\"version\":1,\"lookups\":[{\"endpoint\":",
            "{\"version\":9,\"lookups\":[]}",
            "[]",
        ] {
            fs::write(&path, bad).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{} is not an FQDN cache", path.display())),
                "{err}"
            );
        }
        let aside = set_aside(&path).unwrap();
        assert!(!path.exists() && aside.exists());
        assert!(read(&path).unwrap().is_empty());
    }
}
