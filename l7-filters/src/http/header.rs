//! Header constraints of an HTTP rule: `headers` (presence or exact value) and
//! `headerMatches` (value or secret, with an action on mismatch).

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::decision::{Effects, HeaderEdit, HeaderLogEntry, HeaderLogKind, REDACTED};
use super::rule::HttpRuleError;

/// Read access to a request's headers, implemented by whatever the proxy parses requests into.
pub trait HeaderSource {
    /// The value of the header `name` (always passed in lowercase), or `None` when the request
    /// does not carry it. A header sent several times is returned as its values joined with
    /// `,`, the combination RFC 9110 §5.3 defines and Envoy matches against.
    fn header(&self, name: &str) -> Option<Cow<'_, [u8]>>;
}

/// Name/value pairs in request order, names compared case-insensitively.
impl<N: AsRef<str>, V: AsRef<[u8]>> HeaderSource for [(N, V)] {
    fn header(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let mut values = self
            .iter()
            .filter(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref());
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = first.to_vec();
                for v in std::iter::once(second).chain(values) {
                    joined.push(b',');
                    joined.extend_from_slice(v);
                }
                Some(Cow::Owned(joined))
            }
        }
    }
}

/// The proxy's parsed headers. Values sent on several lines are joined with `,`, as for the
/// slice form; a single value is borrowed, not copied.
impl HeaderSource for HeaderMap {
    fn header(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        join_values(self.get_all(name).iter())
    }
}

/// The values of one header as matched: a single value borrowed, several joined with `,`.
fn join_values<'a>(mut values: impl Iterator<Item = &'a HeaderValue>) -> Option<Cow<'a, [u8]>> {
    let first = values.next()?;
    match values.next() {
        None => Some(Cow::Borrowed(first.as_bytes())),
        Some(second) => {
            let mut joined = first.as_bytes().to_vec();
            for v in std::iter::once(second).chain(values) {
                joined.push(b',');
                joined.extend_from_slice(v.as_bytes());
            }
            Some(Cow::Owned(joined))
        }
    }
}

/// One entry of `headers`: `"Name"` requires the header, `"Name: value"` requires that value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderRequirement {
    Present { name: String },
    Equals { name: String, value: String },
}

impl HeaderRequirement {
    /// Parses Cilium's string form: split at the first space, drop trailing colons from the
    /// name, compare the name case-insensitively and the value exactly.
    pub fn parse(entry: &str) -> Result<Self, HttpRuleError> {
        let (name, value) = match entry.split_once(' ') {
            Some((name, value)) => (name, Some(value)),
            None => (entry, None),
        };
        let name = name.trim_end_matches(':');
        if name.is_empty() {
            return Err(HttpRuleError::HeaderNameMissing);
        }
        // Cilium accepts any text here and the resulting matcher can then never match (a
        // request cannot carry a header named `x-token:abc`). Rejecting it is kinder.
        if !is_token(name) {
            return Err(HttpRuleError::InvalidHeaderName(name.to_owned()));
        }
        let name = name.to_ascii_lowercase();
        Ok(match value {
            None => Self::Present { name },
            Some(value) => Self::Equals {
                name,
                value: value.to_owned(),
            },
        })
    }

    /// The header's name, lowercase.
    pub fn name(&self) -> &str {
        match self {
            Self::Present { name } | Self::Equals { name, .. } => name,
        }
    }

    pub fn is_met<H: HeaderSource + ?Sized>(&self, headers: &H) -> bool {
        match self {
            Self::Present { name } => headers.header(name).is_some(),
            Self::Equals { name, value } => headers
                .header(name)
                .is_some_and(|v| v.as_ref() == value.as_bytes()),
        }
    }
}

