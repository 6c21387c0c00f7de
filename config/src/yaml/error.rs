//! The deserializer's error: a message in the user's vocabulary, and where it applies.

use std::fmt;

use serde::de;

use super::Mark;
use crate::diag::{FieldPath, PathSegment};

/// A deserialization failure, located at the deepest node it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeError {
    pub message: String,
    /// Set by the deserializer that saw the error; `None` only while it propagates out
    /// of a visitor that does not know where it is.
    pub location: Option<(FieldPath, Mark)>,
}

impl DeError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: None,
        }
    }

    pub(super) fn at(mut self, path: &Path<'_>, mark: Mark) -> Self {
        if self.location.is_none() {
            self.location = Some((path.to_field_path(), mark));
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some((path, mark)) => write!(f, "{mark}: {path}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(format!(
            "expected {}, found {}",
            friendly_expected(exp),
            friendly_unexpected(&unexp)
        ))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(format!(
            "invalid value: {}, expected {}",
            friendly_unexpected(&unexp),
            friendly_expected(exp)
        ))
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        Self::new(format!(
            "invalid length {len}, expected {}",
            friendly_expected(exp)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::new(format!(
            "unknown value {variant:?}; expected one of: {}",
            expected.join(", ")
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        if expected.is_empty() {
            return Self::new(format!(
                "unknown field {field:?}; no fields are allowed here"
            ));
        }
        Self::new(format!(
            "unknown field {field:?}; expected one of: {}",
            expected.join(", ")
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::new(format!("missing field {field:?}"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::new(format!("duplicate field {field:?}"))
    }
}

/// serde's names for what a visitor wanted, in the user's vocabulary.
fn friendly_expected(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "a sequence" => "a list".to_owned(),
        "a map" => "a mapping".to_owned(),
        _ if text.starts_with("struct ") => "a mapping".to_owned(),
        _ => text,
    }
}

fn friendly_unexpected(unexp: &de::Unexpected<'_>) -> String {
    match unexp {
        de::Unexpected::Seq => "a list".to_owned(),
        de::Unexpected::Map => "a mapping".to_owned(),
        de::Unexpected::Unit => "null".to_owned(),
        de::Unexpected::Str(s) => format!("a string {}", quote_short(s)),
        de::Unexpected::Unsigned(n) => n.to_string(),
        de::Unexpected::Signed(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The path of the node being read, as borrowed links: nothing is allocated unless an
/// error needs the path.
#[derive(Clone, Copy)]
pub(super) enum Path<'a> {
    Base(&'a FieldPath),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn to_field_path(self) -> FieldPath {
        let mut tail = Vec::new();
        let mut link = self;
        let base = loop {
            match link {
                Path::Base(base) => break base,
                Path::Key(parent, key) => {
                    tail.push(PathSegment::Key(key.to_owned()));
                    link = *parent;
                }
                Path::Index(parent, index) => {
                    tail.push(PathSegment::Index(index));
                    link = *parent;
                }
            }
        };
        let mut path = base.clone();
        for segment in tail.into_iter().rev() {
            path.push(segment);
        }
        path
    }
}

const MAX_QUOTED: usize = 40;

/// `text`, cut to a length a message can quote.
pub(super) fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(super) fn quote_short(text: &str) -> String {
    format!("{:?}", short(text))
}
