//! Label selectors, label maps and object metadata.

use sluice_l7::quote::go_quote;

use super::Report;
use super::names::{self, LabelKeys};
use crate::diag::FieldPath;
use crate::types::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

/// How `metadata.name` must look for a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    Dns1035Label,
}

/// `metadata`: a name in the kind's form, a namespace that is a DNS label, valid labels.
///
/// A missing name is the loader's to report (`a name is required`, for every kind that
/// needs one); repeating it here would print it twice.
pub(super) fn object_meta(meta: &ObjectMeta, at: &FieldPath, rule: NameRule, report: &mut Report) {
    if !meta.name.is_empty() {
        let checked = match rule {
            NameRule::Dns1123Subdomain => names::dns1123_subdomain(&meta.name),
            NameRule::Dns1123Label => names::dns1123_label(&meta.name),
            NameRule::Dns1035Label => names::dns1035_label(&meta.name),
        };
        if let Err(reason) = checked {
            report.add(
                &at.key("name"),
                format!("invalid name {}: {reason}", go_quote(&meta.name)),
            );
        }
    }
    if let Some(ns) = &meta.namespace
        && let Err(reason) = names::dns1123_label(ns)
    {
        report.add(
            &at.key("namespace"),
            format!("invalid namespace {}: {reason}", go_quote(ns)),
        );
    }
    if let Some(labels) = &meta.labels {
        label_map(labels, &at.key("labels"), LabelKeys::Kubernetes, report);
    }
}

/// A map of labels (`metadata.labels`, `matchLabels`, a Service's `selector`).
pub(super) fn label_map(
    labels: &BTreeMap<String, String>,
    at: &FieldPath,
    keys: LabelKeys,
    report: &mut Report,
) {
    for (key, value) in labels {
        let entry = at.key(key);
        if let Err(message) = names::label_key(key, keys) {
            report.add(&entry, message);
        }
        if let Err(message) = names::label_value(value) {
            report.add(&entry, message);
        }
    }
}

/// A label selector: valid keys and values, known operators, values where the operator
/// needs them and none where it forbids them.
pub(super) fn selector(sel: &LabelSelector, at: &FieldPath, keys: LabelKeys, report: &mut Report) {
    if let Some(labels) = &sel.match_labels {
        label_map(labels, &at.key("matchLabels"), keys, report);
    }
    let Some(expressions) = &sel.match_expressions else {
        return;
    };
    for (i, req) in expressions.iter().enumerate() {
        let req_at = at.key("matchExpressions").index(i);
        if let Err(message) = names::label_key(&req.key, keys) {
            report.add(&req_at.key("key"), message);
        }
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    report.add(
                        &req_at,
                        format!("values must be non-empty when operator is {}", req.operator),
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    report.add(
                        &req_at.key("values"),
                        format!("values must be empty when operator is {}", req.operator),
                    );
                }
            }
            other => report.add(
                &req_at.key("operator"),
                format!(
                    "unsupported operator {}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
                    go_quote(other)
                ),
            ),
        }
        for (j, value) in values.iter().enumerate() {
            if let Err(message) = names::label_value(value) {
                report.add(&req_at.key("values").index(j), message);
            }
        }
    }
}
