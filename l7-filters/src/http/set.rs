//! All the `rules.http` entries that apply to one (endpoint, port, peer), compiled into one
//! matcher: entries are ORed, the fields of one entry ANDed (spec §11).
//!
//! # How a request is evaluated
//!
//! 1. `method`, `path` and `host` are each matched against every distinct pattern of the set
//!    in one pass ([`patterns`]): a lazy DFA reports the patterns that match the whole value.
//! 2. Of the three fields, the one that leaves the fewest rules to look at drives: its matched
//!    patterns' rules plus the rules that do not set it. Each of those is kept if its other two
//!    fields passed too. With 10,000 rules of distinct paths a request looks at about one.
//! 3. The candidates, in rule order, then have their `headers` and `headerMatches` checked —
//!    the only per-rule work, and only for rules whose request line matched.
//!
//! Cost per request: the lengths of the three values, plus the number of matching patterns
//! and candidate rules. Nothing is allocated unless a `headerMatches` entry produces an edit
//! or a log line; the per-thread scratch space (DFA caches, mark sets) comes from a pool.
//!
//! # Empty rule list versus deny-all
//!
//! [`HttpRuleSet::compile`] of an empty list gives a set that **allows everything**
//! ([`AllowedBy::NoRules`]), as Cilium's proxy does ("Empty set matches any payload",
//! cilium/proxy `network_policy.cc`): no `rules.http` means no L7 restriction, and a port
//! rule whose HTTP list merged into an L7 wildcard (spec §8) behaves the same.
//! [`HttpRuleSet::deny_all`] is the explicit opposite, for a caller that has to proxy a
//! connection no rule allows (fail closed). The two can never be confused with an empty
//! list, because neither is one.
//!
//! # `headerMatches`
//!
//! As in Cilium, when any rule of the set has `headerMatches`, every candidate rule is
//! evaluated instead of stopping at the first match, so that every action (ADD, DELETE,
//! REPLACE, LOG) of every rule whose request line and `headers` matched is recorded — also
//! the actions of a rule that then fails on another `headerMatches` entry, which Cilium
//! applies too. One difference: Cilium edits the headers in place while it goes, so a later
//! rule can see an earlier rule's edit; here every rule sees the request as received and the
//! edits come back in rule order, to apply before forwarding. Rules are ORed; their order
//! should not change what they see.

mod patterns;

use std::fmt;

use http::{HeaderMap, Method};
use regex_automata::hybrid::dfa::Cache;
use regex_automata::util::pool::Pool;

use self::patterns::{EntryId, FieldPatterns, Marks, PatternId};
use super::decision::{AllowedBy, Effects, HttpDecision};
use super::rule::{HttpRule, HttpRuleError};

/// The parts of a request that rules match, after normalisation
/// ([`NormalizedRequest::view`](super::NormalizedRequest::view)).
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Compared case-sensitively: methods are case-sensitive tokens (RFC 9110 §9.1), so a
    /// rule `GET` does not match `get`.
    pub method: &'a Method,
    /// Path and query string, normalised; `None` for a request without a path (CONNECT),
    /// which no `path` pattern matches.
    pub path: Option<&'a str>,
    /// The authority, normalised; `None` when the request names none, which no `host`
    /// pattern matches.
    pub host: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// A compiled list of HTTP rules; see the module documentation.
pub struct HttpRuleSet {
    kind: Kind,
}

enum Kind {
    Unrestricted,
    DenyAll,
    Rules(Box<Compiled>),
}

struct Compiled {
    rules: Box<[HttpRule]>,
    method: FieldPatterns,
    path: FieldPatterns,
    host: FieldPatterns,
    /// Per rule, its pattern id in each field (`None`: the rule does not set it).
    fields: Box<[RuleFields]>,
    /// Any rule has `headerMatches`: evaluate every candidate (spec §11).
    has_header_matches: bool,
    scratch: Pool<Scratch, fn() -> Scratch>,
}

#[derive(Debug, Clone, Copy)]
struct RuleFields {
    method: Option<PatternId>,
    path: Option<PatternId>,
    host: Option<PatternId>,
}

/// Per-thread working memory, reused across requests.
#[derive(Debug, Default)]
struct Scratch {
    method_cache: Option<Cache>,
    path_cache: Option<Cache>,
    host_cache: Option<Cache>,
    method_hits: Marks,
    path_hits: Marks,
    host_hits: Marks,
    candidates: Vec<EntryId>,
}

impl HttpRuleSet {
    /// Compiles `rules` (in their policy order; decisions name rules by index in this slice).
    /// An empty slice gives a set that allows every request (see the module documentation).
    ///
    /// Each rule's own regexes already compiled; what can fail here is the combination:
    /// [`HttpRuleError::RuleSetTooLarge`] when the patterns of one field together exceed the
    /// size budget.
    pub fn compile(rules: &[HttpRule]) -> Result<Self, HttpRuleError> {
        if rules.is_empty() {
            return Ok(Self::unrestricted());
        }
        let (method, method_ids) = patterns::compile(rules.iter().map(HttpRule::method_pattern))?;
        let (path, path_ids) = patterns::compile(rules.iter().map(HttpRule::path_pattern))?;
        let (host, host_ids) = patterns::compile(rules.iter().map(HttpRule::host_pattern))?;
        let fields = method_ids
            .into_iter()
            .zip(path_ids)
            .zip(host_ids)
            .map(|((method, path), host)| RuleFields { method, path, host })
            .collect();
        let compiled = Compiled {
            rules: rules.into(),
            method,
            path,
            host,
            fields,
            has_header_matches: rules.iter().any(HttpRule::has_header_matches),
            scratch: Pool::new(Scratch::default as fn() -> Scratch),
        };
        Ok(Self {
            kind: Kind::Rules(Box::new(compiled)),
        })
    }

