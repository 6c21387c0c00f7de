//! Full-match regular expressions for `method`, `path` and `host`.

use regex::{Regex, RegexBuilder};

use super::rule::HttpRuleError;

/// Largest compiled program a single pattern may produce. Policy regexes are short (a path
/// prefix, a method alternation); a pattern that needs more than this is either a mistake or
/// an attempt to make the node allocate without bound, and must fail to load instead.
const SIZE_LIMIT: usize = 1 << 20;

/// Cache budget of the lazy DFA per pattern. Matching stays linear-time either way; a small
/// cache only means some inputs fall back to the slower engine.
const DFA_SIZE_LIMIT: usize = 1 << 20;

/// Deepest nesting of groups and repetitions accepted. Deep nesting makes the parser recurse;
/// this keeps a hostile pattern from exhausting the stack.
const NEST_LIMIT: u32 = 64;

/// A regular expression that matches only the *whole* input, like Envoy's `safe_regex` matcher
/// that Cilium's HTTP rules compile to: `path: /public` does not match `/public/x`.
///
/// The syntax is the `regex` crate's, which is RE2's minus a few rarely used escapes; like RE2
/// it has no backreferences or look-around, so matching time is linear in the input.
#[derive(Debug, Clone)]
pub struct FullMatchRegex {
    pattern: String,
    regex: Regex,
}

impl FullMatchRegex {
    /// Compiles `pattern` anchored at both ends.
    ///
    /// The pattern is first compiled on its own. That gives an error whose caret points into
    /// the user's text rather than into the anchored wrapper, and it keeps a pattern such as
    /// `a)|(b` from closing the wrapper's group and escaping the anchors.
    pub fn new(pattern: &str) -> Result<Self, HttpRuleError> {
        build(pattern)?;
        let regex = build(&format!("^(?:{pattern})$"))?;
        Ok(Self {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// Whether the whole of `haystack` matches.
    pub fn is_match(&self, haystack: &str) -> bool {
        self.regex.is_match(haystack)
    }

    /// The pattern as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl PartialEq for FullMatchRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for FullMatchRegex {}

fn build(pattern: &str) -> Result<Regex, HttpRuleError> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| HttpRuleError::InvalidRegex(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::FullMatchRegex;
    use crate::http::HttpRuleError;

    fn re(p: &str) -> FullMatchRegex {
        match FullMatchRegex::new(p) {
            Ok(r) => r,
            Err(e) => panic!("pattern {p:?} should compile: {e}"),
        }
    }

    /// spec §11: "matched against the whole value (implicitly anchored both ends)".
    #[test]
    fn matches_the_whole_value_only() {
        let cases: &[(&str, &str, bool)] = &[
            ("/public", "/public", true),
            ("/public", "/public/x", false),
            ("/public", "/x/public", false),
            ("/public(/.*)?", "/public/x", true),
            ("/public(/.*)?", "/public", true),
            ("/public.*", "/publicity", true),
            ("GET|HEAD", "GET", true),
            ("GET|HEAD", "HEAD", true),
            // Alternation binds inside the anchoring group, not around it.
            ("GET|HEAD", "GETX", false),
            ("GET|HEAD", "XHEAD", false),
            ("", "", true),
            ("", "x", false),
        ];
        for &(pattern, input, want) in cases {
            assert_eq!(
                re(pattern).is_match(input),
                want,
                "{pattern:?} on {input:?}"
            );
        }
    }

    /// A pattern that closes the wrapper's group must not escape the anchors.
    #[test]
    fn unbalanced_pattern_is_rejected_not_unanchored() {
        for p in ["a)|(b", "(", ")", "a)(?:b"] {
            assert!(
                matches!(FullMatchRegex::new(p), Err(HttpRuleError::InvalidRegex(_))),
                "{p:?} must not compile"
            );
        }
    }

    #[test]
    fn error_text_is_the_regex_crate_message_about_the_users_pattern() {
        let Err(HttpRuleError::InvalidRegex(msg)) = FullMatchRegex::new("/v1/(items") else {
            panic!("unclosed group must fail");
        };
        assert!(msg.contains("unclosed group"), "{msg}");
        // The caret diagram quotes the user's pattern, not the anchored wrapper.
        assert!(msg.contains("/v1/(items"), "{msg}");
        assert!(!msg.contains("^(?:"), "{msg}");
    }

    #[test]
    fn hostile_patterns_fail_instead_of_allocating() {
        let huge = "(?:a{1000}){1000}";
        assert!(matches!(
            FullMatchRegex::new(huge),
            Err(HttpRuleError::InvalidRegex(_))
        ));
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(matches!(
            FullMatchRegex::new(&deep),
            Err(HttpRuleError::InvalidRegex(_))
        ));
    }
}
