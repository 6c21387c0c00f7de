//! JSON shape and builder tests. JSON expectations come from cilium/cilium
//! hubble/pkg/printer/printer_test.go (`json`, `jsonpb`) and protojson's rules.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sluice_identity::{Direction, DropReason, Identity, Label, LabelSet, PolicyRef};

use super::printer::tests::hubble_flow;
use super::printer::{PrintOptions, compact};
use super::*;

const HUBBLE_FLOW_JSON: &str = concat!(
    r#"{"time":"1970-01-01T00:20:34.567800Z","#,
    r#""verdict":"DROPPED","#,
    r#""IP":{"source":"1.1.1.1","destination":"2.2.2.2"},"#,
    r#""l4":{"TCP":{"source_port":31793,"destination_port":8080}},"#,
    r#""source":{"identity":4},"destination":{"identity":12345},"#,
    r#""Type":"L3_L4","node_name":"k8s1","#,
    r#""event_type":{"type":1,"sub_type":133},"#,
    r#""is_reply":false,"Summary":"TCP Flags: SYN"}"#,
);

#[test]
fn json_matches_hubble_byte_for_byte() {
    let f = hubble_flow();
    assert_eq!(flow_json(&f), HUBBLE_FLOW_JSON, "json (legacy)");
    let jsonpb = FlowsResponse {
        event: ResponseEvent::Flow(Arc::new(f.clone())),
        node_name: String::new(),
        time: None,
    };
    assert_eq!(
        jsonpb.to_json_line(),
        format!(r#"{{"flow":{HUBBLE_FLOW_JSON}}}"#),
        "jsonpb"
    );
    // What the admin socket sends carries node and time, as hubble-relay does.
    let line = FlowsResponse::flow(Arc::new(f)).to_json_line();
    assert!(
        line.ends_with(r#"},"node_name":"k8s1","time":"1970-01-01T00:20:34.567800Z"}"#),
        "{line}"
    );
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["flow"]["verdict"], "DROPPED");
}

#[test]
fn every_field_round_trips_in_declaration_order() {
    let flow = Flow {
        time: Some(Timestamp::new(1, 5)),
        uuid: "u".into(),
        verdict: FlowVerdict::Dropped,
        drop_reason: 181,
        auth_type: AuthType::Spire,
        ip: Some(Ip {
            source: "10.0.0.1".into(),
            destination: "10.0.0.2".into(),
            ip_version: IpVersion::V4,
            encrypted: true,
        }),
        l4: Some(Layer4::Udp(Ports {
            source_port: 1,
            destination_port: 53,
        })),
        source: Some(
            Endpoint {
                id: 7,
                identity: 300,
                cluster_name: "default".into(),
                namespace: "shop".into(),
                labels: vec!["k8s:app=web".into()],
                pod_name: "web-1".into(),
                workloads: vec![Workload {
                    name: "web".into(),
                    kind: "Deployment".into(),
                }],
            }
            .into(),
        ),
        destination: Some(Endpoint::from_identity(Identity::WORLD).into()),
        flow_type: FlowType::L7,
        node_name: "n1".into(),
        source_names: vec!["a.example".into()],
        destination_names: vec!["b.example".into()],
        l7: Some(Layer7 {
            l7_type: L7FlowType::Response,
            latency_ns: 1_500_000,
            record: Some(L7Record::Kafka(Kafka {
                error_code: 3,
                api_version: 1,
                api_key: "produce".into(),
                correlation_id: 9,
                topic: "t".into(),
            })),
        }),
        event_type: Some(CiliumEventType {
            event_type: 129,
            sub_type: 0,
        }),
        source_service: None,
        destination_service: Some(Service {
            name: "db".into(),
            namespace: "shop".into(),
        }),
        traffic_direction: TrafficDirection::Egress,
        policy_match_type: 2,
        drop_reason_desc: DropReasonDesc(181),
        is_reply: Some(true),
        proxy_port: 15001,
        socket_cookie: u64::MAX,
        cgroup_id: 42,
        summary: "s & <t>".into(),
        egress_allowed_by: vec![],
        ingress_allowed_by: vec![],
        egress_denied_by: vec![Policy {
            name: "deny".into(),
            namespace: "shop".into(),
            labels: vec!["k8s:x=y".into()],
            revision: 12,
            kind: "CiliumNetworkPolicy".into(),
        }],
        ingress_denied_by: vec![],
        policy_log: vec!["log".into()],
    };
    let json = flow_json(&flow);
    let keys: Vec<&str> = [
        "\"time\"",
        "\"uuid\"",
        "\"verdict\"",
        "\"drop_reason\"",
        "\"auth_type\"",
        "\"IP\"",
        "\"l4\"",
        "\"source\"",
        "\"destination\"",
        "\"Type\"",
        "\"node_name\"",
        "\"source_names\"",
        "\"destination_names\"",
        "\"l7\"",
        "\"event_type\"",
        "\"destination_service\"",
        "\"traffic_direction\"",
        "\"policy_match_type\"",
        "\"drop_reason_desc\"",
        "\"is_reply\"",
        "\"proxy_port\"",
        "\"socket_cookie\"",
        "\"cgroup_id\"",
        "\"Summary\"",
        "\"egress_denied_by\"",
        "\"policy_log\"",
    ]
    .into();
    // Each top-level key appears after the one before it.
    let mut at = 0;
    for k in keys {
        let found = json[at..]
            .find(k)
            .unwrap_or_else(|| panic!("{k} missing or out of order in {json}"));
        at += found + k.len();
    }
    for fragment in [
        r#""time":"1970-01-01T00:00:01.000000005Z""#,
        r#""auth_type":"SPIRE""#,
        r#""ipVersion":"IPv4","encrypted":true"#,
        r#""l7":{"type":"RESPONSE","latency_ns":"1500000","kafka":{"error_code":3,"#,
        r#""destination":{"identity":2,"labels":["reserved:world"]}"#,
        r#""drop_reason_desc":"POLICY_DENY""#,
        r#""socket_cookie":"18446744073709551615","cgroup_id":"42""#,
        r#""revision":"12","kind":"CiliumNetworkPolicy""#,
        r#""Summary":"s \u0026 \u003ct\u003e""#,
        r#""source":{"ID":7,"identity":300,"cluster_name":"default","namespace":"shop","labels":["k8s:app=web"],"pod_name":"web-1","workloads":[{"name":"web","kind":"Deployment"}]}"#,
    ] {
        assert!(json.contains(fragment), "{fragment} not in {json}");
    }
    let back: Flow = serde_json::from_str(&json).unwrap();
    assert_eq!(back, flow);
    // Numbers are accepted where protojson writes strings or names.
    let lenient: Flow =
        serde_json::from_str(r#"{"verdict":2,"socket_cookie":5,"drop_reason_desc":133}"#).unwrap();
    assert_eq!(lenient.verdict, FlowVerdict::Dropped);
    assert_eq!(lenient.socket_cookie, 5);
    assert_eq!(lenient.drop_reason_desc, DropReasonDesc(133));
}

fn policy(kind: &'static str, ns: Option<&str>, name: &str) -> Arc<PolicyRef> {
    Arc::new(PolicyRef {
        kind,
        namespace: ns.map(str::to_owned),
        name: name.into(),
    })
}

fn labels(ls: &[&str]) -> LabelSet {
    ls.iter().map(|l| Label::parse(l)).collect()
}

#[test]
fn policy_verdict_and_drop_flows_from_a_decision() {
    let denied_by = [policy("CiliumNetworkPolicy", Some("shop"), "deny-stranger")];
    let ev = L4Event {
        time: Timestamp::new(1_700_000_000, 0),
        node_name: "node-a",
        source: Endpoint::workload(
            Identity(300),
            "default",
            "shop",
            "stranger",
            &labels(&["k8s:app=stranger", "k8s:io.kubernetes.pod.namespace=shop"]),
        )
        .into(),
        destination: Endpoint::workload(
            Identity(301),
            "default",
            "shop",
            "backend",
            &labels(&["k8s:app=backend"]),
        )
        .into(),
        source_ip: IpAddr::V4(Ipv4Addr::new(10, 200, 1, 9)),
        destination_ip: IpAddr::V4(Ipv4Addr::new(10, 200, 1, 3)),
        l4: Layer4::connection(sluice_identity::Protocol::Tcp, 40000, 8080),
        direction: Direction::Ingress,
        verdict: FlowVerdict::Dropped,
        drop_reason: Some(DropReason::PolicyDenyList),
        match_type: PolicyMatchType::L3L4,
        allowed_by: &[],
        denied_by: &denied_by,
        policy_revision: 3,
        auth: None,
        proxy_port: None,
        socket_cookie: Some(99),
        cgroup_id: None,
    };
    let pv = Flow::policy_verdict(&ev);
    assert_eq!(
        pv.event_type,
        Some(CiliumEventType {
            event_type: 5,
            sub_type: 0
        })
    );
    assert_eq!(pv.drop_reason_desc, DropReasonDesc(181));
    assert_eq!(pv.drop_reason, 181);
    assert_eq!(pv.ingress_denied_by[0].name, "deny-stranger");
    assert_eq!(pv.ingress_denied_by[0].revision, 3);
    assert_eq!(
        pv.ingress_denied_by[0].labels,
        [
            "k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
            "k8s:io.cilium.k8s.policy.name=deny-stranger",
            "k8s:io.cilium.k8s.policy.namespace=shop",
        ]
    );
    assert!(pv.egress_denied_by.is_empty());
    let opts = PrintOptions {
        policy_names: true,
        ..PrintOptions::default()
    };
    assert_eq!(
        compact(&pv, &opts),
        "Nov 14 22:13:20.000: shop/stranger:40000 (ID:300) -> shop/backend:8080 (ID:301) \
         policy-verdict:L3-L4 INGRESS DENIED BY deny-stranger (CiliumNetworkPolicy) (TCP Flags: SYN)"
    );
    let json = FlowsResponse::flow(Arc::new(pv)).to_json_line();
    assert!(
        json.contains(
            r#""l4":{"TCP":{"source_port":40000,"destination_port":8080,"flags":{"SYN":true}}}"#
        ),
        "{json}"
    );
    assert!(json.contains(r#""source":{"identity":300,"cluster_name":"default","namespace":"shop","labels":["k8s:app=stranger","k8s:io.kubernetes.pod.namespace=shop"],"pod_name":"stranger"}"#), "{json}");
    assert!(json.contains(r#""traffic_direction":"INGRESS","policy_match_type":2,"drop_reason_desc":"POLICY_DENY","is_reply":false,"socket_cookie":"99""#), "{json}");

    let drop = Flow::drop_event(&ev).unwrap();
    assert_eq!(
        compact(&drop, &PrintOptions::default()),
        "Nov 14 22:13:20.000: shop/stranger:40000 (ID:300) -> shop/backend:8080 (ID:301) \
         Policy denied by denylist DROPPED (TCP Flags: SYN)"
    );

    let allowed_by = [policy("CiliumClusterwideNetworkPolicy", None, "allow-dns")];
    let allowed = L4Event {
        verdict: FlowVerdict::Forwarded,
        drop_reason: None,
        direction: Direction::Egress,
        denied_by: &[],
        allowed_by: &allowed_by,
        l4: Layer4::connection(sluice_identity::Protocol::Udp, 5353, 53),
        destination: Endpoint::from_identity(Identity::WORLD).into(),
        auth: Some(sluice_identity::policy::AuthMode::Required),
        ..ev.clone()
    };
    assert!(Flow::drop_event(&allowed).is_none());
    let pv = Flow::policy_verdict(&allowed);
    assert_eq!(
        pv.egress_allowed_by[0].kind,
        "CiliumClusterwideNetworkPolicy"
    );
    assert!(pv.egress_allowed_by[0].namespace.is_empty());
    assert_eq!(pv.drop_reason_desc, DropReasonDesc(0));
    assert_eq!(
        compact(&pv, &opts),
        "Nov 14 22:13:20.000: shop/stranger:5353 (ID:300) -> 10.200.1.3:53 (world) \
         policy-verdict:L3-L4 EGRESS ALLOWED BY allow-dns (CiliumClusterwideNetworkPolicy) (UDP; SPIRE)"
    );

    let audit = L4Event {
        verdict: FlowVerdict::Audit,
        drop_reason: Some(DropReason::PolicyDenied),
        match_type: PolicyMatchType::None,
        denied_by: &[],
        ..ev.clone()
    };
    let pv = Flow::policy_verdict(&audit);
    assert!(compact(&pv, &PrintOptions::default()).contains("policy-verdict:none INGRESS AUDITED"));
    assert_eq!(
        pv.drop_reason_desc,
        DropReasonDesc(0),
        "audit flows carry no drop reason"
    );
    assert!(Flow::drop_event(&audit).is_none());
}

#[test]
fn http_request_and_response_flows() {
    let ev = HttpEvent {
        node_name: "node-a",
        source: Endpoint::workload(
            Identity(300),
            "default",
            "shop",
            "frontend",
            &LabelSet::new(),
        )
        .into(),
        destination: Endpoint::workload(
            Identity(301),
            "default",
            "shop",
            "backend",
            &LabelSet::new(),
        )
        .into(),
        source_addr: SocketAddr::from(([10, 200, 1, 2], 41000)),
        destination_addr: SocketAddr::from(([10, 200, 1, 3], 8080)),
        direction: Direction::Ingress,
        method: "GET",
        url: "http://backend:8080/api/v1/users?id=1",
        version: HttpVersion::Http11,
        proxy_port: Some(15001),
    };
    let headers = vec![
        HttpHeader {
            key: "X-B".into(),
            value: "2".into(),
        },
        HttpHeader {
            key: "Accept".into(),
            value: "*/*".into(),
        },
        HttpHeader {
            key: "X-B".into(),
            value: "1".into(),
        },
    ];
    let req = Flow::http_request(&ev, Timestamp::new(0, 0), FlowVerdict::Dropped, headers);
    let http = req.http().unwrap();
    assert_eq!(http.code, 0);
    assert_eq!(
        http.headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_str()))
            .collect::<Vec<_>>(),
        [("Accept", "*/*"), ("X-B", "2"), ("X-B", "1")]
    );
    assert_eq!(req.flow_type, FlowType::L7);
    assert_eq!(req.drop_reason_desc, DropReasonDesc(0));
    assert_eq!(
        compact(&req, &PrintOptions::default()),
        "Jan  1 00:00:00.000: shop/frontend:41000 (ID:300) -> shop/backend:8080 (ID:301) \
         http-request DROPPED (HTTP/1.1 GET http://backend:8080/api/v1/users?id=1)"
    );
    let json = flow_json(&req);
    assert!(json.contains(r#""l7":{"type":"REQUEST","http":{"method":"GET","url":"http://backend:8080/api/v1/users?id=1","protocol":"HTTP/1.1","headers":[{"key":"Accept","value":"*/*"}"#), "{json}");
    assert!(json.contains(r#""event_type":{"type":129}"#), "{json}");

    let resp = Flow::http_response(
        &ev,
        Timestamp::new(0, 3_000_000),
        403,
        Duration::from_micros(2500),
        vec![],
    );
    assert_eq!(resp.is_reply, Some(true));
    assert_eq!(resp.source.as_ref().unwrap().pod_name, "backend");
    assert_eq!(resp.ip.as_ref().unwrap().source, "10.200.1.3");
    assert_eq!(resp.l4.as_ref().unwrap().ports(), Some((8080, 41000)));
    assert_eq!(resp.l7.as_ref().unwrap().latency_ns, 2_500_000);
    // Replies print from the client's side with the arrow reversed.
    assert_eq!(
        compact(&resp, &PrintOptions::default()),
        "Jan  1 00:00:00.003: shop/frontend:41000 (ID:300) <- shop/backend:8080 (ID:301) \
         http-response FORWARDED (HTTP/1.1 403 2ms (GET http://backend:8080/api/v1/users?id=1))"
    );
}
