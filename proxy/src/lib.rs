//! The sluice node as a library: flow records, the admin socket and the L7 side of
//! `policy trace`, shared by the `sluice` binary and the integration tests.

pub mod admin;
pub mod flow;
pub mod node;
pub mod trace;
