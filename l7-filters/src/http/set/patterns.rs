//! The patterns of one field (`method`, `path` or `host`) across every rule of a set, matched
//! in one pass.
//!
//! The engine is a lazy DFA over all distinct patterns at once (`regex-automata`'s hybrid
//! DFA, the engine `regex::RegexSet` itself tries first), searched in overlapping mode so that
//! it reports the ids of exactly the patterns that match. Reading those ids costs as much as
//! there are matches; `RegexSet::matches` would hand back a flag per pattern instead, and
//! scanning 10,000 flags per request is what this module exists to avoid.
//!
//! Some patterns cannot be run by a lazy DFA (a Unicode word boundary `\b`, for one). A field
//! that has any such pattern uses a `RegexSet` instead, which runs everything and costs a scan
//! of its flags per request; correct, only slower.
//!
//! Each distinct pattern is compiled once, however many rules share it: 10,000 rules saying
//! `method: GET` make a one-pattern method field.

use std::collections::HashMap;

use regex::{RegexSet, RegexSetBuilder};
use regex_automata::hybrid::dfa::{Cache, DFA, OverlappingState};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

use crate::http::HttpRuleError;

/// Largest automaton the patterns of one field may compile to, all together. Each pattern
/// already passed the per-pattern limit of [`FullMatchRegex`](crate::http::FullMatchRegex);
/// this bounds what a port's whole rule list may cost.
const SET_SIZE_LIMIT: usize = 256 << 20;

/// Cache budget of the lazy DFA, per field and per thread that evaluates the set. The cache
/// grows only as far as the requests seen need; with 10,000 path patterns the first few
/// states hold every pattern and take tens of KiB each. When it is full the cache is cleared
/// and rebuilt: matching stays correct and linear, only slower.
const DFA_CACHE_CAPACITY: usize = 8 << 20;

/// Group nesting accepted, as for a single pattern.
const NEST_LIMIT: u32 = 64;

/// Index of a distinct pattern within its field.
pub(super) type PatternId = u32;

/// Index of a rule within its set.
pub(super) type EntryId = u32;

pub(super) struct FieldPatterns {
    engine: Engine,
    /// `users[p]`: the rules whose field has pattern `p`, in rule order.
    users: Vec<Box<[EntryId]>>,
    /// The rules without this field, which match any value, in rule order.
    wildcard: Box<[EntryId]>,
}

enum Engine {
    /// No rule sets this field.
    Empty,
    Lazy(Box<DFA>),
    Set(RegexSet),
}

/// The search could not complete. The default lazy DFA configuration used here has no option
/// that makes it quit or give up, so this is not expected; the caller then checks every rule
/// with its own regexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SearchFailed;

/// Builds a field from each rule's pattern for it (`None`: the rule does not set the field).
pub(super) fn compile<'p>(
    per_rule: impl Iterator<Item = Option<&'p str>>,
) -> Result<(FieldPatterns, Vec<Option<PatternId>>), HttpRuleError> {
    let mut distinct: Vec<&str> = Vec::new();
    let mut ids: HashMap<&str, PatternId> = HashMap::new();
    let mut users: Vec<Vec<EntryId>> = Vec::new();
    let mut wildcard = Vec::new();
    let mut of_rule = Vec::new();
    for (entry, pattern) in per_rule.enumerate() {
        let entry = to_id(entry)?;
        let Some(pattern) = pattern else {
            wildcard.push(entry);
            of_rule.push(None);
            continue;
        };
        let id = match ids.get(pattern) {
            Some(&id) => id,
            None => {
                let id = to_id(distinct.len())?;
                ids.insert(pattern, id);
                distinct.push(pattern);
                users.push(Vec::new());
                id
            }
        };
        if let Some(list) = users.get_mut(id as usize) {
            list.push(entry);
        }
        of_rule.push(Some(id));
    }

    let engine = if distinct.is_empty() {
        Engine::Empty
    } else {
        // Every pattern compiled on its own first, so it has balanced groups and cannot close
        // the anchoring group around it.
        let anchored: Vec<String> = distinct.iter().map(|p| format!("^(?:{p})$")).collect();
        match lazy_dfa(&anchored) {
            Some(dfa) => Engine::Lazy(Box::new(dfa)),
            None => Engine::Set(regex_set(&anchored)?),
        }
    };
    let field = FieldPatterns {
        engine,
        users: users.into_iter().map(Vec::into_boxed_slice).collect(),
        wildcard: wildcard.into_boxed_slice(),
    };
    Ok((field, of_rule))
}