/// What a `headerMatches` entry does when the request's header differs from the expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderMatchAction {
    /// `mismatch` unset or empty: the rule does not match the request.
    Fail,
    /// `LOG`: the rule still matches; the mismatch is logged.
    Log,
    /// `ADD`: add the expected value (the header becomes multi-valued).
    Add,
    /// `DELETE`: remove the header.
    Delete,
    /// `REPLACE`: set the header to the expected value, adding it if missing.
    Replace,
}

impl HeaderMatchAction {
    /// Parses Cilium's `mismatch` value. The names are case-sensitive, as in Cilium.
    pub fn parse(mismatch: &str) -> Result<Self, HttpRuleError> {
        match mismatch {
            "" => Ok(Self::Fail),
            "LOG" => Ok(Self::Log),
            "ADD" => Ok(Self::Add),
            "DELETE" => Ok(Self::Delete),
            "REPLACE" => Ok(Self::Replace),
            other => Err(HttpRuleError::InvalidHeaderAction(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "",
            Self::Log => "LOG",
            Self::Add => "ADD",
            Self::Delete => "DELETE",
            Self::Replace => "REPLACE",
        }
    }
}

/// A Kubernetes secret holding a header value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// `None`: the policy's own namespace.
    pub namespace: Option<String>,
    pub name: String,
}

/// The value a `headerMatches` entry compares against, resolved at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expected {
    /// Neither `value` nor `secret` (or a secret whose value is empty, as in Cilium): the
    /// header only has to be present.
    Present,
    Value {
        value: String,
        /// `value` as a header value, ready for `ADD` and `REPLACE`.
        header_value: HeaderValue,
        from_secret: bool,
    },
    /// A secret that could not be read and no fallback `value`, or a value that no header can
    /// carry (CR, LF, NUL or another control byte): the entry never matches (spec §11),
    /// whatever its mismatch action. Such a value could never compare equal, and writing it
    /// with `ADD` or `REPLACE` would split the header.
    Unavailable,
}

/// The empty value that `ADD` and `REPLACE` write for a presence check, as Envoy does.
static EMPTY_VALUE: HeaderValue = HeaderValue::from_static("");

/// A compiled `headerMatches` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    pub(crate) name: String,
    pub(crate) header_name: HeaderName,
    pub(crate) expected: Expected,
    pub(crate) action: HeaderMatchAction,
    /// The entry refers to a secret: access logs show [`REDACTED`] for its values, the
    /// received one included, even when the fallback `value` is in use (Cilium does the same).
    pub(crate) redact: bool,
}

/// How one header match came out for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Matched,
    Mismatched,
    Unavailable,
}

impl HeaderMatch {
    /// The header's name, lowercase.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn action(&self) -> HeaderMatchAction {
        self.action
    }

    pub(crate) fn outcome<H: HeaderSource + ?Sized>(&self, headers: &H) -> Outcome {
        match &self.expected {
            Expected::Unavailable => Outcome::Unavailable,
            Expected::Present => match headers.header(&self.name) {
                Some(_) => Outcome::Matched,
                None => Outcome::Mismatched,
            },
            Expected::Value { value, .. } => match headers.header(&self.name) {
                Some(got) if constant_time_eq(&got, value.as_bytes()) => Outcome::Matched,
                _ => Outcome::Mismatched,
            },
        }
    }

    /// The mismatch to act on, when this entry's header differs and its action does not fail
    /// the rule.
    pub(crate) fn mismatch<H: HeaderSource + ?Sized>(
        &self,
        headers: &H,
    ) -> Option<HeaderMismatch<'_>> {
        if self.action == HeaderMatchAction::Fail || self.outcome(headers) != Outcome::Mismatched {
            return None;
        }
        let (value, from_secret) = match &self.expected {
            Expected::Value {
                value, from_secret, ..
            } => (Some(value.as_str()), *from_secret),
            Expected::Present | Expected::Unavailable => (None, false),
        };
        Some(HeaderMismatch {
            name: &self.name,
            action: self.action,
            value,
            from_secret,
        })
    }
}

