//! DNS flows: what the DNS proxy did with one query, as the L7 records Cilium's DNS proxy
//! gives Hubble (cilium/cilium pkg/hubble/parser/seven/dns.go): a request and, when the
//! client got the upstream's answer, a response with the addresses, TTL, CNAMEs and RCODE.
//!
//! Names follow gopacket's `layers.DNSType` and `layers.DNSResponseCode` `String()`
//! methods, which Hubble prints: `A`, `AAAA`, `Unknown`; `Query Refused`,
//! `Non-Existent Domain` (and `Server Failure ` with its trailing space, kept so that
//! summaries compare byte for byte).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sluice_identity::{Direction, Protocol};

use super::build::ip_header;
use super::record::{
    CiliumEventType, Dns, Endpoint, Flow, FlowType, FlowVerdict, L7FlowType, L7Record, Layer4,
    Layer7, Ports, event_type,
};
use super::time::Timestamp;

/// Hubble's `observation_source` for answers the proxy saw (`accesslog.DNSSourceProxy`).
pub const DNS_SOURCE_PROXY: &str = "proxy";

/// One query as the DNS proxy handled it; builds the request flow and the response flow.
#[derive(Debug, Clone)]
pub struct DnsQueryEvent<'a> {
    pub node_name: &'a str,
    /// The client.
    pub source: Arc<Endpoint>,
    /// The resolver the client asked.
    pub destination: Arc<Endpoint>,
    pub source_addr: SocketAddr,
    pub destination_addr: SocketAddr,
    /// UDP or TCP.
    pub transport: Protocol,
    /// The asked name, lowercase with the final dot; empty when the query was unreadable.
    pub query: &'a str,
    /// The asked type's number, when the query was readable.
    pub qtype: Option<u16>,
    pub proxy_port: Option<u16>,
}

/// What the client got back from the resolver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsAnswerInfo {
    /// The RCODE (extended bits included).
    pub rcode: u16,
    /// Addresses for the asked name, the CNAME chain followed.
    pub ips: Vec<IpAddr>,
    /// The smallest TTL among them; 0 without addresses.
    pub ttl: u32,
    /// The CNAME chain's targets, lowercase with the final dot.
    pub cnames: Vec<String>,
}

impl DnsAnswerInfo {
    /// The answer's record types, one per record the proxy read from it: `CNAME` per
    /// chain link, `A` / `AAAA` per address. (Cilium lists every answer record; records
    /// that are neither lead to the asked name nor hold its addresses are not kept.)
    fn rrtypes(&self) -> Vec<String> {
        let cnames = self.cnames.iter().map(|_| dns_type_name(5));
        let ips = self.ips.iter().map(|ip| match ip {
            IpAddr::V4(_) => dns_type_name(1),
            IpAddr::V6(_) => dns_type_name(28),
        });
        cnames.chain(ips).map(str::to_owned).collect()
    }
}

impl DnsQueryEvent<'_> {
    fn qtypes(&self) -> Vec<String> {
        self.qtype
            .map(|t| vec![dns_type_name(t).to_owned()])
            .unwrap_or_default()
    }

    fn base(&self, time: Timestamp, verdict: FlowVerdict, reply: bool, l7: Layer7) -> Flow {
        let (src, dst) = (self.source_addr, self.destination_addr);
        let (mut source, mut destination) = (self.source.clone(), self.destination.clone());
        let (mut from, mut to) = (src, dst);
        if reply {
            std::mem::swap(&mut source, &mut destination);
            std::mem::swap(&mut from, &mut to);
        }
        let l4 = match self.transport {
            Protocol::Tcp => Layer4::tcp(from.port(), to.port()),
            _ => Layer4::Udp(Ports {
                source_port: u32::from(from.port()),
                destination_port: u32::from(to.port()),
            }),
        };
        Flow {
            time: Some(time),
            verdict,
            ip: Some(ip_header(from.ip(), to.ip())),
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
            // rules.dns are egress rules: the client's side enforced them.
            traffic_direction: Direction::Egress.into(),
            is_reply: Some(reply),
            proxy_port: self.proxy_port.map_or(0, u32::from),
            ..Flow::default()
        }
    }

    fn qtype_list(&self) -> String {
        self.qtypes().join(",")
    }
}

