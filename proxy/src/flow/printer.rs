//! Human output for flows, following Hubble's printer (cilium/cilium
//! hubble/pkg/printer/printer.go): the compact one-liner, the dict block and the
//! table.

use super::drop::DropReasonDesc;
use super::json::{FlowsResponse, ResponseEvent};
use super::record::{
    Flow, FlowVerdict, L7Record, Layer4, LostEvent, Policy, PolicyMatchType, TrafficDirection,
    event_type,
};
use super::time::Timestamp;

/// Printer switches, as `hubble observe` spells them.
#[derive(Debug, Clone, Copy)]
pub struct PrintOptions {
    /// `--print-node-name`.
    pub node_name: bool,
    /// `--print-policy-names`.
    pub policy_names: bool,
    /// Show `namespace/pod` instead of IPs (on by default; `--numeric` turns it off).
    pub ip_translation: bool,
}

impl Default for PrintOptions {
    fn default() -> Self {
        Self {
            node_name: false,
            policy_names: false,
            ip_translation: true,
        }
    }
}

fn timestamp(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "N/A".to_owned(), |t| t.stamp_milli())
}

/// `host:port` as Go's `net.JoinHostPort` writes it; no port when it is 0 or unknown.
fn hostname(
    ip: &str,
    port: Option<u32>,
    ns: &str,
    pod: &str,
    svc: &str,
    names: &[String],
    opts: &PrintOptions,
) -> String {
    let mut host = ip.to_owned();
    if opts.ip_translation {
        if !pod.is_empty() {
            host = join_path(ns, pod);
        } else if !svc.is_empty() {
            host = join_path(ns, svc);
        } else if !names.is_empty() {
            host = names.join(",");
        }
    }
    match port {
        Some(p) if p != 0 => {
            if host.contains(':') {
                format!("[{host}]:{p}")
            } else {
                format!("{host}:{p}")
            }
        }
        _ => host,
    }
}

/// Go's `path.Join` for two elements: no slash when the namespace is empty.
fn join_path(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_owned()
    } else {
        format!("{ns}/{name}")
    }
}

/// Source and destination as the printer shows them.
pub fn host_names(flow: &Flow, opts: &PrintOptions) -> (String, String) {
    let Some(ip) = &flow.ip else {
        return (String::new(), String::new());
    };
    let ports = flow.l4.as_ref().and_then(Layer4::ports);
    let side = |addr: &str,
                ep: Option<&super::record::Endpoint>,
                svc: Option<&super::record::Service>,
                port,
                names: &[String]| {
        let (mut ns, pod) = ep.map_or(("", ""), |e| (e.namespace.as_str(), e.pod_name.as_str()));
        let mut svc_name = "";
        if let Some(s) = svc {
            ns = s.namespace.as_str();
            svc_name = s.name.as_str();
        }
        hostname(addr, port, ns, pod, svc_name, names, opts)
    };
    (
        side(
            &ip.source,
            flow.source.as_deref(),
            flow.source_service.as_ref(),
            ports.map(|p| p.0),
            &flow.source_names,
        ),
        side(
            &ip.destination,
            flow.destination.as_deref(),
            flow.destination_service.as_ref(),
            ports.map(|p| p.1),
            &flow.destination_names,
        ),
    )
}

/// `(health)` for reserved identities (Cilium names 0 `unknown`), `(ID:n)` otherwise.
pub fn identity(id: u32) -> String {
    if id == 0 {
        return "(unknown)".to_owned();
    }
    match sluice_identity::Identity(id).reserved_name() {
        Some(name) => format!("({name})"),
        None => format!("(ID:{id})"),
    }
}

/// The type column (Hubble's `GetFlowType`).
pub fn flow_type(flow: &Flow) -> String {
    if let Some(l7) = &flow.l7 {
        let mut kind = l7.l7_type.as_str().to_ascii_lowercase();
        let proto = match &l7.record {
            Some(L7Record::Http(_)) => "http",
            Some(L7Record::Dns(d)) => {
                kind = format!("{kind} {}", d.observation_source);
                "dns"
            }
            Some(L7Record::Kafka(_)) => "kafka",
            None => "l7",
        };
        return format!("{proto}-{kind}");
    }
    let Some(et) = flow.event_type else {
        return "UNKNOWN".to_owned();
    };
    match et.event_type {
        event_type::TRACE => event_type::TRACE_POINTS
            .iter()
            .find(|(n, _)| *n == et.sub_type)
            .map_or_else(|| et.sub_type.to_string(), |(_, name)| (*name).to_owned()),
        event_type::DROP => DropReasonDesc(u32::try_from(et.sub_type).unwrap_or(0)).text(),
        event_type::POLICY_VERDICT => format!(
            "policy-verdict:{} {}",
            PolicyMatchType::name_of(flow.policy_match_type),
            flow.traffic_direction.as_str()
        ),
        _ => "UNKNOWN".to_owned(),
    }
}