impl HeaderMatch {
    /// Evaluates this entry against the request the way Cilium's Envoy filter does
    /// (cilium/proxy `cilium/network_policy.cc`, `HeaderMatch::allowed`), recording the edits
    /// and log lines its action asks for. Returns whether the rule can still match.
    ///
    /// - expected value unavailable: fails, logs nothing;
    /// - header matches: passes;
    /// - mismatch, no action: logs the expected value as missing, fails;
    /// - `LOG`: logs it as missing, passes;
    /// - `ADD`: appends the expected value, logs it as missing, passes;
    /// - `DELETE`: for a value check with the header present, removes the header and logs the
    ///   received value as rejected; otherwise nothing; passes;
    /// - `REPLACE`: logs a received value as rejected, sets the expected value, logs it as
    ///   missing, passes.
    pub(crate) fn evaluate<'a>(
        &'a self,
        headers: &'a HeaderMap,
        effects: &mut Effects<'a>,
    ) -> bool {
        let (expected, header_value) = match &self.expected {
            Expected::Unavailable => return false,
            Expected::Present => (None, &EMPTY_VALUE),
            Expected::Value {
                value,
                header_value,
                ..
            } => (Some(value.as_str()), header_value),
        };
        let received = join_values(headers.get_all(&self.header_name).iter());
        let matched = match (expected, &received) {
            (None, received) => received.is_some(),
            (Some(want), Some(got)) => constant_time_eq(got, want.as_bytes()),
            (Some(_), None) => false,
        };
        if matched {
            return true;
        }
        let expected_text = expected.unwrap_or("");
        match self.action {
            HeaderMatchAction::Fail => {
                self.log(
                    effects,
                    HeaderLogKind::Missing,
                    Cow::Borrowed(expected_text),
                );
                false
            }
            HeaderMatchAction::Log => {
                self.log(
                    effects,
                    HeaderLogKind::Missing,
                    Cow::Borrowed(expected_text),
                );
                true
            }
            HeaderMatchAction::Add => {
                effects.edits.push(HeaderEdit::Append {
                    name: &self.header_name,
                    value: header_value,
                });
                self.log(
                    effects,
                    HeaderLogKind::Missing,
                    Cow::Borrowed(expected_text),
                );
                true
            }
            HeaderMatchAction::Delete => {
                // A failed presence check has nothing to delete, and neither has a value check
                // on a header the request does not carry.
                if let (Some(_), Some(got)) = (expected, received) {
                    effects.edits.push(HeaderEdit::Remove {
                        name: &self.header_name,
                    });
                    self.log(effects, HeaderLogKind::Rejected, lossy(got));
                }
                true
            }
            HeaderMatchAction::Replace => {
                if let Some(got) = received {
                    self.log(effects, HeaderLogKind::Rejected, lossy(got));
                }
                effects.edits.push(HeaderEdit::Set {
                    name: &self.header_name,
                    value: header_value,
                });
                self.log(
                    effects,
                    HeaderLogKind::Missing,
                    Cow::Borrowed(expected_text),
                );
                true
            }
        }
    }

    fn log<'a>(&'a self, effects: &mut Effects<'a>, kind: HeaderLogKind, value: Cow<'a, str>) {
        effects.log.push(HeaderLogEntry {
            kind,
            name: &self.name,
            value: if self.redact {
                Cow::Borrowed(REDACTED)
            } else {
                value
            },
        });
    }
}

