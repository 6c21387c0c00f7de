//! The loader as a user meets it: files, directories, kinds, and what an error costs.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use sluice_config::types::LabelSelector;
use sluice_config::{
    DnsRejectResponse, EnforcementMode, HttpDenial, HttpTimeouts, LoadError, Policy, PolicyKind,
    RejectedPolicy, RejectedSubject, load,
};

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        match_expressions: None,
    }
}

fn rejected(config: &sluice_config::Config, name: &str) -> RejectedPolicy {
    config
        .policies
        .iter()
        .find_map(|d| match &d.resource {
            Policy::Rejected(r) if r.name == name => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no rejected policy {name}"))
}

#[test]
fn a_multi_document_file_loads_every_kind_with_its_source() {
    let text = stream(&[
        NAMESPACE_SHOP,
        WORKLOAD_WEB,
        // An empty document still counts in the document index.
        "# nothing here\n",
        WORKLOAD_API,
        CNP_API_READ_ONLY,
        "apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 80, targetPort: 8080}
",
        "apiVersion: cilium.io/v2alpha1
kind: CiliumCIDRGroup
metadata: {name: partners}
spec:
  externalCIDRs: [\"192.0.2.0/24\"]
",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {}
",
        "apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: dns}
spec:
  endpointSelector: {}
  egress:
  - toEndpoints:
    - matchLabels: {k8s-app: kube-dns, io.kubernetes.pod.namespace: kube-system}
",
    ]);
    let config = load_ok("shop.yaml", &text);

    assert_eq!(config.namespaces.len(), 1);
    assert_eq!(config.services.len(), 1);
    assert_eq!(config.cidr_groups.len(), 1);
    assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics);
    let workloads: Vec<_> = config
        .workloads
        .iter()
        .map(|d| {
            (
                d.resource.metadata.name.as_str(),
                d.source.line,
                d.source.document,
            )
        })
        .collect();
    // web starts on line 8 (after the Namespace's 6 lines and a `---`); the comment-only
    // document is number 2.
    assert_eq!(workloads, [("web", 8, 1), ("api", 21, 3)]);
    assert_eq!(config.workloads[0].source.file.to_str(), Some("shop.yaml"));
    let policies: Vec<_> = config
        .policies
        .iter()
        .map(|d| (d.resource.kind(), d.resource.name(), d.resource.namespace()))
        .collect();
    assert_eq!(
        policies,
        [
            (
                PolicyKind::CiliumNetworkPolicy,
                "api-read-only",
                Some("shop")
            ),
            (PolicyKind::NetworkPolicy, "web-ingress", Some("shop")),
            (PolicyKind::CiliumClusterwideNetworkPolicy, "dns", None),
        ]
    );
    let Policy::Cilium(cnp) = &config.policies[0].resource else {
        panic!("expected a valid CNP");
    };
    let port = &cnp.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0]
        .to_ports
        .as_ref()
        .unwrap()[0]
        .ports
        .as_ref()
        .unwrap()[0];
    assert_eq!(port.port, "8080");
}

#[test]
fn a_directory_is_read_recursively_in_name_order_skipping_hidden_and_foreign_files() {
    let dir = TempDir::new();
    let workload = |name: &str, address: &str| {
        format!(
            "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {{name: {name}}}\n\
             spec: {{addresses: [\"{address}\"]}}\n"
        )
    };
    dir.write("b.yaml", workload("from-b", "10.0.0.1"));
    dir.write("a/z.yml", workload("from-a-z", "10.0.0.2"));
    dir.write(
        "a/b/c.json",
        r#"{"apiVersion": "sluice.io/v1alpha1", "kind": "Workload",
        "metadata": {"name": "from-a-b-c"}, "spec": {"addresses": ["10.0.0.3"]}}"#,
    );
    dir.write("a.yaml", workload("from-a", "10.0.0.4"));
    // None of these is read: each would fail the load.
    dir.write(".hidden.yaml", "not: [valid");
    dir.write(".git/config.yaml", "not: [valid");
    dir.write("README.md", "# not: [yaml");
    dir.write("notes.txt", "not: [valid");

    let config = load(&[dir.path()]).unwrap();
    let names: Vec<_> = config
        .workloads
        .iter()
        .map(|d| d.resource.metadata.name.as_str())
        .collect();
    // Entries sort by name within each directory: `a` < `a.yaml` < `b.yaml`.
    assert_eq!(names, ["from-a-b-c", "from-a-z", "from-a", "from-b"]);
    assert_eq!(
        config.workloads[0].source.file,
        dir.path().join("a/b/c.json")
    );
}

