//! Kubernetes naming rules: object names, label keys and values, port names.
//!
//! The reasons are Kubernetes' own wording (k8s.io/apimachinery/pkg/util/validation), which
//! users know from `kubectl apply`.

use sluice_l7::quote::go_quote;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const PORT_NAME_MAX: usize = 15;

/// Source prefixes Cilium accepts before a selector key (`k8s:app`, `reserved:host`); a key
/// without one means `any:`.
pub(super) const CILIUM_LABEL_SOURCES: &[&str] = &[
    "k8s:",
    "reserved:",
    "any:",
    "cidr:",
    "fqdn:",
    "node:",
    "container:",
    "unspec:",
    "cidrgroup:",
];

/// Which keys a label selector may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LabelKeys {
    /// Kubernetes label keys only (KNP, Service, resources' own labels).
    Kubernetes,
    /// Kubernetes label keys, optionally behind one of Cilium's source prefixes.
    Cilium,
}

/// A DNS-1123 label (namespace names, port names of services): `my-name`.
pub(super) fn dns1123_label(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_dns1123_label(s) {
        return Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')".to_owned());
    }
    Ok(())
}

/// A DNS-1123 subdomain (most object names): `my-name.example`.
pub(super) fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if s.is_empty() || !s.split('.').all(is_dns1123_label) {
        return Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')".to_owned());
    }
    Ok(())
}

/// A DNS-1035 label (service names): like a DNS-1123 label, starting with a letter.
pub(super) fn dns1035_label(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_dns1123_label(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')".to_owned());
    }
    Ok(())
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= DNS1123_LABEL_MAX
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A label key, optionally with a Cilium source prefix; the message names the key.
pub(super) fn label_key(key: &str, keys: LabelKeys) -> Result<(), String> {
    let bare = match keys {
        LabelKeys::Kubernetes => key,
        LabelKeys::Cilium => CILIUM_LABEL_SOURCES
            .iter()
            .find_map(|source| key.strip_prefix(source))
            .unwrap_or(key),
    };
    qualified_name(bare).map_err(|reason| format!("invalid label key {}: {reason}", go_quote(key)))
}

/// A label value; the message names the value.
pub(super) fn label_value(value: &str) -> Result<(), String> {
    let reason = if value.len() > LABEL_VALUE_MAX {
        format!("must be no more than {LABEL_VALUE_MAX} characters")
    } else if !value.is_empty() && !is_label_name(value) {
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')".to_owned()
    } else {
        return Ok(());
    };
    Err(format!("invalid label value {}: {reason}", go_quote(value)))
}

/// Kubernetes' "qualified name": `[prefix/]name`, the prefix a DNS subdomain.
fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        None => (None, key),
        Some((prefix, name)) => (Some(prefix), name),
    };
    if name.contains('/') {
        return Err("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_owned());
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".to_owned());
        }
        dns1123_subdomain(prefix).map_err(|reason| format!("prefix part {reason}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".to_owned());
    }
    if name.len() > LABEL_NAME_MAX {
        return Err(format!(
            "name part must be no more than {LABEL_NAME_MAX} characters"
        ));
    }
    if !is_label_name(name) {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')".to_owned());
    }
    Ok(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// An IANA service name (RFC 6335 §5.1), the form of named ports: 1-15 letters, digits and
/// `-`, at least one letter, no `-` at either end or twice in a row. Kubernetes wants it
/// lowercase; Cilium (pkg/iana) accepts any case and lowercases it.
pub(super) fn is_port_name(s: &str, any_case: bool) -> bool {
    let b = s.as_bytes();
    (1..=PORT_NAME_MAX).contains(&b.len())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == b'-'
                || (any_case && c.is_ascii_uppercase())
        })
        && b.iter().any(u8::is_ascii_alphabetic)
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Why `s` is not a port name, for messages.
pub(super) const PORT_NAME_RULES: &str = "a port name is 1-15 lowercase letters, digits and '-', with at least one letter and no '-' at either end or twice in a row";

#[cfg(test)]
mod tests {
    use super::*;

    /// Cilium pkg/iana/svcname_test.go TestIsSvcName (case-insensitive, as Cilium).
    #[test]
    fn port_names_like_cilium_iana() {
        let cases = [
            ("", false),
            ("1234567890abcdef", false),
            ("1", false),
            ("1a", true),
            ("Z", true),
            ("a9", true),
            ("a-9", true),
            ("a--9", false),
            ("-a9", false),
            ("a9-", false),
            ("a-b9-1", true),
            ("1-a-9", true),
            ("a-b-c-d-e-f", true),
            ("1-2-3-4", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_port_name(name, true), want, "{name:?}");
        }
        // Kubernetes (IsValidPortName) wants lowercase.
        assert!(!is_port_name("HTTP", false));
        assert!(is_port_name("http", false));
    }

    /// k8s.io/apimachinery validation: IsQualifiedName / IsValidLabelValue cases.
    #[test]
    fn label_keys_and_values() {
        let keys = [
            ("app", LabelKeys::Kubernetes, true),
            ("app.kubernetes.io/name", LabelKeys::Kubernetes, true),
            ("k8s:app", LabelKeys::Kubernetes, false),
            ("k8s:app", LabelKeys::Cilium, true),
            ("reserved:host", LabelKeys::Cilium, true),
            ("k8s:io.kubernetes.pod.namespace", LabelKeys::Cilium, true),
            ("foo:app", LabelKeys::Cilium, false),
            ("", LabelKeys::Kubernetes, false),
            ("/name", LabelKeys::Kubernetes, false),
            ("Example.com/name", LabelKeys::Kubernetes, false),
            ("a/b/c", LabelKeys::Kubernetes, false),
            ("-app", LabelKeys::Kubernetes, false),
            ("app_", LabelKeys::Kubernetes, false),
            ("My.Name_1", LabelKeys::Kubernetes, true),
        ];
        for (key, mode, want) in keys {
            assert_eq!(label_key(key, mode).is_ok(), want, "{key:?} {mode:?}");
        }
        assert!(label_key(&"a".repeat(63), LabelKeys::Kubernetes).is_ok());
        assert_eq!(
            label_key(&"a".repeat(64), LabelKeys::Kubernetes),
            Err(format!(
                "invalid label key \"{}\": name part must be no more than 63 characters",
                "a".repeat(64)
            ))
        );
        let values = [
            ("", true),
            ("web", true),
            ("v1.2_3-x", true),
            ("-x", false),
            ("a b", false),
        ];
        for (value, want) in values {
            assert_eq!(label_value(value).is_ok(), want, "{value:?}");
        }
        assert!(label_value(&"v".repeat(63)).is_ok());
        assert!(label_value(&"v".repeat(64)).is_err());
    }

    #[test]
    fn dns_names() {
        assert!(dns1123_label("my-ns").is_ok());
        assert!(dns1123_label("My-ns").is_err());
        assert!(dns1123_label("a.b").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_subdomain("api-read-only.v2").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("").is_err());
        assert!(dns1123_subdomain(&"a".repeat(254)).is_err());
        assert!(dns1035_label("web").is_ok());
        assert!(dns1035_label("1web").is_err());
    }
}