/// A received header value as log text; bytes that are not UTF-8 show as U+FFFD.
fn lossy(value: Cow<'_, [u8]>) -> Cow<'_, str> {
    match value {
        Cow::Borrowed(bytes) => String::from_utf8_lossy(bytes),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// A header that differed from a non-failing `headerMatches` entry: the proxy applies the
/// action and logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderMismatch<'a> {
    pub name: &'a str,
    pub action: HeaderMatchAction,
    /// The expected value (what `ADD` and `REPLACE` write); `None` for a presence check.
    pub value: Option<&'a str>,
    /// The value came from a secret: access logs must show it as `[redacted]`.
    pub from_secret: bool,
}

/// Compares without an early exit, so the time taken does not reveal how much of a secret
/// header value an attacker guessed right. Only the length can leak, which a secret of fixed
/// length does not mind.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// An RFC 9110 token: the characters a header name may contain.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec §11: `"Name"` = present, `"Name: value"` = equals; split at the first space, a
    /// trailing colon on the name dropped. Cilium: pkg/envoy/server.go getHTTPRule.
    #[test]
    fn parses_header_strings() {
        let cases: &[(&str, HeaderRequirement)] = &[
            (
                "X-Token",
                HeaderRequirement::Present {
                    name: "x-token".into(),
                },
            ),
            (
                "X-Token: abc",
                HeaderRequirement::Equals {
                    name: "x-token".into(),
                    value: "abc".into(),
                },
            ),
            (
                "X-Token abc",
                HeaderRequirement::Equals {
                    name: "x-token".into(),
                    value: "abc".into(),
                },
            ),
            // Only the first space splits; the rest belongs to the value.
            (
                "X-Note: a b  c",
                HeaderRequirement::Equals {
                    name: "x-note".into(),
                    value: "a b  c".into(),
                },
            ),
            (
                "X-Flag:",
                HeaderRequirement::Present {
                    name: "x-flag".into(),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                HeaderRequirement::parse(input).as_ref(),
                Ok(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_header_strings_without_a_usable_name() {
        assert_eq!(
            HeaderRequirement::parse(""),
            Err(HttpRuleError::HeaderNameMissing)
        );
        assert_eq!(
            HeaderRequirement::parse(": v"),
            Err(HttpRuleError::HeaderNameMissing)
        );
        assert_eq!(
            HeaderRequirement::parse("X-Token:abc"),
            Err(HttpRuleError::InvalidHeaderName("X-Token:abc".into()))
        );
    }

    #[test]
    fn requirements_check_presence_and_exact_value() {
        let headers: &[(&str, &str)] = &[("x-token", "abc"), ("Accept", "a"), ("accept", "b")];
        let present = HeaderRequirement::parse("X-Token").ok();
        let equals = HeaderRequirement::parse("x-token: abc").ok();
        let differs = HeaderRequirement::parse("x-token: ABC").ok();
        let joined = HeaderRequirement::parse("accept: a,b").ok();
        let absent = HeaderRequirement::parse("x-other").ok();
        assert_eq!(present.map(|r| r.is_met(headers)), Some(true));
        assert_eq!(equals.map(|r| r.is_met(headers)), Some(true));
        assert_eq!(differs.map(|r| r.is_met(headers)), Some(false));
        assert_eq!(joined.map(|r| r.is_met(headers)), Some(true));
        assert_eq!(absent.map(|r| r.is_met(headers)), Some(false));
    }

    /// Cilium pkg/policy/api/http.go: MismatchAction values; anything else is
    /// `Invalid header action: %s`.
    #[test]
    fn parses_mismatch_actions() {
        let cases = [
            ("", Ok(HeaderMatchAction::Fail)),
            ("LOG", Ok(HeaderMatchAction::Log)),
            ("ADD", Ok(HeaderMatchAction::Add)),
            ("DELETE", Ok(HeaderMatchAction::Delete)),
            ("REPLACE", Ok(HeaderMatchAction::Replace)),
            ("log", Err(HttpRuleError::InvalidHeaderAction("log".into()))),
            (
                "DROP",
                Err(HttpRuleError::InvalidHeaderAction("DROP".into())),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(HeaderMatchAction::parse(input), want, "{input:?}");
        }
        assert_eq!(
            HeaderMatchAction::parse("DROP").map_err(|e| e.to_string()),
            Err("Invalid header action: DROP".to_owned())
        );
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
        assert!(constant_time_eq(b"", b""));
    }
}
