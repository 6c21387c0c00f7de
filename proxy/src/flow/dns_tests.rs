//! DNS flows: JSON shape (protojson field order, as Hubble prints it), the response vector
//! of cilium/cilium pkg/hubble/parser/seven/dns_test.go (`TestDecodeL7DNSRecord`), and the
//! compact lines of Hubble's printer for DNS records (summaries from seven/dns.go
//! `dnsSummary`, type column from printer.go `GetFlowType`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use sluice_identity::{Identity, Protocol};

use super::*;
use crate::flow::flow_json;
use crate::flow::printer::{PrintOptions, compact};
use crate::flow::record::Tcp;

fn query_event(transport: Protocol, qname: &'static str) -> DnsQueryEvent<'static> {
    DnsQueryEvent {
        node_name: "k8s1",
        source: Endpoint {
            identity: 300,
            namespace: "app".into(),
            pod_name: "client".into(),
            ..Endpoint::default()
        }
        .into(),
        destination: Endpoint::from_identity(Identity(301)).into(),
        source_addr: SocketAddr::from((Ipv4Addr::new(10, 1, 0, 1), 56789)),
        destination_addr: SocketAddr::from((Ipv4Addr::new(10, 1, 0, 53), 53)),
        transport,
        query: qname,
        qtype: Some(1),
        proxy_port: Some(15053),
    }
}

const T: Timestamp = Timestamp {
    seconds: 1234,
    nanos: 567_800_000,
};

#[test]
fn request_json_is_hubbles_l7_dns_request() {
    let ev = query_event(Protocol::Udp, "api.example.test.");
    let flow = Flow::dns_request(&ev, T, FlowVerdict::Forwarded);
    assert_eq!(
        flow_json(&flow),
        concat!(
            r#"{"time":"1970-01-01T00:20:34.567800Z","verdict":"FORWARDED","#,
            r#""IP":{"source":"10.1.0.1","destination":"10.1.0.53","ipVersion":"IPv4"},"#,
            r#""l4":{"UDP":{"source_port":56789,"destination_port":53}},"#,
            r#""source":{"identity":300,"namespace":"app","pod_name":"client"},"#,
            r#""destination":{"identity":301},"Type":"L7","node_name":"k8s1","#,
            r#""l7":{"type":"REQUEST","dns":{"query":"api.example.test.","#,
            r#""observation_source":"proxy","qtypes":["A"]}},"#,
            r#""event_type":{"type":129},"traffic_direction":"EGRESS","is_reply":false,"#,
            r#""proxy_port":15053,"Summary":"DNS Query api.example.test. A"}"#,
        )
    );
}

#[test]
fn response_matches_ciliums_decoded_dns_record() {
    // TestDecodeL7DNSRecord: a forwarded UDP answer, server port 53 to client 56789.
    let mut ev = query_event(Protocol::Udp, "deathstar.empire.svc.cluster.local.");
    ev.source_addr.set_port(56789);
    let answer = DnsAnswerInfo {
        rcode: 0,
        ips: vec![IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))],
        ttl: 5,
        cnames: Vec::new(),
    };
    let flow = Flow::dns_response(
        &ev,
        T,
        FlowVerdict::Forwarded,
        Duration::from_millis(3),
        &answer,
    );
    let l7 = flow.l7.as_ref().unwrap();
    assert_eq!(l7.l7_type, L7FlowType::Response);
    assert_eq!(l7.latency_ns, 3_000_000);
    assert_eq!(
        l7.dns(),
        Some(&Dns {
            query: "deathstar.empire.svc.cluster.local.".into(),
            ips: vec!["1.2.3.4".into()],
            ttl: 5,
            cnames: Vec::new(),
            observation_source: "proxy".into(),
            rcode: 0,
            qtypes: vec!["A".into()],
            rrtypes: vec!["A".into()],
        })
    );
    // The reply goes from the resolver (port 53) to the client (56789).
    assert_eq!(flow.ip.as_ref().unwrap().source, "10.1.0.53");
    assert_eq!(flow.ip.as_ref().unwrap().destination, "10.1.0.1");
    assert_eq!(flow.l4.as_ref().unwrap().ports(), Some((53, 56789)));
    assert_eq!(flow.source.as_ref().unwrap().identity, 301);
    assert_eq!(flow.destination.as_ref().unwrap().pod_name, "client");
    assert_eq!(flow.is_reply, Some(true));
    assert_eq!(flow.verdict, FlowVerdict::Forwarded);
    assert_eq!(flow.flow_type, FlowType::L7);
    assert_eq!(flow.event_type_number(), event_type::ACCESS_LOG);
    assert_eq!(
        flow.summary,
        r#"DNS Answer "1.2.3.4" TTL: 5 (Proxy deathstar.empire.svc.cluster.local. A)"#
    );
}

