//! Values of `headerMatches` secrets, from Kubernetes `v1 Secret` objects.
//!
//! Secrets are resolved when a rule compiles ([`HttpRule::compile`](super::HttpRule::compile)
//! takes a resolver), not per request: matching then never waits on a lookup, and a secret
//! that changes is a configuration change like any other — a new snapshot, rules compiled
//! again, swapped in whole. Between two snapshots a request sees one value or the other, never
//! a mix.
//!
//! Which value: the secret must hold exactly one item, as Cilium requires
//! (cilium/cilium `pkg/crypto/certificatemanager`, `GetSecretString`: "Secret %s/%s must have
//! exactly one item"). The value is used byte for byte; a trailing newline left by
//! `kubectl create secret --from-file` is part of it, as in Cilium.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::header::SecretRef;

/// Why a secret gives no header value. A rule whose secret is unavailable and that has no
/// fallback `value` never matches (spec §11).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretUnavailable {
    #[error("secret {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} must have exactly one item (it has {items})")]
    NotExactlyOneItem {
        namespace: String,
        name: String,
        items: usize,
    },
    #[error(
        "secret {namespace}/{name}: the value is not UTF-8 text, so it cannot be a header value"
    )]
    NotText { namespace: String, name: String },
}

/// A `data` value of a secret that is not base64, reported when the secret is added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret {namespace}/{name}: data.{key} is not valid base64: {reason}")]
pub struct SecretDecodeError {
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub reason: String,
}

/// The secrets of one configuration snapshot, by namespace and name.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    secrets: HashMap<(String, String), Stored>,
}

#[derive(Debug, Clone)]
enum Stored {
    Value(String),
    NotExactlyOneItem(usize),
    NotText,
}

impl SecretStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a `v1 Secret`: `data` values are base64 (standard alphabet, padded, as the API
    /// server writes them), `string_data` values are plain text, and a key in both takes its
    /// `string_data` value, as the API server merges them. Adding a secret of the same name
    /// again replaces it.
    pub fn insert_v1<'a>(
        &mut self,
        namespace: &str,
        name: &str,
        data: impl IntoIterator<Item = (&'a str, &'a str)>,
        string_data: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), SecretDecodeError> {
        let mut items: HashMap<&str, Vec<u8>> = HashMap::new();
        for (key, encoded) in data {
            let decoded = STANDARD.decode(encoded).map_err(|e| SecretDecodeError {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
            items.insert(key, decoded);
        }
        for (key, text) in string_data {
            items.insert(key, text.as_bytes().to_vec());
        }
        let stored = if items.len() != 1 {
            Stored::NotExactlyOneItem(items.len())
        } else {
            match items.into_values().next().map(String::from_utf8) {
                Some(Ok(value)) => Stored::Value(value),
                Some(Err(_)) | None => Stored::NotText,
            }
        };
        self.secrets
            .insert((namespace.to_owned(), name.to_owned()), stored);
        Ok(())
    }

    /// The header value held by `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Result<&str, SecretUnavailable> {
        let key = (namespace.to_owned(), name.to_owned());
        match self.secrets.get(&key) {
            Some(Stored::Value(value)) => Ok(value),
            Some(Stored::NotExactlyOneItem(items)) => Err(SecretUnavailable::NotExactlyOneItem {
                namespace: key.0,
                name: key.1,
                items: *items,
            }),
            Some(Stored::NotText) => Err(SecretUnavailable::NotText {
                namespace: key.0,
                name: key.1,
            }),
            None => Err(SecretUnavailable::NotFound {
                namespace: key.0,
                name: key.1,
            }),
        }
    }

    /// The resolver [`HttpRule::compile`](super::HttpRule::compile) takes, for the rules of a
    /// policy in `policy_namespace` (where a `SecretRef` without a namespace points). Reasons
    /// for an unavailable secret go to `on_unavailable`, so the caller can report them once
    /// per compile rather than per request.
    pub fn resolver<'a>(
        &'a self,
        policy_namespace: &'a str,
        on_unavailable: &'a dyn Fn(&SecretUnavailable),
    ) -> impl Fn(&SecretRef) -> Option<String> + 'a {
        move |secret: &SecretRef| {
            let namespace = secret.namespace.as_deref().unwrap_or(policy_namespace);
            self.get(namespace, &secret.name)
                .map_err(|e| on_unavailable(&e))
                .ok()
                .map(str::to_owned)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(data: &[(&str, &str)], string_data: &[(&str, &str)]) -> SecretStore {
        let mut s = SecretStore::new();
        match s.insert_v1(
            "shop",
            "token",
            data.iter().copied(),
            string_data.iter().copied(),
        ) {
            Ok(()) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn data_is_base64_and_string_data_is_text() {
        // "s3cret" in base64.
        assert_eq!(
            store(&[("v", "czNjcmV0")], &[]).get("shop", "token"),
            Ok("s3cret")
        );
        assert_eq!(
            store(&[], &[("v", "plain")]).get("shop", "token"),
            Ok("plain")
        );
    }

    /// Kubernetes: "stringData ... is merged into the data field on write, overwriting any
    /// existing values".
    #[test]
    fn string_data_overrides_data_of_the_same_key() {
        let s = store(&[("v", "czNjcmV0")], &[("v", "override")]);
        assert_eq!(s.get("shop", "token"), Ok("override"));
    }

    /// Cilium GetSecretString: exactly one item, or the secret is not used.
    #[test]
    fn a_secret_must_hold_exactly_one_item() {
        let two = store(&[("a", "YQ==")], &[("b", "b")]);
        assert_eq!(
            two.get("shop", "token").map_err(|e| e.to_string()),
            Err("Secret shop/token must have exactly one item (it has 2)".to_owned())
        );
        let none = store(&[], &[]);
        assert!(matches!(
            none.get("shop", "token"),
            Err(SecretUnavailable::NotExactlyOneItem { items: 0, .. })
        ));
        assert!(matches!(
            none.get("shop", "other"),
            Err(SecretUnavailable::NotFound { .. })
        ));
    }

    #[test]
    fn bad_base64_is_an_error_naming_the_key() {
        let mut s = SecretStore::new();
        let err = s.insert_v1("shop", "token", [("v", "not base64!")], []);
        let Err(e) = err else { panic!("must fail") };
        assert!(
            e.to_string()
                .starts_with("secret shop/token: data.v is not valid base64"),
            "{e}"
        );
    }

    #[test]
    fn non_utf8_values_are_unavailable() {
        // 0xff 0xfe
        let s = store(&[("v", "//4=")], &[]);
        assert!(matches!(
            s.get("shop", "token"),
            Err(SecretUnavailable::NotText { .. })
        ));
    }

    #[test]
    fn resolver_defaults_to_the_policy_namespace() {
        let s = store(&[], &[("v", "s3cret")]);
        let reasons = std::cell::RefCell::new(Vec::new());
        let report = |e: &SecretUnavailable| reasons.borrow_mut().push(e.to_string());
        let resolve = s.resolver("shop", &report);
        let local = SecretRef {
            namespace: None,
            name: "token".into(),
        };
        let elsewhere = SecretRef {
            namespace: Some("other".into()),
            name: "token".into(),
        };
        assert_eq!(resolve(&local).as_deref(), Some("s3cret"));
        assert_eq!(resolve(&elsewhere), None);
        assert_eq!(
            reasons.borrow().as_slice(),
            ["secret other/token not found"]
        );
    }
}
