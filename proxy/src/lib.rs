//! The sluice node as a library: flow records and the admin socket, shared by the
//! `sluice` binary and the integration tests.

pub mod admin;
pub mod flow;
pub mod node;
