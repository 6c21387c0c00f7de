//! `v1 Secret` documents: loaded with their namespace, checked, and never printed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use sluice_config::{LoadError, load_str};

#[test]
fn a_secret_loads_into_its_namespace_with_data_and_string_data() {
    let config = load_str(
        "secrets.yaml",
        r#"
apiVersion: v1
kind: Secret
metadata: {name: api-key, namespace: shop}
type: Opaque
data: {key: czNjcmV0}
---
apiVersion: v1
kind: Secret
metadata: {name: plain}
stringData: {token: hunter2}
"#,
    )
    .unwrap();
    assert_eq!(config.secrets.len(), 2);
    let shop = &config.secrets[0];
    assert_eq!(shop.resource.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(shop.source.line, 2);
    assert_eq!(
        shop.resource.data.as_ref().unwrap().get("key").unwrap(),
        "czNjcmV0"
    );
    // A namespaced kind without a namespace lands in `default`, as kubectl does.
    let plain = &config.secrets[1];
    assert_eq!(
        plain.resource.metadata.namespace.as_deref(),
        Some("default")
    );
    // Debug output names the keys but never shows a value.
    let debug = format!("{config:?}");
    assert!(
        debug.contains("token") && !debug.contains("hunter2"),
        "{debug}"
    );
    assert!(!debug.contains("czNjcmV0"), "{debug}");
}

#[test]
fn data_that_is_not_base64_fails_the_load_at_its_key() {
    let err = load_str(
        "bad.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: k, namespace: shop}\ndata:\n  key: \"not base64!\"\n",
    )
    .unwrap_err();
    let LoadError::Invalid(d) = err else {
        panic!("expected a validation error, got {err:?}");
    };
    let text = d[0].to_string();
    assert!(
        text.starts_with("bad.yaml:5:") && text.contains("data.key") && text.contains("base64"),
        "{text}"
    );
    assert!(!text.contains("not base64!"), "the value is echoed: {text}");
}
