//! Many DNS name selectors compiled into one index, so that matching a name against ten
//! thousand `toFQDNs` / `rules.dns` entries costs about as much as matching it against ten.
//!
//! Every selector is one of four shapes (see [`Matcher`]), and each shape gets the index
//! that makes it cheap:
//!
//! - literal names (`matchName`, patterns without `*`): a hash map keyed by the canonical
//!   name, one lookup per query;
//! - all-stars patterns (`*`, `**.`): a plain list, they match (almost) everything anyway;
//! - globs (`*.cilium.io`, `api-*.svc.local`) and leading-`**.` patterns: a trie of labels
//!   read from the right (`io` → `cilium` → `*`). A name walks down from the root one label
//!   at a time, so only the selectors that share its suffix are ever looked at. Each node
//!   keeps its children apart by kind: literal labels in a hash map, the bare `*` label as
//!   one child (the common case), and labels with a `*` among other characters (`api-*`)
//!   in a list, which a [`RegexSet`] matches in one pass once the list is long.
//!
//! A glob ends at the node of its last (leftmost) label; a `**.` pattern ends where its rest
//! ends and takes any number (≥ 1) of further valid labels there.
//!
//! The set answers with the indices of every selector that matched, in the order the
//! selectors were given, so that the caller can attribute a verdict or a learned IP to the
//! policy that allowed it. It agrees with [`FqdnPattern::matches`] and
//! [`FqdnPattern::allows_query`] on every input; a property test holds it to that.

use std::collections::HashMap;
use std::ops::ControlFlow;

use regex::bytes::{RegexSet, RegexSetBuilder};

use super::{FqdnPattern, Matcher, canonical_name, glob_label, is_label_byte, is_valid_label};

/// Position of a selector in the list given to [`DnsPatternSet::new`].
pub type PatternIndex = usize;

/// From how many starred-label children a trie node matches them with one [`RegexSet`]
/// rather than one by one. Below this, the label-by-label loop is faster than the regex
/// engine's setup, and building a set for every small node would cost memory for nothing.
const REGEX_SET_MIN_GLOBS: usize = 8;

/// A compiled set of DNS name selectors. Immutable once built; cheap to share (`Arc`).
#[derive(Debug, Clone, Default)]
pub struct DnsPatternSet {
    patterns: Vec<FqdnPattern>,
    /// Canonical name → selectors that are exactly that name.
    exact: HashMap<Box<str>, Vec<PatternIndex>>,
    /// All-stars selectors.
    all: Vec<PatternIndex>,
    /// Globs and `**.` selectors, by label from the right.
    trie: LabelNode,
}

#[derive(Debug, Clone, Default)]
struct LabelNode {
    literal: HashMap<Box<[u8]>, LabelNode>,
    /// The child for a label that is just `*`.
    any: Option<Box<LabelNode>>,
    starred: StarredChildren,
    /// Globs whose labels end here: they match when the name has no labels left.
    ends: Vec<PatternIndex>,
    /// `**.` selectors whose rest ends here: they match when the name has one or more
    /// labels left and all of them are valid.
    subdomains: Vec<PatternIndex>,
}

/// Children for labels with a `*` among other characters (`api-*`, `*cilium`).
#[derive(Debug, Clone, Default)]
struct StarredChildren {
    labels: Vec<(Box<[u8]>, LabelNode)>,
    /// `labels[i]` as the i-th regex, once there are enough of them. `None` below the
    /// threshold, or if the regex engine refused the set (size limit): matching then falls
    /// back to [`glob_label`], which gives the same answers.
    set: Option<RegexSet>,
}