fn to_id(n: usize) -> Result<u32, HttpRuleError> {
    u32::try_from(n).map_err(|_| HttpRuleError::RuleSetTooLarge)
}

/// Same syntax as [`FullMatchRegex`](crate::http::FullMatchRegex) (the `regex` crate's
/// defaults: Unicode, case-sensitive, `.` not matching `\n`), so both engines agree.
///
/// `None` when the lazy DFA cannot run some pattern (its error is not kept: the caller then
/// builds a `RegexSet`, whose error, if any, is the one worth reporting).
fn lazy_dfa(patterns: &[String]) -> Option<DFA> {
    DFA::builder()
        .syntax(syntax::Config::new().nest_limit(NEST_LIMIT))
        .thompson(thompson::Config::new().nfa_size_limit(Some(SET_SIZE_LIMIT)))
        .configure(
            DFA::config()
                .match_kind(MatchKind::All)
                .cache_capacity(DFA_CACHE_CAPACITY)
                // Use the smallest workable cache rather than fail when a huge set needs more
                // than the budget; searches then clear the cache more often.
                .skip_cache_capacity_check(true),
        )
        .build_many(patterns)
        .ok()
}

fn regex_set(patterns: &[String]) -> Result<RegexSet, HttpRuleError> {
    RegexSetBuilder::new(patterns)
        .size_limit(SET_SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => HttpRuleError::RuleSetTooLarge,
            other => HttpRuleError::InvalidRegex(other.to_string()),
        })
}

impl FieldPatterns {
    pub(super) fn pattern_count(&self) -> usize {
        self.users.len()
    }

    pub(super) fn users(&self, pattern: PatternId) -> &[EntryId] {
        self.users.get(pattern as usize).map_or(&[], |u| u)
    }

    pub(super) fn wildcard(&self) -> &[EntryId] {
        &self.wildcard
    }

    /// Marks every pattern that matches the whole of `value`; `None` (the request has no
    /// such value) matches none.
    pub(super) fn search(
        &self,
        value: Option<&str>,
        cache: &mut Option<Cache>,
        hits: &mut Marks,
    ) -> Result<(), SearchFailed> {
        hits.reset(self.pattern_count());
        let Some(value) = value else {
            return Ok(());
        };
        match &self.engine {
            Engine::Empty => Ok(()),
            Engine::Lazy(dfa) => {
                let cache = cache.get_or_insert_with(|| dfa.create_cache());
                let input = Input::new(value).anchored(Anchored::Yes);
                let mut state = OverlappingState::start();
                loop {
                    dfa.try_search_overlapping_fwd(cache, &input, &mut state)
                        .map_err(|_| SearchFailed)?;
                    match state.get_match() {
                        Some(m) => hits.mark(m.pattern().as_u32()),
                        None => return Ok(()),
                    }
                }
            }
            Engine::Set(set) => {
                for id in set.matches(value).iter() {
                    hits.mark(u32::try_from(id).map_err(|_| SearchFailed)?);
                }
                Ok(())
            }
        }
    }

    /// How many rules a request whose matching patterns are `hits` leaves to check on this
    /// field: the users of every hit plus the wildcard rules.
    pub(super) fn candidate_count(&self, hits: &Marks) -> usize {
        self.wildcard.len() + hits.iter().map(|p| self.users(p).len()).sum::<usize>()
    }

