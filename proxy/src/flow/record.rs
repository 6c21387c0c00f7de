//! The flow record: Hubble's `flow.Flow` message (cilium/cilium api/v1/flow/flow.proto)
//! as plain Rust data. Struct fields are in .proto declaration order so that serde
//! writes protojson's field order; unset fields are left out; enums are written by
//! name and 64-bit integers as strings.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::drop::DropReasonDesc;
use super::proto::{is_false, is_zero_i32, is_zero_u32, is_zero_u64, proto_enum, u64_string};
use super::time::Timestamp;

proto_enum! {
    /// `flow.Verdict`.
    pub enum FlowVerdict {
        Unknown = 0 => "VERDICT_UNKNOWN",
        Forwarded = 1 => "FORWARDED",
        Dropped = 2 => "DROPPED",
        Error = 3 => "ERROR",
        Audit = 4 => "AUDIT",
        Redirected = 5 => "REDIRECTED",
        Traced = 6 => "TRACED",
        Translated = 7 => "TRANSLATED",
    }
}

proto_enum! {
    /// `flow.FlowType`.
    pub enum FlowType {
        Unknown = 0 => "UNKNOWN_TYPE",
        L3L4 = 1 => "L3_L4",
        L7 = 2 => "L7",
        Sock = 3 => "SOCK",
    }
}

proto_enum! {
    /// `flow.AuthType`.
    pub enum AuthType {
        Disabled = 0 => "DISABLED",
        Spire = 1 => "SPIRE",
        TestAlwaysFail = 2 => "TEST_ALWAYS_FAIL",
    }
}

proto_enum! {
    /// `flow.TrafficDirection`.
    pub enum TrafficDirection {
        Unknown = 0 => "TRAFFIC_DIRECTION_UNKNOWN",
        Ingress = 1 => "INGRESS",
        Egress = 2 => "EGRESS",
    }
}

proto_enum! {
    /// `flow.IPVersion`.
    pub enum IpVersion {
        NotUsed = 0 => "IP_NOT_USED",
        V4 = 1 => "IPv4",
        V6 = 2 => "IPv6",
    }
}

proto_enum! {
    /// `flow.L7FlowType`.
    pub enum L7FlowType {
        Unknown = 0 => "UNKNOWN_L7_TYPE",
        Request = 1 => "REQUEST",
        Response = 2 => "RESPONSE",
        Sample = 3 => "SAMPLE",
    }
}

proto_enum! {
    /// `flow.LostEventSource`.
    pub enum LostEventSource {
        Unknown = 0 => "UNKNOWN_LOST_EVENT_SOURCE",
        PerfEventRingBuffer = 1 => "PERF_EVENT_RING_BUFFER",
        ObserverEventsQueue = 2 => "OBSERVER_EVENTS_QUEUE",
        HubbleRingBuffer = 3 => "HUBBLE_RING_BUFFER",
    }
}

/// Cilium monitor message types (`event_type.type`), from cilium pkg/monitor/api.
pub mod event_type {
    pub const DROP: i32 = 1;
    pub const DEBUG: i32 = 2;
    pub const CAPTURE: i32 = 3;
    pub const TRACE: i32 = 4;
    pub const POLICY_VERDICT: i32 = 5;
    pub const RECORDER: i32 = 6;
    pub const TRACE_SOCK: i32 = 7;
    pub const ACCESS_LOG: i32 = 129;
    pub const AGENT: i32 = 130;

    /// The names `hubble observe --type` accepts.
    pub const NAMES: &[(&str, i32)] = &[
        ("drop", DROP),
        ("debug", DEBUG),
        ("capture", CAPTURE),
        ("trace", TRACE),
        ("policy-verdict", POLICY_VERDICT),
        ("recorder", RECORDER),
        ("trace-sock", TRACE_SOCK),
        ("l7", ACCESS_LOG),
        ("agent", AGENT),
    ];

    /// Trace observation points (`sub_type` of trace events) and their printed names.
    pub const TRACE_POINTS: &[(i32, &str)] = &[
        (0, "to-endpoint"),
        (1, "to-proxy"),
        (2, "to-host"),
        (3, "to-stack"),
        (4, "to-overlay"),
        (5, "from-endpoint"),
        (6, "from-proxy"),
        (7, "from-host"),
        (8, "from-stack"),
        (9, "from-overlay"),
        (10, "from-network"),
        (11, "to-network"),
    ];
}

