//! The node's local admin socket: a Unix stream socket speaking line-delimited JSON.
//!
//! One request line per connection, then response lines:
//!
//! - `{"observe":{"last":N,"first":N,"follow":bool,"filters":{"whitelist":[…],"blacklist":[…]}}}`
//!   → one [`FlowsResponse`](crate::flow::FlowsResponse) line per flow
//!   (`{"flow":{…},"node_name":"…","time":"…"}`), oldest first; with `follow` the
//!   connection stays open and new flows follow, with a `{"lost_events":…}` line when
//!   the reader fell behind.
//! - `{"status":{}}` → one [`Status`] line.
//! - `{"fqdn_cache":{}}` → one `{"fqdn_cache":[FqdnCacheEntry…]}` line: what `toFQDNs`
//!   learned (`sluice fqdn cache list`).
//! - `{"handover":{"protocol":1,"pid":N,"drain_seconds":N}}` → a successor node asks to
//!   take over (`sluice up --takeover`); the connection is handed to the node, which
//!   speaks the handover protocol on it (`node::handover`).
//!
//! Any failure is a single `{"error":"…"}` line, then the server closes.
//!
//! The socket is created 0600 (in a 0700 directory when sluice creates it): flows
//! name workloads and policies, so only the node's user may read them.

mod client;
mod server;

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sluice_config::types::NodeConfigSpec;

use crate::flow::filter::FlowFilters;

pub use client::{ClientError, FlowLines, fqdn_cache, observe, status};
pub use server::{AdminError, AdminServer, FqdnSource, HandoverOffer, SocketFile, serve};

/// Where the node listens when NodeConfig does not say.
pub const DEFAULT_SOCKET: &str = "/run/sluice/admin.sock";

/// The admin socket path of a node configuration (`spec.proxy.adminSocket`).
pub fn socket_path(spec: Option<&NodeConfigSpec>) -> PathBuf {
    spec.and_then(|s| s.proxy.as_ref())
        .and_then(|p| p.admin_socket.as_deref())
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Observe(ObserveRequest),
    Status {},
    FqdnCache {},
    Handover(HandoverRequest),
}

/// One name an endpoint looked up, and the addresses its allowed answers gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FqdnCacheEntry {
    /// `namespace/name` of the workload that asked.
    pub endpoint: String,
    /// Canonical (lowercase, final dot); a CNAME chain lists every name of it.
    pub name: String,
    /// The `toFQDNs` selectors of the policy in force that match the name: what it opens.
    pub selectors: Vec<String>,
    pub ips: Vec<FqdnCacheIp>,
}

/// One learned address of an [`FqdnCacheEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FqdnCacheIp {
    pub ip: IpAddr,
    /// The address's FQDN identity now; null when it keeps its own (no selector matches
    /// any of its names, or it is an endpoint's).
    pub identity: Option<u32>,
    /// The answer's TTL, seconds.
    pub ttl: u32,
    /// When this name stops holding the address open (RFC 3339, UTC).
    pub expires_at: String,
    /// Seconds until then.
    pub expires_in: u64,
    /// `lookup` (an answer of this run) or `restored` (from the state file).
    pub source: String,
}

/// A successor's request to take the node over (see `node::handover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverRequest {
    /// The handover protocol the successor speaks.
    pub protocol: u32,
    /// The successor's process id (for the predecessor's log).
    pub pid: u32,
    /// How long the predecessor may keep serving the connections it holds after it let
    /// go of the listeners.
    pub drain_seconds: u64,
}

/// Which flows to send. With neither `last` nor `first`, every flow held is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObserveRequest {
    /// The newest N matching flows held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
    /// The oldest N matching flows held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<u64>,
    /// Keep the connection open and send matching flows as they are recorded.
    pub follow: bool,
    #[serde(skip_serializing_if = "FlowFilters::is_empty")]
    pub filters: FlowFilters,
}

/// The reply to `{"status":{}}`, like Hubble's `ServerStatusResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub num_flows: u64,
    pub max_flows: u64,
    pub seen_flows: u64,
    pub lost_events: u64,
}

/// An error line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_have_the_documented_shape() {
        let req = Request::Observe(ObserveRequest {
            last: Some(3),
            follow: true,
            ..ObserveRequest::default()
        });
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"observe":{"last":3,"follow":true}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Status {}).unwrap(),
            r#"{"status":{}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::FqdnCache {}).unwrap(),
            r#"{"fqdn_cache":{}}"#
        );
        let parsed: Request = serde_json::from_str(
            r#"{"observe":{"first":2,"filters":{"whitelist":[{"verdict":["DROPPED"]}]}}}"#,
        )
        .unwrap();
        let Request::Observe(o) = parsed else {
            panic!("not observe")
        };
        assert_eq!(o.first, Some(2));
        assert_eq!(o.filters.whitelist.len(), 1);
    }

    #[test]
    fn socket_path_comes_from_node_config() {
        assert_eq!(socket_path(None), PathBuf::from(DEFAULT_SOCKET));
        let spec = NodeConfigSpec {
            proxy: Some(sluice_config::types::ProxyPorts {
                admin_socket: Some("/tmp/x.sock".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(socket_path(Some(&spec)), PathBuf::from("/tmp/x.sock"));
    }
}
