//! Compiled label selectors (Kubernetes `matchLabels` / `matchExpressions` over
//! source-prefixed labels).

use std::collections::BTreeSet;
use std::fmt;

use sluice_config::types::LabelSelector;

use crate::labels::{LabelKey, LabelSet, LabelSource};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    pub key: LabelKey,
    pub op: Operator,
}

impl Requirement {
    pub fn equals(key: LabelKey, value: impl Into<String>) -> Self {
        Self {
            key,
            op: Operator::In(BTreeSet::from([value.into()])),
        }
    }

    pub fn exists(key: LabelKey) -> Self {
        Self {
            key,
            op: Operator::Exists,
        }
    }

    fn matches(&self, labels: &LabelSet) -> bool {
        // Kubernetes semantics: NotIn and DoesNotExist are satisfied by absence.
        match &self.op {
            Operator::In(values) => labels.values_of(&self.key).any(|v| values.contains(v)),
            Operator::NotIn(values) => !labels.values_of(&self.key).any(|v| values.contains(v)),
            Operator::Exists => labels.has_key(&self.key),
            Operator::DoesNotExist => !labels.has_key(&self.key),
        }
    }
}

/// A selector: every requirement must hold. No requirement = selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The wildcard selector `{}`.
    pub fn all() -> Self {
        Self::default()
    }

    /// Compiles a user's selector. Keys without a source prefix mean `any:`. Operators
    /// were checked at load time; an unknown one compiles to a requirement that never
    /// matches, so a validation gap fails closed.
    pub fn from_config(selector: &LabelSelector) -> Self {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::equals(
                LabelKey::parse_selector_key(key),
                value,
            ));
        }
        for expr in selector.match_expressions.iter().flatten() {
            let key = LabelKey::parse_selector_key(&expr.key);
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            let op = match expr.operator.as_str() {
                "In" => Operator::In(values),
                "NotIn" => Operator::NotIn(values),
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => Operator::In(BTreeSet::new()),
            };
            requirements.push(Requirement { key, op });
        }
        let mut selector = Self { requirements };
        selector.normalize();
        selector
    }

    /// Builds a selector over a map of labels, e.g. a Service's `spec.selector`.
    pub fn from_match_labels<'a>(
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        let mut selector = Self {
            requirements: labels
                .into_iter()
                .map(|(k, v)| Requirement::equals(LabelKey::parse_selector_key(k), v.clone()))
                .collect(),
        };
        selector.normalize();
        selector
    }

    fn normalize(&mut self) {
        self.requirements.sort();
        self.requirements.dedup();
    }

    pub fn push(&mut self, requirement: Requirement) {
        self.requirements.push(requirement);
        self.normalize();
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_wildcard(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The single value a selector requires for `key` (`key=value` or `key in
    /// (value)`), if it has such a requirement: lets callers index selectors, e.g. by
    /// namespace, instead of testing every one.
    pub fn required_value(&self, key: &str) -> Option<&str> {
        self.requirements.iter().find_map(|r| match &r.op {
            Operator::In(values)
                if r.key.key == key
                    && matches!(r.key.source, LabelSource::K8s | LabelSource::Any)
                    && values.len() == 1 =>
            {
                values.iter().next().map(String::as_str)
            }
            _ => None,
        })
    }

    /// Whether a requirement names this key (any source counts).
    pub fn mentions_key(&self, key: &str) -> bool {
        self.requirements.iter().any(|r| r.key.key == key)
    }

    /// Whether a requirement names a key starting with `prefix`.
    pub fn mentions_key_prefix(&self, prefix: &str) -> bool {
        self.requirements
            .iter()
            .any(|r| r.key.key.starts_with(prefix))
    }

    /// Whether a requirement is on a `reserved:` label.
    pub fn mentions_reserved(&self) -> bool {
        self.requirements
            .iter()
            .any(|r| r.key.source == LabelSource::Reserved)
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match &r.op {
                Operator::In(v) if v.len() == 1 => write!(
                    f,
                    "{}={}",
                    r.key,
                    v.iter().next().map_or("", String::as_str)
                )?,
                Operator::In(v) => write!(f, "{} in ({})", r.key, join(v))?,
                Operator::NotIn(v) => write!(f, "{} notin ({})", r.key, join(v))?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

fn join(values: &BTreeSet<String>) -> String {
    values
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_config::types::LabelSelectorRequirement;

    use super::*;
    use crate::labels::Label;

    fn labels(items: &[&str]) -> LabelSet {
        items.iter().map(|s| Label::parse(s)).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| v.to_string()).collect())
            },
        }
    }

    #[test]
    fn kubernetes_selector_semantics() {
        // Kubernetes apimachinery labels.Selector semantics, with Cilium's sources.
        let pod = labels(&[
            "k8s:app=web",
            "k8s:tier=front",
            "k8s:io.kubernetes.pod.namespace=shop",
        ]);
        let cases: Vec<(&str, LabelSelector, bool)> = vec![
            ("empty selects all", LabelSelector::default(), true),
            (
                "matchLabels any source",
                LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                    ..Default::default()
                },
                true,
            ),
            (
                "matchLabels wrong value",
                LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "db".into())])),
                    ..Default::default()
                },
                false,
            ),
            (
                "explicit k8s source",
                LabelSelector {
                    match_labels: Some(BTreeMap::from([("k8s:app".into(), "web".into())])),
                    ..Default::default()
                },
                true,
            ),
            (
                "other source does not match",
                LabelSelector {
                    match_labels: Some(BTreeMap::from([("container:app".into(), "web".into())])),
                    ..Default::default()
                },
                false,
            ),
            (
                "In",
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "In", &["front", "back"])]),
                    ..Default::default()
                },
                true,
            ),
            (
                "NotIn present",
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "NotIn", &["front"])]),
                    ..Default::default()
                },
                false,
            ),
            (
                "NotIn absent key",
                LabelSelector {
                    match_expressions: Some(vec![expr("env", "NotIn", &["prod"])]),
                    ..Default::default()
                },
                true,
            ),
            (
                "Exists",
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "Exists", &[])]),
                    ..Default::default()
                },
                true,
            ),
            (
                "DoesNotExist",
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "DoesNotExist", &[])]),
                    ..Default::default()
                },
                false,
            ),
            (
                "unknown operator fails closed",
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "Like", &["front"])]),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (name, selector, expected) in cases {
            assert_eq!(
                Selector::from_config(&selector).matches(&pod),
                expected,
                "{name}"
            );
        }
    }
}
