//! The DNS proxy's answer hook: hands an allowed answer to the node's [`FqdnEngine`]
//! before the workload sees it.
//!
//! [`FqdnEngine`]: super::FqdnEngine

use std::sync::Arc;

use sluice_dns::{AnswerHook, ClientInfo, HookError, ResolvedAnswer};

use crate::node::dns::policy::query_client_identity;
use crate::node::proxy::Shared;

/// Learns the addresses of allowed answers (`toFQDNs`).
pub struct FqdnLearning {
    shared: Arc<Shared>,
}

impl FqdnLearning {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The endpoint an answer is recorded for: `namespace/name` of the workload that
    /// asked — found by its address, or for a workload in the host's netns (which asks
    /// from loopback) by the identity the redirect recorded — else the address.
    fn endpoint(&self, client: &ClientInfo) -> String {
        let snapshot = self.shared.state.load();
        let universe = snapshot.policy.universe();
        let ip = client.peer.ip();
        let found = if ip.is_loopback() {
            let id = query_client_identity(universe, client.peer, client.client_identity);
            universe.endpoints_of(id).next()
        } else {
            universe.endpoint_at(ip)
        };
        found.map_or_else(|| ip.to_string(), |e| e.display_name())
    }
}

impl AnswerHook for FqdnLearning {
    async fn on_answer(
        &self,
        client: &ClientInfo,
        answer: &ResolvedAnswer,
    ) -> Result<(), HookError> {
        let endpoint = self.endpoint(client);
        // Most answers select no `toFQDNs` name and only record the lookup: in place,
        // without the hand-over to a blocking thread and back, which cost three times the
        // recording itself (with it the hook was a fifth of the DNS proxy's CPU per query).
        if let Some(learned) = self
            .shared
            .fqdn
            .try_learn_in_place(&self.shared, &endpoint, answer)
        {
            return learned.map_err(|e| -> HookError { Box::new(e) });
        }
        // Otherwise the install may compile policy, or wait for one: a blocking thread, so
        // the runtime's workers keep relaying other queries and connections meanwhile.
        let shared = Arc::clone(&self.shared);
        let answer = answer.clone();
        tokio::task::spawn_blocking(move || shared.fqdn.learn(&shared, &endpoint, &answer))
            .await
            .map_err(|e| -> HookError { Box::new(e) })?
            .map_err(|e| -> HookError { Box::new(e) })
    }
}
