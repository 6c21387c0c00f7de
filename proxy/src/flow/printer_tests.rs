//! Cases from cilium/cilium hubble/pkg/printer/printer_test.go
//! (`TestPrinter_WriteProtoFlow`, `Test_getHostNames`, `Test_getFlowType`,
//! `TestHostname`), rebuilt on sluice's types.

use super::*;
use crate::flow::record::{
    AuthType, CiliumEventType, Dns, Endpoint, Http, Ip, L7FlowType, Layer7, Ports, Service, Tcp,
};

/// printer_test.go's `f`.
pub(crate) fn hubble_flow() -> Flow {
    Flow {
        time: Some(Timestamp::new(1234, 567_800_000)),
        flow_type: crate::flow::record::FlowType::L3L4,
        node_name: "k8s1".into(),
        verdict: FlowVerdict::Dropped,
        ip: Some(Ip {
            source: "1.1.1.1".into(),
            destination: "2.2.2.2".into(),
            ..Ip::default()
        }),
        source: Some(
            Endpoint {
                identity: 4,
                ..Endpoint::default()
            }
            .into(),
        ),
        destination: Some(
            Endpoint {
                identity: 12345,
                ..Endpoint::default()
            }
            .into(),
        ),
        l4: Some(Layer4::Tcp(Tcp {
            source_port: 31793,
            destination_port: 8080,
            flags: None,
        })),
        event_type: Some(CiliumEventType {
            event_type: event_type::DROP,
            sub_type: 133,
        }),
        summary: "TCP Flags: SYN".into(),
        is_reply: Some(false),
        ..Flow::default()
    }
}

fn policy(name: &str, ns: &str, kind: &str) -> Policy {
    Policy {
        name: name.into(),
        namespace: ns.into(),
        kind: kind.into(),
        ..Policy::default()
    }
}

fn policy_verdict(base: &Flow) -> Flow {
    Flow {
        event_type: Some(CiliumEventType {
            event_type: event_type::POLICY_VERDICT,
            sub_type: 0,
        }),
        is_reply: None,
        ..base.clone()
    }
}

const COMPACT: PrintOptions = PrintOptions {
    node_name: false,
    policy_names: false,
    ip_translation: true,
};
const WITH_NODE: PrintOptions = PrintOptions {
    node_name: true,
    ..COMPACT
};
const WITH_POLICIES: PrintOptions = PrintOptions {
    policy_names: true,
    ..WITH_NODE
};