    /// Whether a rule with `pattern` for this field passes it.
    pub(super) fn passes(pattern: Option<PatternId>, hits: &Marks) -> bool {
        pattern.is_none_or(|p| hits.is_marked(p))
    }
}

/// A set of pattern ids that clears in time proportional to what it holds, so a request
/// pays for the patterns it matched, not for the size of the field.
#[derive(Debug, Default)]
pub(super) struct Marks {
    flags: Vec<bool>,
    marked: Vec<PatternId>,
}

impl Marks {
    fn reset(&mut self, len: usize) {
        for &p in &self.marked {
            if let Some(f) = self.flags.get_mut(p as usize) {
                *f = false;
            }
        }
        self.marked.clear();
        if self.flags.len() != len {
            self.flags.clear();
            self.flags.resize(len, false);
        }
    }

    fn mark(&mut self, p: PatternId) {
        if let Some(f) = self.flags.get_mut(p as usize)
            && !*f
        {
            *f = true;
            self.marked.push(p);
        }
    }

    pub(super) fn is_marked(&self, p: PatternId) -> bool {
        self.flags.get(p as usize).copied().unwrap_or(false)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = PatternId> + '_ {
        self.marked.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(patterns: &[Option<&str>]) -> FieldPatterns {
        match compile(patterns.iter().copied()) {
            Ok((f, _)) => f,
            Err(e) => panic!("{e}"),
        }
    }

    fn hits(f: &FieldPatterns, value: &str) -> Vec<PatternId> {
        let mut cache = None;
        let mut marks = Marks::default();
        if let Err(e) = f.search(Some(value), &mut cache, &mut marks) {
            panic!("{e:?}");
        }
        let mut v: Vec<_> = marks.iter().collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn reports_every_matching_pattern_anchored_at_both_ends() {
        let f = field(&[
            Some("/api/.*"),
            Some("/api/v1"),
            Some("/api/v1.*"),
            None,
            Some("/x"),
        ]);
        assert!(matches!(f.engine, Engine::Lazy(_)));
        assert_eq!(hits(&f, "/api/v1"), vec![0, 1, 2]);
        assert_eq!(hits(&f, "/api/v10"), vec![0, 2]);
        assert_eq!(hits(&f, "/x/api/v1"), Vec::<PatternId>::new());
        assert_eq!(f.wildcard(), &[3]);
    }

    #[test]
    fn shares_one_pattern_between_rules() {
        let (f, of_rule) = match compile([Some("GET"), Some("POST"), Some("GET")].into_iter()) {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(f.pattern_count(), 2);
        assert_eq!(of_rule, vec![Some(0), Some(1), Some(0)]);
        assert_eq!(f.users(0), &[0, 2]);
    }

    /// The lazy DFA refuses Unicode word boundaries; the field falls back to a RegexSet and
    /// still answers.
    #[test]
    fn falls_back_to_a_regex_set_for_what_the_lazy_dfa_cannot_run() {
        let f = field(&[Some(r"\bapi\b.*"), Some("/other")]);
        assert!(matches!(f.engine, Engine::Set(_)));
        assert_eq!(hits(&f, "api/x"), vec![0]);
        assert_eq!(hits(&f, "/other"), vec![1]);
    }

    #[test]
    fn marks_clear_between_searches() {
        let f = field(&[Some("a"), Some("b")]);
        let mut cache = None;
        let mut marks = Marks::default();
        assert_eq!(f.search(Some("a"), &mut cache, &mut marks), Ok(()));
        assert!(marks.is_marked(0));
        assert_eq!(f.search(Some("b"), &mut cache, &mut marks), Ok(()));
        assert!(!marks.is_marked(0));
        assert!(marks.is_marked(1));
        assert_eq!(f.search(None, &mut cache, &mut marks), Ok(()));
        assert_eq!(marks.iter().count(), 0);
    }
}