#[test]
fn a_file_named_explicitly_is_read_whatever_its_name() {
    let dir = TempDir::new();
    let file = dir.write(".policy.txt", WORKLOAD_WEB);
    let other = dir.write("ns.yaml", NAMESPACE_SHOP);
    let config = load(&[&file, &other]).unwrap();
    assert_eq!(config.workloads.len(), 1);
    assert_eq!(config.namespaces.len(), 1);
}

#[test]
fn a_file_reached_twice_is_read_once() {
    let dir = TempDir::new();
    let file = dir.write("policies/web.yaml", WORKLOAD_WEB);
    // The layout of a ConfigMap volume: the visible name links into a hidden directory.
    dir.write("cm/..data/web.yaml", WORKLOAD_API);
    std::os::unix::fs::symlink("..data/web.yaml", dir.path().join("cm/web.yaml")).unwrap();
    std::os::unix::fs::symlink("../policies", dir.path().join("cm/loop")).unwrap();

    let config = load(&[dir.path(), &file]).unwrap();
    let names: Vec<_> = config
        .workloads
        .iter()
        .map(|d| (d.resource.metadata.name.as_str(), d.source.file.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("web", dir.path().join("cm/loop/web.yaml")),
            ("api", dir.path().join("cm/web.yaml")),
        ]
    );
}

#[test]
fn a_missing_path_is_an_io_error_naming_it() {
    let dir = TempDir::new();
    let missing = dir.path().join("nope");
    let error = load(&[&missing]).unwrap_err();
    assert!(matches!(error, LoadError::Io { ref path, .. } if *path == missing));
    assert_eq!(
        error.to_string(),
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert!(error.diagnostics().is_empty());
}

#[test]
fn no_paths_and_empty_directories_give_the_defaults() {
    let dir = TempDir::new();
    let none: &[&str] = &[];
    assert_eq!(load(none).unwrap(), sluice_config::Config::default());
    assert_eq!(
        load(&[dir.path()]).unwrap(),
        sluice_config::Config::default()
    );
}

#[test]
fn a_kind_list_is_expanded_and_its_items_located() {
    let text = "\
apiVersion: v1
kind: List
metadata: {resourceVersion: \"\"}
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop}
- apiVersion: sluice.io/v1alpha1
  kind: Workload
  metadata: {name: web, namespace: shop}
  spec: {addresses: [\"10.0.0.1\"]}
";
    let config = load_ok("list.yaml", text);
    assert_eq!(config.namespaces[0].resource.metadata.name, "shop");
    assert_eq!(config.workloads[0].source.line, 8);
    assert_eq!(config.workloads[0].source.document, 0);

    let bad = text.replace("addresses:", "adresses:");
    assert_eq!(
        load_err("list.yaml", &bad),
        [
            "list.yaml:11:10: items[1].spec.adresses: unknown field \"adresses\"; expected one of: \
             serviceAccount, addresses, ports, cgroup, run"
        ]
    );
}

#[test]
fn an_unknown_kind_fails_the_load_naming_the_field_and_the_accepted_kinds() {
    let text = format!(
        "{NAMESPACE_SHOP}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n"
    );
    let errors = load_err("deploy.yaml", &text);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0],
        "deploy.yaml:9:7: kind: unknown kind \"Deployment\" (apiVersion \"apps/v1\"); accepted \
         kinds: CiliumNetworkPolicy (cilium.io/v2), CiliumClusterwideNetworkPolicy \
         (cilium.io/v2), NetworkPolicy (networking.k8s.io/v1), Namespace (v1), Service (v1), \
         Secret (v1), CiliumCIDRGroup (cilium.io/v2alpha1), CiliumCIDRGroup (cilium.io/v2), Workload \
         (sluice.io/v1alpha1), NodeConfig (sluice.io/v1alpha1), List (v1)"
    );
}

#[test]
fn document_shape_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: cilium.io/v1\nkind: CiliumNetworkPolicy\n",
            "x.yaml:1:13: apiVersion: apiVersion \"cilium.io/v1\" is not supported for kind \
             CiliumNetworkPolicy; use cilium.io/v2",
        ),
        (
            "kind: Namespace\nmetadata: {name: a}\n",
            "x.yaml:1:1: apiVersion: missing field \"apiVersion\"",
        ),
        (
            "apiVersion: v1\nkind:\n  name: Namespace\n",
            "x.yaml:3:3: kind: expected a string, found a mapping",
        ),
        (
            "- a\n- b\n",
            "x.yaml:1:1: (document): expected a mapping with apiVersion and kind, found a list",
        ),
        (
            "hello\n",
            "x.yaml:1:1: (document): expected a mapping with apiVersion and kind, found a string",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(load_err("x.yaml", text), [*expected], "{text}");
    }
}