#[test]
fn compact_lines_read_like_hubbles() {
    let ev = query_event(Protocol::Udp, "api.example.test.");
    let request = Flow::dns_request(&ev, T, FlowVerdict::Forwarded);
    let answer = DnsAnswerInfo {
        rcode: 0,
        ips: vec![
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            "2001:db8::10".parse().unwrap(),
        ],
        ttl: 45,
        cnames: vec!["edge.example.test.".into()],
    };
    let response = Flow::dns_response(
        &ev,
        T,
        FlowVerdict::Forwarded,
        Duration::from_millis(2),
        &answer,
    );
    let refused = Flow::dns_request(
        &query_event(Protocol::Tcp, "api.denied.test."),
        T,
        FlowVerdict::Dropped,
    );
    let refused_answer = Flow::dns_response(
        &ev,
        T,
        FlowVerdict::Forwarded,
        Duration::ZERO,
        &DnsAnswerInfo {
            rcode: 5,
            ..DnsAnswerInfo::default()
        },
    );
    let opts = PrintOptions::default();
    let cases: &[(&Flow, &str)] = &[
        (
            &request,
            "Jan  1 00:20:34.567: app/client:56789 (ID:300) -> 10.1.0.53:53 (ID:301) dns-request proxy FORWARDED (DNS Query api.example.test. A)",
        ),
        (
            &response,
            r#"Jan  1 00:20:34.567: app/client:56789 (ID:300) <- 10.1.0.53:53 (ID:301) dns-response proxy FORWARDED (DNS Answer "192.0.2.10,2001:db8::10" CNAMEs: "edge.example.test." TTL: 45 (Proxy api.example.test. A))"#,
        ),
        (
            &refused,
            "Jan  1 00:20:34.567: app/client:56789 (ID:300) -> 10.1.0.53:53 (ID:301) dns-request proxy DROPPED (DNS Query api.denied.test. A)",
        ),
        (
            // spec §15's example summary.
            &refused_answer,
            "Jan  1 00:20:34.567: app/client:56789 (ID:300) <- 10.1.0.53:53 (ID:301) dns-response proxy FORWARDED (DNS Answer RCode: Query Refused TTL: 0 (Proxy api.example.test. A))",
        ),
    ];
    for (flow, want) in cases {
        assert_eq!(compact(flow, &opts), *want);
    }
    assert_eq!(
        response.l7.as_ref().and_then(|l| l.dns()).unwrap().rrtypes,
        ["CNAME", "A", "AAAA"]
    );
    assert!(matches!(
        refused.l4,
        Some(Layer4::Tcp(Tcp { flags: None, .. }))
    ));
}

#[test]
fn type_and_rcode_names_follow_gopacket() {
    let cases: &[(u16, &str)] = &[
        (1, "A"),
        (28, "AAAA"),
        (5, "CNAME"),
        (65, "HTTPS"),
        (255, "Unknown"),
    ];
    for (n, name) in cases {
        assert_eq!(dns_type_name(*n), *name, "type {n}");
    }
    let cases: &[(u16, &str)] = &[
        (0, "No Error"),
        (2, "Server Failure "),
        (3, "Non-Existent Domain"),
        (5, "Query Refused"),
        (16, "Bad OPT Version"),
        (24, "Unknown"),
    ];
    for (n, name) in cases {
        assert_eq!(rcode_name(*n), *name, "rcode {n}");
    }
}

#[test]
fn dns_flows_pass_the_protocol_and_type_filters() {
    use crate::flow::filter::{EventTypeFilter, FlowFilter, FlowFilters};
    let ev = query_event(Protocol::Udp, "api.example.test.");
    let request = Flow::dns_request(&ev, T, FlowVerdict::Forwarded);
    let l4 = crate::flow::printer::tests::hubble_flow();
    let only = |f: FlowFilter| {
        FlowFilters {
            whitelist: vec![f],
            blacklist: Vec::new(),
        }
        .compile()
        .unwrap()
    };
    // `observe --protocol dns` and `observe --type l7`.
    let dns = only(FlowFilter {
        protocol: vec!["dns".into()],
        ..FlowFilter::default()
    });
    let l7 = only(FlowFilter {
        event_type: vec![EventTypeFilter {
            event_type: event_type::ACCESS_LOG,
            ..EventTypeFilter::default()
        }],
        ..FlowFilter::default()
    });
    assert!(dns.matches(&request));
    assert!(!dns.matches(&l4));
    assert!(l7.matches(&request));
    assert!(!l7.matches(&l4));
}
