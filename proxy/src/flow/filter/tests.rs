//! Table tests. Expected values come from cilium/cilium: pkg/hubble/filters/
//! k8s_test.go, http_test.go, protocol_test.go, verdict_test.go, port_test.go,
//! ip_test.go, filters_test.go, and hubble/cmd/observe/flows_filter_test.go.

use super::flags::{FilterBuilder, FilterFlag};
use super::*;
use crate::flow::record::{
    CiliumEventType, Endpoint, Http, Icmp, Ip, L7Record, Layer7, Ports, Tcp,
};

fn filters(whitelist: Vec<FlowFilter>) -> CompiledFilters {
    FlowFilters {
        whitelist,
        blacklist: Vec::new(),
    }
    .compile()
    .unwrap()
}

fn pod(ns: &str, name: &str) -> Option<std::sync::Arc<Endpoint>> {
    Some(
        Endpoint {
            namespace: ns.into(),
            pod_name: name.into(),
            ..Endpoint::default()
        }
        .into(),
    )
}

fn from_pod(ns: &str, name: &str) -> Flow {
    Flow {
        source: pod(ns, name),
        ..Flow::default()
    }
}

fn between(src: (&str, &str), dst: (&str, &str)) -> Flow {
    Flow {
        source: pod(src.0, src.1),
        destination: pod(dst.0, dst.1),
        ..Flow::default()
    }
}

fn http(h: Http) -> Flow {
    Flow {
        event_type: Some(CiliumEventType {
            event_type: event_type::ACCESS_LOG,
            sub_type: 0,
        }),
        l7: Some(Layer7 {
            record: Some(L7Record::Http(h)),
            ..Layer7::default()
        }),
        ..Flow::default()
    }
}

fn code(c: u32) -> Flow {
    http(Http {
        code: c,
        ..Http::default()
    })
}

fn url(u: &str) -> Flow {
    http(Http {
        url: u.into(),
        ..Http::default()
    })
}

fn check(name: &str, f: &CompiledFilters, flows: &[Flow], want: &[bool]) {
    assert_eq!(flows.len(), want.len(), "{name}: table size");
    for (i, (flow, want)) in flows.iter().zip(want).enumerate() {
        assert_eq!(f.matches(flow), *want, "{name}: flow {i}");
    }
}

