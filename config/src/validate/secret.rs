//! `v1 Secret`: a valid name, and `data` values that are base64, as the API server would
//! have refused otherwise. Which secrets a rule can use (exactly one item, UTF-8 text) is
//! decided when the rules compile: a secret that cannot serve as a header value is not an
//! error of the secret, only of the rule that names it, which then never matches.

use sluice_l7::http::SecretStore;

use super::Report;
use super::selector::{self, NameRule};
use crate::diag::FieldPath;
use crate::types::Secret;

pub(super) fn secret(s: &Secret, report: &mut Report) {
    let root = FieldPath::root();
    selector::object_meta(
        &s.metadata,
        &root.key("metadata"),
        NameRule::Dns1123Subdomain,
        report,
    );
    for (key, value) in s.data.iter().flatten() {
        let item = [(key.as_str(), value.as_str())];
        if let Err(e) = SecretStore::new().insert_v1("", "", item, []) {
            report.add(
                &root.key("data").key(key),
                format!("not valid base64: {}", e.reason),
            );
        }
    }
}