    /// A set that allows every request: no L7 restriction.
    pub fn unrestricted() -> Self {
        Self {
            kind: Kind::Unrestricted,
        }
    }

    /// A set that denies every request.
    pub fn deny_all() -> Self {
        Self {
            kind: Kind::DenyAll,
        }
    }

    /// Whether the set allows everything without looking at the request.
    pub fn is_unrestricted(&self) -> bool {
        matches!(self.kind, Kind::Unrestricted)
    }

    /// The number of rules (0 for [`Self::unrestricted`] and [`Self::deny_all`]).
    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Rules(c) => c.rules.len(),
            Kind::Unrestricted | Kind::DenyAll => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides one request. See the module documentation for what is evaluated and in what
    /// order; the result borrows header names, values and log text from the set and the
    /// request.
    pub fn evaluate<'a>(&'a self, request: &RequestView<'a>) -> HttpDecision<'a> {
        match &self.kind {
            Kind::Unrestricted => HttpDecision::Allowed {
                by: AllowedBy::NoRules,
                edits: Vec::new(),
                log: Vec::new(),
            },
            Kind::DenyAll => HttpDecision::Denied { log: Vec::new() },
            Kind::Rules(compiled) => compiled.evaluate(request),
        }
    }
}

impl Compiled {
    fn evaluate<'a>(&'a self, request: &RequestView<'a>) -> HttpDecision<'a> {
        let mut scratch = self.scratch.get();
        let scratch = &mut *scratch;
        scratch.candidates.clear();
        if self.find_candidates(request, scratch).is_err() {
            // Not expected (see `patterns::SearchFailed`); every rule then checks its own
            // regexes, which is slower but gives the same answer.
            let method = request.method.as_str();
            scratch.candidates.extend(
                self.rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.matches_request_line(method, request.path, request.host))
                    .filter_map(|(i, _)| EntryId::try_from(i).ok()),
            );
        }

        let mut effects = Effects::default();
        let mut allowed_by = None;
        for &entry in &scratch.candidates {
            let index = entry as usize;
            let Some(rule) = self.rules.get(index) else {
                continue;
            };
            if *request.method == Method::CONNECT && !rule.names_method() {
                continue;
            }
            if !rule.headers_met(request.headers) {
                continue;
            }
            if !self.has_header_matches {
                allowed_by = Some(index);
                break;
            }
            // Every entry of the rule runs, also after one failed, so all actions apply.
            let mut accepted = true;
            for m in rule.header_match_entries() {
                accepted &= m.evaluate(request.headers, &mut effects);
            }
            if accepted && allowed_by.is_none() {
                allowed_by = Some(index);
            }
        }
        match allowed_by {
            Some(index) => HttpDecision::Allowed {
                by: AllowedBy::Rule(index),
                edits: effects.edits,
                log: effects.log,
            },
            None => HttpDecision::Denied { log: effects.log },
        }
    }

    /// Fills `scratch.candidates` with the rules whose `method`, `path` and `host` all match,
    /// in rule order.
    fn find_candidates(
        &self,
        request: &RequestView<'_>,
        scratch: &mut Scratch,
    ) -> Result<(), patterns::SearchFailed> {
        let Scratch {
            method_cache,
            path_cache,
            host_cache,
            method_hits,
            path_hits,
            host_hits,
            candidates,
        } = scratch;
        self.method
            .search(Some(request.method.as_str()), method_cache, method_hits)?;
        self.path.search(request.path, path_cache, path_hits)?;
        self.host.search(request.host, host_cache, host_hits)?;

        let by_method = self.method.candidate_count(method_hits);
        let by_path = self.path.candidate_count(path_hits);
        let by_host = self.host.candidate_count(host_hits);
        let (driver, hits) = if by_path <= by_method && by_path <= by_host {
            (&self.path, &*path_hits)
        } else if by_method <= by_host {
            (&self.method, &*method_hits)
        } else {
            (&self.host, &*host_hits)
        };

        let passes = |entry: EntryId| {
            self.fields.get(entry as usize).is_some_and(|f| {
                FieldPatterns::passes(f.method, method_hits)
                    && FieldPatterns::passes(f.path, path_hits)
                    && FieldPatterns::passes(f.host, host_hits)
            })
        };
        let from_hits = hits.iter().flat_map(|p| driver.users(p).iter().copied());
        candidates.extend(
            driver
                .wildcard()
                .iter()
                .copied()
                .chain(from_hits)
                .filter(|&e| passes(e)),
        );
        // A rule sits in exactly one list of the driving field, so there are no duplicates;
        // sorting restores rule order, which decides the index reported and the edit order.
        candidates.sort_unstable();
        Ok(())
    }
}

impl fmt::Debug for HttpRuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Unrestricted => f.write_str("HttpRuleSet::Unrestricted"),
            Kind::DenyAll => f.write_str("HttpRuleSet::DenyAll"),
            Kind::Rules(c) => f
                .debug_struct("HttpRuleSet")
                .field("rules", &c.rules.len())
                .field("method_patterns", &c.method.pattern_count())
                .field("path_patterns", &c.path.pattern_count())
                .field("host_patterns", &c.host.pattern_count())
                .field("has_header_matches", &c.has_header_matches)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests;
