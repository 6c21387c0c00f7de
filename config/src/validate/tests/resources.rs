//! Workload, NodeConfig, Service, Namespace and CiliumCIDRGroup.

use super::*;
use crate::types::{
    CidrGroup, CidrGroupSpec, DnsSettings, HttpSettings, Namespace, NodeConfig, NodeConfigSpec,
    ProxyPorts, RunSpec, Service, ServicePort, ServiceSpec, Workload, WorkloadPort, WorkloadSpec,
};
use crate::validate::{cidr_group, namespace, node_config, service, workload};

fn wl(spec: WorkloadSpec) -> Workload {
    Workload {
        api_version: "sluice.io/v1alpha1".into(),
        kind: "Workload".into(),
        metadata: ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..meta("web-1", Some("shop"))
        },
        spec,
    }
}

fn wl_port(name: Option<&str>, port: u16, protocol: Option<&str>) -> WorkloadPort {
    WorkloadPort {
        name: name.map(str::to_owned),
        port,
        protocol: protocol.map(str::to_owned),
    }
}

fn strings_vec(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn workloads() {
    let cases = vec![
        case(
            "sluice Workload: a valid demo workload",
            wl(WorkloadSpec {
                service_account: Some("web".into()),
                addresses: strings_vec(&["10.0.0.5", "fd00::5"]),
                ports: vec![
                    wl_port(Some("http"), 8080, Some("TCP")),
                    wl_port(None, 9090, None),
                ],
                cgroup: Some("/system.slice/web.service".into()),
                run: Some(RunSpec {
                    command: strings_vec(&["/usr/bin/python3", "-m", "http.server"]),
                    env: None,
                    working_dir: None,
                }),
            }),
            &[],
        ),
        case(
            "sluice Workload: addresses are single IPs, listed once",
            wl(WorkloadSpec {
                addresses: strings_vec(&["10.0.0.0/24", "10.0.0.5", "10.0.0.5"]),
                ..WorkloadSpec::default()
            }),
            &[
                (
                    "spec.addresses[0]",
                    "invalid IP address \"10.0.0.0/24\": write one address, without a prefix length",
                ),
                ("spec.addresses[2]", "duplicate address 10.0.0.5"),
            ],
        ),
        case(
            "kubernetes ContainerPort rules: port 1-65535, unique IANA names, TCP/UDP/SCTP",
            wl(WorkloadSpec {
                ports: vec![
                    wl_port(Some("http"), 0, Some("tcp")),
                    wl_port(Some("http"), 81, None),
                    wl_port(Some("Metrics"), 82, None),
                ],
                ..WorkloadSpec::default()
            }),
            &[
                (
                    "spec.ports[0].port",
                    "port must be between 1 and 65535, inclusive",
                ),
                (
                    "spec.ports[0].protocol",
                    "unsupported protocol \"tcp\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
                ),
                ("spec.ports[1].name", "duplicate port name \"http\""),
                (
                    "spec.ports[2].name",
                    "invalid port name \"Metrics\": a port name is 1-15 lowercase letters, digits and '-', with at least one letter and no '-' at either end or twice in a row",
                ),
            ],
        ),
        case(
            "kubernetes: a service account name is a DNS-1123 subdomain",
            wl(WorkloadSpec {
                service_account: Some("Web_SA".into()),
                ..WorkloadSpec::default()
            }),
            &[(
                "spec.serviceAccount",
                "invalid service account name \"Web_SA\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
            )],
        ),
        case(
            "sluice Workload: run.command must name a program",
            wl(WorkloadSpec {
                run: Some(RunSpec::default()),
                ..WorkloadSpec::default()
            }),
            &[(
                "spec.run.command",
                "run.command must not be empty: name the program to start",
            )],
        ),
        case(
            "DESIGN safety rules: cgroup paths are absolute, never the root, never `..`",
            wl(WorkloadSpec {
                cgroup: Some("system.slice/../x".into()),
                ..WorkloadSpec::default()
            }),
            &[
                (
                    "spec.cgroup",
                    "invalid cgroup \"system.slice/../x\": write the path under the cgroup2 mount, starting with '/', like /system.slice/web.service",
                ),
                (
                    "spec.cgroup",
                    "invalid cgroup \"system.slice/../x\": '..' is not allowed",
                ),
            ],
        ),
        case(
            "DESIGN safety rules: the root cgroup is never enrolled",
            wl(WorkloadSpec {
                cgroup: Some("/".into()),
                ..WorkloadSpec::default()
            }),
            &[(
                "spec.cgroup",
                "the root cgroup cannot be enrolled: name the workload's own cgroup",
            )],
        ),
        case(
            "kubernetes: resources' own labels are plain labels",
            Workload {
                metadata: ObjectMeta {
                    labels: Some(labels(&[("app", "web app")])),
                    ..meta("web-1", Some("shop"))
                },
                ..wl(WorkloadSpec::default())
            },
            &[(
                "metadata.labels.app",
                "invalid label value \"web app\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')",
            )],
        ),
    ];
    run(cases, workload);
}

fn nc(spec: NodeConfigSpec) -> NodeConfig {
    NodeConfig {
        api_version: "sluice.io/v1alpha1".into(),
        kind: "NodeConfig".into(),
        metadata: ObjectMeta::default(),
        spec,
    }
}

#[test]
fn node_configs() {
    let proxy = |port: Option<u16>, dns_port: Option<u16>, socket: Option<&str>| {
        nc(NodeConfigSpec {
            proxy: Some(ProxyPorts {
                port,
                dns_port,
                admin_socket: socket.map(str::to_owned),
            }),
            ..NodeConfigSpec::default()
        })
    };
    let http = |body: Option<&str>, content_type: Option<&str>| {
        nc(NodeConfigSpec {
            http: Some(HttpSettings {
                denied_body: body.map(str::to_owned),
                denied_content_type: content_type.map(str::to_owned),
                ..HttpSettings::default()
            }),
            ..NodeConfigSpec::default()
        })
    };
    let timeouts = |header: Option<&str>, idle: Option<&str>| {
        nc(NodeConfigSpec {
            http: Some(HttpSettings {
                header_timeout: header.map(str::to_owned),
                idle_timeout: idle.map(str::to_owned),
                ..HttpSettings::default()
            }),
            ..NodeConfigSpec::default()
        })
    };
    let cases = vec![
        case(
            "sluice NodeConfig: all fields valid",
            nc(NodeConfigSpec {
                cluster_name: Some("prod-eu-1".into()),
                trust_domain: Some("prod.example_corp.io".into()),
                node_name: Some("node-1.example".into()),
                policy_enforcement: Some("always".into()),
                policy_audit_mode: Some(false),
                proxy: Some(ProxyPorts {
                    port: Some(15001),
                    dns_port: Some(15053),
                    admin_socket: Some("/run/sluice/admin.sock".into()),
                }),
                node_labels: Some(labels(&[("node-role.kubernetes.io/worker", "")])),
                allow_localhost: Some("policy".into()),
                dns: Some(DnsSettings {
                    upstream: Some("[fd00::10]:5353".into()),
                    reject_response: Some("nxdomain".into()),
                    min_ttl: Some(3600),
                    max_ips_per_hostname: Some(50),
                    state_file: Some("/var/lib/sluice/fqdn.json".into()),
                }),
                http: Some(HttpSettings {
                    denied_body: Some("Denied by policy; see https://wiki.example/l7".into()),
                    denied_content_type: Some("text/plain; charset=utf-8".into()),
                    header_timeout: Some("2s".into()),
                    idle_timeout: Some("1m30s".into()),
                }),
            }),
            &[],
        ),
        case(
            "sluice NodeConfig: deniedBody up to 4 KiB",
            http(Some(&"x".repeat(4096)), None),
            &[],
        ),
        case(
            "sluice NodeConfig: deniedBody over 4 KiB",
            http(Some(&"x".repeat(4097)), None),
            &[(
                "spec.http.deniedBody",
                "deniedBody is 4097 bytes, more than the limit of 4096 (4 KiB): a denial is sent with every denied request; keep it short",
            )],
        ),
        case(
            "RFC 9110 §8.3.1: a content type is type/subtype",
            http(None, Some("html")),
            &[(
                "spec.http.deniedContentType",
                "invalid deniedContentType \"html\": it is not type/subtype; write a media type such as \"text/plain\" or \"text/html; charset=utf-8\"",
            )],
        ),
        case(
            "RFC 9110 §5.5: a header value has no line breaks",
            http(None, Some("text/plain\r\nx-injected: 1")),
            &[(
                "spec.http.deniedContentType",
                "invalid deniedContentType \"text/plain\\r\\nx-injected: 1\": a header value carries only visible ASCII, spaces and tabs; write a media type such as \"text/plain\" or \"text/html; charset=utf-8\"",
            )],
        ),
        case(
            "Gateway API GEP-2257: durations are numbers with units h, m, s, ms",
            timeouts(Some("15"), Some("1.5s")),
            &[
                (
                    "spec.http.headerTimeout",
                    "invalid headerTimeout \"15\": write whole numbers with a unit h, m, s or ms, like \"15s\", \"1m30s\" or \"500ms\" (Gateway API duration)",
                ),
                (
                    "spec.http.idleTimeout",
                    "invalid idleTimeout \"1.5s\": write whole numbers with a unit h, m, s or ms, like \"15s\", \"1m30s\" or \"500ms\" (Gateway API duration)",
                ),
            ],
        ),
        case(
            "sluice NodeConfig: a zero timeout would close every connection at once",
            timeouts(Some("0s"), None),
            &[(
                "spec.http.headerTimeout",
                "headerTimeout must be greater than zero",
            )],
        ),
        case(
            "Cilium tofqdns-endpoint-max-ip-per-hostname: at least one address per name",
            nc(NodeConfigSpec {
                dns: Some(DnsSettings {
                    max_ips_per_hostname: Some(0),
                    ..DnsSettings::default()
                }),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.dns.maxIPsPerHostname",
                "maxIPsPerHostname must be at least 1 (every allowed answer keeps at least one address per name)",
            )],
        ),
        case(
            "the FQDN state file: an absolute path, as adminSocket",
            nc(NodeConfigSpec {
                dns: Some(DnsSettings {
                    state_file: Some("state/fqdn.json".into()),
                    ..DnsSettings::default()
                }),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.dns.stateFile",
                "stateFile must be an absolute path, like /run/sluice/fqdn-cache.json",
            )],
        ),
        case(
            "spec §6 allow-localhost: always or policy",
            nc(NodeConfigSpec {
                allow_localhost: Some("never".into()),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.allowLocalhost",
                "unsupported allowLocalhost \"never\": supported values: \"always\", \"policy\"",
            )],
        ),
        case(
            "kubernetes: node labels are plain labels",
            nc(NodeConfigSpec {
                node_labels: Some(labels(&[("zone", "eu west")])),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.nodeLabels.zone",
                "invalid label value \"eu west\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')",
            )],
        ),
        case(
            "spec §6 global modes: default, always, never (Cilium enable-policy)",
            nc(NodeConfigSpec {
                policy_enforcement: Some("Always".into()),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.policyEnforcement",
                "unsupported policyEnforcement \"Always\": supported values: \"default\", \"always\", \"never\"",
            )],
        ),
        case(
            "SPIFFE ID spec §2.1: a trust domain is a name, lowercase letters, digits, . - _",
            nc(NodeConfigSpec {
                trust_domain: Some("spiffe://cluster.local".into()),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.trustDomain",
                "trustDomain is a name, not a SPIFFE ID: write \"cluster.local\" instead of \"spiffe://cluster.local\"",
            )],
        ),
        case(
            "SPIFFE ID spec §2.1: no upper case",
            nc(NodeConfigSpec {
                trust_domain: Some("Cluster.Local".into()),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.trustDomain",
                "invalid trustDomain \"Cluster.Local\": a SPIFFE trust domain consists of lowercase letters, digits, '.', '-' and '_'",
            )],
        ),
        case(
            "cilium cluster-name: a DNS label of at most 32 characters",
            nc(NodeConfigSpec {
                cluster_name: Some("c".repeat(33)),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.clusterName",
                "invalid clusterName \"ccccccccccccccccccccccccccccccccc\": must be no more than 32 characters",
            )],
        ),
        case(
            "sluice NodeConfig: ports are non-zero",
            proxy(Some(0), None, None),
            &[(
                "spec.proxy.port",
                "port must be between 1 and 65535, inclusive",
            )],
        ),
        case(
            "sluice NodeConfig: ports differ, defaults included",
            proxy(None, Some(15001), None),
            &[(
                "spec.proxy.dnsPort",
                "port and dnsPort must differ (both are 15001)",
            )],
        ),
        case(
            "sluice NodeConfig: the admin socket path is absolute",
            proxy(None, None, Some("admin.sock")),
            &[(
                "spec.proxy.adminSocket",
                "adminSocket must be an absolute path, like /run/sluice/admin.sock",
            )],
        ),
        case(
            "sluice NodeConfig: the DNS upstream is an address, not a name",
            nc(NodeConfigSpec {
                dns: Some(DnsSettings {
                    upstream: Some("kube-dns.kube-system".into()),
                    ..DnsSettings::default()
                }),
                ..NodeConfigSpec::default()
            }),
            &[(
                "spec.dns.upstream",
                "invalid upstream \"kube-dns.kube-system\": a name, not an address (the DNS proxy \
                 cannot resolve the resolver it forwards to); write an IP address with an \
                 optional port, like 10.96.0.10, 10.96.0.10:53 or [fd00::10]:53",
            )],
        ),
    ];
    run(cases, node_config);
}

fn svc(spec: ServiceSpec) -> Service {
    Service {
        api_version: "v1".into(),
        kind: "Service".into(),
        metadata: meta("web", Some("shop")),
        spec,
        status: None,
    }
}

fn svc_port(name: Option<&str>, port: u16, target: Option<&str>) -> ServicePort {
    ServicePort {
        name: name.map(str::to_owned),
        protocol: None,
        port,
        target_port: target.map(str::to_owned),
        app_protocol: None,
    }
}

#[test]
fn services() {
    let cases = vec![
        case(
            "kubernetes Service: valid",
            svc(ServiceSpec {
                service_type: Some("ClusterIP".into()),
                selector: Some(labels(&[("app", "web")])),
                cluster_ip: Some("10.96.0.10".into()),
                cluster_ips: strings(&["10.96.0.10", "fd00::a"]),
                ports: Some(vec![
                    svc_port(Some("http"), 80, Some("8080")),
                    svc_port(Some("grpc"), 9090, Some("grpc")),
                ]),
            }),
            &[],
        ),
        case(
            "kubernetes ValidateService: headless is clusterIP None",
            svc(ServiceSpec {
                cluster_ip: Some("None".into()),
                ..ServiceSpec::default()
            }),
            &[],
        ),
        case(
            "kubernetes ValidateService: ports, names, target ports, cluster IPs, type",
            svc(ServiceSpec {
                service_type: Some("Internal".into()),
                cluster_ip: Some("10.96.0.300".into()),
                ports: Some(vec![
                    svc_port(Some("http"), 0, Some("0")),
                    svc_port(None, 81, Some("Web")),
                    svc_port(Some("http"), 82, None),
                ]),
                ..ServiceSpec::default()
            }),
            &[
                (
                    "spec.type",
                    "unsupported service type \"Internal\": supported values: \"ClusterIP\", \"NodePort\", \"LoadBalancer\", \"ExternalName\"",
                ),
                (
                    "spec.clusterIP",
                    "invalid cluster IP \"10.96.0.300\": must be an IP address or \"None\"",
                ),
                (
                    "spec.ports[0].port",
                    "port must be between 1 and 65535, inclusive",
                ),
                (
                    "spec.ports[0].targetPort",
                    "targetPort must be between 1 and 65535, inclusive",
                ),
                (
                    "spec.ports[1]",
                    "name is required when a service has more than one port",
                ),
                (
                    "spec.ports[1].targetPort",
                    "invalid targetPort \"Web\": a port name is 1-15 lowercase letters, digits and '-', with at least one letter and no '-' at either end or twice in a row",
                ),
                ("spec.ports[2].name", "duplicate port name \"http\""),
            ],
        ),
        case(
            "kubernetes: a service name is a DNS-1035 label",
            Service {
                metadata: meta("1web", Some("shop")),
                ..svc(ServiceSpec::default())
            },
            &[(
                "metadata.name",
                "invalid name \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')",
            )],
        ),
    ];
    run(cases, service);
}

#[test]
fn namespaces() {
    let ns = |name: &str, l: &[(&str, &str)]| Namespace {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        metadata: ObjectMeta {
            labels: Some(labels(l)),
            ..meta(name, None)
        },
        spec: None,
        status: None,
    };
    let cases = vec![
        case(
            "kubernetes Namespace: valid",
            ns("shop", &[("team", "payments")]),
            &[],
        ),
        case(
            "kubernetes: a namespace name is a DNS-1123 label",
            ns("shop.eu", &[]),
            &[(
                "metadata.name",
                "invalid name \"shop.eu\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')",
            )],
        ),
        case(
            "loader contract: a missing name is the loader's to report; labels are still checked",
            ns(
                "",
                &[("kubernetes.io/metadata.name", "shop"), ("team", "a b")],
            ),
            &[(
                "metadata.labels.team",
                "invalid label value \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')",
            )],
        ),
    ];
    run(cases, namespace);
}

#[test]
fn cidr_groups() {
    let group = |cidrs: &[&str]| CidrGroup {
        api_version: "cilium.io/v2alpha1".into(),
        kind: "CiliumCIDRGroup".into(),
        metadata: meta("external", None),
        spec: CidrGroupSpec {
            external_cidrs: strings_vec(cidrs),
        },
    };
    let cases = vec![
        case(
            "cilium CiliumCIDRGroup: externalCIDRs in CIDR form",
            group(&["192.0.2.0/24", "2001:db8::/32"]),
            &[],
        ),
        case(
            "cilium CRD format=cidr: prefixes only",
            group(&["192.0.2.1", "192.0.2.0/40"]),
            &[
                (
                    "spec.externalCIDRs[0]",
                    "invalid CIDR \"192.0.2.1\": no '/': write the prefix length, e.g. 10.0.0.0/8 or 10.0.0.1/32",
                ),
                (
                    "spec.externalCIDRs[1]",
                    "invalid CIDR \"192.0.2.0/40\": bad prefix length: a decimal number up to 32 for IPv4 or 128 for IPv6",
                ),
            ],
        ),
    ];
    run(cases, cidr_group);
}
