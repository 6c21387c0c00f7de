//! DNS name selectors: `toFQDNs` entries and `rules.dns` entries (spec §14).
//!
//! A selector is `{matchName}` (a literal name) or `{matchPattern}` (a name where `*` stands
//! for part of one label, and a leading `**.` for one or more whole labels). Names are
//! compared lowercase and fully qualified, with a trailing dot.
//!
//! Cilium turns each selector into a regular expression (pkg/fqdn/matchpattern). sluice
//! matches label by label instead: the grammar is small enough that this is exact, it needs
//! no regex per selector (nodes carry thousands of them), and it allocates nothing per query.
//!
//! A node matches each query against all of an endpoint's selectors at once: [`DnsPatternSet`]
//! indexes them (hash map, label trie) so that costs the same for 10 selectors as for 10,000,
//! and reports which selectors matched.

mod set;

use std::borrow::Cow;

use crate::quote::go_quote;

pub use set::{DnsPatternSet, PatternIndex};

/// Longest `matchName` or `matchPattern` accepted, as in Cilium (`MaxFQDNLength`).
pub const MAX_FQDN_LEN: usize = 255;

/// What is wrong with a DNS name selector. `Display` is the user-facing message, in Cilium's
/// words (pkg/policy/api/fqdn.go, pkg/fqdn/matchpattern/matchpattern.go).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FqdnError {
    #[error("only one of MatchName or MatchPattern is allowed in an FQDNSelector")]
    BothSet,
    #[error("one of MatchName or MatchPattern is required in an FQDNSelector")]
    NeitherSet,
    #[error("Invalid MatchName: {}. Must be <= {MAX_FQDN_LEN} characters long.", go_quote(.0))]
    NameTooLong(String),
    #[error("Invalid MatchPattern: {}. Must be <= {MAX_FQDN_LEN} characters long.", go_quote(.0))]
    PatternTooLong(String),
    #[error(
        "Invalid characters in MatchName: \"{0}\". Only 0-9, a-z, A-Z and ., - and _ characters are allowed"
    )]
    NameChars(String),
    #[error(
        "Invalid characters in MatchPattern: \"{0}\". Only 0-9, a-z, A-Z and ., -, _ and * characters are allowed"
    )]
    PatternChars(String),
}

/// The part of a selector an [`FqdnError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FqdnField {
    /// The selector as a whole (both or neither field set).
    Selector,
    MatchName,
    MatchPattern,
}

impl FqdnError {
    pub fn field(&self) -> FqdnField {
        match self {
            Self::BothSet | Self::NeitherSet => FqdnField::Selector,
            Self::NameTooLong(_) | Self::NameChars(_) => FqdnField::MatchName,
            Self::PatternTooLong(_) | Self::PatternChars(_) => FqdnField::MatchPattern,
        }
    }
}

/// A compiled DNS name selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FqdnPattern {
    /// The selector as written, without normalisation: Cilium labels learned IPs with it
    /// (`fqdn:<selector>`).
    source: String,
    is_match_name: bool,
    matcher: Matcher,
}

/// Canonical forms below are lowercase and end with a dot; runs of `*` are collapsed to one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Matcher {
    /// `matchName`, or a pattern without `*`.
    Exact(String),
    /// A pattern whose stars each match part of one label.
    Glob(String),
    /// A pattern starting with `**.`: one or more whole labels, then the rest (a glob).
    Subdomains(String),
    /// A pattern made only of stars with an optional final dot (`*`, `**`, `*.`, `**.`).
    All,
}

impl FqdnPattern {
    /// A `toFQDNs` / `rules.dns` entry: exactly one of the two fields may be set (an empty
    /// string counts as unset, as in Cilium). Reports every error found.
    pub fn from_selector(
        match_name: Option<&str>,
        match_pattern: Option<&str>,
    ) -> Result<Self, Vec<FqdnError>> {
        let name = match_name.filter(|s| !s.is_empty());
        let pattern = match_pattern.filter(|s| !s.is_empty());
        match (name, pattern) {
            (Some(name), None) => Self::match_name(name),
            (None, Some(pattern)) => Self::match_pattern(pattern),
            (None, None) => Err(vec![FqdnError::NeitherSet]),
            (Some(name), Some(pattern)) => {
                let mut errors = vec![FqdnError::BothSet];
                errors.extend(Self::match_name(name).err().unwrap_or_default());
                errors.extend(Self::match_pattern(pattern).err().unwrap_or_default());
                Err(errors)
            }
        }
    }

