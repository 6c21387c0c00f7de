//! YAML as sluice reads it: an owned tree whose every node knows its line and column.
//!
//! The tree is built from `saphyr-parser` events ([`parse`]) and read through a serde
//! deserializer ([`de`]) that reports the field path and position of a bad value. A
//! tree rather than streaming deserialization: the loader looks at `apiVersion` and
//! `kind` before it knows the type, reads what it can of a rejected policy, and places
//! validation findings on lines after the typed value exists.

mod de;
mod error;
mod parse;
mod scalar;

use std::fmt;

use crate::diag::{FieldPath, PathSegment};

pub(crate) use de::from_node;
pub(crate) use error::DeError;
pub(crate) use parse::{MAX_FILE_BYTES, parse_stream, too_large};
pub(crate) use scalar::Resolved;

/// A 1-based line and column in the source text (columns count characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One node of a document. Aliases have been expanded into copies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub mark: Mark,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    /// Entries in source order; keys are unique (duplicates are rejected by the parser).
    Mapping(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: Key,
    pub value: Node,
}

/// A mapping key: always a scalar, compared by its text (as Kubernetes' YAML-to-JSON
/// conversion does, so `80:` and `"80":` are the same key).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub mark: Mark,
    pub scalar: Scalar,
}

/// A scalar's text and how it was written, which decides its type (see [`Resolved`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    pub style: ScalarStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarStyle {
    /// Resolved by the YAML 1.2 core schema: `80` is an integer, `true` a boolean.
    Plain,
    /// Quoted, block (`|`, `>`) or tagged `!!str`: always a string.
    Quoted,
    /// Tagged with a core type (`!!int "80"`); the parser checked the text fits it.
    Tagged(CoreType),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoreType {
    Null,
    Bool,
    Int,
    Float,
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar(s) => s.resolve().kind_name(),
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.resolve() == Resolved::Null)
    }

    /// The value under `key` when this node is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Mapping(entries) => entries.iter().find(|e| e.key.scalar.text == key),
            _ => None,
        }
    }

    /// The text of a scalar node, whatever its resolved type.
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    /// Where a finding about `path` should point: the deepest node that exists along
    /// it. A finding about a missing field lands on the mapping that lacks it.
    pub fn locate(&self, path: &FieldPath) -> Mark {
        let mut node = self;
        for segment in path.segments() {
            let child = match (segment, &node.value) {
                (PathSegment::Key(k), Value::Mapping(_)) => node.get(k),
                (PathSegment::Index(i), Value::Sequence(items)) => items.get(*i),
                _ => None,
            };
            match child {
                Some(child) => node = child,
                None => break,
            }
        }
        node.mark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_the_deepest_node_along_a_path() {
        let docs = parse_stream("spec:\n  ingress:\n  - toPorts:\n    - ports: []\n").unwrap();
        let root = &docs[0].root;
        let spec = FieldPath::root().key("spec");
        let port_rule = spec.key("ingress").index(0).key("toPorts").index(0);
        let cases = [
            (FieldPath::root(), (1, 1)),
            (port_rule.key("ports"), (4, 14)),
            // Past what exists: the deepest node that does.
            (port_rule.key("rules").key("http"), (4, 7)),
            // A sequence at its parent's indentation starts at its first item.
            (spec.key("ingress").index(5), (3, 5)),
            (spec.key("egress"), (2, 3)),
            (spec.index(0), (2, 3)),
        ];
        for (path, (line, column)) in cases {
            assert_eq!(root.locate(&path), Mark { line, column }, "{path}");
        }
    }
}
