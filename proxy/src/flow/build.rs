//! Building flows from what the node knows: identities, addresses, the policy
//! decision. Two shapes: an L3/L4 policy verdict (and the drop event Cilium emits
//! beside a denied one), and an HTTP request/response pair for the L7 proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sluice_identity::policy::{AuthMode, Decision};
use sluice_identity::{Direction, DropReason, Identity, LabelSet, PolicyRef, Protocol, Verdict};

use super::drop::DropReasonDesc;
use super::record::{
    AuthType, CiliumEventType, Endpoint, Flow, FlowType, FlowVerdict, Http, HttpHeader, Icmp, Ip,
    IpVersion, L7FlowType, L7Record, Layer4, Layer7, Policy, PolicyMatchType, Ports, Tcp, TcpFlags,
    TrafficDirection, Workload, event_type,
};
use super::time::Timestamp;

impl From<Direction> for TrafficDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Ingress => Self::Ingress,
            Direction::Egress => Self::Egress,
        }
    }
}

impl From<AuthMode> for AuthType {
    fn from(m: AuthMode) -> Self {
        match m {
            AuthMode::Disabled => Self::Disabled,
            AuthMode::Required => Self::Spire,
            AuthMode::TestAlwaysFail => Self::TestAlwaysFail,
        }
    }
}

impl FlowVerdict {
    /// The flow verdict of a policy decision and the drop reason that goes with it.
    /// An allowed connection that goes through the L7 proxy is `REDIRECTED`.
    pub fn from_decision(decision: &Decision, redirected: bool) -> (Self, Option<DropReason>) {
        match decision.verdict {
            Verdict::Allowed if redirected => (Self::Redirected, None),
            Verdict::Allowed => (Self::Forwarded, None),
            Verdict::Denied => (Self::Dropped, decision.drop_reason),
            Verdict::Audit => (Self::Audit, None),
        }
    }
}

impl From<&PolicyRef> for Policy {
    /// Cilium reports a policy with the labels its rules carry (spec §2).
    fn from(p: &PolicyRef) -> Self {
        let mut labels = vec![
            format!("k8s:io.cilium.k8s.policy.derived-from={}", p.kind),
            format!("k8s:io.cilium.k8s.policy.name={}", p.name),
        ];
        if let Some(ns) = &p.namespace {
            labels.push(format!("k8s:io.cilium.k8s.policy.namespace={ns}"));
        }
        labels.sort();
        Self {
            name: p.name.clone(),
            namespace: p.namespace.clone().unwrap_or_default(),
            labels,
            revision: 0,
            kind: p.kind.to_owned(),
        }
    }
}

impl Endpoint {
    /// An endpoint known only by its identity; reserved identities carry their
    /// `reserved:` label as Cilium's do.
    pub fn from_identity(identity: Identity) -> Self {
        Self {
            identity: identity.0,
            labels: identity
                .reserved_name()
                .map(|n| vec![format!("reserved:{n}")])
                .unwrap_or_default(),
            ..Self::default()
        }
    }

    /// A workload (pod) endpoint.
    pub fn workload(
        identity: Identity,
        cluster_name: &str,
        namespace: &str,
        pod_name: &str,
        labels: &LabelSet,
    ) -> Self {
        Self {
            identity: identity.0,
            cluster_name: cluster_name.to_owned(),
            namespace: namespace.to_owned(),
            labels: labels.to_strings(),
            pod_name: pod_name.to_owned(),
            ..Self::default()
        }
    }

    /// Sets the owning workload (`Deployment` name, …) when known.
    pub fn with_workload(mut self, name: &str, kind: &str) -> Self {
        self.workloads.push(Workload {
            name: name.to_owned(),
            kind: kind.to_owned(),
        });
        self
    }

    /// Sets the numeric endpoint ID.
    pub fn with_id(mut self, id: u32) -> Self {
        self.id = id;
        self
    }
}