impl DnsPatternSet {
    /// Compiles `patterns`; [`PatternIndex`] `i` is the i-th of them.
    pub fn new(patterns: impl IntoIterator<Item = FqdnPattern>) -> Self {
        let mut set = Self {
            patterns: patterns.into_iter().collect(),
            ..Self::default()
        };
        for (index, pattern) in set.patterns.iter().enumerate() {
            match &pattern.matcher {
                Matcher::Exact(name) => set
                    .exact
                    .entry(name.as_str().into())
                    .or_default()
                    .push(index),
                Matcher::All => set.all.push(index),
                Matcher::Glob(glob) => set.trie.insert(glob).ends.push(index),
                Matcher::Subdomains(rest) => set.trie.insert(rest).subdomains.push(index),
            }
        }
        set.trie.build_regex_sets();
        set
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The selectors, in [`PatternIndex`] order.
    pub fn patterns(&self) -> &[FqdnPattern] {
        &self.patterns
    }

    pub fn get(&self, index: PatternIndex) -> Option<&FqdnPattern> {
        self.patterns.get(index)
    }

    /// `toFQDNs` semantics ([`FqdnPattern::matches`]): the selectors that select `name` (any
    /// case, trailing dot optional), in ascending order.
    pub fn matches(&self, name: &str) -> Vec<PatternIndex> {
        let mut out = Vec::new();
        self.matches_canonical_into(&canonical_name(name), &mut out);
        out
    }

    /// [`Self::matches`] for a name already in canonical form (lowercase, trailing dot),
    /// appending to `out` (sorted, ascending) so a caller can reuse one buffer.
    pub fn matches_canonical_into(&self, fqdn: &str, out: &mut Vec<PatternIndex>) {
        let start = out.len();
        let _ = self.visit_canonical(fqdn, &mut |index| {
            out.push(index);
            ControlFlow::Continue(())
        });
        out[start..].sort_unstable();
    }

    /// Whether any selector selects `name` (`toFQDNs` semantics). Stops at the first match.
    pub fn is_match(&self, name: &str) -> bool {
        self.visit_canonical(&canonical_name(name), &mut |_| ControlFlow::Break(()))
            .is_break()
    }

    /// `rules.dns` semantics ([`FqdnPattern::allows_query`]): the selectors that allow a
    /// query for `name`, in ascending order. All-stars selectors allow every query, even a
    /// malformed name.
    pub fn query_matches(&self, name: &str) -> Vec<PatternIndex> {
        if self.all.is_empty() {
            return self.matches(name);
        }
        let mut out = self.all.clone();
        let _ = self.visit_canonical(&canonical_name(name), &mut |index| {
            if !matches!(self.patterns[index].matcher, Matcher::All) {
                out.push(index);
            }
            ControlFlow::Continue(())
        });
        out.sort_unstable();
        out
    }

    /// Whether any selector allows a query for `name` (`rules.dns` semantics).
    pub fn allows_query(&self, name: &str) -> bool {
        !self.all.is_empty() || self.is_match(name)
    }

    /// Calls `f` with every selector matching the canonical `fqdn`, in no particular order,
    /// until `f` breaks.
    fn visit_canonical(
        &self,
        fqdn: &str,
        f: &mut impl FnMut(PatternIndex) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        // As FqdnPattern::matches_canonical: a name without the final dot is not canonical.
        let Some(body) = fqdn.strip_suffix('.') else {
            return ControlFlow::Continue(());
        };
        if let Some(indices) = self.exact.get(fqdn) {
            indices.iter().try_for_each(|&i| f(i))?;
        }
        if !self.all.is_empty() && (fqdn == "." || body.split('.').all(is_valid_label)) {
            self.all.iter().try_for_each(|&i| f(i))?;
        }
        // A canonical name's labels are its body split on dots: `.` has one empty label.
        self.trie.visit(Some(body), f)
    }
}

impl LabelNode {
    /// The node where `pattern` (canonical: lowercase, final dot) ends, created as needed.
    fn insert(&mut self, pattern: &str) -> &mut LabelNode {
        let body = pattern.strip_suffix('.').unwrap_or(pattern);
        let mut node = self;
        for label in body.rsplit('.') {
            node = if label == "*" {
                node.any.get_or_insert_with(Box::default)
            } else if label.contains('*') {
                let starred = &mut node.starred.labels;
                let at = match starred.iter().position(|(l, _)| **l == *label.as_bytes()) {
                    Some(at) => at,
                    None => {
                        starred.push((label.as_bytes().into(), LabelNode::default()));
                        starred.len() - 1
                    }
                };
                &mut starred[at].1
            } else {
                node.literal.entry(label.as_bytes().into()).or_default()
            };
        }
        node
    }