#[test]
fn compact_lines_match_hubble() {
    let f = hubble_flow();
    let reply = Flow {
        is_reply: Some(true),
        ..f.clone()
    };
    let unknown = Flow {
        is_reply: None,
        ..f.clone()
    };
    let mut denied = policy_verdict(&f);
    denied.traffic_direction = TrafficDirection::Egress;
    denied.egress_denied_by = vec![policy(
        "my-policy",
        "my-policy-namespace",
        "CiliumNetworkPolicy",
    )];
    let mut allowed = policy_verdict(&f);
    allowed.verdict = FlowVerdict::Forwarded;
    allowed.traffic_direction = TrafficDirection::Ingress;
    allowed.ingress_allowed_by = vec![
        policy("my-policy", "my-policy-namespace", "CiliumNetworkPolicy"),
        policy("my-policy-2", "", "CiliumClusterwideNetworkPolicy"),
    ];
    allowed.policy_match_type = 1;
    let mut audited = policy_verdict(&f);
    audited.verdict = FlowVerdict::Audit;
    audited.traffic_direction = TrafficDirection::Egress;
    audited.egress_denied_by = vec![policy(
        "my-policy",
        "my-policy-namespace",
        "CiliumNetworkPolicy",
    )];

    let cases: &[(&str, &Flow, PrintOptions, &str)] = &[
        (
            "compact",
            &f,
            COMPACT,
            "Jan  1 00:20:34.567: 1.1.1.1:31793 (health) -> 2.2.2.2:8080 (ID:12345) Policy denied DROPPED (TCP Flags: SYN)",
        ),
        (
            "compact-with-node",
            &f,
            WITH_NODE,
            "Jan  1 00:20:34.567 [k8s1]: 1.1.1.1:31793 (health) -> 2.2.2.2:8080 (ID:12345) Policy denied DROPPED (TCP Flags: SYN)",
        ),
        (
            "compact-reply",
            &reply,
            WITH_NODE,
            "Jan  1 00:20:34.567 [k8s1]: 2.2.2.2:8080 (ID:12345) <- 1.1.1.1:31793 (health) Policy denied DROPPED (TCP Flags: SYN)",
        ),
        (
            "compact-policy-verdict-denied",
            &denied,
            WITH_NODE,
            "Jan  1 00:20:34.567 [k8s1]: 1.1.1.1:31793 (health) <> 2.2.2.2:8080 (ID:12345) policy-verdict:none EGRESS DENIED (TCP Flags: SYN)",
        ),
        (
            "compact-policy-verdict-denied-with-policy-name",
            &denied,
            WITH_POLICIES,
            "Jan  1 00:20:34.567 [k8s1]: 1.1.1.1:31793 (health) <> 2.2.2.2:8080 (ID:12345) policy-verdict:none EGRESS DENIED BY my-policy (CiliumNetworkPolicy) (TCP Flags: SYN)",
        ),
        (
            "compact-policy-verdict-allowed-with-policy-name",
            &allowed,
            WITH_POLICIES,
            "Jan  1 00:20:34.567 [k8s1]: 1.1.1.1:31793 (health) <> 2.2.2.2:8080 (ID:12345) policy-verdict:L3-Only INGRESS ALLOWED BY my-policy (CiliumNetworkPolicy), my-policy-2 (CiliumClusterwideNetworkPolicy) (TCP Flags: SYN)",
        ),
        (
            "compact-policy-verdict-audited-with-policy-name",
            &audited,
            WITH_POLICIES,
            "Jan  1 00:20:34.567 [k8s1]: 1.1.1.1:31793 (health) <> 2.2.2.2:8080 (ID:12345) policy-verdict:none EGRESS AUDITED BY my-policy (CiliumNetworkPolicy) (TCP Flags: SYN)",
        ),
        (
            "compact-direction-unknown",
            &unknown,
            WITH_NODE,
            "Jan  1 00:20:34.567 [k8s1]: 1.1.1.1:31793 (health) <> 2.2.2.2:8080 (ID:12345) Policy denied DROPPED (TCP Flags: SYN)",
        ),
    ];
    for (name, flow, opts, want) in cases {
        assert_eq!(compact(flow, opts), *want, "{name}");
    }
}

#[test]
fn dict_and_table_match_hubble() {
    let f = hubble_flow();
    assert_eq!(
        dict(&f, &COMPACT),
        "  TIMESTAMP: Jan  1 00:20:34.567\n     SOURCE: 1.1.1.1:31793\nDESTINATION: 2.2.2.2:8080\n       TYPE: Policy denied\n    VERDICT: DROPPED\n    SUMMARY: TCP Flags: SYN",
        "dict"
    );
    assert_eq!(
        dict(&f, &WITH_NODE),
        "  TIMESTAMP: Jan  1 00:20:34.567\n       NODE: k8s1\n     SOURCE: 1.1.1.1:31793\nDESTINATION: 2.2.2.2:8080\n       TYPE: Policy denied\n    VERDICT: DROPPED\n    SUMMARY: TCP Flags: SYN",
        "dict-with-node"
    );
    let mut denied = policy_verdict(&f);
    denied.traffic_direction = TrafficDirection::Egress;
    denied.egress_denied_by = vec![policy(
        "my-policy",
        "my-policy-namespace",
        "CiliumNetworkPolicy",
    )];
    let with_policies = PrintOptions {
        policy_names: true,
        ..COMPACT
    };
    assert_eq!(
        dict(&denied, &with_policies),
        "  TIMESTAMP: Jan  1 00:20:34.567\n     SOURCE: 1.1.1.1:31793\nDESTINATION: 2.2.2.2:8080\n       TYPE: policy-verdict:none EGRESS\n    VERDICT: DENIED BY my-policy (CiliumNetworkPolicy)\n    SUMMARY: TCP Flags: SYN",
        "dict-with-policy-name"
    );

    let table = render_table(&[table_header(&COMPACT), table_row(&f, &COMPACT)]);
    assert_eq!(
        table,
        "TIMESTAMP             SOURCE          DESTINATION    TYPE            VERDICT   SUMMARY\n\
         Jan  1 00:20:34.567   1.1.1.1:31793   2.2.2.2:8080   Policy denied   DROPPED   TCP Flags: SYN\n",
        "tabular"
    );
    let table = render_table(&[table_header(&WITH_NODE), table_row(&f, &WITH_NODE)]);
    assert_eq!(
        table,
        "TIMESTAMP             NODE   SOURCE          DESTINATION    TYPE            VERDICT   SUMMARY\n\
         Jan  1 00:20:34.567   k8s1   1.1.1.1:31793   2.2.2.2:8080   Policy denied   DROPPED   TCP Flags: SYN\n",
        "tabular-with-node"
    );
}