#[test]
fn pod_filters() {
    // k8s_test.go TestPodFilter
    let f = filters(vec![FlowFilter {
        source_pod: vec!["xwing".into(), "default/tiefighter".into()],
        ..FlowFilter::default()
    }]);
    let dst_only = Flow {
        destination: pod("default", "xwing"),
        ..Flow::default()
    };
    check(
        "source pod",
        &f,
        &[
            from_pod("default", "xwing"),
            from_pod("default", "tiefighter"),
            from_pod("kube-system", "xwing"),
            dst_only,
        ],
        &[true, true, false, false],
    );

    let f = filters(vec![
        FlowFilter {
            source_pod: vec!["xwing".into()],
            ..FlowFilter::default()
        },
        FlowFilter {
            destination_pod: vec!["deathstar".into()],
            ..FlowFilter::default()
        },
    ]);
    check(
        "source or destination pod",
        &f,
        &[
            between(("default", "xwing"), ("default", "deathstar")),
            between(("default", "tiefighter"), ("default", "deathstar")),
            between(("default", "deathstar"), ("default", "xwing")),
            between(("default", "tiefighter"), ("default", "xwing")),
        ],
        &[true, true, false, false],
    );

    let f = filters(vec![FlowFilter {
        source_pod: vec!["xwing".into(), "tiefighter".into()],
        destination_pod: vec!["deathstar".into()],
        ..FlowFilter::default()
    }]);
    check(
        "source and destination pod",
        &f,
        &[
            between(("default", "xwing"), ("default", "deathstar")),
            between(("default", "tiefighter"), ("default", "deathstar")),
            between(("default", "deathstar"), ("default", "xwing")),
            between(("default", "tiefighter"), ("default", "xwing")),
        ],
        &[true, true, false, false],
    );

    let f = filters(vec![
        FlowFilter {
            source_pod: vec!["kube-system/".into()],
            ..FlowFilter::default()
        },
        FlowFilter {
            destination_pod: vec!["kube-system/".into()],
            ..FlowFilter::default()
        },
    ]);
    check(
        "namespace filter",
        &f,
        &[
            between(("kube-system", "coredns"), ("kube-system", "kube-proxy")),
            between(("default", "tiefighter"), ("kube-system", "coredns")),
            between(("kube-system", "coredns"), ("default", "xwing")),
            between(("default", "tiefighter"), ("default", "xwing")),
        ],
        &[true, true, true, false],
    );

    let f = filters(vec![FlowFilter {
        source_pod: vec!["xwing".into(), "kube-system/coredns-".into()],
        ..FlowFilter::default()
    }]);
    check(
        "prefix filter",
        &f,
        &[
            from_pod("default", "xwing"),
            from_pod("default", "xwing-t-65b"),
            from_pod("kube-system", "coredns-12345"),
            from_pod("kube-system", "-coredns-12345"),
            from_pod("default", "tiefighter"),
        ],
        &[true, true, true, false, false],
    );

    let f = filters(vec![FlowFilter {
        source_pod: vec!["xwing".into()],
        ..FlowFilter::default()
    }]);
    check(
        "invalid data",
        &f,
        &[Flow::default(), from_pod("", "xwing")],
        &[false, false],
    );

    for bad in [
        FlowFilter {
            source_pod: vec![String::new()],
            ..FlowFilter::default()
        },
        FlowFilter {
            destination_pod: vec![String::new()],
            ..FlowFilter::default()
        },
    ] {
        let err = FlowFilters {
            whitelist: vec![bad],
            blacklist: vec![],
        }
        .compile()
        .unwrap_err();
        assert!(matches!(err, FilterError::PodName(_)), "{err}");
    }
}

#[test]
fn http_status_filters() {
    // http_test.go TestHTTPFilters, status code cases
    let l7 = vec![EventTypeFilter {
        event_type: event_type::ACCESS_LOG,
        ..EventTypeFilter::default()
    }];
    let status = |codes: &[&str]| FlowFilter {
        http_status_code: codes.iter().map(|s| (*s).to_owned()).collect(),
        event_type: l7.clone(),
        ..FlowFilter::default()
    };
    check(
        "status code full",
        &filters(vec![status(&["200", "302"])]),
        &[code(200), code(302), code(404), code(500)],
        &[true, true, false, false],
    );
    check(
        "status code prefix",
        &filters(vec![status(&["40+", "5+"])]),
        &[
            code(302),
            code(400),
            code(404),
            code(410),
            code(4),
            code(500),
            code(501),
            code(510),
            code(50),
        ],
        &[false, true, true, false, false, true, true, true, false],
    );
    check(
        "invalid data",
        &filters(vec![status(&["200"])]),
        &[Flow::default(), http(Http::default()), code(777)],
        &[false, false, false],
    );
    for bad in ["", "+", "909", "3++", "3+0"] {
        let err = FlowFilters {
            whitelist: vec![status(&[bad])],
            blacklist: vec![],
        }
        .compile()
        .unwrap_err();
        assert!(matches!(err, FilterError::HttpStatus(_)), "{bad:?}: {err}");
    }
    // "empty event type filter": no event type filter is compatible.
    let mut no_type = status(&["200"]);
    no_type.event_type.clear();
    check(
        "empty event type",
        &filters(vec![no_type]),
        &[code(200)],
        &[true],
    );
    // An event type filter without l7 makes HTTP filters an error.
    let trace_only = FlowFilter {
        http_method: vec!["GET".into()],
        event_type: vec![EventTypeFilter {
            event_type: event_type::TRACE,
            ..EventTypeFilter::default()
        }],
        ..FlowFilter::default()
    };
    let err = FlowFilters {
        whitelist: vec![trace_only],
        blacklist: vec![],
    }
    .compile()
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("http method requires the event type filter"),
        "{err}"
    );
}