    /// A literal name, `[-a-zA-Z0-9_.]`, at most 255 characters.
    pub fn match_name(name: &str) -> Result<Self, Vec<FqdnError>> {
        let mut errors = Vec::new();
        if name.len() > MAX_FQDN_LEN {
            errors.push(FqdnError::NameTooLong(name.to_owned()));
        }
        if !name.bytes().all(|b| is_label_byte(b) || b == b'.') {
            errors.push(FqdnError::NameChars(name.to_owned()));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            source: name.to_owned(),
            is_match_name: true,
            matcher: Matcher::Exact(canonical_name(name).into_owned()),
        })
    }

    /// A pattern, `[-a-zA-Z0-9_.*]`, at most 255 characters.
    pub fn match_pattern(pattern: &str) -> Result<Self, Vec<FqdnError>> {
        let mut errors = Vec::new();
        if pattern.len() > MAX_FQDN_LEN {
            errors.push(FqdnError::PatternTooLong(pattern.to_owned()));
        }
        if !pattern
            .bytes()
            .all(|b| is_label_byte(b) || b == b'.' || b == b'*')
        {
            errors.push(FqdnError::PatternChars(pattern.to_owned()));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            source: pattern.to_owned(),
            is_match_name: false,
            matcher: compile_pattern(pattern),
        })
    }

    /// The selector as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether this came from `matchName` (rather than `matchPattern`).
    pub fn is_match_name(&self) -> bool {
        self.is_match_name
    }

    /// Whether this is an all-stars pattern (`*`, `**.`, …).
    pub fn is_match_all(&self) -> bool {
        self.matcher == Matcher::All
    }

    /// `toFQDNs` semantics: whether `name` (any case, trailing dot optional) is selected. An
    /// all-stars pattern selects every name made of valid labels, and the root `.`.
    pub fn matches(&self, name: &str) -> bool {
        self.matches_canonical(&canonical_name(name))
    }

    /// `rules.dns` semantics: whether a query for `name` may be sent. Same as
    /// [`Self::matches`], except that an all-stars pattern allows literally every query,
    /// malformed names included, as Cilium's DNS proxy does.
    pub fn allows_query(&self, name: &str) -> bool {
        self.is_match_all() || self.matches(name)
    }

    /// [`Self::matches`] for a name already in canonical form (lowercase, trailing dot), as
    /// names read off the wire after [`canonical_name`] are. A name without the trailing dot
    /// is not canonical and matches nothing, as in Cilium, whose regexes all end in `[.]$`.
    pub fn matches_canonical(&self, fqdn: &str) -> bool {
        if !fqdn.ends_with('.') {
            return false;
        }
        match &self.matcher {
            Matcher::Exact(name) => fqdn == name,
            Matcher::All => fqdn == "." || labels(fqdn).all(is_valid_label),
            Matcher::Glob(pattern) => glob_labels(pattern, fqdn),
            Matcher::Subdomains(rest) => {
                // The prefix must take at least one label and leave exactly as many labels as
                // the rest of the pattern has (a `*` never crosses a dot, so that count is
                // fixed). A canonical name has one dot per label.
                let wanted = rest.bytes().filter(|&b| b == b'.').count();
                let have = fqdn.bytes().filter(|&b| b == b'.').count();
                if have <= wanted {
                    return false;
                }
                let Some((split, _)) = fqdn.match_indices('.').nth(have - wanted - 1) else {
                    return false;
                };
                let (prefix, suffix) = fqdn.split_at(split + 1);
                labels(prefix).all(is_valid_label) && glob_labels(rest, suffix)
            }
        }
    }
}

/// `name` lowercase with a trailing dot; the empty name is the root, `.`.
pub fn canonical_name(name: &str) -> Cow<'_, str> {
    let lower = name.bytes().all(|b| !b.is_ascii_uppercase());
    if lower && name.ends_with('.') {
        return Cow::Borrowed(name);
    }
    let mut owned = name.to_ascii_lowercase();
    if !owned.ends_with('.') {
        owned.push('.');
    }
    Cow::Owned(owned)
}