fn with_ip(f: Flow) -> Flow {
    Flow {
        ip: Some(Ip {
            source: "1.1.1.1".into(),
            destination: "2.2.2.2".into(),
            ..Ip::default()
        }),
        ..f
    }
}

#[test]
fn host_names_match_hubble() {
    // Test_getHostNames (with IP translation)
    let pods = with_ip(Flow {
        source: Some(
            Endpoint {
                namespace: "srcns".into(),
                pod_name: "srcpod".into(),
                ..Endpoint::default()
            }
            .into(),
        ),
        destination: Some(
            Endpoint {
                namespace: "dstns".into(),
                pod_name: "dstpod".into(),
                ..Endpoint::default()
            }
            .into(),
        ),
        ..Flow::default()
    });
    let udp = with_ip(Flow {
        l4: Some(Layer4::Udp(Ports {
            source_port: 55555,
            destination_port: 53,
        })),
        ..Flow::default()
    });
    let services = with_ip(Flow {
        l4: Some(Layer4::Tcp(Tcp {
            source_port: 55555,
            destination_port: 80,
            flags: None,
        })),
        source_service: Some(Service {
            name: "xwing".into(),
            namespace: "default".into(),
        }),
        destination_service: Some(Service {
            name: "tiefighter".into(),
            namespace: "deathstar".into(),
        }),
        ..Flow::default()
    });
    let names = with_ip(Flow {
        l4: Some(Layer4::Tcp(Tcp {
            source_port: 54321,
            destination_port: 65432,
            flags: None,
        })),
        source_names: vec!["a".into()],
        destination_names: vec!["b".into()],
        ..Flow::default()
    });
    let v6 = Flow {
        ip: Some(Ip {
            source: "f00d::1".into(),
            destination: "f00d::2".into(),
            ..Ip::default()
        }),
        l4: udp.l4.clone(),
        ..Flow::default()
    };
    let cases: &[(&str, Flow, (&str, &str))] = &[
        ("nil ip", Flow::default(), ("", "")),
        (
            "valid ips",
            with_ip(Flow::default()),
            ("1.1.1.1", "2.2.2.2"),
        ),
        (
            "valid ips/endpoints",
            pods,
            ("srcns/srcpod", "dstns/dstpod"),
        ),
        ("valid udp", udp, ("1.1.1.1:55555", "2.2.2.2:53")),
        (
            "valid tcp service",
            services,
            ("default/xwing:55555", "deathstar/tiefighter:80"),
        ),
        ("dns", names, ("a:54321", "b:65432")),
        ("ipv6", v6, ("[f00d::1]:55555", "[f00d::2]:53")),
    ];
    for (name, flow, (src, dst)) in cases {
        let (s, d) = host_names(flow, &PrintOptions::default());
        assert_eq!((s.as_str(), d.as_str()), (*src, *dst), "{name}");
    }
    // TestHostname without IP translation: the IP stays, port 0 is dropped.
    let numeric = PrintOptions {
        ip_translation: false,
        ..PrintOptions::default()
    };
    assert_eq!(
        hostname("1.1.1.1", Some(80), "default", "pod", "", &[], &numeric),
        "1.1.1.1:80"
    );
    assert_eq!(
        hostname("1.1.1.1", Some(0), "default", "pod", "svc", &[], &numeric),
        "1.1.1.1"
    );
    let tr = PrintOptions::default();
    assert_eq!(
        hostname("", None, "default", "pod", "service", &[], &tr),
        "default/pod"
    );
    assert_eq!(
        hostname("", None, "default", "", "service", &[], &tr),
        "default/service"
    );
    assert_eq!(
        hostname("", None, "", "", "", &["a".into(), "b".into()], &tr),
        "a,b"
    );
}

