//! Table-driven tests of validation. Every case names where its expected message comes from
//! (Cilium's source, Kubernetes' validation, the spec, or sluice's own rule) and lists every
//! issue it expects, as `(field path, message)`, in order: a case with an unexpected extra
//! issue fails too.

mod cilium;
mod knp;
mod ports;
mod resources;

use std::collections::BTreeMap;

use crate::diag::Issue;
use crate::types::{
    CiliumPolicy, EgressRule, IngressRule, LabelSelector, ObjectMeta, PortProtocol, PortRule, Rule,
};

/// One table row.
struct Case<T> {
    source: &'static str,
    input: T,
    want: Vec<(&'static str, String)>,
}

fn case<T>(source: &'static str, input: T, want: &[(&'static str, &str)]) -> Case<T> {
    Case {
        source,
        input,
        want: want.iter().map(|(p, m)| (*p, (*m).to_owned())).collect(),
    }
}

fn run<T>(cases: Vec<Case<T>>, validate: fn(&T) -> Vec<Issue>) {
    for c in cases {
        let got: Vec<(String, String)> = validate(&c.input)
            .into_iter()
            .map(|i| (i.field.to_string(), i.message))
            .collect();
        let want: Vec<(String, String)> =
            c.want.into_iter().map(|(p, m)| (p.to_owned(), m)).collect();
        assert_eq!(got, want, "case: {}", c.source);
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    }
}

fn cnp(rule: Rule) -> CiliumPolicy {
    CiliumPolicy {
        api_version: "cilium.io/v2".to_owned(),
        kind: "CiliumNetworkPolicy".to_owned(),
        metadata: meta("api-policy", Some("shop")),
        spec: Some(rule),
        specs: None,
        status: None,
    }
}

fn ccnp(rule: Rule) -> CiliumPolicy {
    CiliumPolicy {
        kind: "CiliumClusterwideNetworkPolicy".to_owned(),
        metadata: meta("host-policy", None),
        ..cnp(rule)
    }
}

/// A CNP for `app: api` with one ingress entry.
fn ingress(entry: IngressRule) -> CiliumPolicy {
    cnp(Rule {
        endpoint_selector: Some(sel(&[("app", "api")])),
        ingress: Some(vec![entry]),
        ..Rule::default()
    })
}

/// A CNP for `app: api` with one egress entry.
fn egress(entry: EgressRule) -> CiliumPolicy {
    cnp(Rule {
        endpoint_selector: Some(sel(&[("app", "api")])),
        egress: Some(vec![entry]),
        ..Rule::default()
    })
}

fn port(port: &str, protocol: Option<&str>) -> PortProtocol {
    PortProtocol {
        port: port.to_owned(),
        end_port: None,
        protocol: protocol.map(str::to_owned),
    }
}

fn ports(list: Vec<PortProtocol>) -> PortRule {
    PortRule {
        ports: Some(list),
        ..PortRule::default()
    }
}

fn strings(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| (*s).to_owned()).collect())
}
