//! Turns `observe` filter flags, in command-line order, into [`FlowFilters`] the way
//! `hubble observe` does (cilium/cilium hubble/cmd/observe/flows_filter.go):
//!
//! - `--not` sends the next filter flag to the blacklist;
//! - symmetric flags (`--pod`, `--ip`, `--port`, `--label`, `--identity`) become two
//!   filters, "source matches" OR "destination matches";
//! - `--namespace` applies to the source pods of the first and the destination pods of
//!   the second, so `-n shop` means "from or to a pod in shop";
//! - every other flag is added to both, so different kinds of flags AND together while
//!   repeated flags of one kind OR.

use sluice_identity::Identity;

use super::{EventTypeFilter, FlowFilter, FlowFilters};
use crate::flow::drop::DropReasonDesc;
use crate::flow::record::{FlowVerdict, TrafficDirection, event_type};

/// The filter flags `sluice observe` accepts, with Hubble's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterFlag {
    Not,
    Uuid,
    Ip,
    FromIp,
    ToIp,
    Pod,
    FromPod,
    ToPod,
    Namespace,
    FromNamespace,
    ToNamespace,
    Label,
    FromLabel,
    ToLabel,
    Port,
    FromPort,
    ToPort,
    Identity,
    FromIdentity,
    ToIdentity,
    Verdict,
    DropReasonDesc,
    Type,
    Protocol,
    HttpStatus,
    HttpMethod,
    HttpPath,
    TrafficDirection,
}

impl FilterFlag {
    /// Every flag with its long name, short name and help.
    pub const ALL: &'static [(Self, &'static str, Option<char>, &'static str)] = &[
        (Self::Not, "not", None, "Reverse the next filter"),
        (
            Self::Uuid,
            "uuid",
            None,
            "Show only the flow with this UUID",
        ),
        (
            Self::Ip,
            "ip",
            None,
            "Show flows to or from this IP or CIDR",
        ),
        (
            Self::FromIp,
            "from-ip",
            None,
            "Show flows from this IP or CIDR",
        ),
        (Self::ToIp, "to-ip", None, "Show flows to this IP or CIDR"),
        (
            Self::Pod,
            "pod",
            None,
            "Show flows to or from pods with this [namespace/]name prefix",
        ),
        (
            Self::FromPod,
            "from-pod",
            None,
            "Show flows from pods with this [namespace/]name prefix",
        ),
        (
            Self::ToPod,
            "to-pod",
            None,
            "Show flows to pods with this [namespace/]name prefix",
        ),
        (
            Self::Namespace,
            "namespace",
            Some('n'),
            "Show flows to or from pods in this namespace",
        ),
        (
            Self::FromNamespace,
            "from-namespace",
            None,
            "Show flows from pods in this namespace",
        ),
        (
            Self::ToNamespace,
            "to-namespace",
            None,
            "Show flows to pods in this namespace",
        ),
        (
            Self::Label,
            "label",
            Some('l'),
            "Show flows to or from endpoints matching this label selector",
        ),
        (
            Self::FromLabel,
            "from-label",
            None,
            "Show flows from endpoints matching this label selector",
        ),
        (
            Self::ToLabel,
            "to-label",
            None,
            "Show flows to endpoints matching this label selector",
        ),
        (
            Self::Port,
            "port",
            None,
            "Show flows with this source or destination port",
        ),
        (
            Self::FromPort,
            "from-port",
            None,
            "Show flows with this source port",
        ),
        (
            Self::ToPort,
            "to-port",
            None,
            "Show flows with this destination port",
        ),
        (
            Self::Identity,
            "identity",
            None,
            "Show flows to or from this security identity (number or reserved name)",
        ),
        (
            Self::FromIdentity,
            "from-identity",
            None,
            "Show flows from this security identity",
        ),
        (
            Self::ToIdentity,
            "to-identity",
            None,
            "Show flows to this security identity",
        ),
        (
            Self::Verdict,
            "verdict",
            None,
            "Show flows with this verdict (FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED)",
        ),
        (
            Self::DropReasonDesc,
            "drop-reason-desc",
            None,
            "Show drops with this reason (e.g. POLICY_DENIED, POLICY_DENY, AUTH_REQUIRED)",
        ),
        (
            Self::Type,
            "type",
            Some('t'),
            "Show events of this type: drop, trace, policy-verdict, l7, … (type:sub-type allowed)",
        ),
        (
            Self::Protocol,
            "protocol",
            None,
            "Show flows of this L4 or L7 protocol (tcp, udp, sctp, icmp, icmpv4, icmpv6, http, dns, kafka)",
        ),
        (
            Self::HttpStatus,
            "http-status",
            None,
            "Show HTTP responses with this status code or prefix (200, 5+, 40+)",
        ),
        (
            Self::HttpMethod,
            "http-method",
            None,
            "Show HTTP flows with this method",
        ),
        (
            Self::HttpPath,
            "http-path",
            None,
            "Show HTTP flows whose path matches this regular expression",
        ),
        (
            Self::TrafficDirection,
            "traffic-direction",
            None,
            "Show flows in this direction (ingress or egress)",
        ),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, ..)| *f == self)
            .map_or("", |(_, n, ..)| n)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n, ..)| *n == name)
            .map(|(f, ..)| *f)
    }
}

