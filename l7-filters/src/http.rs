//! HTTP rules (`rules.http`): compiled once, matched per request.
//!
//! Semantics follow Cilium (spec §11): `method`, `path` and `host` are RE2-style regular
//! expressions matched against the *whole* value, fields of one rule are ANDed, and an empty
//! rule matches every request. gRPC needs nothing extra: a call is `POST /pkg.Service/Method`.

mod header;
mod regex;
mod rule;

pub use header::{
    HeaderMatch, HeaderMatchAction, HeaderMismatch, HeaderRequirement, HeaderSource, SecretRef,
};
pub use regex::FullMatchRegex;
pub use rule::{
    HeaderMatchSpec, HttpRule, HttpRuleError, HttpRuleField, HttpRuleIssue, HttpRuleSpec,
};
