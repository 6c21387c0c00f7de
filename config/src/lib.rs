//! sluice's configuration: the user's YAML, typed and validated.
//!
//! [`load`] reads files or directories of multi-document YAML into a [`Config`]. The
//! contract with the rest of sluice:
//!
//! - A document that is not YAML, names an unknown kind, or is a non-policy resource
//!   (`Workload`, `Namespace`, `Service`, `NodeConfig`, …) with an error fails the whole
//!   load with every [`Diagnostic`] found: enrolling half the workloads would leave the
//!   others unenforced.
//! - A policy with an error is *rejected alone*: it becomes [`Policy::Rejected`], its
//!   diagnostics land in [`Config::diagnostics`], and the policy engine makes the
//!   endpoints it selects fail closed in the directions it declares. One bad regex must
//!   not take the node down, nor open it.
//! - Namespaced resources always carry their namespace after loading (`default` when
//!   absent).

mod diag;
pub mod duration;
mod load;
mod model;
pub mod types;
mod validate;
mod yaml;

pub use diag::{Diagnostic, FieldPath, Issue, PathSegment};
pub use load::{LoadError, load, load_str};
pub use model::{
    Config, DnsRejectResponse, Doc, EnforcementMode, FqdnSettings, HttpDenial, HttpTimeouts,
    NodeSettings, Policy, PolicyKind, RejectedPolicy, RejectedSubject, Source,
};
