//! Labels with sources, as Cilium writes them: `source:key=value`.

use std::collections::BTreeSet;
use std::fmt;

/// Where a label comes from. The source is part of the label's identity: `k8s:app=web`
/// and `container:app=web` are different labels, and a selector key without a source
/// (`any:`) matches both.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LabelSource {
    K8s,
    Reserved,
    Cidr,
    CidrGroup,
    Fqdn,
    Node,
    Container,
    Unspec,
    /// Only in selectors: matches a label of any source.
    Any,
}

impl LabelSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::K8s => "k8s",
            Self::Reserved => "reserved",
            Self::Cidr => "cidr",
            Self::CidrGroup => "cidrgroup",
            Self::Fqdn => "fqdn",
            Self::Node => "node",
            Self::Container => "container",
            Self::Unspec => "unspec",
            Self::Any => "any",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "k8s" => Self::K8s,
            "reserved" => Self::Reserved,
            "cidr" => Self::Cidr,
            "cidrgroup" => Self::CidrGroup,
            "fqdn" => Self::Fqdn,
            "node" => Self::Node,
            "container" => Self::Container,
            "unspec" => Self::Unspec,
            "any" => Self::Any,
            _ => return None,
        })
    }
}

/// A label key with its source, e.g. `k8s:app`. Keys are split at the first `:` only
/// when the prefix is a known source, so `cidr:10.0.0.0/8` and keys such as
/// `io.cilium.k8s.policy.cluster` parse as users expect; IPv6 CIDR labels keep their
/// colons because only the first one is looked at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelKey {
    pub source: LabelSource,
    pub key: String,
}

impl LabelKey {
    pub fn new(source: LabelSource, key: impl Into<String>) -> Self {
        Self {
            source,
            key: key.into(),
        }
    }

    /// Parses a selector key: `k8s:app`, `reserved:host`, or `app` (= `any:app`).
    pub fn parse_selector_key(s: &str) -> Self {
        Self::parse_with_default(s, LabelSource::Any)
    }

    fn parse_with_default(s: &str, default: LabelSource) -> Self {
        if let Some((prefix, rest)) = s.split_once(':')
            && let Some(source) = LabelSource::parse(prefix)
        {
            return Self::new(source, rest);
        }
        Self::new(default, s)
    }

    /// Whether a selector key (which may be `any:`) designates this label key.
    pub fn selects(&self, label: &LabelKey) -> bool {
        self.key == label.key && (self.source == LabelSource::Any || self.source == label.source)
    }
}

impl fmt::Display for LabelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source.as_str(), self.key)
    }
}

/// One label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub key: LabelKey,
    pub value: String,
}

impl Label {
    pub fn new(source: LabelSource, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: LabelKey::new(source, key),
            value: value.into(),
        }
    }

    pub fn k8s(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(LabelSource::K8s, key, value)
    }

    pub fn reserved(name: impl Into<String>) -> Self {
        Self::new(LabelSource::Reserved, name, "")
    }

    /// Parses `source:key=value` (source optional, `k8s` when absent: the way users
    /// write a workload's labels on the command line; `=value` optional).
    pub fn parse(s: &str) -> Self {
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k, v),
            None => (s, ""),
        };
        Self {
            key: LabelKey::parse_with_default(key, LabelSource::K8s),
            value: value.to_owned(),
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}", self.key)
        } else {
            write!(f, "{}={}", self.key, self.value)
        }
    }
}

/// A set of labels, sorted (Hubble prints them sorted as `source:key=value`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSet(BTreeSet<Label>);

impl LabelSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, label: Label) {
        self.0.insert(label);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Values of every label the selector key designates.
    pub fn values_of<'a>(&'a self, key: &'a LabelKey) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |l| key.selects(&l.key))
            .map(|l| l.value.as_str())
    }

    pub fn has_key(&self, key: &LabelKey) -> bool {
        self.values_of(key).next().is_some()
    }

    /// Whether the set holds the reserved label `reserved:<name>`.
    pub fn has_reserved(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|l| l.key.source == LabelSource::Reserved && l.key.key == name)
    }

    /// The labels as Hubble prints them: sorted `source:key=value` strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl FromIterator<Label> for LabelSet {
    fn from_iter<I: IntoIterator<Item = Label>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// The meta labels Kubernetes and Cilium add to a pod's identity.
pub mod meta {
    pub const NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const SERVICE_ACCOUNT: &str = "io.cilium.k8s.policy.serviceaccount";
    pub const CLUSTER: &str = "io.cilium.k8s.policy.cluster";
    pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_cilium_label_forms() {
        // Cilium pkg/labels: "source:key=value", source defaults apply per context.
        let cases = [
            ("k8s:app=web", "k8s:app=web"),
            ("app=web", "k8s:app=web"),
            ("reserved:host", "reserved:host"),
            ("cidr:10.0.0.0/8", "cidr:10.0.0.0/8"),
            ("cidr:2001:db8::/32", "cidr:2001:db8::/32"),
            (
                "io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.cluster=default",
            ),
            ("weird:app=x", "k8s:weird:app=x"),
        ];
        for (input, printed) in cases {
            assert_eq!(Label::parse(input).to_string(), printed, "{input}");
        }
    }

    #[test]
    fn any_source_selects_every_source() {
        let set: LabelSet = [
            Label::k8s("app", "web"),
            Label::new(LabelSource::Container, "tier", "1"),
        ]
        .into_iter()
        .collect();
        assert!(set.has_key(&LabelKey::parse_selector_key("app")));
        assert!(set.has_key(&LabelKey::parse_selector_key("k8s:app")));
        assert!(!set.has_key(&LabelKey::parse_selector_key("container:app")));
        assert!(set.has_key(&LabelKey::parse_selector_key("any:tier")));
    }
}