#[test]
fn flow_types_match_hubble() {
    // Test_getFlowType
    let l7 = |l7_type, record| Flow {
        l7: Some(Layer7 {
            l7_type,
            latency_ns: 0,
            record,
        }),
        ..Flow::default()
    };
    let ev = |t, s| Flow {
        event_type: Some(CiliumEventType {
            event_type: t,
            sub_type: s,
        }),
        ..Flow::default()
    };
    let mut pv_l3l4 = ev(event_type::POLICY_VERDICT, 0);
    pv_l3l4.verdict = FlowVerdict::Forwarded;
    pv_l3l4.policy_match_type = 2;
    pv_l3l4.traffic_direction = TrafficDirection::Ingress;
    let mut pv_none = ev(event_type::POLICY_VERDICT, 0);
    pv_none.verdict = FlowVerdict::Dropped;
    pv_none.traffic_direction = TrafficDirection::Ingress;
    let cases: &[(&str, Flow, &str)] = &[
        ("L7", l7(L7FlowType::Request, None), "l7-request"),
        (
            "HTTP",
            l7(L7FlowType::Response, Some(L7Record::Http(Http::default()))),
            "http-response",
        ),
        (
            "DNS",
            l7(
                L7FlowType::Request,
                Some(L7Record::Dns(Dns {
                    observation_source: "proxy".into(),
                    ..Dns::default()
                })),
            ),
            "dns-request proxy",
        ),
        ("trace to-host", ev(event_type::TRACE, 2), "to-host"),
        ("trace to-endpoint", ev(event_type::TRACE, 0), "to-endpoint"),
        (
            "policy verdict L3-L4",
            pv_l3l4,
            "policy-verdict:L3-L4 INGRESS",
        ),
        (
            "policy verdict none",
            pv_none,
            "policy-verdict:none INGRESS",
        ),
        (
            "drop 181",
            ev(event_type::DROP, 181),
            "Policy denied by denylist",
        ),
        (
            "drop 189",
            ev(event_type::DROP, 189),
            "Authentication required",
        ),
        ("invalid", ev(event_type::TRACE, 123), "123"),
        ("nil type", Flow::default(), "UNKNOWN"),
    ];
    for (name, flow, want) in cases {
        assert_eq!(flow_type(flow), *want, "{name}");
    }
}

#[test]
fn summary_carries_auth_type_and_lost_events_print() {
    let mut f = hubble_flow();
    f.auth_type = AuthType::Spire;
    assert!(compact(&f, &COMPACT).ends_with("(TCP Flags: SYN; SPIRE)"));
    assert_eq!(identity(0), "(unknown)");
    assert_eq!(identity(2), "(world)");
    assert_eq!(identity(256), "(ID:256)");
    let lost = FlowsResponse::lost(7, "n", Timestamp::new(0, 0));
    assert_eq!(
        compact_response(&lost, &COMPACT),
        "EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 7"
    );
    assert_eq!(
        flow_json(&Flow::default()),
        "{}",
        "an empty flow has no fields"
    );
}

use crate::flow::json::flow_json;