fn compile_pattern(pattern: &str) -> Matcher {
    let lower = pattern.to_ascii_lowercase();
    let body = lower.strip_suffix('.').unwrap_or(&lower);
    if !body.is_empty() && body.bytes().all(|b| b == b'*') {
        return Matcher::All;
    }
    let canonical = collapse_stars(&canonical_name(&lower));
    // Cilium (matchpattern.go escapeRegexpCharacters): two or more leading stars followed by
    // a dot match one or more whole labels. Anywhere else `**` is just `*`.
    let leading = lower.bytes().take_while(|&b| b == b'*').count();
    if leading >= 2
        && lower.as_bytes().get(leading) == Some(&b'.')
        && let Some(rest) = canonical.strip_prefix("*.")
    {
        return Matcher::Subdomains(rest.to_owned());
    }
    if canonical.contains('*') {
        Matcher::Glob(canonical)
    } else {
        Matcher::Exact(canonical)
    }
}

fn collapse_stars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c == '*' && out.ends_with('*')) {
            out.push(c);
        }
    }
    out
}

/// The labels of a canonical name (`a.b.` → `a`, `b`; `.` → one empty label).
fn labels(fqdn: &str) -> std::str::Split<'_, char> {
    fqdn.strip_suffix('.').unwrap_or(fqdn).split('.')
}

/// Characters a label may hold in Cilium's patterns (`allowedDNSCharsREGroup`): `_` is in for
/// SRV (RFC 2782) and DNS-SD (RFC 6763) names.
fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn is_valid_label(label: &str) -> bool {
    !label.is_empty() && label.bytes().all(is_label_byte)
}

/// Matches a canonical name against a canonical glob pattern, label by label.
fn glob_labels(pattern: &str, fqdn: &str) -> bool {
    let mut p = labels(pattern);
    let mut n = labels(fqdn);
    loop {
        match (p.next(), n.next()) {
            (None, None) => return true,
            (Some(pl), Some(nl)) if glob_label(pl.as_bytes(), nl.as_bytes()) => {}
            _ => return false,
        }
    }
}