impl Layer4 {
    /// The L4 header of a new connection: TCP carries SYN (sluice decides at
    /// connect/accept time, which is when Cilium's policy verdict sees the SYN); ICMP
    /// is an echo request with the "ports" unused.
    pub fn connection(protocol: Protocol, source_port: u16, destination_port: u16) -> Self {
        let ports = Ports {
            source_port: u32::from(source_port),
            destination_port: u32::from(destination_port),
        };
        match protocol {
            Protocol::Tcp => Self::Tcp(Tcp {
                source_port: ports.source_port,
                destination_port: ports.destination_port,
                flags: Some(TcpFlags {
                    syn: true,
                    ..TcpFlags::default()
                }),
            }),
            Protocol::Udp => Self::Udp(ports),
            Protocol::Sctp => Self::Sctp(ports),
            Protocol::Icmp => Self::Icmpv4(Icmp {
                icmp_type: 8,
                code: 0,
            }),
            Protocol::Icmpv6 => Self::Icmpv6(Icmp {
                icmp_type: 128,
                code: 0,
            }),
        }
    }

    /// A TCP stream past its handshake (L7 flows), without flags.
    pub fn tcp(source_port: u16, destination_port: u16) -> Self {
        Self::Tcp(Tcp {
            source_port: u32::from(source_port),
            destination_port: u32::from(destination_port),
            flags: None,
        })
    }

    /// Hubble's summary for a packet of this kind.
    fn summary(&self) -> String {
        match self {
            Self::Tcp(t) => match &t.flags {
                Some(f) => format!("TCP Flags: {}", tcp_flag_names(f)),
                None => "TCP".to_owned(),
            },
            Self::Udp(_) => "UDP".to_owned(),
            Self::Sctp(_) => "SCTP".to_owned(),
            Self::Icmpv4(i) if i.icmp_type == 8 => "ICMPv4 EchoRequest".to_owned(),
            Self::Icmpv6(i) if i.icmp_type == 128 => "ICMPv6 EchoRequest".to_owned(),
            Self::Icmpv4(i) => format!("ICMPv4 {}", i.icmp_type),
            Self::Icmpv6(i) => format!("ICMPv6 {}", i.icmp_type),
        }
    }

    fn swapped(&self) -> Self {
        match self {
            Self::Tcp(t) => Self::Tcp(Tcp {
                source_port: t.destination_port,
                destination_port: t.source_port,
                flags: t.flags.clone(),
            }),
            Self::Udp(p) => Self::Udp(p.swapped()),
            Self::Sctp(p) => Self::Sctp(p.swapped()),
            other => other.clone(),
        }
    }
}

impl Ports {
    fn swapped(&self) -> Self {
        Self {
            source_port: self.destination_port,
            destination_port: self.source_port,
        }
    }
}

fn tcp_flag_names(f: &TcpFlags) -> String {
    let names = [
        (f.syn, "SYN"),
        (f.ack, "ACK"),
        (f.fin, "FIN"),
        (f.rst, "RST"),
        (f.psh, "PSH"),
        (f.urg, "URG"),
        (f.ece, "ECE"),
        (f.cwr, "CWR"),
        (f.ns, "NS"),
    ];
    names
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn ip_header(source: IpAddr, destination: IpAddr) -> Ip {
    Ip {
        source: source.to_string(),
        destination: destination.to_string(),
        ip_version: if source.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        },
        encrypted: false,
    }
}

