//! The node's policy snapshot and its reloads.
//!
//! Config flows one way: files → validated [`Config`] → [`CompiledPolicy`] → swapped
//! atomically. A connection reads one whole snapshot; a reload that fails keeps the
//! last good one and says why.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sluice_config::{Config, Diagnostic, LoadError, load};
use sluice_identity::{CompiledPolicy, Identity};

use super::http::respond::DeniedResponse;

/// One immutable policy generation.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub policy: Arc<CompiledPolicy>,
    /// Stamped on every verdict written to the kernel; the kernel ignores verdicts of
    /// other generations, which is how a reload invalidates them all at once.
    pub generation: u32,
    /// The HTTP engine's 403 (`NodeConfig.spec.http`), built once for this snapshot.
    pub denied: DeniedResponse,
    /// Addresses learned from DNS answers (`toFQDNs`) and their FQDN identities, which
    /// `policy` knows. They sit beside the policy's own ipcache, so that learning an
    /// address with an identity that exists swaps this map only (see `node::fqdn`).
    pub fqdn: Arc<HashMap<IpAddr, Identity>>,
}

impl Snapshot {
    /// The identity of an address: a learned FQDN identity, else the policy's ipcache
    /// (longest prefix; world when nothing claims it).
    pub fn identity_of(&self, ip: IpAddr) -> Identity {
        match self.fqdn.get(&ip) {
            Some(id) => *id,
            None => self.policy.universe().ipcache().lookup(ip).0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read the configuration: {0}")]
    Io(LoadError),
    #[error("the configuration is invalid:\n{}", lines(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("compiling policy: {0}")]
    Compile(#[from] sluice_identity::policy::CompileError),
}

fn lines(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads and compiles a configuration. Policies rejected alone are reported by the
/// caller (they fail closed, the rest applies).
pub fn compile(paths: &[PathBuf], generation: u32) -> Result<Snapshot, ReloadError> {
    let config = match load(paths) {
        Ok(c) => c,
        Err(LoadError::Invalid(d)) => return Err(ReloadError::Invalid(d)),
        Err(e) => return Err(ReloadError::Io(e)),
    };
    let policy = CompiledPolicy::compile(&config)?;
    Ok(Snapshot {
        denied: DeniedResponse::new(&config.node.http_denial),
        config: Arc::new(config),
        policy: Arc::new(policy),
        generation,
        fqdn: Arc::default(),
    })
}

/// The current snapshot, readable without locks.
#[derive(Debug)]
pub struct PolicyState {
    current: ArcSwap<Snapshot>,
}

impl PolicyState {
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
