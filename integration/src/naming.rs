//! Names of everything a topology creates.
//!
//! Every name starts with [`PREFIX`] (interfaces, which allow only 15 bytes, with
//! [`LINK_PREFIX`]) and carries the run id `<test>.<pid>.<counter>`: unique across
//! parallel tests in one process (counter) and across processes (pid), and readable in
//! `ip netns` and the cgroup tree. The pid is what lets [`crate::cleanup_stale`] tell a
//! crashed run (pid gone) from one that is still running.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every network namespace, cgroup and scratch directory the harness creates.
pub const PREFIX: &str = "sluice-test-";

/// Prefix of host-side veth names (`slt<block octet>p<slot>`, at most 9 bytes).
pub const LINK_PREFIX: &str = "slt";

/// Longest test-name part kept in a run id, so that names stay readable.
const MAX_TEST_NAME: usize = 32;

/// Longest pod name or namespace: a DNS label, as in Kubernetes.
const MAX_LABEL: usize = 63;

static NEXT_RUN: AtomicU32 = AtomicU32::new(0);

/// `<test>.<pid>.<counter>`: the identity of one topology.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    /// A fresh id for `test_name` (sanitised to `[a-z0-9_-]`, cut to 32 bytes).
    pub(crate) fn new(test_name: &str) -> Self {
        let counter = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        Self(format!(
            "{}.{}.{counter}",
            sanitize_test_name(test_name),
            std::process::id()
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sluice-test-<run>`: the parent cgroup and the scratch directory.
    pub(crate) fn dir_name(&self) -> String {
        format!("{PREFIX}{}", self.0)
    }

    /// `sluice-test-<run>.<namespace>.<pod>`.
    pub(crate) fn netns_name(&self, pod: &PodId) -> String {
        format!("{PREFIX}{}.{}.{}", self.0, pod.namespace, pod.name)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The pid that created a harness object named `sluice-test-<test>.<pid>.…`, if the name
/// is one of ours.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut fields = rest.split('.');
    let _test = fields.next()?;
    let pid = fields.next()?.parse().ok()?;
    let _counter: u32 = fields.next()?.parse().ok()?;
    Some(pid)
}

fn sanitize_test_name(test_name: &str) -> String {
    // `module::test_fn` is the usual input; keep the last part, it is the readable one.
    let last = test_name.rsplit("::").next().unwrap_or(test_name);
    let cleaned: String = last
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '_',
        })
        .take(MAX_TEST_NAME)
        .collect();
    if cleaned.is_empty() {
        "test".to_owned()
    } else {
        cleaned
    }
}

/// `namespace/name` of a pod, both DNS labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodId {
    /// The Kubernetes-style namespace (`default` unless set).
    pub namespace: String,
    /// The pod name.
    pub name: String,
}

impl PodId {
    /// Checks both parts; the error says which one is wrong and why.
    pub(crate) fn new(namespace: &str, name: &str) -> Result<Self, String> {
        check_label("namespace", namespace)?;
        check_label("name", name)?;
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for PodId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A name usable in netns and cgroup names: a DNS label (`[a-z0-9-]`, 1 to 63 bytes, no
/// leading or trailing `-`). Dots would break [`owner_pid`]'s parsing.
pub(crate) fn check_label(what: &str, label: &str) -> Result<(), String> {
    let valid_chars = label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if label.is_empty()
        || label.len() > MAX_LABEL
        || !valid_chars
        || label.starts_with('-')
        || label.ends_with('-')
    {
        return Err(format!(
            "{what} {label:?} is not a DNS label (lowercase letters, digits and '-', \
             1 to {MAX_LABEL} bytes, no leading or trailing '-')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_unique_and_parse_back_to_our_pid() {
        let a = RunId::new("harness::two_pods_talk");
        let b = RunId::new("harness::two_pods_talk");
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("two_pods_talk."), "{a}");
        assert_eq!(owner_pid(&a.dir_name()), Some(std::process::id()));
        let pod = PodId::new("production", "frontend").unwrap();
        assert_eq!(owner_pid(&a.netns_name(&pod)), Some(std::process::id()));
    }

    #[test]
    fn test_names_are_sanitised_and_cut() {
        let id = RunId::new("Weird Name/with.dots::And Spaces");
        assert!(id.as_str().starts_with("and_spaces."), "{id}");
        let long = RunId::new(&"x".repeat(100));
        assert!(
            long.as_str().starts_with(&format!("{}.", "x".repeat(32))),
            "{long}"
        );
    }

    #[test]
    fn foreign_names_have_no_owner() {
        for name in [
            "sluice-test-",
            "sluice-test-a",
            "sluice-test-a.b.0",
            "other-a.1.2",
        ] {
            assert_eq!(owner_pid(name), None, "{name}");
        }
        assert_eq!(owner_pid("sluice-test-a.42.7.ns.pod"), Some(42));
    }

    #[test]
    fn pod_names_must_be_dns_labels() {
        assert!(PodId::new("production", "frontend-1").is_ok());
        for (ns, name) in [
            ("", "a"),
            ("a", "A"),
            ("a", "a.b"),
            ("a", "-a"),
            ("a", "a b"),
        ] {
            assert!(PodId::new(ns, name).is_err(), "{ns}/{name}");
        }
        assert!(PodId::new("a", &"a".repeat(64)).is_err());
    }
}
