//! The `v1 Secret`s of a configuration as the HTTP rule compiler reads them.

use std::collections::BTreeMap;

use sluice_config::Config;
use sluice_l7::http::SecretStore;
use tracing::warn;

/// Every secret of `config`. Validation already refused `data` that is not base64, so a
/// secret failing here is skipped with a warning: the rules naming it never match (fail
/// closed), as with a missing secret.
pub fn store(config: &Config) -> SecretStore {
    let mut store = SecretStore::new();
    for doc in &config.secrets {
        let s = &doc.resource;
        let namespace = s.metadata.namespace.as_deref().unwrap_or("default");
        fn pairs(m: &Option<BTreeMap<String, String>>) -> Vec<(&str, &str)> {
            m.iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }
        if let Err(e) = store.insert_v1(
            namespace,
            &s.metadata.name,
            pairs(&s.data),
            pairs(&s.string_data),
        ) {
            warn!(secret = %format!("{namespace}/{}", s.metadata.name), error = %e, "secret skipped");
        }
    }
    store
}