/// One label: a `*` matches any run of label characters, other characters match themselves.
///
/// Every character of `label` must be matched either by a literal of the pattern (which is a
/// label character, validation saw to that) or by a star (which only takes label
/// characters). So a label holding any other byte cannot match a starred pattern, and once
/// that is checked the stars may be treated as unrestricted, which is the classic wildcard
/// match with backtracking to the last star.
fn glob_label(pattern: &[u8], label: &[u8]) -> bool {
    if !pattern.contains(&b'*') {
        return pattern == label;
    }
    if !label.iter().all(|&b| is_label_byte(b)) {
        return false;
    }
    let (mut p, mut s) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while s < label.len() {
        match pattern.get(p) {
            Some(b'*') => {
                last_star = Some((p, s));
                p += 1;
            }
            Some(&c) if c == label[s] => {
                p += 1;
                s += 1;
            }
            _ => match last_star {
                // Let the last star take one more character and retry from there.
                Some((star, taken)) => {
                    p = star + 1;
                    s = taken + 1;
                    last_star = Some((star, taken + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> FqdnPattern {
        match FqdnPattern::match_pattern(p) {
            Ok(x) => x,
            Err(e) => panic!("pattern {p:?} should compile: {e:?}"),
        }
    }

    fn name(n: &str) -> FqdnPattern {
        match FqdnPattern::match_name(n) {
            Ok(x) => x,
            Err(e) => panic!("name {n:?} should compile: {e:?}"),
        }
    }

    pub(super) struct Table {
        pub(super) source: &'static str,
        pub(super) pattern: &'static str,
        pub(super) accept: &'static [&'static str],
        pub(super) reject: &'static [&'static str],
    }

    /// Cilium's regexes are applied to canonical names, so these run through
    /// `matches_canonical`; the names are copied verbatim (including those without a final
    /// dot, which Cilium rejects because they are not canonical).
    pub(super) const CILIUM_TABLE: &[Table] = &[
        Table {
            source: "cilium pkg/fqdn/matchpattern/matchpattern_test.go TestAnchoredMatchPatternMatching",
            pattern: "cilium.io.",
            accept: &["cilium.io."],
            reject: &[
                "",
                "anysub.cilium.io.",
                "anysub.ci.io.",
                "anysub.ciliumandmore.io.",
            ],
        },
        Table {
            source: "cilium matchpattern_test.go TestAnchoredMatchPatternMatching",
            pattern: "*.cilium.io.",
            accept: &["anysub.cilium.io."],
            reject: &[
                "",
                "cilium.io.",
                "anysub.ci.io.",
                "anysub.ciliumandmore.io.",
            ],
        },
        Table {
            source: "cilium matchpattern_test.go TestAnchoredMatchPatternMatching",
            pattern: "*.ci*.io.",
            accept: &[
                "anysub.cilium.io.",
                "anysub.ci.io.",
                "anysub.ciliumandmore.io.",
            ],
            reject: &[
                "",
                "ci.io",
                "cilium.io.",
                "service.namesace.svc.cluster.local.",
            ],
        },
        Table {
            source: "cilium matchpattern_test.go TestAnchoredMatchPatternMatching",
            pattern: "*",
            accept: &[
                ".",
                "io.",
                "cilium.io.",
                "svc.cluster.local.",
                "service.namesace.svc.cluster.local.",
                "_foobar._tcp.cilium.io.",
            ],
            reject: &[
                "",
                ".io.",
                ".cilium.io.",
                ".svc.cluster.local.",
                "cilium.io",
            ],
        },
        Table {
            source: "cilium matchpattern_test.go TestAnchoredMatchPatternMatching",
            pattern: ".",
            accept: &["."],
            reject: &["", ".io.", ".cilium.io"],
        },
        Table {
            source: "cilium matchpattern_test.go TestAnchoredMatchPatternMatching (SRV, DNS-SD)",
            pattern: "_foobar._tcp.cilium.io.",
            accept: &["_foobar._tcp.cilium.io."],
            reject: &["", "_tcp.cilium.io.", "cilium.io."],
        },
        Table {
            source: "cilium matchpattern_test.go TestAnchoredMatchPatternMatching (SRV, DNS-SD)",
            pattern: "*.*.cilium.io.",
            accept: &["_foobar._tcp.cilium.io."],
            reject: &[""],
        },
        Table {
            source: "cilium matchpattern_test.go (1.18+ `**` cases), leading **. unchanged today",
            pattern: "**.cilium.io.",
            accept: &[
                "anysub.cilium.io.",
                "_foobar._tcp.cilium.io.",
                "sub11.sub22.sub33._foobar._tcp.cilium.io.",
            ],
            reject: &[
                "",
                "cilium.io.",
                "anysub.ci.io.",
                "anysub.ciliumandmore.io.",
                "sub.cilium.io",
                "1._foobar_tcp.cilium.trio.",
            ],
        },
        Table {
            source: "cilium matchpattern_test.go (1.18+ `**` cases)",
            pattern: "**.ci*.io.",
            accept: &[
                "anysub.cilium.io.",
                "anysub.ci.io.",
                "1.anysub.ciliumandmore.io.",
                "service.namesace.svc.ciuster.io.",
            ],
            reject: &["", "cilium.io.", "service.namesace.svc..ciblaster.io."],
        },
        Table {
            source: "cilium matchpattern_test.go (1.18+ `**` cases)",
            pattern: "**.*.io.",
            accept: &[
                "anysub.cilium.io.",
                "anysub.ci.io.",
                "anysub.ciliumandmore.io.",
                "service.namesace.svc.ciuster.io.",
            ],
            reject: &[
                "",
                "io.",
                "..cilium.io.",
                "cilium.io.",
                "service..namesace.svc.cluster.io.",
            ],
        },
        Table {
            source: "cilium matchpattern_test.go (1.18+ `**` cases)",
            pattern: "**",
            accept: &[
                ".",
                "io.",
                "cilium.io.",
                "svc.cluster.local.",
                "service.namesace.svc.cluster.local.",
                "_foobar._tcp.cilium.io.",
            ],
            reject: &[
                "",
                "..io.",
                "..cilium.io.",
                ".svc.cluster..local.",
                "cilium..io",
            ],
        },
        Table {
            source: "cilium matchpattern_test.go (1.18+ `**` cases)",
            pattern: "**.",
            accept: &[
                "io.",
                "cilium.io.",
                "svc.cluster.local.",
                "service.namesace.svc.cluster.local.",
                "_foobar._tcp.cilium.io.",
            ],
            reject: &[
                "",
                ".cilium.io.",
                "..cilium.io.",
                ".svc.cluster..local.",
                "cilium.io",
            ],
        },
        // The older test file expected a non-leading `**` to span labels too; current
        // matchpattern.go (escapeRegexpCharacters) treats it as `*`, and spec §14 says the
        // current code wins. Rows adapted: multi-label names moved from accept to reject.
        Table {
            source: "adapted from cilium matchpattern_test.go `1.**.cilium.io.` (current code: ** = *)",
            pattern: "1.**.cilium.io.",
            accept: &["1._foobar.cilium.io."],
            reject: &[
                "",
                "1._foobar._tcp.cilium.io.",
                "1.2._foobar._tcp.cilium.io.",
                "2._foobar.cilium.io.",
            ],
        },
        Table {
            source: "adapted from cilium matchpattern_test.go `*.**.cilium.io.` (current code: ** = *)",
            pattern: "*.**.cilium.io.",
            accept: &["_foobar._tcp.cilium.io."],
            reject: &[
                "",
                "_tcp.cilium.io.",
                "_foobar.._tcp.cilium.io.",
                "2._foobar._tcp.cilium.io.",
            ],
        },
    ];

    #[test]
    fn cilium_match_pattern_table() {
        for t in CILIUM_TABLE {
            let p = pattern(t.pattern);
            for name in t.accept {
                assert!(
                    p.matches_canonical(name),
                    "{}: {:?} must accept {name:?}",
                    t.source,
                    t.pattern
                );
            }
            for name in t.reject {
                assert!(
                    !p.matches_canonical(name),
                    "{}: {:?} must reject {name:?}",
                    t.source,
                    t.pattern
                );
            }
        }
    }

    /// spec §14 "Matching", through the canonicalising entry points.
    #[test]
    fn spec_examples() {
        let cases: &[(&str, FqdnPattern, &str, bool)] = &[
            (
                "spec §14: names compare lowercased with a trailing dot",
                name("cilium.io"),
                "Cilium.IO",
                true,
            ),
            (
                "spec §14: matchName is literal",
                name("cilium.io"),
                "www.cilium.io",
                false,
            ),
            (
                "spec §14: * stays in one label",
                pattern("*.cilium.io"),
                "www.cilium.io",
                true,
            ),
            (
                "spec §14: * stays in one label",
                pattern("*.cilium.io"),
                "cilium.io",
                false,
            ),
            (
                "spec §14: * stays in one label",
                pattern("*.cilium.io"),
                "a.b.cilium.io",
                false,
            ),
            (
                "spec §14: *cilium.io matches cilium.io",
                pattern("*cilium.io"),
                "cilium.io",
                true,
            ),
            (
                "spec §14: *cilium.io matches subcilium.io",
                pattern("*cilium.io"),
                "subcilium.io",
                true,
            ),
            (
                "spec §14 quirk: *.cilium.io accepts .cilium.io.",
                pattern("*.cilium.io"),
                ".cilium.io.",
                true,
            ),
            (
                "spec §14: **. matches one label",
                pattern("**.cilium.io"),
                "a.cilium.io",
                true,
            ),
            (
                "spec §14: **. matches several labels",
                pattern("**.cilium.io"),
                "a.b.cilium.io",
                true,
            ),
            (
                "spec §14: **. needs at least one label",
                pattern("**.cilium.io"),
                "cilium.io",
                false,
            ),
            (
                "spec §14: ** elsewhere acts like *",
                pattern("a.**.io"),
                "a.b.c.io",
                false,
            ),
            (
                "spec §14: ** elsewhere acts like *",
                pattern("a.**.io"),
                "a.b.io",
                true,
            ),
            (
                "matchpattern.go: three leading stars are still a subdomain wildcard",
                pattern("***.cilium.io"),
                "a.b.cilium.io",
                true,
            ),
            (
                "spec §14: * matches [-a-zA-Z0-9_] only",
                pattern("*.cilium.io"),
                "a+b.cilium.io",
                false,
            ),
            (
                "spec §14: all-stars selects valid names",
                pattern("*."),
                "www.cilium.io",
                true,
            ),
            (
                "spec §14: all-stars selects the root",
                pattern("**"),
                ".",
                true,
            ),
            (
                "spec §14: all-stars selector needs valid labels",
                pattern("*"),
                "a..b",
                false,
            ),
            (
                "pattern case is ignored",
                pattern("*.Cilium.IO"),
                "www.cilium.io",
                true,
            ),
        ];
        for (source, p, input, want) in cases {
            assert_eq!(
                p.matches(input),
                *want,
                "{source}: {:?} on {input:?}",
                p.as_str()
            );
        }
    }

    /// spec §14: in a DNS rule an all-stars pattern allows literally every query.
    #[test]
    fn dns_rule_match_all_allows_malformed_queries() {
        for p in ["*", "**", "*.", "**."] {
            let p = pattern(p);
            assert!(p.allows_query("a..b"), "{}", p.as_str());
            assert!(p.allows_query("white space"), "{}", p.as_str());
            assert!(!p.matches("a..b"), "{}", p.as_str());
        }
        let literal = name("cilium.io");
        assert!(literal.allows_query("cilium.io."));
        assert!(!literal.allows_query("a..b"));
    }

    /// Cilium pkg/policy/api/fqdn.go and matchpattern.go prevalidate: the messages.
    #[test]
    fn validation_errors() {
        let long = "a".repeat(256);
        let cases: Vec<(Option<&str>, Option<&str>, Vec<String>)> = vec![
            (
                Some("cilium.io"),
                Some("*.cilium.io"),
                vec!["only one of MatchName or MatchPattern is allowed in an FQDNSelector".into()],
            ),
            (
                None,
                None,
                vec!["one of MatchName or MatchPattern is required in an FQDNSelector".into()],
            ),
            (
                Some(""),
                Some(""),
                vec!["one of MatchName or MatchPattern is required in an FQDNSelector".into()],
            ),
            (
                Some("*.cilium.io"),
                None,
                vec![r#"Invalid characters in MatchName: "*.cilium.io". Only 0-9, a-z, A-Z and ., - and _ characters are allowed"#.into()],
            ),
            (
                None,
                Some("cilium.io/x"),
                vec![r#"Invalid characters in MatchPattern: "cilium.io/x". Only 0-9, a-z, A-Z and ., -, _ and * characters are allowed"#.into()],
            ),
            (
                None,
                Some("(.*).cilium.io"),
                vec![r#"Invalid characters in MatchPattern: "(.*).cilium.io". Only 0-9, a-z, A-Z and ., -, _ and * characters are allowed"#.into()],
            ),
            (
                Some(long.as_str()),
                None,
                vec![format!("Invalid MatchName: \"{long}\". Must be <= 255 characters long.")],
            ),
            (
                None,
                Some(long.as_str()),
                vec![format!("Invalid MatchPattern: \"{long}\". Must be <= 255 characters long.")],
            ),
        ];
        for (match_name, match_pattern, want) in cases {
            let got: Vec<String> = FqdnPattern::from_selector(match_name, match_pattern)
                .err()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{match_name:?} / {match_pattern:?}");
        }
        assert!(FqdnPattern::from_selector(Some(&"a".repeat(255)), None).is_ok());
    }

    #[test]
    fn errors_name_their_field() {
        let Err(errors) = FqdnPattern::from_selector(Some("a b"), Some("c d")) else {
            panic!("must fail");
        };
        let fields: Vec<FqdnField> = errors.iter().map(FqdnError::field).collect();
        assert_eq!(
            fields,
            vec![
                FqdnField::Selector,
                FqdnField::MatchName,
                FqdnField::MatchPattern
            ]
        );
    }

    #[test]
    fn canonical_name_borrows_when_already_canonical() {
        assert!(matches!(canonical_name("cilium.io."), Cow::Borrowed(_)));
        assert_eq!(canonical_name("Cilium.IO"), "cilium.io.");
        assert_eq!(canonical_name(""), ".");
    }

    #[test]
    fn glob_label_backtracks() {
        let cases: &[(&str, &str, bool)] = &[
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("*ab", "aab", true),
            ("*", "", true),
            ("x*", "", false),
            ("*a*", "bab", true),
        ];
        for &(p, l, want) in cases {
            assert_eq!(
                glob_label(p.as_bytes(), l.as_bytes()),
                want,
                "{p:?} on {l:?}"
            );
        }
    }
}
