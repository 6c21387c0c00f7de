//! Flow filters with Hubble's semantics (cilium/cilium pkg/hubble/filters).
//!
//! A [`FlowFilter`] is the wire form, Hubble's `flow.FlowFilter` with the same field
//! names: every field that is set must match (AND), and a field matches when any of
//! its values does (OR). A request carries a whitelist and a blacklist of them: a flow
//! passes when it matches at least one whitelist entry (or the whitelist is empty) and
//! no blacklist entry. [`FlowFilters::compile`] checks and compiles them once;
//! [`CompiledFilters::matches`] is pure and allocation-light.

pub mod flags;
mod selector;

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sluice_identity::selector::Selector;
use sluice_identity::{Label, LabelSet};

use super::drop::DropReasonDesc;
use super::record::{Endpoint, Flow, FlowVerdict, Layer4, TrafficDirection, event_type};

pub use selector::parse_selector;

/// `flow.EventTypeFilter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventTypeFilter {
    #[serde(rename = "type")]
    pub event_type: i32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub match_sub_type: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub sub_type: i32,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// `flow.FlowFilter`, the fields sluice supports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowFilter {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uuid: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ip: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_pod: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_label: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_ip: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_pod: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_label: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traffic_direction: Vec<TrafficDirection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verdict: Vec<FlowVerdict>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop_reason_desc: Vec<DropReasonDesc>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_type: Vec<EventTypeFilter>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_status_code: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protocol: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_port: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_port: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_identity: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_identity: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_method: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_path: Vec<String>,
}

/// A whitelist and a blacklist, as in Hubble's `GetFlowsRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowFilters {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub whitelist: Vec<FlowFilter>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blacklist: Vec<FlowFilter>,
}

/// Why a filter cannot be used. Messages follow Hubble's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("invalid filter, must be [namespace/][<name>], got {0:?}")]
    PodName(String),
    #[error("invalid IP or CIDR {0:?} (expected e.g. 10.0.0.1 or 10.0.0.0/8)")]
    Ip(String),
    #[error("invalid port {0:?} (expected a number from 0 to 65535)")]
    Port(String),
    #[error(
        "invalid http status code filter: invalid status code prefix: {0:?} (expected e.g. 200, 5+ or 40+)"
    )]
    HttpStatus(String),
    #[error("invalid http path filter: {0}")]
    HttpPath(String),
    #[error("filtering by {0} requires the event type filter to only match 'l7' events")]
    NeedsL7(&'static str),
    #[error("invalid protocol filter: unknown protocol: {0:?}")]
    Protocol(String),
    #[error("invalid label filter {selector:?}: {reason}")]
    Label { selector: String, reason: String },
}

impl FlowFilters {
    pub fn is_empty(&self) -> bool {
        self.whitelist.is_empty() && self.blacklist.is_empty()
    }

