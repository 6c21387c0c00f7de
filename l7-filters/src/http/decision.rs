//! What an [`HttpRuleSet`](super::HttpRuleSet) decided about one request, and what the proxy
//! must do about it: forward (after applying header edits) or answer 403, and in both cases
//! write the header log into the access-log record.
//!
//! Everything here borrows from the rule set and the request. A decision costs no allocation
//! unless a `headerMatches` entry produced an edit or a log line.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};

/// Shown instead of a value that came from, or was compared with, a secret.
pub const REDACTED: &str = "[redacted]";

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpDecision<'a> {
    /// Forward the request after applying `edits` in order.
    Allowed {
        by: AllowedBy,
        edits: Vec<HeaderEdit<'a>>,
        log: Vec<HeaderLogEntry<'a>>,
    },
    /// Answer 403 (spec §11); `log` lists the headers that were missing or rejected.
    Denied { log: Vec<HeaderLogEntry<'a>> },
}

impl HttpDecision<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }

    /// The header log of either verdict, for the access-log record.
    pub fn log(&self) -> &[HeaderLogEntry<'_>] {
        match self {
            Self::Allowed { log, .. } | Self::Denied { log } => log,
        }
    }

    /// Applies the edits of an allowed request to its headers, in order; does nothing for a
    /// denied one (it is answered, not forwarded).
    pub fn apply_edits(&self, headers: &mut HeaderMap) {
        if let Self::Allowed { edits, .. } = self {
            for edit in edits {
                edit.apply(headers);
            }
        }
    }
}

/// Why a request was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowedBy {
    /// The `rules.http` entry at this index (in the order given to
    /// [`HttpRuleSet::compile`](super::HttpRuleSet::compile)) matched; the lowest index wins
    /// when several do.
    Rule(usize),
    /// The set has no rules: the port has no L7 restriction for this peer.
    NoRules,
}

/// A change to the request's headers that a `headerMatches` action asks for. Names are
/// lowercase; values were checked to be valid header values when the rule compiled, so no
/// edit can split a header or smuggle a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    /// `ADD`: append a value; the header becomes multi-valued.
    Append {
        name: &'a HeaderName,
        value: &'a HeaderValue,
    },
    /// `DELETE`: remove every value of the header.
    Remove { name: &'a HeaderName },
    /// `REPLACE`: set the header to this one value, adding it if missing.
    Set {
        name: &'a HeaderName,
        value: &'a HeaderValue,
    },
}

impl HeaderEdit<'_> {
    pub fn apply(&self, headers: &mut HeaderMap) {
        match *self {
            Self::Append { name, value } => {
                headers.append(name.clone(), value.clone());
            }
            Self::Remove { name } => {
                headers.remove(name);
            }
            Self::Set { name, value } => {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// Which list of the access-log record a header goes to (Cilium's `missing_headers` and
/// `rejected_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderLogKind {
    /// The expected value was not in the request (or was added by `ADD` / `REPLACE`).
    Missing,
    /// The request carried this value and it was refused (removed by `DELETE`, overwritten by
    /// `REPLACE`).
    Rejected,
}

/// One access-log line about a header. `value` is [`REDACTED`] when the entry refers to a
/// secret, for the expected value and the received one alike (the received value of a secret
/// header is usually a near miss of the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderLogEntry<'a> {
    pub kind: HeaderLogKind,
    pub name: &'a str,
    pub value: Cow<'a, str>,
}

/// Edits and log lines gathered while evaluating `headerMatches`.
#[derive(Debug, Default)]
pub(crate) struct Effects<'a> {
    pub(crate) edits: Vec<HeaderEdit<'a>>,
    pub(crate) log: Vec<HeaderLogEntry<'a>>,
}