/// The scenario of the crate contract: one bad policy is rejected alone.
#[test]
fn a_policy_with_an_unknown_field_is_rejected_alone() {
    let bad = CNP_API_READ_ONLY
        .replace("api-read-only", "api-typo")
        .replace("      rules:", "      rulez:");
    let text = stream(&[
        NAMESPACE_SHOP,
        WORKLOAD_WEB,
        WORKLOAD_API,
        &bad,
        CNP_API_READ_ONLY,
    ]);
    let config = load_ok("policies.yaml", &text);

    assert_eq!(config.workloads.len(), 2);
    // The typo is on line 18 of the CNP, which starts on line 33.
    assert_eq!(
        rejections(&config),
        [
            "policies.yaml:50:7: spec.ingress[0].toPorts[0].rulez: unknown field \"rulez\"; \
          expected one of: ports, rules, terminatingTLS, originatingTLS, serverNames, listener"
        ]
    );
    assert_eq!(
        rejected(&config, "api-typo"),
        RejectedPolicy {
            kind: PolicyKind::CiliumNetworkPolicy,
            namespace: Some("shop".into()),
            name: "api-typo".into(),
            subjects: vec![RejectedSubject {
                selector: Some(selector(&[("app", "api")])),
                node: false,
                ingress: true,
                egress: false,
            }],
        }
    );
    assert!(matches!(config.policies[1].resource, Policy::Cilium(_)));
}

#[test]
fn a_rejected_policy_fails_closed_as_widely_as_what_cannot_be_read() {
    let text = "\
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: host, namespace: ignored}
specs:
- nodeSelector: {matchLabels: {role: worker}}
  ingress: [{fromEntities: [cluster]}]
- endpointSelector: {matchLabels: 42}
  egressDeny: [{toEntities: [world]}]
- description: no selector and no section
  bogus: true
";
    let config = load_ok("ccnp.yaml", text);
    assert_eq!(
        rejections(&config),
        [
            "ccnp.yaml:7:35: specs[1].endpointSelector.matchLabels: expected a mapping, found the \
          integer 42"
        ]
    );
    let r = rejected(&config, "host");
    assert_eq!(r.namespace, None);
    assert_eq!(
        r.subjects,
        [
            RejectedSubject {
                selector: Some(selector(&[("role", "worker")])),
                node: true,
                ingress: true,
                egress: false,
            },
            RejectedSubject {
                selector: None,
                node: false,
                ingress: false,
                egress: true,
            },
            RejectedSubject {
                selector: None,
                node: false,
                ingress: true,
                egress: true,
            },
        ]
    );
}

#[test]
fn a_rejected_network_policy_keeps_its_pod_selector_and_policy_types() {
    let text = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, exept: [10.1.0.0/16]}}]
";
    let config = load_ok("np.yaml", text);
    assert_eq!(
        rejections(&config),
        [
            "np.yaml:8:39: spec.egress[0].to[0].ipBlock.exept: unknown field \"exept\"; expected \
          one of: cidr, except"
        ]
    );
    let r = rejected(&config, "np");
    assert_eq!(r.namespace.as_deref(), Some("default"));
    assert_eq!(
        r.subjects,
        [RejectedSubject {
            selector: Some(selector(&[("app", "db")])),
            node: false,
            ingress: false,
            egress: true,
        }]
    );
}