    fn build_regex_sets(&mut self) {
        if self.starred.labels.len() >= REGEX_SET_MIN_GLOBS {
            let regexes = self.starred.labels.iter().map(|(l, _)| label_regex(l));
            self.starred.set = RegexSetBuilder::new(regexes).build().ok();
        }
        let children = self
            .literal
            .values_mut()
            .chain(self.any.as_deref_mut())
            .chain(self.starred.labels.iter_mut().map(|(_, n)| n));
        for child in children {
            child.build_regex_sets();
        }
    }

    /// Walks the labels of `rest` from the right. `None`: no labels left; `Some(s)`: the
    /// labels of `s` split on dots (at least one, possibly empty).
    fn visit(
        &self,
        rest: Option<&str>,
        f: &mut impl FnMut(PatternIndex) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let Some(rest) = rest else {
            return self.ends.iter().try_for_each(|&i| f(i));
        };
        if !self.subdomains.is_empty() && rest.split('.').all(is_valid_label) {
            self.subdomains.iter().try_for_each(|&i| f(i))?;
        }
        let (label, next) = match rest.rfind('.') {
            Some(dot) => (&rest[dot + 1..], Some(&rest[..dot])),
            None => (rest, None),
        };
        let label = label.as_bytes();
        if let Some(child) = self.literal.get(label) {
            child.visit(next, f)?;
        }
        if let Some(child) = &self.any
            && label.iter().all(|&b| is_label_byte(b))
        {
            child.visit(next, f)?;
        }
        match &self.starred.set {
            Some(set) => {
                for at in set.matches(label).iter() {
                    self.starred.labels[at].1.visit(next, f)?;
                }
            }
            None => {
                for (pattern, child) in &self.starred.labels {
                    if glob_label(pattern, label) {
                        child.visit(next, f)?;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// A starred label as an anchored byte regex with the same meaning as [`glob_label`]: each
/// `*` takes a run of label characters, every other character (a label character, as
/// validation ensured) matches itself.
fn label_regex(label: &[u8]) -> String {
    let mut re = String::from(r"(?-u)\A");
    for &b in label {
        if b == b'*' {
            re.push_str("[-0-9A-Za-z_]*");
        } else {
            re.push_str(&regex::escape(char::from(b).encode_utf8(&mut [0; 4])));
        }
    }
    re.push_str(r"\z");
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> FqdnPattern {
        FqdnPattern::match_pattern(p).unwrap()
    }

    fn name(n: &str) -> FqdnPattern {
        FqdnPattern::match_name(n).unwrap()
    }

    #[test]
    fn reports_every_matching_selector_in_order() {
        let set = DnsPatternSet::new([
            name("www.cilium.io"),
            pattern("*.cilium.io"),
            pattern("**.io"),
            pattern("*"),
            pattern("cilium.io"),
            pattern("w*w.cilium.io"),
            name("WWW.Cilium.IO."),
        ]);
        assert_eq!(set.matches("WWW.cilium.io"), vec![0, 1, 2, 3, 5, 6]);
        assert_eq!(set.matches("cilium.io."), vec![2, 3, 4]);
        assert_eq!(set.matches("a.b.cilium.io"), vec![2, 3]);
        assert!(set.is_match("io"));
        assert_eq!(set.matches("io"), vec![3]);
        assert_eq!(set.get(1).map(FqdnPattern::as_str), Some("*.cilium.io"));
    }

    #[test]
    fn empty_set_matches_nothing() {
        let set = DnsPatternSet::new([]);
        assert!(set.is_empty());
        assert!(!set.is_match("cilium.io"));
        assert!(!set.allows_query("cilium.io"));
        assert!(set.query_matches("a..b").is_empty());
    }

    /// spec §14: an all-stars selector allows every query in a DNS rule, but selects only
    /// names of valid labels as a toFQDNs peer.
    #[test]
    fn all_stars_in_rules_and_peers() {
        let set = DnsPatternSet::new([name("cilium.io"), pattern("**.")]);
        assert_eq!(set.query_matches("a..b"), vec![1]);
        assert!(set.allows_query("white space"));
        assert!(set.matches("a..b").is_empty());
        assert_eq!(set.query_matches("cilium.io"), vec![0, 1]);
        assert_eq!(set.matches("."), vec![1]);
    }

    #[test]
    fn name_without_final_dot_is_not_canonical() {
        let set = DnsPatternSet::new([name("cilium.io"), pattern("*")]);
        let mut out = Vec::new();
        set.matches_canonical_into("cilium.io", &mut out);
        assert!(out.is_empty());
        set.matches_canonical_into("cilium.io.", &mut out);
        assert_eq!(out, vec![0, 1]);
    }

    /// Enough starred labels under one suffix that the node uses a regex set, plus the
    /// same labels under another suffix in too small a number to get one.
    #[test]
    fn starred_labels_with_and_without_regex_set() {
        let mut patterns: Vec<FqdnPattern> = (0..REGEX_SET_MIN_GLOBS * 2)
            .map(|i| pattern(&format!("api{i}-*.svc.local")))
            .collect();
        patterns.push(pattern("*-x.other.local"));
        patterns.push(pattern("api1*.other.local"));
        let set = DnsPatternSet::new(patterns);
        let svc = &set.trie.literal[&b"local"[..]].literal[&b"svc"[..]];
        assert!(svc.starred.set.is_some());
        let other = &set.trie.literal[&b"local"[..]].literal[&b"other"[..]];
        assert!(other.starred.set.is_none());

        assert_eq!(set.matches("api1-a.svc.local"), vec![1]);
        assert_eq!(set.matches("api12-.svc.local"), vec![12]);
        assert!(set.matches("api1-a+b.svc.local").is_empty());
        assert!(set.matches("x.api1-a.svc.local").is_empty());
        let n = REGEX_SET_MIN_GLOBS * 2;
        assert_eq!(set.matches("api12-x.other.local"), vec![n, n + 1]);
    }

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    /// Labels drawn from a small alphabet, so that random names and patterns collide often.
    const NAME_LABELS: &[&str] = &[
        "a", "b", "ab", "ba", "aab", "io", "cilium", "", "_x", "a-b", "A", "Ab", "a+b", "x y", "*",
        "1",
    ];
    const PATTERN_LABELS: &[&str] = &[
        "a", "b", "ab", "io", "cilium", "", "_x", "a-b", "A", "1", "*", "**", "a*", "*b", "*a*",
        "a*b", "***", "*-*", "ci*", "b*", "*ab", "a*a", "_*", "*1", "1*", "*i*m",
    ];

    fn random_name(rng: &mut Rng) -> String {
        let count = rng.below(5);
        let mut labels: Vec<&str> = (0..count).map(|_| rng.pick(NAME_LABELS)).collect();
        let mut name = labels.join(".");
        match rng.below(4) {
            0 => {}
            1 => name.push('.'),
            2 => {
                labels.push("");
                name = labels.join(".") + ".";
            }
            _ => name = name.to_ascii_lowercase() + ".",
        }
        name
    }

    fn random_pattern(rng: &mut Rng) -> FqdnPattern {
        loop {
            let count = 1 + rng.below(4);
            let mut labels: Vec<String> = (0..count)
                .map(|_| rng.pick(PATTERN_LABELS).to_owned())
                .collect();
            if rng.below(3) == 0 {
                labels.insert(0, "**".to_owned());
            }
            let mut text = labels.join(".");
            if rng.below(2) == 0 {
                text.push('.');
            }
            let compiled = if !text.contains('*') && rng.below(2) == 0 {
                FqdnPattern::match_name(&text)
            } else {
                FqdnPattern::match_pattern(&text)
            };
            // The empty string counts as unset and fails; draw again.
            if let Ok(p) = compiled {
                return p;
            }
        }
    }

    /// The set and the selectors one by one agree on every name, for sets of all sizes
    /// (large ones put enough starred labels under one node to use regex sets).
    #[test]
    fn agrees_with_fqdn_pattern_on_random_inputs() {
        let mut rng = Rng(0x0dd5_eed5_1ce0_2024);
        let (mut checked, mut hits, mut regex_sets) = (0, 0, 0);
        for size in [1, 2, 5, 20, 100, 400] {
            for _ in 0..4 {
                let patterns: Vec<FqdnPattern> =
                    (0..size).map(|_| random_pattern(&mut rng)).collect();
                let set = DnsPatternSet::new(patterns.clone());
                regex_sets += set.trie.regex_sets();
                for _ in 0..300 {
                    let name = random_name(&mut rng);
                    let want: Vec<usize> =
                        (0..size).filter(|&i| patterns[i].matches(&name)).collect();
                    assert_eq!(
                        set.matches(&name),
                        want,
                        "matches({name:?}) with {patterns:#?}"
                    );
                    assert_eq!(set.is_match(&name), !want.is_empty(), "{name:?}");
                    let want_query: Vec<usize> = (0..size)
                        .filter(|&i| patterns[i].allows_query(&name))
                        .collect();
                    assert_eq!(
                        set.query_matches(&name),
                        want_query,
                        "query_matches({name:?})"
                    );
                    assert_eq!(set.allows_query(&name), !want_query.is_empty(), "{name:?}");
                    // matches_canonical takes the name as given, uncanonicalised.
                    let want_canonical: Vec<usize> = (0..size)
                        .filter(|&i| patterns[i].matches_canonical(&name))
                        .collect();
                    let mut got = Vec::new();
                    set.matches_canonical_into(&name, &mut got);
                    assert_eq!(got, want_canonical, "matches_canonical({name:?})");
                    checked += 1;
                    hits += usize::from(!want.is_empty());
                }
            }
        }
        assert_eq!(checked, 6 * 4 * 300);
        // A comparison where nothing ever matches would prove little.
        assert!(hits * 5 > checked, "only {hits} of {checked} names matched");
        assert!(regex_sets > 0, "no node was large enough for a regex set");
    }

    impl LabelNode {
        fn regex_sets(&self) -> usize {
            usize::from(self.starred.set.is_some())
                + self
                    .literal
                    .values()
                    .map(LabelNode::regex_sets)
                    .sum::<usize>()
                + self.any.as_deref().map_or(0, LabelNode::regex_sets)
                + self
                    .starred
                    .labels
                    .iter()
                    .map(|(_, n)| n.regex_sets())
                    .sum::<usize>()
        }
    }

    /// The Cilium table of the parent module, through a set holding all its patterns.
    #[test]
    fn agrees_with_fqdn_pattern_on_cilium_table() {
        let patterns: Vec<FqdnPattern> = super::super::tests::CILIUM_TABLE
            .iter()
            .map(|t| pattern(t.pattern))
            .collect();
        let set = DnsPatternSet::new(patterns.clone());
        for t in super::super::tests::CILIUM_TABLE {
            for name in t.accept.iter().chain(t.reject) {
                let want: Vec<usize> = (0..patterns.len())
                    .filter(|&i| patterns[i].matches_canonical(name))
                    .collect();
                let mut got = Vec::new();
                set.matches_canonical_into(name, &mut got);
                assert_eq!(got, want, "{}: {name:?}", t.source);
            }
        }
    }
}
