//! Identities and policy for sluice: labels, selectors, numeric identities, the
//! ipcache, and Cilium-compatible policy resolution into per-endpoint tables.

pub mod allocator;
pub mod fqdn;
pub mod identity;
pub mod ipcache;
pub mod labels;
pub mod policy;
pub mod ports;
pub mod selector;
pub mod trace;
pub mod universe;

pub use identity::{Entity, Identity};
pub use labels::{Label, LabelSet};
pub use policy::{CompiledPolicy, Decision, Direction, DropReason, PolicyRef, Verdict};
pub use ports::Protocol;
