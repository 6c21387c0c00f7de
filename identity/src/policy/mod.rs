//! Policy resolution with Cilium's semantics.
//!
//! The user's CNP / CCNP / KNP rules are translated into one internal rule form
//! ([`rules`]), then resolved per endpoint identity and direction into port tables keyed
//! by peer identity ([`resolve`], [`table`]). A decision is a hash lookup plus a binary
//! search over disjoint port segments: no rule is rescanned per connection.

mod resolve;
mod rules;
mod table;
mod verdict;

use std::fmt;

use serde::Serialize;
use sluice_config::PolicyKind;

pub use resolve::{
    CompileError, CompiledPolicy, DirectionPolicy, EndpointPolicy, KernelAction, KernelPolicy,
    KernelRule, Outcome, PortLookup,
};
pub(crate) use rules::fqdn_peers;
pub use table::{L7Kind, L7Policy, L7Rule, L7RuleSet, PortVerdict};
pub use verdict::{AuthMode, Decision, DecisionKind, DropReason, Verdict};

/// Which way a connection crosses the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    #[serde(rename = "INGRESS")]
    Ingress,
    #[serde(rename = "EGRESS")]
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "INGRESS",
            Self::Egress => "EGRESS",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy a decision came from, as Hubble names it (`*_allowed_by`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PolicyRef {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl PolicyRef {
    pub fn new(kind: PolicyKind, namespace: Option<&str>, name: &str) -> Self {
        Self {
            kind: kind.as_str(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}