#[test]
fn a_bad_workload_fails_the_whole_load_with_every_error() {
    let bad_web = WORKLOAD_WEB.replace("serviceAccount: web", "serviceAcount: web");
    let bad_api = WORKLOAD_API.replace("port: 8080", "port: http");
    let bad_policy = CNP_API_READ_ONLY.replace("matchLabels:\n      app: api", "matchLabel: {}");
    let text = stream(&[&bad_web, NAMESPACE_SHOP, &bad_api, &bad_policy]);
    assert_eq!(
        load_err("all.yaml", &text),
        [
            "all.yaml:9:3: spec.serviceAcount: unknown field \"serviceAcount\"; expected one of: \
             serviceAccount, addresses, ports, cgroup, run",
            "all.yaml:30:11: spec.ports[0].port: expected an integer, found a string \"http\"",
            // The rejected policy's diagnostic is listed too: the user fixes all at once.
            "all.yaml:40:5: spec.endpointSelector.matchLabel: unknown field \"matchLabel\"; \
             expected one of: matchLabels, matchExpressions",
        ]
    );
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "addresses: [\"10.0.0.1\"]",
            "addresses: 10.0.0.1",
            "w.yaml:6:14: spec.addresses: expected a list, found a string \"10.0.0.1\"",
        ),
        (
            "addresses: [\"10.0.0.1\"]",
            "addresses: {ip: 10.0.0.1}",
            "w.yaml:6:14: spec.addresses: expected a list, found a mapping",
        ),
        (
            "addresses: [\"10.0.0.1\"]",
            "addresses: [[10.0.0.1]]",
            "w.yaml:6:15: spec.addresses[0]: expected a string, found a list",
        ),
        (
            "addresses: [\"10.0.0.1\"]",
            "ports: [{port: 70000}]",
            "w.yaml:6:18: spec.ports[0].port: invalid value: 70000, expected an integer from 0 \
             to 65535",
        ),
        (
            "addresses: [\"10.0.0.1\"]",
            "run: {workingDir: /tmp}",
            "w.yaml:6:8: spec.run: missing field \"command\"",
        ),
        (
            "spec:\n  addresses: [\"10.0.0.1\"]",
            "spec: [a]",
            "w.yaml:5:7: spec: expected a mapping, found a list",
        ),
    ];
    let base = "\
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata:
  name: w
spec:
  addresses: [\"10.0.0.1\"]
";
    for (from, to, expected) in cases {
        let text = base.replace(from, to);
        assert_eq!(load_err("w.yaml", &text), [*expected], "{text}");
    }
}

#[test]
fn duplicate_keys_fail_the_file() {
    let text = CNP_API_READ_ONLY.replace(
        "  endpointSelector:",
        "  egress: []\n  endpointSelector:\n    matchLabels: {}\n  endpointSelector:",
    );
    assert_eq!(
        load_err("dup.yaml", &text),
        [
            "dup.yaml:10:3: spec.endpointSelector: duplicate key \"endpointSelector\" (first defined \
          at line 8)"
        ]
    );
}

#[test]
fn duplicate_names_fail_the_load_for_resources_and_reject_the_second_policy() {
    let dir = TempDir::new();
    dir.write(
        "a.yaml",
        stream(&[NAMESPACE_SHOP, WORKLOAD_WEB, CNP_API_READ_ONLY]),
    );
    let web_again = WORKLOAD_WEB.replace("10.200.1.2", "10.200.1.9");
    dir.write("b.yaml", stream(&[CNP_API_READ_ONLY, &web_again]));
    let error = load(&[dir.path()]).unwrap_err();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    assert_eq!(
        lines(&error),
        [
            format!(
                "{}:4:9: metadata.name: duplicate CiliumNetworkPolicy shop/api-read-only: already \
                 defined at {}:19",
                b.display(),
                a.display()
            ),
            format!(
                "{}:26:9: metadata.name: duplicate Workload shop/web: already defined at {}:8",
                b.display(),
                a.display()
            ),
        ]
    );

    // Without the duplicate workload the load succeeds and only the policy is rejected.
    dir.write("b.yaml", CNP_API_READ_ONLY);
    let config = load(&[dir.path()]).unwrap();
    assert_eq!(config.diagnostics.len(), 1);
    assert!(matches!(config.policies[0].resource, Policy::Cilium(_)));
    assert!(matches!(config.policies[1].resource, Policy::Rejected(_)));
}

