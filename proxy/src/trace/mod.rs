//! `sluice policy trace` past L3/L4: the final answer for one HTTP request or one DNS
//! query, decided offline by the node's own code.
//!
//! `sluice_identity::trace` answers for a connection (both sides' L3/L4 policy). These
//! modules take that answer and the compiled policy it came from, and run what the node
//! runs next on the same inputs: for HTTP, the HTTP engine's normalisation, its rule
//! compilation ([`crate::node::http::rules`]) and both sides' rule sets; for DNS, the DNS
//! proxy's decision ([`crate::node::dns::policy::decide`]). Nothing is re-implemented
//! here, so a trace cannot drift from what a node would do; what this code adds is the
//! explanation (which side, which policy, which rule) that the node does not need.

pub mod dns;
pub mod http;

use std::sync::Arc;

use sluice_identity::PolicyRef;
use sluice_identity::policy::L7Policy;

/// The policies that wrote a side's L7 rules, each once, in rule order.
fn rule_policies(l7: Option<&L7Policy>) -> Vec<Arc<PolicyRef>> {
    let mut out: Vec<Arc<PolicyRef>> = Vec::new();
    for rule in l7.iter().flat_map(|l7| l7.rules.iter()) {
        if !out.iter().any(|p| **p == *rule.policy) {
            out.push(rule.policy.clone());
        }
    }
    out
}