fn policy_names(policies: &[Policy]) -> String {
    policies
        .iter()
        .map(|p| format!("{} ({})", p.name, p.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verdict column: policy-verdict events say ALLOWED / DENIED / AUDITED, and with
/// `--print-policy-names` which policies decided.
pub fn verdict(flow: &Flow, opts: &PrintOptions) -> String {
    let pv = flow.is_policy_verdict();
    let (mut msg, allowed) = match flow.verdict {
        FlowVerdict::Forwarded | FlowVerdict::Redirected if pv => ("ALLOWED".to_owned(), true),
        FlowVerdict::Dropped | FlowVerdict::Error if pv => ("DENIED".to_owned(), false),
        FlowVerdict::Audit if pv => ("AUDITED".to_owned(), false),
        v => (v.as_str().to_owned(), false),
    };
    if pv && opts.policy_names {
        let egress = flow.traffic_direction == TrafficDirection::Egress;
        let policies = match (allowed, egress) {
            (true, true) => &flow.egress_allowed_by,
            (true, false) => &flow.ingress_allowed_by,
            (false, true) => &flow.egress_denied_by,
            (false, false) => &flow.ingress_denied_by,
        };
        if !policies.is_empty() {
            msg = format!("{msg} BY {}", policy_names(policies));
        }
    }
    msg
}

/// The summary column, with the authentication type when one applies.
pub fn summary(flow: &Flow) -> String {
    let mut s = flow.summary.clone();
    if !flow.auth_type.is_zero() {
        s.push_str("; ");
        s.push_str(flow.auth_type.as_str());
    }
    s
}

/// One compact line (no trailing newline):
/// `Jan  1 00:20:34.567 [node]: src (id) -> dst (id) <type> <VERDICT> (<summary>)`.
pub fn compact(flow: &Flow, opts: &PrintOptions) -> String {
    let (mut src, mut dst) = host_names(flow, opts);
    let mut src_id = identity(flow.source.as_ref().map_or(0, |e| e.identity));
    let mut dst_id = identity(flow.destination.as_ref().map_or(0, |e| e.identity));
    let arrow = match flow.is_reply {
        None => "<>",
        Some(false) => "->",
        Some(true) => {
            std::mem::swap(&mut src, &mut dst);
            std::mem::swap(&mut src_id, &mut dst_id);
            "<-"
        }
    };
    let node = if opts.node_name {
        format!(" [{}]", flow.node_name)
    } else {
        String::new()
    };
    format!(
        "{}{node}: {src} {src_id} {arrow} {dst} {dst_id} {} {} ({})",
        timestamp(flow.time),
        flow_type(flow),
        verdict(flow, opts),
        summary(flow)
    )
}

/// The dict block for one flow (no separator, no trailing newline).
pub fn dict(flow: &Flow, opts: &PrintOptions) -> String {
    let (src, dst) = host_names(flow, opts);
    let mut out = format!("  TIMESTAMP: {}\n", timestamp(flow.time));
    if opts.node_name {
        out.push_str(&format!("       NODE: {}\n", flow.node_name));
    }
    out.push_str(&format!(
        "     SOURCE: {src}\nDESTINATION: {dst}\n       TYPE: {}\n    VERDICT: {}\n    SUMMARY: {}",
        flow_type(flow),
        verdict(flow, opts),
        summary(flow)
    ));
    out
}

/// What separates two dict blocks.
pub const DICT_SEPARATOR: &str = "------------";

/// Table columns for one flow.
pub fn table_row(flow: &Flow, opts: &PrintOptions) -> Vec<String> {
    let (src, dst) = host_names(flow, opts);
    let mut row = vec![timestamp(flow.time)];
    if opts.node_name {
        row.push(flow.node_name.clone());
    }
    row.extend([
        src,
        dst,
        flow_type(flow),
        verdict(flow, opts),
        summary(flow),
    ]);
    row
}

pub fn table_header(opts: &PrintOptions) -> Vec<String> {
    let mut row = vec!["TIMESTAMP".to_owned()];
    if opts.node_name {
        row.push("NODE".to_owned());
    }
    row.extend(["SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"].map(str::to_owned));
    row
}

/// Aligns rows as Go's tabwriter does with Hubble's settings (padding 3, spaces):
/// every column but the last is as wide as its widest cell plus three.
pub fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i != last {
                let pad = widths[i] + 3 - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// Hubble's compact line for lost events.
pub fn compact_lost(lost: &LostEvent) -> String {
    format!(
        "EVENTS LOST: {} CPU(0) {}",
        lost.source.as_str(),
        lost.num_events_lost
    )
}

/// A response as a compact line.
pub fn compact_response(resp: &FlowsResponse, opts: &PrintOptions) -> String {
    match &resp.event {
        ResponseEvent::Flow(f) => compact(f, opts),
        ResponseEvent::LostEvents(l) => compact_lost(l),
    }
}

#[cfg(test)]
#[path = "printer_tests.rs"]
pub(crate) mod tests;