#[test]
fn same_names_in_other_namespaces_or_kinds_do_not_clash() {
    let other_ns = WORKLOAD_WEB
        .replace("namespace: shop", "namespace: shop2")
        .replace("10.200.1.2", "10.200.1.9");
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n";
    let config = load_ok("x.yaml", &stream(&[WORKLOAD_WEB, &other_ns, service]));
    assert_eq!(config.workloads.len(), 2);
    assert_eq!(config.services.len(), 1);
}

#[test]
fn namespaces_are_defaulted_for_namespaced_kinds_and_dropped_for_cluster_ones() {
    let text = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec: {endpointSelector: {}, ingress: [{}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec: {podSelector: {}}
---
apiVersion: v1
kind: Service
metadata: {name: s}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: w}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: c, namespace: shop}
spec: {endpointSelector: {}, ingress: [{}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: n, namespace: shop}
---
apiVersion: cilium.io/v2
kind: CiliumCIDRGroup
metadata: {name: g, namespace: shop}
---
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node, namespace: shop}
";
    let config = load_ok("ns.yaml", text);
    let namespaces: Vec<_> = config
        .policies
        .iter()
        .map(|p| p.resource.namespace())
        .collect();
    assert_eq!(namespaces, [Some("default"), Some("default"), None]);
    assert_eq!(
        config.services[0].resource.metadata.namespace.as_deref(),
        Some("default")
    );
    assert_eq!(
        config.workloads[0].resource.metadata.namespace.as_deref(),
        Some("default")
    );
    assert_eq!(config.namespaces[0].resource.metadata.namespace, None);
    assert_eq!(config.cidr_groups[0].resource.metadata.namespace, None);
}

#[test]
fn a_missing_name_is_an_error() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: v1\nkind: Namespace\n",
            "n.yaml:1:1: metadata.name: a name is required",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"\"\n",
            "n.yaml:4:9: metadata.name: a name is required",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  labels: {a: b}\n",
            "n.yaml:4:3: metadata.name: a name is required",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(load_err("n.yaml", text), [*expected], "{text}");
    }
    let policy = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n\
                  spec: {endpointSelector: {}, ingress: [{}]}\n";
    let config = load_ok("p.yaml", policy);
    assert_eq!(
        rejections(&config),
        ["p.yaml:1:1: metadata.name: a name is required"]
    );
}