#[test]
fn http_method_and_path_filters() {
    // http_test.go: methods compare case-insensitively; paths are unanchored regexes
    // on the URL's path, without the query.
    let method = |m: &str| FlowFilter {
        http_method: vec![m.into()],
        ..FlowFilter::default()
    };
    let get = http(Http {
        method: "gEt".into(),
        ..Http::default()
    });
    check(
        "GET",
        &filters(vec![method("GET")]),
        std::slice::from_ref(&get),
        &[true],
    );
    check("POST", &filters(vec![method("POST")]), &[get], &[false]);

    let f = filters(vec![FlowFilter {
        http_path: vec!["/docs/[a-z]+".into(), "/post/\\d+".into()],
        ..FlowFilter::default()
    }]);
    check(
        "path full",
        &f,
        &[
            url("/docs/"),
            url("/docs/tutorial/"),
            url("/post/"),
            url("/post/0"),
            url("/post/slug"),
            url("/post/123?key=value"),
            url("/slug"),
            url("http://api.example/post/7?x=/docs/a"),
        ],
        &[false, true, false, true, false, true, false, true],
    );
    let f = filters(vec![FlowFilter {
        http_path: vec!["/post/\\d+".into()],
        ..FlowFilter::default()
    }]);
    check(
        "invalid uri",
        &f,
        &[url("/post/0"), url("?/post/0")],
        &[true, false],
    );
    assert!(
        FlowFilters {
            whitelist: vec![FlowFilter {
                http_path: vec!["(".into()],
                ..FlowFilter::default()
            }],
            blacklist: vec![],
        }
        .compile()
        .is_err()
    );
}

fn l4(l4: Layer4) -> Flow {
    Flow {
        l4: Some(l4),
        ..Flow::default()
    }
}

fn tcp(src: u32, dst: u32) -> Flow {
    l4(Layer4::Tcp(Tcp {
        source_port: src,
        destination_port: dst,
        flags: None,
    }))
}

#[test]
fn protocol_and_port_filters() {
    // protocol_test.go / port_test.go
    let proto = |ps: &[&str]| FlowFilter {
        protocol: ps.iter().map(|s| (*s).to_owned()).collect(),
        ..FlowFilter::default()
    };
    let udp = l4(Layer4::Udp(Ports {
        source_port: 53,
        destination_port: 5353,
    }));
    let icmp4 = l4(Layer4::Icmpv4(Icmp::default()));
    let icmp6 = l4(Layer4::Icmpv6(Icmp::default()));
    let flows = [tcp(1, 2), udp.clone(), icmp4, icmp6, code(200)];
    check(
        "tcp",
        &filters(vec![proto(&["TCP"])]),
        &flows,
        &[true, false, false, false, false],
    );
    check(
        "udp",
        &filters(vec![proto(&["udp"])]),
        &flows,
        &[false, true, false, false, false],
    );
    check(
        "icmp",
        &filters(vec![proto(&["icmp"])]),
        &flows,
        &[false, false, true, true, false],
    );
    check(
        "icmpv6",
        &filters(vec![proto(&["icmpv6"])]),
        &flows,
        &[false, false, false, true, false],
    );
    check(
        "http",
        &filters(vec![proto(&["http"])]),
        &flows,
        &[false, false, false, false, true],
    );
    check(
        "tcp or http",
        &filters(vec![proto(&["tcp", "http"])]),
        &flows,
        &[true, false, false, false, true],
    );
    let unknown = FlowFilters {
        whitelist: vec![proto(&["gopher"])],
        blacklist: vec![],
    };
    assert!(matches!(unknown.compile(), Err(FilterError::Protocol(_))));

    let ports = |src: &[&str], dst: &[&str]| FlowFilter {
        source_port: src.iter().map(|s| (*s).to_owned()).collect(),
        destination_port: dst.iter().map(|s| (*s).to_owned()).collect(),
        ..FlowFilter::default()
    };
    check(
        "source port",
        &filters(vec![ports(&["12345", "53"], &[])]),
        &[tcp(12345, 80), udp.clone(), tcp(80, 12345), Flow::default()],
        &[true, true, false, false],
    );
    check(
        "destination port",
        &filters(vec![ports(&[], &["80"])]),
        &[tcp(12345, 80), udp, tcp(80, 12345)],
        &[true, false, false],
    );
    for bad in ["-1", "65536", "http"] {
        let r = FlowFilters {
            whitelist: vec![ports(&[bad], &[])],
            blacklist: vec![],
        }
        .compile();
        assert!(matches!(r, Err(FilterError::Port(_))), "{bad}");
    }
}

