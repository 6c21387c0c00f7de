//! The engine's background work: the expiry timer, the state writer, and the admin
//! socket's view of the cache.

use std::sync::Arc;

use sluice_dns::cache::Lookup;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{EXPIRY_TICK, PERSIST_DELAY, store};
use crate::admin::FqdnCacheEntry;
use crate::node::proxy::Shared;

/// The expiry timer and the state writer; aborted at shutdown (then [`super::FqdnEngine::save`]).
pub fn spawn_tasks(shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let expiry = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let s = Arc::clone(&shared);
                let done = tokio::task::spawn_blocking(move || s.fqdn.expire(&s)).await;
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        warn!(%error, "closing expired FQDN addresses failed; retrying")
                    }
                    Err(error) => warn!(%error, "FQDN expiry task failed"),
                }
            }
        })
    };
    let writer = tokio::spawn(async move {
        loop {
            shared.fqdn.changed.notified().await;
            tokio::time::sleep(PERSIST_DELAY).await;
            if let Some((path, lookups)) = shared.fqdn.take_dirty() {
                let _ = tokio::task::spawn_blocking(move || write_state(&path, &lookups)).await;
            }
        }
    });
    vec![expiry, writer]
}

/// The admin socket's view of the cache (`sluice fqdn cache list`).
pub struct AdminView(pub Arc<Shared>);

impl crate::admin::FqdnSource for AdminView {
    fn fqdn_cache(&self) -> Vec<FqdnCacheEntry> {
        self.0.fqdn.list(&self.0.state.load())
    }
}

pub(super) fn write_state(path: &std::path::Path, lookups: &[Lookup]) {
    match store::write(path, lookups) {
        Ok(()) => debug!(path = %path.display(), entries = lookups.len(), "FQDN cache written"),
        Err(error) => {
            warn!(%error, "writing the FQDN cache failed; a restart would forget what it learned since")
        }
    }
}