    pub fn compile(&self) -> Result<CompiledFilters, FilterError> {
        Ok(CompiledFilters {
            whitelist: self
                .whitelist
                .iter()
                .map(compile)
                .collect::<Result<_, _>>()?,
            blacklist: self
                .blacklist
                .iter()
                .map(compile)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Filters ready to match.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilters {
    whitelist: Vec<Compiled>,
    blacklist: Vec<Compiled>,
}

impl CompiledFilters {
    pub fn matches(&self, flow: &Flow) -> bool {
        (self.whitelist.is_empty() || self.whitelist.iter().any(|f| f.matches(flow)))
            && !self.blacklist.iter().any(|f| f.matches(flow))
    }
}

/// One compiled `FlowFilter`: all predicates must hold.
#[derive(Debug, Clone, Default)]
struct Compiled {
    predicates: Vec<Predicate>,
}

impl Compiled {
    fn matches(&self, flow: &Flow) -> bool {
        self.predicates.iter().all(|p| p.matches(flow))
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Source,
    Destination,
}

#[derive(Debug, Clone)]
struct NameFilter {
    namespace: String,
    prefix: String,
}

#[derive(Debug, Clone)]
enum IpMatch {
    Exact(IpAddr),
    Net(IpNet),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Icmp,
    Icmpv4,
    Icmpv6,
    Tcp,
    Udp,
    Sctp,
    Dns,
    Http,
    Kafka,
}

#[derive(Debug, Clone)]
enum Predicate {
    Uuid(Vec<String>),
    Ip(Side, Vec<IpMatch>),
    Pod(Side, Vec<NameFilter>),
    Label(Side, Vec<Selector>),
    Identity(Side, Vec<u32>),
    Port(Side, Vec<u16>),
    TrafficDirection(Vec<TrafficDirection>),
    Verdict(Vec<FlowVerdict>),
    DropReasonDesc(Vec<DropReasonDesc>),
    EventType(Vec<EventTypeFilter>),
    HttpStatus {
        full: Vec<String>,
        prefix: Vec<String>,
    },
    Protocol(Vec<Protocol>),
    HttpMethod(Vec<String>),
    HttpPath(Vec<Regex>),
}

fn compile(ff: &FlowFilter) -> Result<Compiled, FilterError> {
    let mut p = Vec::new();
    if !ff.uuid.is_empty() {
        p.push(Predicate::Uuid(ff.uuid.clone()));
    }
    for (side, ips) in [
        (Side::Source, &ff.source_ip),
        (Side::Destination, &ff.destination_ip),
    ] {
        if !ips.is_empty() {
            p.push(Predicate::Ip(
                side,
                ips.iter().map(|s| parse_ip(s)).collect::<Result<_, _>>()?,
            ));
        }
    }
    for (side, pods) in [
        (Side::Source, &ff.source_pod),
        (Side::Destination, &ff.destination_pod),
    ] {
        if !pods.is_empty() {
            p.push(Predicate::Pod(
                side,
                pods.iter()
                    .map(|s| parse_name(s))
                    .collect::<Result<_, _>>()?,
            ));
        }
    }
    for (side, labels) in [
        (Side::Source, &ff.source_label),
        (Side::Destination, &ff.destination_label),
    ] {
        if !labels.is_empty() {
            let selectors = labels
                .iter()
                .map(|s| {
                    parse_selector(s).map_err(|reason| FilterError::Label {
                        selector: s.clone(),
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?;
            p.push(Predicate::Label(side, selectors));
        }
    }
    for (side, ids) in [
        (Side::Source, &ff.source_identity),
        (Side::Destination, &ff.destination_identity),
    ] {
        if !ids.is_empty() {
            p.push(Predicate::Identity(side, ids.clone()));
        }
    }
    for (side, ports) in [
        (Side::Source, &ff.source_port),
        (Side::Destination, &ff.destination_port),
    ] {
        if !ports.is_empty() {
            let ports = ports
                .iter()
                .map(|s| {
                    s.trim()
                        .parse::<u16>()
                        .map_err(|_| FilterError::Port(s.clone()))
                })
                .collect::<Result<_, _>>()?;
            p.push(Predicate::Port(side, ports));
        }
    }
    if !ff.traffic_direction.is_empty() {
        p.push(Predicate::TrafficDirection(ff.traffic_direction.clone()));
    }
    if !ff.verdict.is_empty() {
        p.push(Predicate::Verdict(ff.verdict.clone()));
    }
    if !ff.drop_reason_desc.is_empty() {
        p.push(Predicate::DropReasonDesc(ff.drop_reason_desc.clone()));
    }
    if !ff.event_type.is_empty() {
        p.push(Predicate::EventType(ff.event_type.clone()));
    }
    // Hubble refuses HTTP filters that the event type filter makes unsatisfiable.
    let l7_compatible = ff.event_type.is_empty()
        || ff
            .event_type
            .iter()
            .any(|t| t.event_type == event_type::ACCESS_LOG);
    if !ff.http_status_code.is_empty() {
        if !l7_compatible {
            return Err(FilterError::NeedsL7("http status code"));
        }
        let (mut full, mut prefix) = (Vec::new(), Vec::new());
        for s in &ff.http_status_code {
            let b = s.as_bytes();
            let first_ok = b.first().is_some_and(|c| (b'1'..=b'5').contains(c));
            if b.len() == 3 && first_ok && b[1..].iter().all(u8::is_ascii_digit) {
                full.push(s.clone());
            } else if first_ok
                && s.ends_with('+')
                && (b.len() == 2 || (b.len() == 3 && b[1].is_ascii_digit()))
            {
                prefix.push(s[..s.len() - 1].to_owned());
            } else {
                return Err(FilterError::HttpStatus(s.clone()));
            }
        }
        p.push(Predicate::HttpStatus { full, prefix });
    }
    if !ff.protocol.is_empty() {
        let protocols = ff
            .protocol
            .iter()
            .map(|s| {
                Ok(match s.to_ascii_lowercase().as_str() {
                    "icmp" => Protocol::Icmp,
                    "icmpv4" => Protocol::Icmpv4,
                    "icmpv6" => Protocol::Icmpv6,
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    "dns" => Protocol::Dns,
                    "http" => Protocol::Http,
                    "kafka" => Protocol::Kafka,
                    _ => return Err(FilterError::Protocol(s.clone())),
                })
            })
            .collect::<Result<_, _>>()?;
        p.push(Predicate::Protocol(protocols));
    }
    if !ff.http_method.is_empty() {
        if !l7_compatible {
            return Err(FilterError::NeedsL7("http method"));
        }
        p.push(Predicate::HttpMethod(ff.http_method.clone()));
    }
    if !ff.http_path.is_empty() {
        if !l7_compatible {
            return Err(FilterError::NeedsL7("http path"));
        }
        let regexes = ff
            .http_path
            .iter()
            .map(|s| Regex::new(s).map_err(|e| FilterError::HttpPath(format!("{s}: {e}"))))
            .collect::<Result<_, _>>()?;
        p.push(Predicate::HttpPath(regexes));
    }
    Ok(Compiled { predicates: p })
}

/// `[namespace/][prefix]`; a bare name is in `default` (Hubble's `ParseNamespaceName`).
fn parse_name(s: &str) -> Result<NameFilter, FilterError> {
    let (namespace, prefix) = match s.split_once('/') {
        Some((ns, rest)) => (ns, rest.split('/').next().unwrap_or_default()),
        None if s.is_empty() => ("", ""),
        None => ("default", s),
    };
    if namespace.is_empty() && prefix.is_empty() {
        return Err(FilterError::PodName(s.to_owned()));
    }
    Ok(NameFilter {
        namespace: namespace.to_owned(),
        prefix: prefix.to_owned(),
    })
}

fn parse_ip(s: &str) -> Result<IpMatch, FilterError> {
    if s.contains('/') {
        s.parse::<IpNet>()
            .map(IpMatch::Net)
            .map_err(|_| FilterError::Ip(s.to_owned()))
    } else {
        s.parse::<IpAddr>()
            .map(IpMatch::Exact)
            .map_err(|_| FilterError::Ip(s.to_owned()))
    }
}

fn endpoint(flow: &Flow, side: Side) -> Option<&Endpoint> {
    match side {
        Side::Source => flow.source.as_deref(),
        Side::Destination => flow.destination.as_deref(),
    }
}

/// The path of an HTTP flow's URL (origin-form or absolute-form), without the query;
/// `None` for what Go's `url.ParseRequestURI` rejects.
fn url_path(url: &str) -> Option<&str> {
    let rest = if url.starts_with('/') {
        url
    } else {
        let (scheme, after) = url.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        {
            return None;
        }
        after.find('/').map_or("", |i| &after[i..])
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

impl Predicate {
    fn matches(&self, flow: &Flow) -> bool {
        match self {
            Self::Uuid(ids) => ids.contains(&flow.uuid),
            Self::Ip(side, matches) => {
                let Some(ip) = flow.ip.as_ref() else {
                    return false;
                };
                let addr = match side {
                    Side::Source => &ip.source,
                    Side::Destination => &ip.destination,
                };
                let Ok(addr) = addr.parse::<IpAddr>() else {
                    return false;
                };
                matches.iter().any(|m| match m {
                    IpMatch::Exact(a) => *a == addr,
                    IpMatch::Net(n) => n.contains(&addr),
                })
            }
            Self::Pod(side, names) => {
                let Some(ep) = endpoint(flow, *side) else {
                    return false;
                };
                if ep.namespace.is_empty() && ep.pod_name.is_empty() {
                    return false;
                }
                names.iter().any(|n| {
                    n.namespace == ep.namespace
                        && (n.prefix.is_empty() || ep.pod_name.starts_with(&n.prefix))
                })
            }
            Self::Label(side, selectors) => {
                let labels: LabelSet = endpoint(flow, *side)
                    .map(|ep| ep.labels.iter().map(|l| Label::parse(l)).collect())
                    .unwrap_or_default();
                selectors.iter().any(|s| s.matches(&labels))
            }
            Self::Identity(side, ids) => {
                let id = endpoint(flow, *side).map_or(0, |ep| ep.identity);
                ids.contains(&id)
            }
            Self::Port(side, ports) => {
                let Some((src, dst)) = flow.l4.as_ref().and_then(Layer4::ports) else {
                    return false;
                };
                let port = match side {
                    Side::Source => src,
                    Side::Destination => dst,
                };
                ports.iter().any(|p| u32::from(*p) == port)
            }
            Self::TrafficDirection(dirs) => dirs.contains(&flow.traffic_direction),
            Self::Verdict(verdicts) => verdicts.contains(&flow.verdict),
            Self::DropReasonDesc(reasons) => reasons.contains(&flow.drop_reason_desc),
            Self::EventType(types) => {
                let Some(et) = flow.event_type else {
                    return false;
                };
                types.iter().any(|t| {
                    t.event_type == et.event_type
                        && (!t.match_sub_type || t.sub_type == et.sub_type)
                })
            }
            Self::HttpStatus { full, prefix } => {
                let Some(http) = flow.http() else {
                    return false;
                };
                if http.code == 0 {
                    return false;
                }
                let code = format!("{:03}", http.code);
                full.contains(&code) || prefix.iter().any(|p| code.starts_with(p.as_str()))
            }
            Self::Protocol(protocols) => protocols.iter().any(|p| match (p, &flow.l4, &flow.l7) {
                (Protocol::Icmp, Some(Layer4::Icmpv4(_) | Layer4::Icmpv6(_)), _)
                | (Protocol::Icmpv4, Some(Layer4::Icmpv4(_)), _)
                | (Protocol::Icmpv6, Some(Layer4::Icmpv6(_)), _)
                | (Protocol::Tcp, Some(Layer4::Tcp(_)), _)
                | (Protocol::Udp, Some(Layer4::Udp(_)), _)
                | (Protocol::Sctp, Some(Layer4::Sctp(_)), _) => true,
                (Protocol::Dns, _, Some(l7)) => l7.dns().is_some(),
                (Protocol::Http, _, Some(l7)) => l7.http().is_some(),
                (Protocol::Kafka, _, Some(l7)) => l7.kafka().is_some(),
                _ => false,
            }),
            Self::HttpMethod(methods) => flow.http().is_some_and(|h| {
                !h.method.is_empty() && methods.iter().any(|m| m.eq_ignore_ascii_case(&h.method))
            }),
            Self::HttpPath(regexes) => flow.http().is_some_and(|h| {
                url_path(&h.url).is_some_and(|path| regexes.iter().any(|r| r.is_match(path)))
            }),
        }
    }
}

#[cfg(test)]
mod tests;