fn ips(src: &str, dst: &str) -> Flow {
    Flow {
        ip: Some(Ip {
            source: src.into(),
            destination: dst.into(),
            ..Ip::default()
        }),
        ..Flow::default()
    }
}

#[test]
fn ip_verdict_identity_direction_filters() {
    // ip_test.go: exact addresses and CIDRs; verdict_test.go; identity_test.go
    let f = filters(vec![FlowFilter {
        source_ip: vec!["1.1.1.1".into(), "10.0.0.0/8".into(), "f00d::/16".into()],
        ..FlowFilter::default()
    }]);
    check(
        "source ip",
        &f,
        &[
            ips("1.1.1.1", "2.2.2.2"),
            ips("10.1.2.3", "2.2.2.2"),
            ips("f00d::1", "::1"),
            ips("2.2.2.2", "1.1.1.1"),
            Flow::default(),
        ],
        &[true, true, true, false, false],
    );
    for bad in ["1.1.1", "10.0.0.0/33", "x"] {
        let r = FlowFilters {
            whitelist: vec![FlowFilter {
                destination_ip: vec![bad.into()],
                ..FlowFilter::default()
            }],
            blacklist: vec![],
        }
        .compile();
        assert!(matches!(r, Err(FilterError::Ip(_))), "{bad}");
    }

    let verdict = |v| Flow {
        verdict: v,
        ..Flow::default()
    };
    let f = filters(vec![FlowFilter {
        verdict: vec![FlowVerdict::Forwarded, FlowVerdict::Audit],
        ..FlowFilter::default()
    }]);
    check(
        "verdict",
        &f,
        &[
            verdict(FlowVerdict::Forwarded),
            verdict(FlowVerdict::Dropped),
            verdict(FlowVerdict::Audit),
            verdict(FlowVerdict::Unknown),
        ],
        &[true, false, true, false],
    );

    let id = |src: u32, dst: u32| Flow {
        source: Some(
            Endpoint {
                identity: src,
                ..Endpoint::default()
            }
            .into(),
        ),
        destination: Some(
            Endpoint {
                identity: dst,
                ..Endpoint::default()
            }
            .into(),
        ),
        ..Flow::default()
    };
    let f = filters(vec![FlowFilter {
        source_identity: vec![1, 2],
        destination_identity: vec![256],
        ..FlowFilter::default()
    }]);
    check(
        "identity",
        &f,
        &[id(1, 256), id(2, 256), id(2, 257), id(3, 256)],
        &[true, true, false, false],
    );

    let dir = |d| Flow {
        traffic_direction: d,
        ..Flow::default()
    };
    let f = filters(vec![FlowFilter {
        traffic_direction: vec![TrafficDirection::Ingress],
        ..FlowFilter::default()
    }]);
    check(
        "traffic direction",
        &f,
        &[
            dir(TrafficDirection::Ingress),
            dir(TrafficDirection::Egress),
            dir(TrafficDirection::Unknown),
        ],
        &[true, false, false],
    );
}