/// Which rule shape matched a policy verdict (`policy_match_type`, numbers from cilium
/// pkg/monitor/api `PolicyMatch*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PolicyMatchType {
    #[default]
    None,
    L3Only,
    L3L4,
    L4Only,
    All,
    L3Proto,
    ProtoOnly,
}

impl PolicyMatchType {
    const TABLE: [(Self, u32, &'static str); 7] = [
        (Self::None, 0, "none"),
        (Self::L3Only, 1, "L3-Only"),
        (Self::L3L4, 2, "L3-L4"),
        (Self::L4Only, 3, "L4-Only"),
        (Self::All, 4, "all"),
        (Self::L3Proto, 5, "L3-Proto"),
        (Self::ProtoOnly, 6, "Proto-Only"),
    ];

    pub fn number(self) -> u32 {
        Self::TABLE
            .iter()
            .find(|(m, ..)| *m == self)
            .map_or(0, |e| e.1)
    }

    /// The name in `policy-verdict:<match> <DIR>`; unknown numbers print as numbers.
    pub fn name_of(number: u32) -> String {
        Self::TABLE
            .iter()
            .find(|(_, n, _)| *n == number)
            .map_or_else(|| number.to_string(), |e| e.2.to_owned())
    }
}

/// One Hubble flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Flow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    #[serde(skip_serializing_if = "FlowVerdict::is_zero")]
    pub verdict: FlowVerdict,
    /// Deprecated by Hubble in favour of `drop_reason_desc`, still set by Cilium.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub drop_reason: u32,
    #[serde(skip_serializing_if = "AuthType::is_zero")]
    pub auth_type: AuthType,
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4: Option<Layer4>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Arc<Endpoint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Arc<Endpoint>>,
    #[serde(rename = "Type", skip_serializing_if = "FlowType::is_zero")]
    pub flow_type: FlowType,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7: Option<Layer7>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<CiliumEventType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_service: Option<Service>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_service: Option<Service>,
    #[serde(skip_serializing_if = "TrafficDirection::is_zero")]
    pub traffic_direction: TrafficDirection,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub policy_match_type: u32,
    #[serde(skip_serializing_if = "DropReasonDesc::is_zero")]
    pub drop_reason_desc: DropReasonDesc,
    /// A `BoolValue`: `None` (unknown) is not `Some(false)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_reply: Option<bool>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub proxy_port: u32,
    #[serde(with = "u64_string", skip_serializing_if = "is_zero_u64")]
    pub socket_cookie: u64,
    #[serde(with = "u64_string", skip_serializing_if = "is_zero_u64")]
    pub cgroup_id: u64,
    #[serde(rename = "Summary", skip_serializing_if = "String::is_empty")]
    pub summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub egress_allowed_by: Vec<Policy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress_allowed_by: Vec<Policy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub egress_denied_by: Vec<Policy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress_denied_by: Vec<Policy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_log: Vec<String>,
}

/// `flow.Endpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    #[serde(rename = "ID", skip_serializing_if = "is_zero_u32")]
    pub id: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub identity: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Sorted `source:key=value`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<Workload>,
}

/// `flow.Workload`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workload {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// `flow.IP`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ip {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination: String,
    #[serde(rename = "ipVersion", skip_serializing_if = "IpVersion::is_zero")]
    pub ip_version: IpVersion,
    #[serde(skip_serializing_if = "is_false")]
    pub encrypted: bool,
}

/// `flow.Layer4`: a oneof, written as `{"TCP":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layer4 {
    #[serde(rename = "TCP")]
    Tcp(Tcp),
    #[serde(rename = "UDP")]
    Udp(Ports),
    #[serde(rename = "ICMPv4")]
    Icmpv4(Icmp),
    #[serde(rename = "ICMPv6")]
    Icmpv6(Icmp),
    #[serde(rename = "SCTP")]
    Sctp(Ports),
}

impl Layer4 {
    /// Source and destination port for the protocols that have ports.
    pub fn ports(&self) -> Option<(u32, u32)> {
        match self {
            Self::Tcp(t) => Some((t.source_port, t.destination_port)),
            Self::Udp(p) | Self::Sctp(p) => Some((p.source_port, p.destination_port)),
            Self::Icmpv4(_) | Self::Icmpv6(_) => None,
        }
    }
}