impl Flow {
    /// The request record: FORWARDED, AUDIT (forwarded though policy would refuse it),
    /// DROPPED (refused by `rules.dns`, or unreadable) or ERROR (the proxy failed it).
    pub fn dns_request(ev: &DnsQueryEvent<'_>, time: Timestamp, verdict: FlowVerdict) -> Self {
        let l7 = Layer7 {
            l7_type: L7FlowType::Request,
            latency_ns: 0,
            record: Some(L7Record::Dns(Dns {
                query: ev.query.to_owned(),
                observation_source: DNS_SOURCE_PROXY.to_owned(),
                qtypes: ev.qtypes(),
                ..Dns::default()
            })),
        };
        let mut flow = ev.base(time, verdict, false, l7);
        flow.summary = format!("DNS Query {} {}", ev.query, ev.qtype_list());
        flow
    }

    /// The response record: endpoints swapped, `is_reply`, the latency since the query
    /// arrived, what the answer held.
    pub fn dns_response(
        ev: &DnsQueryEvent<'_>,
        time: Timestamp,
        verdict: FlowVerdict,
        latency: Duration,
        answer: &DnsAnswerInfo,
    ) -> Self {
        let latency_ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let l7 = Layer7 {
            l7_type: L7FlowType::Response,
            latency_ns,
            record: Some(L7Record::Dns(Dns {
                query: ev.query.to_owned(),
                ips: answer.ips.iter().map(ToString::to_string).collect(),
                ttl: answer.ttl,
                cnames: answer.cnames.clone(),
                observation_source: DNS_SOURCE_PROXY.to_owned(),
                rcode: u32::from(answer.rcode),
                qtypes: ev.qtypes(),
                rrtypes: answer.rrtypes(),
            })),
        };
        let mut flow = ev.base(time, verdict, true, l7);
        flow.summary = answer_summary(ev, answer);
        flow
    }
}

/// Hubble's `dnsSummary` for a response.
fn answer_summary(ev: &DnsQueryEvent<'_>, answer: &DnsAnswerInfo) -> String {
    let text = if answer.rcode != 0 {
        format!("RCode: {}", rcode_name(answer.rcode))
    } else {
        let mut parts = Vec::new();
        if !answer.ips.is_empty() {
            let ips: Vec<String> = answer.ips.iter().map(ToString::to_string).collect();
            parts.push(format!("\"{}\"", ips.join(",")));
        }
        if !answer.cnames.is_empty() {
            parts.push(format!("CNAMEs: \"{}\"", answer.cnames.join(",")));
        }
        parts.join(" ")
    };
    format!(
        "DNS Answer {text} TTL: {} (Proxy {} {})",
        answer.ttl,
        ev.query,
        ev.qtype_list()
    )
}

/// gopacket's `DNSType.String()`.
pub fn dns_type_name(qtype: u16) -> &'static str {
    match qtype {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        41 => "OPT",
        64 => "SVCB",
        65 => "HTTPS",
        256 => "URI",
        _ => "Unknown",
    }
}

/// gopacket's `DNSResponseCode.String()` (its trailing space after `Server Failure`
/// included).
pub fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        0 => "No Error",
        1 => "Format Error",
        2 => "Server Failure ",
        3 => "Non-Existent Domain",
        4 => "Not Implemented",
        5 => "Query Refused",
        6 => "Name Exists when it should not",
        7 => "RR Set Exists when it should not",
        8 => "RR Set that should exist does not",
        9 => "Server Not Authoritative for zone",
        10 => "Name not contained in zone",
        16 => "Bad OPT Version",
        17 => "Key not recognized",
        18 => "Signature out of time window",
        19 => "Bad TKEY Mode",
        20 => "Duplicate key name",
        21 => "Algorithm not supported",
        22 => "Bad Truncation",
        23 => "Bad Cookie",
        _ => "Unknown",
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