#[test]
fn label_and_event_type_filters() {
    let labelled = |labels: &[&str]| Flow {
        source: Some(
            Endpoint {
                labels: labels.iter().map(|s| (*s).to_owned()).collect(),
                ..Endpoint::default()
            }
            .into(),
        ),
        ..Flow::default()
    };
    let f = filters(vec![FlowFilter {
        source_label: vec!["k8s:app=web".into(), "reserved:world".into()],
        ..FlowFilter::default()
    }]);
    check(
        "source label",
        &f,
        &[
            labelled(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"]),
            labelled(&["reserved:world"]),
            labelled(&["k8s:app=db"]),
            Flow::default(),
        ],
        &[true, true, false, false],
    );

    let ev = |t, s| Flow {
        event_type: Some(CiliumEventType {
            event_type: t,
            sub_type: s,
        }),
        ..Flow::default()
    };
    let f = filters(vec![FlowFilter {
        event_type: vec![
            EventTypeFilter {
                event_type: event_type::DROP,
                ..EventTypeFilter::default()
            },
            EventTypeFilter {
                event_type: event_type::TRACE,
                match_sub_type: true,
                sub_type: 0,
            },
        ],
        ..FlowFilter::default()
    }]);
    check(
        "event type",
        &f,
        &[ev(1, 133), ev(4, 0), ev(4, 5), ev(5, 0), Flow::default()],
        &[true, true, false, false, false],
    );
}

#[test]
fn whitelist_and_blacklist_combine_like_hubble() {
    // filters_test.go: whitelist OR, blacklist NONE.
    let all = FlowFilters::default().compile().unwrap();
    assert!(all.matches(&Flow::default()));
    let f = FlowFilters {
        whitelist: vec![FlowFilter {
            source_pod: vec!["default/".into()],
            ..FlowFilter::default()
        }],
        blacklist: vec![FlowFilter {
            source_pod: vec!["default/xwing".into()],
            ..FlowFilter::default()
        }],
    }
    .compile()
    .unwrap();
    check(
        "black and white",
        &f,
        &[
            from_pod("default", "tiefighter"),
            from_pod("default", "xwing"),
            from_pod("empire", "x"),
        ],
        &[true, false, false],
    );
}

fn build(args: &[(&str, &str)]) -> Result<FlowFilters, String> {
    let mut b = FilterBuilder::new();
    for (name, value) in args {
        let flag = FilterFlag::from_name(name).unwrap_or_else(|| panic!("unknown flag {name}"));
        b.set(flag, value).map_err(|e| e.0)?;
    }
    b.build().map_err(|e| e.0)
}

fn ff(f: impl FnOnce(&mut FlowFilter)) -> FlowFilter {
    let mut out = FlowFilter::default();
    f(&mut out);
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn observe_flags_build_hubble_filters() {
    // hubble/cmd/observe/flows_filter_test.go
    // (source test, flags in order, whitelist, blacklist)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<FlowFilter>,
        Vec<FlowFilter>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "TestFilterDispatch",
            vec![
                ("from-ip", "1.2.3.4"),
                ("from-ip", "5.6.7.8"),
                ("not", ""),
                ("to-ip", "5.5.5.5"),
                ("verdict", "DROPPED"),
                ("type", "l7"),
            ],
            vec![ff(|f| {
                f.source_ip = strings(&["1.2.3.4", "5.6.7.8"]);
                f.verdict = vec![FlowVerdict::Dropped];
                f.event_type = vec![EventTypeFilter {
                    event_type: event_type::ACCESS_LOG,
                    ..EventTypeFilter::default()
                }];
            })],
            vec![ff(|f| f.destination_ip = strings(&["5.5.5.5"]))],
        ),
        (
            "TestFilterLeftRight",
            vec![
                ("ip", "1.2.3.4"),
                ("ip", "5.6.7.8"),
                ("verdict", "DROPPED"),
                ("not", ""),
                ("pod", "deathstar"),
                ("not", ""),
                ("http-status", "200"),
                ("http-method", "get"),
                ("http-path", "/page/\\d+"),
            ],
            vec![
                ff(|f| {
                    f.source_ip = strings(&["1.2.3.4", "5.6.7.8"]);
                    f.verdict = vec![FlowVerdict::Dropped];
                    f.http_method = strings(&["get"]);
                    f.http_path = strings(&["/page/\\d+"]);
                }),
                ff(|f| {
                    f.destination_ip = strings(&["1.2.3.4", "5.6.7.8"]);
                    f.verdict = vec![FlowVerdict::Dropped];
                    f.http_method = strings(&["get"]);
                    f.http_path = strings(&["/page/\\d+"]);
                }),
            ],
            vec![
                ff(|f| {
                    f.source_pod = strings(&["deathstar"]);
                    f.http_status_code = strings(&["200"]);
                }),
                ff(|f| {
                    f.destination_pod = strings(&["deathstar"]);
                    f.http_status_code = strings(&["200"]);
                }),
            ],
        ),
        (
            "TestLabels",
            vec![("label", "k1=v1,k2=v2"), ("label", "k3")],
            vec![
                ff(|f| f.source_label = strings(&["k1=v1,k2=v2", "k3"])),
                ff(|f| f.destination_label = strings(&["k1=v1,k2=v2", "k3"])),
            ],
            vec![],
        ),
        (
            "TestIdentity",
            vec![("identity", "1"), ("identity", "world")],
            vec![
                ff(|f| f.source_identity = vec![1, 2]),
                ff(|f| f.destination_identity = vec![1, 2]),
            ],
            vec![],
        ),
        (
            "TestFromToIdentityCombined single filter",
            vec![("from-pod", "cilium"), ("to-identity", "42")],
            vec![ff(|f| {
                f.source_pod = strings(&["cilium"]);
                f.destination_identity = vec![42];
            })],
            vec![],
        ),
        (
            "TestFromToIdentityCombined two filters",
            vec![("pod", "cilium"), ("to-identity", "42")],
            vec![
                ff(|f| {
                    f.source_pod = strings(&["cilium"]);
                    f.destination_identity = vec![42];
                }),
                ff(|f| {
                    f.destination_pod = strings(&["cilium"]);
                    f.destination_identity = vec![42];
                }),
            ],
            vec![],
        ),
        (
            "TestTrafficDirection mixed case",
            vec![
                ("traffic-direction", "INGRESS"),
                ("traffic-direction", "EgrEss"),
            ],
            vec![ff(|f| {
                f.traffic_direction = vec![TrafficDirection::Ingress, TrafficDirection::Egress];
            })],
            vec![],
        ),
        (
            "TestNamespace from or to namespace with port",
            vec![("namespace", "cilium"), ("port", "443")],
            vec![
                ff(|f| {
                    f.source_pod = strings(&["cilium/"]);
                    f.source_port = strings(&["443"]);
                }),
                ff(|f| {
                    f.destination_pod = strings(&["cilium/"]);
                    f.destination_port = strings(&["443"]);
                }),
            ],
            vec![],
        ),
        (
            "TestNamespace from namespace with port",
            vec![("from-namespace", "cilium"), ("from-port", "443")],
            vec![ff(|f| {
                f.source_pod = strings(&["cilium/"]);
                f.source_port = strings(&["443"]);
            })],
            vec![],
        ),
        (
            "TestNamespace to namespace with port",
            vec![("to-namespace", "cilium"), ("port", "443")],
            vec![
                ff(|f| {
                    f.destination_pod = strings(&["cilium/"]);
                    f.source_port = strings(&["443"]);
                }),
                ff(|f| {
                    f.destination_pod = strings(&["cilium/"]);
                    f.destination_port = strings(&["443"]);
                }),
            ],
            vec![],
        ),
        (
            "TestNamespace namespace and pod",
            vec![("namespace", "cilium"), ("pod", "foo-9c76d6c95-tf788")],
            vec![
                ff(|f| f.source_pod = strings(&["cilium/foo-9c76d6c95-tf788"])),
                ff(|f| f.destination_pod = strings(&["cilium/foo-9c76d6c95-tf788"])),
            ],
            vec![],
        ),
        (
            "TestNamespace to namespace and pod with namespace",
            vec![
                ("to-namespace", "cilium"),
                ("to-pod", "cilium/foo-9c76d6c95-tf788"),
            ],
            vec![ff(|f| {
                f.destination_pod = strings(&["cilium/foo-9c76d6c95-tf788"])
            })],
            vec![],
        ),
        (
            "TestNamespace from namespace to pod with namespace",
            vec![
                ("from-namespace", "kube-system"),
                ("to-pod", "cilium/foo-9c76d6c95-tf788"),
            ],
            vec![ff(|f| {
                f.source_pod = strings(&["kube-system/"]);
                f.destination_pod = strings(&["cilium/foo-9c76d6c95-tf788"]);
            })],
            vec![],
        ),
        (
            "TestFilterType",
            vec![
                ("type", "254"),
                ("type", "255:127"),
                ("type", "trace:to-endpoint"),
                ("type", "trace:from-endpoint"),
                ("type", "4:2"),
                ("type", "agent"),
                ("type", "agent:3"),
            ],
            vec![ff(|f| {
                let t = |event_type, sub: Option<i32>| EventTypeFilter {
                    event_type,
                    match_sub_type: sub.is_some(),
                    sub_type: sub.unwrap_or(0),
                };
                f.event_type = vec![
                    t(254, None),
                    t(255, Some(127)),
                    t(event_type::TRACE, Some(0)),
                    t(event_type::TRACE, Some(5)),
                    t(event_type::TRACE, Some(2)),
                    t(event_type::AGENT, None),
                    t(event_type::AGENT, Some(3)),
                ];
            })],
            vec![],
        ),
        ("TestDefaultFilter", vec![], vec![], vec![]),
    ];
    for (name, args, white, black) in cases {
        let got = build(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.whitelist, white, "{name}: whitelist");
        assert_eq!(got.blacklist, black, "{name}: blacklist");
    }
}

