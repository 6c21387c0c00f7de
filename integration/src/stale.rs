//! Removing what crashed runs left behind.
//!
//! A run's netns, cgroups and scratch directory carry its pid (`sluice-test-<test>.<pid>.…`):
//! they are stale once that pid is gone. Links and forwarding rules carry their address
//! block (`slt<octet>p<slot>`): they are stale when no live topology holds the block's
//! lock. Nothing of a live run, and nothing without the prefix, is ever touched.

use std::collections::BTreeSet;
use std::path::Path;

use crate::addressing::{link_block, try_lock_block};
use crate::cgroup;
use crate::error::{Error, Result};
use crate::naming::{PREFIX, owner_pid};
use crate::net;

/// Removes leftovers of earlier runs whose process is gone; returns what was removed.
/// Safe to call while other tests run: their pids are alive and their blocks locked.
pub fn cleanup_stale() -> Result<Vec<String>> {
    crate::require_root()?;
    let mut removed = Vec::new();

    let root = cgroup::cgroup2_root()?;
    for dir in cgroup::children(&root)? {
        if is_stale(&file_name(&dir)) {
            cgroup::kill_and_remove(&root, &dir)?;
            removed.push(format!("cgroup {}", dir.display()));
        }
    }

    for name in net::list_netns() {
        if is_stale(&name) {
            net::delete_netns(&name)?;
            removed.push(format!("netns {name}"));
        }
    }

    let scratch_root = std::env::temp_dir();
    for dir in std::fs::read_dir(&scratch_root)
        .map_err(|e| Error::io("list", &scratch_root, e))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
    {
        if is_stale(&file_name(&dir)) {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
            removed.push(format!("scratch dir {}", dir.display()));
        }
    }

    let blocks: BTreeSet<u8> = net::list_harness_links()
        .iter()
        .chain(net::guard_rules()?.iter().map(|(_, iif)| iif))
        .filter_map(|name| link_block(name))
        .collect();
    for octet in blocks {
        // Held only for the sweep: a topology claiming the block meanwhile takes the next.
        if let Some(_lock) = try_lock_block(octet)? {
            removed.extend(sweep_block(octet)?);
        }
    }
    Ok(removed)
}

/// Removes links and forwarding rules of block `octet`; the caller holds its lock.
pub(crate) fn sweep_block(octet: u8) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (pref, iif) in net::guard_rules()? {
        if link_block(&iif) == Some(octet) {
            net::ip(&["rule", "delete", "pref", &pref.to_string(), "iif", &iif])?;
            removed.push(format!("rule {pref} iif {iif}"));
        }
    }
    for link in net::list_harness_links() {
        if link_block(&link) == Some(octet) {
            net::delete_link(&link)?;
            removed.push(format!("link {link}"));
        }
    }
    Ok(removed)
}

fn is_stale(name: &str) -> bool {
    name.starts_with(PREFIX)
        && owner_pid(name).is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
