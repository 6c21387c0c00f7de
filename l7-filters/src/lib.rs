//! L7 rule compilation and matching for sluice: HTTP (gRPC is HTTP/2 underneath), Kafka and
//! DNS names.
//!
//! Each module turns the text of a user's rule into a compiled, checked form once, when the
//! configuration loads, and matches requests against that form with pure functions: no I/O,
//! no clock, no global state. The same compile step serves two callers: `sluice-config`, which
//! only wants the errors (to reject a policy with file, line and field), and the enforcement
//! engines, which keep the compiled rules. Using one function for both means a rule that
//! loads is a rule the engine can run.
//!
//! This crate sits below `sluice-config` in the dependency graph, so its inputs are plain
//! strings and small spec structs, never the configuration's serde types.
//!
//! Every error's `Display` is exactly the message a user sees. Where Cilium has a message for
//! the same mistake, the text is Cilium's, because users search for it.

pub mod dns;
pub mod http;
pub mod kafka;
pub mod quote;
