//! What can still be read of a rejected policy: whom it was meant for, and in which
//! directions, so that those endpoints fail closed rather than open.
//!
//! Read from the raw tree, part by part, because the typed policy failed as a whole.
//! Whatever cannot be read widens the failure: an unreadable selector means every
//! endpoint in scope, unknown directions mean both.

use crate::diag::FieldPath;
use crate::model::{PolicyKind, RejectedSubject};
use crate::types::LabelSelector;
use crate::yaml::{Node, Value, from_node};

/// The subjects of a rejected policy of `kind` whose document is `root` (at `base`).
/// Empty when no rule could be found at all: the whole scope then fails closed.
pub(super) fn subjects(kind: PolicyKind, root: &Node, base: &FieldPath) -> Vec<RejectedSubject> {
    let spec = base.key("spec");
    match kind {
        PolicyKind::CiliumNetworkPolicy | PolicyKind::CiliumClusterwideNetworkPolicy => {
            let mut rules = Vec::new();
            if let Some(rule) = root.get("spec").filter(|n| !n.is_null()) {
                rules.push((rule, spec));
            }
            if let Some(Value::Sequence(items)) = root.get("specs").map(|n| &n.value) {
                let specs = base.key("specs");
                rules.extend(items.iter().enumerate().map(|(i, n)| (n, specs.index(i))));
            }
            rules
                .into_iter()
                .flat_map(|(rule, path)| cilium_rule(rule, &path))
                .collect()
        }
        PolicyKind::NetworkPolicy => match root.get("spec") {
            Some(spec_node) => vec![kubernetes_spec(spec_node, &spec)],
            None => Vec::new(),
        },
    }
}

fn cilium_rule(rule: &Node, path: &FieldPath) -> Vec<RejectedSubject> {
    let has = |key: &str| rule.get(key).is_some();
    let ingress = has("ingress") || has("ingressDeny");
    let egress = has("egress") || has("egressDeny");
    let (ingress, egress) = if ingress || egress {
        (ingress, egress)
    } else {
        (true, true)
    };
    let mut subjects: Vec<RejectedSubject> = [("endpointSelector", false), ("nodeSelector", true)]
        .into_iter()
        .filter_map(|(key, node)| {
            rule.get(key).map(|selector| RejectedSubject {
                selector: from_node::<LabelSelector>(selector, &path.key(key)).ok(),
                node,
                ingress,
                egress,
            })
        })
        .collect();
    if subjects.is_empty() {
        subjects.push(RejectedSubject {
            selector: None,
            node: false,
            ingress,
            egress,
        });
    }
    subjects
}

fn kubernetes_spec(spec: &Node, path: &FieldPath) -> RejectedSubject {
    if !matches!(spec.value, Value::Mapping(_)) {
        return RejectedSubject {
            selector: None,
            node: false,
            ingress: true,
            egress: true,
        };
    }
    // An absent podSelector reads as `{}` (every pod), as the typed spec defaults it.
    let selector = match spec.get("podSelector") {
        Some(node) => from_node::<LabelSelector>(node, &path.key("podSelector")).ok(),
        None => Some(LabelSelector::default()),
    };
    let (ingress, egress) = match spec.get("policyTypes") {
        // Kubernetes' default: Ingress always, Egress when egress rules are written.
        None => (true, spec.get("egress").is_some()),
        Some(types) => match from_node::<Vec<String>>(types, &path.key("policyTypes")) {
            Ok(types) => {
                let ingress = types.iter().any(|t| t == "Ingress");
                let egress = types.iter().any(|t| t == "Egress");
                if ingress || egress {
                    (ingress, egress)
                } else {
                    (true, true)
                }
            }
            Err(_) => (true, true),
        },
    };
    RejectedSubject {
        selector,
        node: false,
        ingress,
        egress,
    }
}
