//! The line `hubble observe -o json` (alias `jsonpb`) prints, which is also what the
//! admin socket sends: a `GetFlowsResponse`,
//! `{"flow":{…},"node_name":"…","time":"…"}`, or `{"lost_events":{…},…}` when a
//! follower fell behind.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::proto::go_html_escape;
use super::record::{Flow, LostEvent, LostEventSource};
use super::time::Timestamp;

/// The `response_types` oneof of `observer.GetFlowsResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResponseEvent {
    #[serde(rename = "flow")]
    Flow(Arc<Flow>),
    #[serde(rename = "lost_events")]
    LostEvents(LostEvent),
}

/// `observer.GetFlowsResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowsResponse {
    #[serde(flatten)]
    pub event: ResponseEvent,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
}

impl FlowsResponse {
    pub fn flow(flow: Arc<Flow>) -> Self {
        Self {
            node_name: flow.node_name.clone(),
            time: flow.time,
            event: ResponseEvent::Flow(flow),
        }
    }

    /// Flows a follower did not receive because it fell behind the ring.
    pub fn lost(n: u64, node_name: &str, time: Timestamp) -> Self {
        Self {
            event: ResponseEvent::LostEvents(LostEvent {
                source: LostEventSource::HubbleRingBuffer,
                num_events_lost: n,
            }),
            node_name: node_name.to_owned(),
            time: Some(time),
        }
    }

    /// One compact JSON line (no newline), byte for byte as Hubble prints it.
    pub fn to_json_line(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        go_html_escape(serde_json::to_string(self).unwrap_or_default())
    }

    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// The flow alone, as `hubble observe -o json` printed it before `jsonpb` became the
/// default (kept for programs that want the bare object).
pub fn flow_json(flow: &Flow) -> String {
    go_html_escape(serde_json::to_string(flow).unwrap_or_default())
}
