//! Flow records in Hubble's shape, how they print, how they filter, and the ring the
//! node keeps them in.
//!
//! The node records with [`Flow::policy_verdict`] / [`Flow::drop_event`] (L3/L4),
//! [`Flow::http_request`] / [`Flow::http_response`] or [`Flow::dns_request`] /
//! [`Flow::dns_response`] (L7) and [`FlowRing::push`]; the
//! admin socket serves the ring as [`FlowsResponse`] JSON lines; `sluice observe`
//! filters ([`filter`]) and prints them ([`printer`]).

mod build;
mod dns;
mod drop;
pub mod filter;
mod json;
pub mod printer;
mod proto;
mod record;
mod ring;
mod time;

pub use build::{HttpEvent, HttpVersion, L4Event};
pub use dns::{DNS_SOURCE_PROXY, DnsAnswerInfo, DnsQueryEvent, dns_type_name, rcode_name};
pub use drop::DropReasonDesc;
pub use json::{FlowsResponse, ResponseEvent, flow_json};
pub use proto::go_html_escape;
pub use record::*;
pub use ring::{FlowRing, RecordedFlow, Render, Subscription};
pub use time::Timestamp;

#[cfg(test)]
mod tests;