/// One L3/L4 policy decision about a new connection, in one direction.
#[derive(Debug, Clone)]
pub struct L4Event<'a> {
    pub time: Timestamp,
    pub node_name: &'a str,
    pub source: Arc<Endpoint>,
    pub destination: Arc<Endpoint>,
    pub source_ip: IpAddr,
    pub destination_ip: IpAddr,
    /// See [`Layer4::connection`].
    pub l4: Layer4,
    /// The endpoint side that enforced: egress of the source or ingress of the
    /// destination.
    pub direction: Direction,
    /// FORWARDED, DROPPED, AUDIT or REDIRECTED; see [`FlowVerdict::from_decision`].
    pub verdict: FlowVerdict,
    /// Set with DROPPED.
    pub drop_reason: Option<DropReason>,
    pub match_type: PolicyMatchType,
    pub allowed_by: &'a [Arc<PolicyRef>],
    pub denied_by: &'a [Arc<PolicyRef>],
    /// The policy snapshot generation the decision came from (0 = unknown).
    pub policy_revision: u64,
    pub auth: Option<AuthMode>,
    pub proxy_port: Option<u16>,
    pub socket_cookie: Option<u64>,
    pub cgroup_id: Option<u64>,
}

impl L4Event<'_> {
    fn base(&self, event: CiliumEventType) -> Flow {
        let policies = |refs: &[Arc<PolicyRef>]| -> Vec<Policy> {
            refs.iter()
                .map(|p| Policy {
                    revision: self.policy_revision,
                    ..Policy::from(p.as_ref())
                })
                .collect()
        };
        let (allowed, denied) = (policies(self.allowed_by), policies(self.denied_by));
        let (egress_allowed_by, ingress_allowed_by, egress_denied_by, ingress_denied_by) =
            match self.direction {
                Direction::Egress => (allowed, Vec::new(), denied, Vec::new()),
                Direction::Ingress => (Vec::new(), allowed, Vec::new(), denied),
            };
        let dropped = self.verdict == FlowVerdict::Dropped;
        let drop = self.drop_reason.filter(|_| dropped);
        Flow {
            time: Some(self.time),
            verdict: self.verdict,
            drop_reason: drop.map_or(0, |r| u32::from(r.code())),
            auth_type: self.auth.map(AuthType::from).unwrap_or_default(),
            ip: Some(ip_header(self.source_ip, self.destination_ip)),
            l4: Some(self.l4.clone()),
            source: Some(self.source.clone()),
            destination: Some(self.destination.clone()),
            flow_type: FlowType::L3L4,
            node_name: self.node_name.to_owned(),
            event_type: Some(event),
            traffic_direction: self.direction.into(),
            drop_reason_desc: drop.map(DropReasonDesc::from).unwrap_or_default(),
            is_reply: Some(false),
            proxy_port: self.proxy_port.map_or(0, u32::from),
            socket_cookie: self.socket_cookie.unwrap_or(0),
            cgroup_id: self.cgroup_id.unwrap_or(0),
            summary: self.l4.summary(),
            egress_allowed_by,
            ingress_allowed_by,
            egress_denied_by,
            ingress_denied_by,
            ..Flow::default()
        }
    }
}

impl Flow {
    /// The policy-verdict event (`--type policy-verdict`).
    pub fn policy_verdict(ev: &L4Event<'_>) -> Self {
        let mut flow = ev.base(CiliumEventType {
            event_type: event_type::POLICY_VERDICT,
            sub_type: 0,
        });
        flow.policy_match_type = ev.match_type.number();
        flow
    }

    /// The drop event that accompanies a DROPPED verdict (`--type drop`), as Cilium's
    /// datapath emits one per dropped packet; `None` unless the event is a drop.
    pub fn drop_event(ev: &L4Event<'_>) -> Option<Self> {
        let reason = ev
            .drop_reason
            .filter(|_| ev.verdict == FlowVerdict::Dropped)?;
        Some(ev.base(CiliumEventType {
            event_type: event_type::DROP,
            sub_type: i32::from(reason.code()),
        }))
    }
}

/// `HTTP/1.0`, `HTTP/1.1`, `HTTP/2` as Hubble writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http10,
    Http11,
    Http2,
}

impl HttpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }
}