#[test]
fn node_config_sets_the_node_settings() {
    let text = "\
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec:
  clusterName: prod
  policyEnforcement: always
  policyAuditMode: true
  allowLocalhost: policy
  nodeLabels: {role: edge}
  proxy: {port: \"15101\", dnsPort: 15153, adminSocket: /tmp/admin.sock}
  dns: {rejectResponse: nxdomain}
";
    let node = load_ok("node.yaml", text).node;
    assert_eq!(node.cluster_name, "prod");
    assert_eq!(node.trust_domain, "cluster.local");
    assert_eq!(node.enforcement, EnforcementMode::Always);
    assert!(node.audit_mode);
    assert!(!node.allow_localhost);
    assert_eq!(
        node.node_labels.get("role").map(String::as_str),
        Some("edge")
    );
    assert_eq!(node.proxy_port, 15101);
    assert_eq!(node.dns_proxy_port, 15153);
    assert_eq!(node.dns_reject_response, DnsRejectResponse::NxDomain);
    assert_eq!(node.admin_socket.to_str(), Some("/tmp/admin.sock"));

    let errors = load_err("node.yaml", &text.replace("always", "sometimes"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("node.yaml:6:22: spec.policyEnforcement: "),
        "{errors:?}"
    );
    assert!(errors[0].contains("sometimes"), "{errors:?}");
}

#[test]
fn dns_upstream_is_an_address_with_port_53_by_default() {
    let node = "apiVersion: sluice.io/v1alpha1\nkind: NodeConfig\nmetadata: {name: node}\n";
    assert_eq!(load_ok("node.yaml", node).node.dns_upstream, None);
    let upstream = |value: &str| format!("{node}spec:\n  dns:\n    upstream: {value}\n");
    let loaded = |value: &str| {
        load_ok("node.yaml", &upstream(value))
            .node
            .dns_upstream
            .map(|a| a.to_string())
    };
    assert_eq!(loaded("10.96.0.10").as_deref(), Some("10.96.0.10:53"));
    assert_eq!(
        loaded("\"10.96.0.10:5353\"").as_deref(),
        Some("10.96.0.10:5353")
    );
    assert_eq!(
        loaded("\"[fd00::10]:53\"").as_deref(),
        Some("[fd00::10]:53")
    );
    assert_eq!(
        load_err("node.yaml", &upstream("10.96.0.10:0")),
        [
            "node.yaml:6:15: spec.dns.upstream: invalid upstream \"10.96.0.10:0\": port 0; \
             write an IP address with an optional port, like 10.96.0.10, 10.96.0.10:53 or \
             [fd00::10]:53"
        ]
    );
    // One resolver, not a list: a list is a type error at the field.
    let errors = load_err("node.yaml", &upstream("[10.96.0.10]"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("node.yaml:6:15: spec.dns.upstream"),
        "{errors:?}"
    );
}

#[test]
fn dns_reject_response_defaults_to_refused_and_refuses_unknown_values() {
    let node = "apiVersion: sluice.io/v1alpha1\nkind: NodeConfig\nmetadata: {name: node}\n";
    assert_eq!(
        load_ok("node.yaml", node).node.dns_reject_response,
        DnsRejectResponse::Refused
    );
    let refused = format!("{node}spec:\n  dns: {{rejectResponse: refused}}\n");
    assert_eq!(
        load_ok("node.yaml", &refused).node.dns_reject_response,
        DnsRejectResponse::Refused
    );
    assert_eq!(
        load_err("node.yaml", &refused.replace("refused", "nameError")),
        [
            "node.yaml:5:25: spec.dns.rejectResponse: unsupported rejectResponse \"nameError\": \
             supported values: \"refused\", \"nxdomain\""
        ]
    );
    // deny_unknown_fields: a misspelt key is an error, not a silent default.
    let errors = load_err(
        "node.yaml",
        &refused.replace("rejectResponse", "rejectCode"),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("node.yaml:5:9: spec.dns") && errors[0].contains("rejectCode"),
        "{errors:?}"
    );
}

#[test]
fn http_denied_body_is_cilium_403_text_unless_configured() {
    let node = "apiVersion: sluice.io/v1alpha1\nkind: NodeConfig\nmetadata: {name: node}\n";
    // Cilium's default (spec §11): 15 bytes, text/plain.
    let default = load_ok("node.yaml", node).node.http_denial;
    assert_eq!(default.body, "Access denied\r\n");
    assert_eq!(default.content_type, "text/plain");

    // Expected bodies: cilium/proxy cilium/l7policy.cc appends a CRLF unless the text
    // ends with one, and an empty text is the default.
    let cases = [
        ("Go away", "Go away\r\n"),
        ("Go away\\r\\n", "Go away\r\n"),
        ("Go away\\n", "Go away\n\r\n"),
        ("", "Access denied\r\n"),
    ];
    for (yaml_text, sent) in cases {
        let text = format!("{node}spec:\n  http: {{deniedBody: \"{yaml_text}\"}}\n");
        assert_eq!(
            load_ok("node.yaml", &text).node.http_denial.body,
            sent,
            "{yaml_text:?}"
        );
    }
    let text = format!(
        "{node}spec:\n  http:\n    deniedBody: |\n      {{\"error\": \"denied\"}}\n    deniedContentType: application/json\n"
    );
    let denial = load_ok("node.yaml", &text).node.http_denial;
    assert_eq!(
        denial,
        HttpDenial {
            body: "{\"error\": \"denied\"}\n\r\n".into(),
            content_type: "application/json".into(),
        }
    );
}

#[test]
fn http_denied_body_too_big_or_of_the_wrong_type_is_refused_with_its_place() {
    let node = "apiVersion: sluice.io/v1alpha1\nkind: NodeConfig\nmetadata: {name: node}\n";
    let big = format!(
        "{node}spec:\n  http: {{deniedBody: \"{}\"}}\n",
        "x".repeat(HttpDenial::MAX_BODY_LEN + 1)
    );
    assert_eq!(
        load_err("node.yaml", &big),
        [
            "node.yaml:5:22: spec.http.deniedBody: deniedBody is 4097 bytes, more than the \
          limit of 4096 (4 KiB): a denial is sent with every denied request; keep it short"
        ]
    );
    let list = format!("{node}spec:\n  http:\n    deniedBody: [Access, denied]\n");
    let errors = load_err("node.yaml", &list);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("node.yaml:6:17: spec.http.deniedBody: "),
        "{errors:?}"
    );
    let typo = format!("{node}spec:\n  http: {{deniedMessage: nope}}\n");
    let errors = load_err("node.yaml", &typo);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("node.yaml:5:10: spec.http") && errors[0].contains("deniedMessage"),
        "{errors:?}"
    );
}

#[test]
fn http_timeouts_default_parse_and_point_at_the_bad_value() {
    let node = "apiVersion: sluice.io/v1alpha1\nkind: NodeConfig\nmetadata: {name: node}\n";
    let defaults = load_ok("node.yaml", node).node.http;
    assert_eq!(defaults, HttpTimeouts::default());
    assert_eq!(defaults.header, Duration::from_secs(15));
    assert_eq!(defaults.idle, Duration::from_secs(60));

    let set = format!("{node}spec:\n  http: {{headerTimeout: 1500ms, idleTimeout: 2m}}\n");
    let http = load_ok("node.yaml", &set).node.http;
    assert_eq!(http.header, Duration::from_millis(1500));
    assert_eq!(http.idle, Duration::from_secs(120));

    assert_eq!(
        load_err("node.yaml", &set.replace("2m", "2 minutes")),
        [
            "node.yaml:5:46: spec.http.idleTimeout: invalid idleTimeout \"2 minutes\": write whole \
             numbers with a unit h, m, s or ms, like \"15s\", \"1m30s\" or \"500ms\" (Gateway API \
             duration)"
        ]
    );
    assert_eq!(
        load_err("node.yaml", &set.replace("1500ms", "0ms")),
        ["node.yaml:5:25: spec.http.headerTimeout: headerTimeout must be greater than zero"]
    );
    let errors = load_err("node.yaml", &set.replace("idleTimeout", "keepAlive"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("node.yaml:5:") && errors[0].contains("keepAlive"),
        "{errors:?}"
    );
}

#[test]
fn fqdn_settings_default_to_ciliums_and_are_checked_where_written() {
    let node = "apiVersion: sluice.io/v1alpha1\nkind: NodeConfig\nmetadata: {name: node}\n";
    // Cilium's defaults: tofqdns-min-ttl 0, tofqdns-endpoint-max-ip-per-hostname 1000.
    let defaults = load_ok("node.yaml", node).node.fqdn;
    assert_eq!(defaults.min_ttl, 0);
    assert_eq!(defaults.max_ips_per_hostname, 1000);
    assert_eq!(
        defaults.state_file.to_str(),
        Some("/run/sluice/fqdn-cache.json")
    );
    let set = format!(
        "{node}spec:\n  dns: {{minTTL: 30, maxIPsPerHostname: 5, stateFile: /var/lib/sluice/fqdn.json}}\n"
    );
    let fqdn = load_ok("node.yaml", &set).node.fqdn;
    assert_eq!(fqdn.min_ttl, 30);
    assert_eq!(fqdn.max_ips_per_hostname, 5);
    assert_eq!(fqdn.state_file.to_str(), Some("/var/lib/sluice/fqdn.json"));

    assert_eq!(
        load_err(
            "node.yaml",
            &set.replace("maxIPsPerHostname: 5", "maxIPsPerHostname: 0")
        ),
        [
            "node.yaml:5:40: spec.dns.maxIPsPerHostname: maxIPsPerHostname must be at least 1 \
             (every allowed answer keeps at least one address per name)"
        ]
    );
    assert_eq!(
        load_err(
            "node.yaml",
            &set.replace("/var/lib/sluice/fqdn.json", "fqdn.json")
        ),
        [
            "node.yaml:5:54: spec.dns.stateFile: stateFile must be an absolute path, like \
             /run/sluice/fqdn-cache.json"
        ]
    );
    let errors = load_err("node.yaml", &set.replace("minTTL: 30", "minTTL: -1"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("node.yaml:5:17: spec.dns.minTTL"),
        "{errors:?}"
    );
    // Cilium's spelling of the TTL key, not serde's default camel case.
    let errors = load_err("node.yaml", &set.replace("minTTL", "minTtl"));
    assert!(
        errors.len() == 1 && errors[0].contains("minTtl"),
        "{errors:?}"
    );
}

#[test]
fn only_one_node_config_is_allowed() {
    let node = "apiVersion: sluice.io/v1alpha1\nkind: NodeConfig\nmetadata: {name: node}\n";
    let other = node.replace("name: node", "name: other");
    assert_eq!(
        load_err("node.yaml", &stream(&[node, &other])),
        ["node.yaml:6:7: kind: only one NodeConfig is allowed; the first is at node.yaml:1"]
    );
}

#[test]
fn two_workloads_claiming_one_address_fail_naming_both() {
    let thief = WORKLOAD_API.replace("10.200.1.3", "10.200.1.2");
    assert_eq!(
        load_err("w.yaml", &stream(&[WORKLOAD_WEB, &thief])),
        [
            "w.yaml:20:15: spec.addresses[0]: address 10.200.1.2 is already claimed by Workload \
          shop/web at w.yaml:1"
        ]
    );
}

#[test]
fn plain_scalars_read_as_strings_and_quoted_integers_as_numbers() {
    let text = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: p
  labels: {version: 2, canary: true}
spec:
  endpointSelector: {matchLabels: {tier: 1}}
  ingress:
  - toPorts:
    - ports: [{port: 80, endPort: \"90\", protocol: TCP}]
      rules:
        http: [{headerMatches: [{name: X-Debug, value: true}]}]
  egress:
";
    let config = load_ok("p.yaml", text);
    let Policy::Cilium(p) = &config.policies[0].resource else {
        panic!("{:?}", config.diagnostics);
    };
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["version"], "2");
    assert_eq!(labels["canary"], "true");
    let rule = p.spec.as_ref().unwrap();
    assert_eq!(rule.endpoint_selector, Some(selector(&[("tier", "1")])));
    // `egress:` with nothing after it is null: absent, not an empty list.
    assert_eq!(rule.egress, None);
    let port_rule = &rule.ingress.as_ref().unwrap()[0].to_ports.as_ref().unwrap()[0];
    let port = &port_rule.ports.as_ref().unwrap()[0];
    assert_eq!((port.port.as_str(), port.end_port), ("80", Some(90)));
    let header = &port_rule.rules.as_ref().unwrap().http.as_ref().unwrap()[0]
        .header_matches
        .as_ref()
        .unwrap()[0];
    assert_eq!(header.value.as_deref(), Some("true"));
}

#[test]
fn validation_findings_are_placed_on_the_line_of_their_field() {
    let text = CNP_API_READ_ONLY.replace(
        "  - fromEndpoints:\n    - matchLabels:\n        app: web\n",
        "  - fromEntities:\n    - wrld\n",
    );
    let config = load_ok("api.yaml", &text);
    assert_eq!(
        rejections(&config),
        ["api.yaml:12:7: spec.ingress[0].fromEntities[0]: unsupported entity: wrld"]
    );

    // A finding about something missing lands on the mapping that lacks it.
    let text = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {}
";
    let config = load_ok("p.yaml", text);
    assert_eq!(config.diagnostics.len(), 1, "{:?}", config.diagnostics);
    let d = &config.diagnostics[0];
    assert_eq!((d.line, d.column), (5, 3), "{d}");
    assert_eq!(
        d.message,
        "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny"
    );
}
