//! Kubernetes label selector syntax for `--label` / `-l`, with Cilium's source
//! prefixes (`k8s:app=web`, `reserved:world`); a key without a source matches a label
//! of any source. Hubble parses the same syntax (pkg/hubble/filters/labels.go).

use std::collections::BTreeSet;

use sluice_identity::labels::LabelKey;
use sluice_identity::selector::{Operator, Requirement, Selector};

/// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
pub fn parse_selector(input: &str) -> Result<Selector, String> {
    let mut selector = Selector::all();
    for part in split_top_level(input)? {
        let part = part.trim();
        if part.is_empty() {
            return Err("empty requirement".to_owned());
        }
        selector.push(parse_requirement(part)?);
    }
    Ok(selector)
}

/// Splits at commas outside parentheses.
fn split_top_level(input: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_owned());
    }
    parts.push(&input[start..]);
    Ok(parts)
}

fn key(s: &str) -> Result<LabelKey, String> {
    let s = s.trim();
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains(['=', '!', '(', ')']) {
        return Err(format!("invalid label key {s:?}"));
    }
    Ok(LabelKey::parse_selector_key(s))
}

fn value(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.contains(char::is_whitespace) || s.contains(['=', '!', '(', ')', ',']) {
        return Err(format!("invalid label value {s:?}"));
    }
    Ok(s.to_owned())
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(k) = part.strip_prefix('!') {
        return Ok(Requirement {
            key: key(k)?,
            op: Operator::DoesNotExist,
        });
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement {
            key: key(k)?,
            op: Operator::NotIn(BTreeSet::from([value(v)?])),
        });
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement {
            key: key(k)?,
            op: Operator::In(BTreeSet::from([value(v)?])),
        });
    }
    for (word, notin) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = part.split_once(word) {
            let list = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("expected a parenthesised list after {:?}", word.trim()))?;
            let values = list
                .split(',')
                .map(value)
                .collect::<Result<BTreeSet<_>, _>>()?;
            let op = if notin {
                Operator::NotIn(values)
            } else {
                Operator::In(values)
            };
            return Ok(Requirement { key: key(k)?, op });
        }
    }
    Ok(Requirement::exists(key(part)?))
}

#[cfg(test)]
mod tests {
    use sluice_identity::{Label, LabelSet};

    use super::*;

    fn labels(ls: &[&str]) -> LabelSet {
        ls.iter().map(|l| Label::parse(l)).collect()
    }

    /// Cases modelled on cilium/cilium pkg/hubble/filters/labels_test.go: source
    /// prefixes, `any` matching, set-based requirements.
    #[test]
    fn selects_like_hubble() {
        let web = labels(&[
            "k8s:app=web",
            "k8s:io.kubernetes.pod.namespace=shop",
            "container:tier=front",
        ]);
        let world = labels(&["reserved:world"]);
        let cases: &[(&str, &LabelSet, bool)] = &[
            ("app=web", &web, true),
            ("k8s:app=web", &web, true),
            ("container:app=web", &web, false),
            ("app==web", &web, true),
            ("app!=web", &web, false),
            ("app!=db", &web, true),
            ("app in (db, web)", &web, true),
            ("app notin (db,web)", &web, false),
            ("tier=front,app=web", &web, true),
            ("tier=front,app=db", &web, false),
            ("app", &web, true),
            ("!app", &web, false),
            ("!app", &world, true),
            ("reserved:world", &world, true),
            ("reserved:world", &web, false),
            ("k8s:io.kubernetes.pod.namespace=shop", &web, true),
        ];
        for (sel, set, want) in cases {
            let s = parse_selector(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(set), *want, "{sel}");
        }
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "",
            "app=web,",
            "app in web",
            "app in (a",
            "=web",
            "a b=c",
            "app=(x)",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
