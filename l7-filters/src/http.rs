//! HTTP rules (`rules.http`): compiled once, matched per request.
//!
//! Semantics follow Cilium (spec §11): `method`, `path` and `host` are RE2-style regular
//! expressions matched against the *whole* value, fields of one rule are ANDed, and an empty
//! rule matches every request. gRPC needs nothing extra: a call is `POST /pkg.Service/Method`.
//!
//! The proxy's path through this module, per request:
//!
//! 1. [`normalize`] the request head: reject what could make the proxy and the upstream
//!    disagree about the request (answer with [`RequestRejection::status`]), and get the
//!    normalised path and host the rules must see — and the upstream must be sent.
//! 2. [`HttpRuleSet::evaluate`] the [`NormalizedRequest::view`] against the rules of the
//!    (endpoint, port, peer): allowed with header edits to apply, or denied (403).
//!
//! At configuration time: each `rules.http` entry compiles with [`HttpRule::compile`], its
//! `headerMatches` secrets read through [`SecretStore::resolver`]; the entries that apply to
//! one (endpoint, port, peer) compile together with [`HttpRuleSet::compile`].

mod decision;
mod header;
mod normalize;
mod regex;
mod rule;
mod secret;
mod set;

pub use decision::{AllowedBy, HeaderEdit, HeaderLogEntry, HeaderLogKind, HttpDecision, REDACTED};
pub use header::{
    HeaderMatch, HeaderMatchAction, HeaderMismatch, HeaderRequirement, HeaderSource, SecretRef,
};
pub use normalize::{
    BodyFraming, EscapedSlashAction, Limits, NormalizeConfig, NormalizedRequest, RequestHead,
    RequestRejection, RequestTarget, Transport, normalize,
};
pub use regex::FullMatchRegex;
pub use rule::{
    HeaderMatchSpec, HttpRule, HttpRuleError, HttpRuleField, HttpRuleIssue, HttpRuleSpec,
};
pub use secret::{SecretDecodeError, SecretStore, SecretUnavailable};
pub use set::{HttpRuleSet, RequestView};