/// `flow.TCP`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tcp {
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub source_port: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub destination_port: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<TcpFlags>,
}

/// `flow.UDP` and `flow.SCTP` (the same two fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ports {
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub source_port: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub destination_port: u32,
}

/// `flow.ICMPv4` / `flow.ICMPv6`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Icmp {
    #[serde(rename = "type", skip_serializing_if = "is_zero_u32")]
    pub icmp_type: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub code: u32,
}

/// `flow.TCPFlags`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[allow(clippy::upper_case_acronyms)]
pub struct TcpFlags {
    #[serde(rename = "FIN", skip_serializing_if = "is_false")]
    pub fin: bool,
    #[serde(rename = "SYN", skip_serializing_if = "is_false")]
    pub syn: bool,
    #[serde(rename = "RST", skip_serializing_if = "is_false")]
    pub rst: bool,
    #[serde(rename = "PSH", skip_serializing_if = "is_false")]
    pub psh: bool,
    #[serde(rename = "ACK", skip_serializing_if = "is_false")]
    pub ack: bool,
    #[serde(rename = "URG", skip_serializing_if = "is_false")]
    pub urg: bool,
    #[serde(rename = "ECE", skip_serializing_if = "is_false")]
    pub ece: bool,
    #[serde(rename = "CWR", skip_serializing_if = "is_false")]
    pub cwr: bool,
    #[serde(rename = "NS", skip_serializing_if = "is_false")]
    pub ns: bool,
}

/// `flow.Layer7`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Layer7 {
    #[serde(rename = "type", skip_serializing_if = "L7FlowType::is_zero")]
    pub l7_type: L7FlowType,
    #[serde(with = "u64_string", skip_serializing_if = "is_zero_u64")]
    pub latency_ns: u64,
    /// The `record` oneof, written as `"dns"`, `"http"` or `"kafka"`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub record: Option<L7Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum L7Record {
    #[serde(rename = "dns")]
    Dns(Dns),
    #[serde(rename = "http")]
    Http(Http),
    #[serde(rename = "kafka")]
    Kafka(Kafka),
}

impl Layer7 {
    pub fn http(&self) -> Option<&Http> {
        match &self.record {
            Some(L7Record::Http(h)) => Some(h),
            _ => None,
        }
    }

    pub fn dns(&self) -> Option<&Dns> {
        match &self.record {
            Some(L7Record::Dns(d)) => Some(d),
            _ => None,
        }
    }

    pub fn kafka(&self) -> Option<&Kafka> {
        match &self.record {
            Some(L7Record::Kafka(k)) => Some(k),
            _ => None,
        }
    }
}

/// `flow.HTTP`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Http {
    /// The response status; 0 on requests.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub code: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// `scheme://authority/path?query`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeader>,
}

/// `flow.HTTPHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpHeader {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// `flow.DNS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cnames: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub observation_source: String,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub rcode: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub qtypes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rrtypes: Vec<String>,
}

/// `flow.Kafka`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Kafka {
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub error_code: i32,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub api_version: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_key: String,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub correlation_id: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topic: String,
}

/// `flow.CiliumEventType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CiliumEventType {
    #[serde(rename = "type", skip_serializing_if = "is_zero_i32")]
    pub event_type: i32,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub sub_type: i32,
}

/// `flow.Service`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// `flow.Policy`: a policy that allowed or denied the flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(with = "u64_string", skip_serializing_if = "is_zero_u64")]
    pub revision: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// `flow.LostEvent`: flows a reader missed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LostEvent {
    #[serde(skip_serializing_if = "LostEventSource::is_zero")]
    pub source: LostEventSource,
    #[serde(with = "u64_string", skip_serializing_if = "is_zero_u64")]
    pub num_events_lost: u64,
}

impl Flow {
    pub fn event_type_number(&self) -> i32 {
        self.event_type.map_or(0, |e| e.event_type)
    }

    pub fn is_policy_verdict(&self) -> bool {
        self.event_type_number() == event_type::POLICY_VERDICT
    }

    pub fn http(&self) -> Option<&Http> {
        self.l7.as_ref().and_then(Layer7::http)
    }
}