/// One HTTP request as the L7 proxy saw it; the same value builds the request flow
/// and, later, the response flow.
#[derive(Debug, Clone)]
pub struct HttpEvent<'a> {
    pub node_name: &'a str,
    /// The client side.
    pub source: Arc<Endpoint>,
    /// The server side.
    pub destination: Arc<Endpoint>,
    pub source_addr: SocketAddr,
    pub destination_addr: SocketAddr,
    /// The side whose policy the proxy enforced.
    pub direction: Direction,
    pub method: &'a str,
    /// `scheme://authority/path?query`.
    pub url: &'a str,
    pub version: HttpVersion,
    pub proxy_port: Option<u16>,
}

fn sorted_headers(mut headers: Vec<HttpHeader>) -> Vec<HttpHeader> {
    // Hubble sorts by key and keeps the order of repeated values (a stable sort).
    headers.sort_by(|a, b| a.key.cmp(&b.key));
    headers
}

impl HttpEvent<'_> {
    fn request_line(&self) -> String {
        format!("{} {}", self.method, self.url)
    }

    fn base(&self, time: Timestamp, verdict: FlowVerdict, reply: bool, l7: Layer7) -> Flow {
        let (src, dst) = (self.source_addr, self.destination_addr);
        let l4 = Layer4::tcp(src.port(), dst.port());
        let (source, destination, ip, l4) = if reply {
            (
                self.destination.clone(),
                self.source.clone(),
                ip_header(dst.ip(), src.ip()),
                l4.swapped(),
            )
        } else {
            (
                self.source.clone(),
                self.destination.clone(),
                ip_header(src.ip(), dst.ip()),
                l4,
            )
        };
        Flow {
            time: Some(time),
            verdict,
            ip: Some(ip),
            l4: Some(l4),
            source: Some(source),
            destination: Some(destination),
            flow_type: FlowType::L7,
            node_name: self.node_name.to_owned(),
            l7: Some(l7),
            event_type: Some(CiliumEventType {
                event_type: event_type::ACCESS_LOG,
                sub_type: 0,
            }),
            traffic_direction: self.direction.into(),
            is_reply: Some(reply),
            proxy_port: self.proxy_port.map_or(0, u32::from),
            ..Flow::default()
        }
    }
}

impl Flow {
    /// The request record: FORWARDED when the L7 rules allowed it, DROPPED when
    /// they denied it (L7 denials carry no drop reason).
    pub fn http_request(
        ev: &HttpEvent<'_>,
        time: Timestamp,
        verdict: FlowVerdict,
        headers: Vec<HttpHeader>,
    ) -> Self {
        let l7 = Layer7 {
            l7_type: L7FlowType::Request,
            latency_ns: 0,
            record: Some(L7Record::Http(Http {
                code: 0,
                method: ev.method.to_owned(),
                url: ev.url.to_owned(),
                protocol: ev.version.as_str().to_owned(),
                headers: sorted_headers(headers),
            })),
        };
        let mut flow = ev.base(time, verdict, false, l7);
        flow.summary = format!("{} {}", ev.version.as_str(), ev.request_line());
        flow
    }

    /// The response record: endpoints swapped, `is_reply`, the latency since the
    /// request.
    pub fn http_response(
        ev: &HttpEvent<'_>,
        time: Timestamp,
        status: u16,
        latency: Duration,
        headers: Vec<HttpHeader>,
    ) -> Self {
        let latency_ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let l7 = Layer7 {
            l7_type: L7FlowType::Response,
            latency_ns,
            record: Some(L7Record::Http(Http {
                code: u32::from(status),
                method: ev.method.to_owned(),
                url: ev.url.to_owned(),
                protocol: ev.version.as_str().to_owned(),
                headers: sorted_headers(headers),
            })),
        };
        let mut flow = ev.base(time, FlowVerdict::Forwarded, true, l7);
        flow.summary = format!(
            "{} {} {}ms ({})",
            ev.version.as_str(),
            status,
            latency.as_millis(),
            ev.request_line()
        );
        flow
    }
}