/// Flags that cannot be combined (a subset of Hubble's groups: those of the flags
/// sluice supports).
const CONFLICTS: &[&[FilterFlag]] = {
    use FilterFlag::*;
    &[
        &[FromIp, Ip, FromNamespace, Namespace],
        &[FromIp, Ip, FromPod, Pod],
        &[ToIp, Ip, ToNamespace, Namespace],
        &[ToIp, Ip, ToPod, Pod],
        &[ToPod, Namespace],
        &[FromPod, Namespace],
        &[Label, FromLabel],
        &[Label, ToLabel],
        &[Port, ToPort],
        &[Port, FromPort],
        &[Identity, ToIdentity],
        &[Identity, FromIdentity],
    ]
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(pub String);

/// One side (whitelist or blacklist) under construction: `left OR right`.
#[derive(Debug, Default)]
struct Tracker {
    left: Option<FlowFilter>,
    right: Option<FlowFilter>,
    ns: Vec<String>,
    src_ns: Vec<String>,
    dst_ns: Vec<String>,
    changed: Vec<FilterFlag>,
}

impl Tracker {
    fn both(&mut self, update: impl Fn(&mut FlowFilter)) {
        update(self.left.get_or_insert_with(FlowFilter::default));
        update(self.right.get_or_insert_with(FlowFilter::default));
    }

    fn split(&mut self, left: impl FnOnce(&mut FlowFilter), right: impl FnOnce(&mut FlowFilter)) {
        left(self.left.get_or_insert_with(FlowFilter::default));
        right(self.right.get_or_insert_with(FlowFilter::default));
    }

    fn check_conflicts(&self) -> Result<(), FlagError> {
        for group in CONFLICTS {
            for a in group.iter().filter(|f| self.changed.contains(f)) {
                if let Some(b) = group.iter().find(|b| *b != a && self.changed.contains(b)) {
                    return Err(FlagError(format!(
                        "filters --{} and --{} cannot be combined",
                        a.name(),
                        b.name()
                    )));
                }
            }
        }
        Ok(())
    }

    fn check_namespace_conflicts(&self) -> Result<(), FlagError> {
        for ff in [&self.left, &self.right].into_iter().flatten() {
            for (namespaces, pods) in [
                (&self.ns, &ff.source_pod),
                (&self.ns, &ff.destination_pod),
                (&self.src_ns, &ff.source_pod),
                (&self.dst_ns, &ff.destination_pod),
            ] {
                for ns in namespaces {
                    for pod in pods {
                        if let Some((pod_ns, _)) = pod.split_once('/')
                            && pod_ns != ns
                        {
                            return Err(FlagError(format!(
                                "namespace conflict: {ns:?} does not contain {pod:?}"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn into_filters(mut self) -> Vec<FlowFilter> {
        if self.left.is_none()
            && self.right.is_none()
            && self.ns.is_empty()
            && self.src_ns.is_empty()
            && self.dst_ns.is_empty()
        {
            return Vec::new();
        }
        let mut left = self.left.take().unwrap_or_default();
        let mut right = self.right.take().unwrap_or_default();
        if !self.dst_ns.is_empty() {
            apply_namespaces(&mut left.destination_pod, &self.dst_ns);
            apply_namespaces(&mut right.destination_pod, &self.dst_ns);
        }
        if !self.src_ns.is_empty() {
            apply_namespaces(&mut left.source_pod, &self.src_ns);
            apply_namespaces(&mut right.source_pod, &self.src_ns);
        }
        if !self.ns.is_empty() {
            apply_namespaces(&mut left.source_pod, &self.ns);
            apply_namespaces(&mut right.destination_pod, &self.ns);
        }
        if left == right {
            vec![left]
        } else {
            vec![left, right]
        }
    }
}

/// Qualifies pod names without a namespace with each namespace; no pods means "any pod
/// of the namespace" (`ns/`).
fn apply_namespaces(pods: &mut Vec<String>, namespaces: &[String]) {
    if pods.is_empty() {
        pods.push(String::new());
    }
    let mut out = Vec::new();
    for pod in pods.iter() {
        if pod.contains('/') {
            out.push(pod.clone());
        } else {
            out.extend(namespaces.iter().map(|ns| format!("{ns}/{pod}")));
        }
    }
    *pods = out;
}

/// Collects filter flags in order.
#[derive(Debug, Default)]
pub struct FilterBuilder {
    whitelist: Tracker,
    blacklist: Tracker,
    negate_next: bool,
}

impl FilterBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one flag (`value` is ignored for `--not`).
    pub fn set(&mut self, flag: FilterFlag, value: &str) -> Result<(), FlagError> {
        if flag == FilterFlag::Not {
            if self.negate_next {
                return Err(FlagError("consecutive --not statements".to_owned()));
            }
            self.negate_next = true;
            return Ok(());
        }
        let tracker = if std::mem::take(&mut self.negate_next) {
            &mut self.blacklist
        } else {
            &mut self.whitelist
        };
        if !tracker.changed.contains(&flag) {
            tracker.changed.push(flag);
        }
        tracker.check_conflicts()?;
        set(tracker, flag, value)?;
        tracker.check_namespace_conflicts()
    }

    pub fn build(self) -> Result<FlowFilters, FlagError> {
        if self.negate_next {
            return Err(FlagError(
                "trailing --not: it must be followed by a filter flag".to_owned(),
            ));
        }
        Ok(FlowFilters {
            whitelist: self.whitelist.into_filters(),
            blacklist: self.blacklist.into_filters(),
        })
    }
}

fn parse_identity(value: &str) -> Result<u32, FlagError> {
    if let Ok(n) = value.parse::<u32>() {
        return Ok(n);
    }
    if value == "unknown" {
        return Ok(Identity::UNKNOWN.0);
    }
    Identity::RESERVED
        .iter()
        .find(|(_, name)| *name == value)
        .map(|(id, _)| id.0)
        .ok_or_else(|| {
            let names: Vec<&str> = Identity::RESERVED.iter().map(|(_, n)| *n).collect();
            FlagError(format!(
                "invalid security identity {value:?}, expected one of [{}] or a numeric value",
                names.join(" ")
            ))
        })
}

fn parse_event_type(value: &str) -> Result<EventTypeFilter, FlagError> {
    let (ty, sub) = match value.split_once(':') {
        Some((t, s)) => (t, Some(s)),
        None => (value, None),
    };
    let event_type = match event_type::NAMES.iter().find(|(n, _)| *n == ty) {
        Some((_, t)) => *t,
        None => ty.parse::<i32>().map_err(|_| {
            FlagError(format!(
                "unable to parse type '{ty}', not a known type name and unable to parse as numeric value"
            ))
        })?,
    };
    let mut filter = EventTypeFilter {
        event_type,
        ..EventTypeFilter::default()
    };
    if let Some(sub) = sub {
        let named = (event_type == event_type::TRACE)
            .then(|| event_type::TRACE_POINTS.iter().find(|(_, n)| *n == sub))
            .flatten()
            .map(|(n, _)| *n);
        filter.sub_type = match named {
            Some(n) => n,
            None => sub.parse::<i32>().map_err(|_| {
                FlagError(format!(
                    "unable to parse event sub-type '{sub}', not a known sub-type name and unable to parse as numeric value"
                ))
            })?,
        };
        filter.match_sub_type = true;
    }
    Ok(filter)
}

fn set(t: &mut Tracker, flag: FilterFlag, val: &str) -> Result<(), FlagError> {
    use FilterFlag as F;
    let v = val.to_owned();
    match flag {
        F::Not => {}
        F::Uuid => t.both(|f| f.uuid.push(v.clone())),
        F::Ip => t.split(
            |f| f.source_ip.push(v.clone()),
            |f| f.destination_ip.push(v.clone()),
        ),
        F::FromIp => t.both(|f| f.source_ip.push(v.clone())),
        F::ToIp => t.both(|f| f.destination_ip.push(v.clone())),
        F::Pod => t.split(
            |f| f.source_pod.push(v.clone()),
            |f| f.destination_pod.push(v.clone()),
        ),
        F::FromPod => t.both(|f| f.source_pod.push(v.clone())),
        F::ToPod => t.both(|f| f.destination_pod.push(v.clone())),
        F::Namespace => t.ns.push(v),
        F::FromNamespace => t.src_ns.push(v),
        F::ToNamespace => t.dst_ns.push(v),
        F::Label => t.split(
            |f| f.source_label.push(v.clone()),
            |f| f.destination_label.push(v.clone()),
        ),
        F::FromLabel => t.both(|f| f.source_label.push(v.clone())),
        F::ToLabel => t.both(|f| f.destination_label.push(v.clone())),
        F::Port => t.split(
            |f| f.source_port.push(v.clone()),
            |f| f.destination_port.push(v.clone()),
        ),
        F::FromPort => t.both(|f| f.source_port.push(v.clone())),
        F::ToPort => t.both(|f| f.destination_port.push(v.clone())),
        F::Identity => {
            let id = parse_identity(val)?;
            t.split(
                |f| f.source_identity.push(id),
                |f| f.destination_identity.push(id),
            );
        }
        F::FromIdentity => {
            let id = parse_identity(val)?;
            t.both(|f| f.source_identity.push(id));
        }
        F::ToIdentity => {
            let id = parse_identity(val)?;
            t.both(|f| f.destination_identity.push(id));
        }
        F::Verdict => {
            let verdict = FlowVerdict::from_name(&val.to_ascii_uppercase())
                .filter(|v| !v.is_zero())
                .ok_or_else(|| FlagError(format!("invalid --verdict value: {val}")))?;
            t.both(|f| f.verdict.push(verdict));
        }
        F::DropReasonDesc => {
            let reason = DropReasonDesc::from_name(&val.to_ascii_uppercase())
                .ok_or_else(|| FlagError(format!("invalid --drop-reason-desc value: {val}")))?;
            t.both(|f| f.drop_reason_desc.push(reason));
        }
        F::Type => {
            let filter = parse_event_type(val)?;
            t.both(|f| f.event_type.push(filter));
        }
        F::Protocol => t.both(|f| f.protocol.push(v.clone())),
        F::HttpStatus => t.both(|f| f.http_status_code.push(v.clone())),
        F::HttpMethod => t.both(|f| f.http_method.push(v.clone())),
        F::HttpPath => t.both(|f| f.http_path.push(v.clone())),
        F::TrafficDirection => {
            let dir = match val.to_ascii_lowercase().as_str() {
                "ingress" => TrafficDirection::Ingress,
                "egress" => TrafficDirection::Egress,
                other => {
                    return Err(FlagError(format!(
                        "{other}: invalid traffic direction, expected ingress or egress"
                    )));
                }
            };
            t.both(|f| f.traffic_direction.push(dir));
        }
    }
    Ok(())
}