#[test]
fn observe_flag_errors_match_hubble() {
    // flows_filter_test.go TestConflicts_Table (the pairs sluice supports),
    // TestTrailingNot, TestFilterType, TestInvalidIdentity, TestTrafficDirection,
    // TestNamespace "conflicting pod and namespace".
    let conflicts = [
        ("port", "to-port"),
        ("port", "from-port"),
        ("identity", "to-identity"),
        ("identity", "from-identity"),
        ("ip", "from-ip"),
        ("ip", "to-ip"),
        ("label", "from-label"),
        ("label", "to-label"),
        ("pod", "from-pod"),
        ("pod", "to-pod"),
        ("namespace", "from-namespace"),
        ("namespace", "to-namespace"),
        ("ip", "pod"),
        ("from-ip", "from-pod"),
        ("to-ip", "to-pod"),
        ("ip", "namespace"),
        ("from-ip", "namespace"),
        ("to-ip", "to-namespace"),
        ("from-pod", "namespace"),
        ("to-pod", "namespace"),
    ];
    for (a, b) in conflicts {
        let err = build(&[(a, "1"), (b, "2")]).unwrap_err();
        assert!(err.contains("cannot be combined"), "{a} {b}: {err}");
    }
    let errors: &[(&[(&str, &str)], &str)] = &[
        (&[("from-ip", "1.2.3.4"), ("not", "")], "trailing --not"),
        (&[("not", ""), ("not", "")], "consecutive --not"),
        (&[("type", "some-invalid-type")], "unable to parse type"),
        (
            &[("type", "trace:some-invalid-sub-type")],
            "unable to parse event sub-type",
        ),
        (&[("from-identity", "bad")], "invalid security identity"),
        (
            &[("traffic-direction", "to the moon")],
            "to the moon: invalid traffic direction",
        ),
        (&[("verdict", "SOMETIMES")], "invalid --verdict value"),
        (
            &[
                ("to-namespace", "kube-system"),
                ("to-pod", "cilium/foo-9c76d6c95-tf788"),
            ],
            r#"namespace conflict: "kube-system" does not contain "cilium/foo-9c76d6c95-tf788""#,
        ),
    ];
    for (args, want) in errors {
        let err = build(args).unwrap_err();
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
