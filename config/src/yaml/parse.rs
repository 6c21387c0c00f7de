//! From YAML text to located node trees, refusing what a configuration never needs and
//! an attacker could abuse.
//!
//! The tree is built from the parser's event stream with an explicit stack, never by
//! recursion, so no input can overflow the thread's stack; the depth limit then bounds
//! the recursion of everything that walks the finished tree (the deserializer, `Drop`).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScanError, Span, Tag};

use super::scalar::resolve_as;
use super::{CoreType, Entry, Key, Mark, Node, Scalar, ScalarStyle, Value};
use crate::diag::{FieldPath, PathSegment};

/// Largest file read. Real policy sets are kilobytes; this bounds memory and time.
pub(crate) const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of lists and mappings. A CNP needs about 12.
pub(crate) const MAX_DEPTH: usize = 64;
/// Nodes copied for anchors and aliases in one file: each anchored node is kept aside
/// for the aliases that may name it, and each alias is a copy. Enough for selectors
/// reused across many rules; far too little for a "billion laughs" bomb, or for a huge
/// anchored value copied once per level of a nest of anchors.
pub(crate) const MAX_COPIED_NODES: usize = 100_000;
/// Past this many findings in one file, the rest are noise.
const MAX_ERRORS: usize = 50;

const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// One non-empty document of a stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Document {
    /// 0-based position in the stream, empty documents included, so that it matches
    /// the count of `---` separators a user sees.
    pub index: usize,
    pub root: Node,
}

/// Why a stream was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// Line 0 when the whole text is at fault (its size).
    pub mark: Mark,
    pub field: FieldPath,
    pub message: String,
}

/// Parses every document of `text`. Empty documents (`---` alone, comments only) are
/// skipped. Any error refuses the whole stream: a file is not half-read.
pub(crate) fn parse_stream(text: &str) -> Result<Vec<Document>, Vec<ParseError>> {
    if text.len() > MAX_FILE_BYTES {
        return Err(vec![ParseError {
            mark: Mark::default(),
            field: FieldPath::root(),
            message: too_large(text.len()),
        }]);
    }
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let step = match event {
            Ok((event, span)) => builder.on_event(event, span),
            Err(e) => Err(builder.scan_error(&e)),
        };
        if let Err(fatal) = step {
            builder.errors.push(fatal);
            break;
        }
        if builder.errors.len() >= MAX_ERRORS {
            break;
        }
    }
    if builder.errors.is_empty() {
        Ok(builder.documents)
    } else {
        Err(builder.errors)
    }
}

/// The size message, shared with the loader's check of a file before reading it.
pub(crate) fn too_large(bytes: usize) -> String {
    #[allow(clippy::cast_precision_loss)] // a size shown to one decimal
    let mib = bytes as f64 / (1024.0 * 1024.0);
    format!(
        "file is {mib:.1} MiB ({bytes} bytes), over the {} MiB limit for one configuration \
         file; split it into several files",
        MAX_FILE_BYTES / (1024 * 1024)
    )
}

/// A finished node with what the limits need to know about it.
#[derive(Debug, Clone)]
struct Built {
    node: Node,
    /// Nodes in the subtree, itself included.
    size: usize,
    /// Collections nested in the subtree, itself included (0 for a scalar).
    height: usize,
}

/// A collection being built.
struct Frame {
    mark: Mark,
    anchor: usize,
    size: usize,
    height: usize,
    kind: FrameKind,
}

enum FrameKind {
    Sequence(Vec<Node>),
    Mapping {
        entries: Vec<Entry>,
        next: NextValue,
        /// Key text → position in `entries`, built once scanning `entries` for a
        /// duplicate would cost more than hashing: most mappings have a few keys.
        index: Option<HashMap<String, usize>>,
    },
}

/// What the next node completed inside a mapping is.
enum NextValue {
    Key,
    ValueOf(Key),
    /// The value of a refused key: parsed (to stay in step), then dropped.
    Discarded,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Completed anchored nodes by the parser's anchor id.
    anchors: HashMap<usize, Built>,
    copied_nodes: usize,
    documents: Vec<Document>,
    root: Option<Node>,
    document_count: usize,
    errors: Vec<ParseError>,
}

impl Builder {
    /// Handles one event. `Err` is fatal: the stream cannot be read further.
    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), ParseError> {
        let mark = to_mark(span);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            Event::DocumentStart(_) => self.root = None,
            Event::DocumentEnd => {
                if let Some(root) = self.root.take().filter(|root| !root.is_null()) {
                    self.documents.push(Document {
                        index: self.document_count,
                        root,
                    });
                }
                self.document_count += 1;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let style = self.scalar_style(&text, style, tag.as_deref(), mark);
                let node = Node {
                    mark,
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        style,
                    }),
                };
                self.complete(
                    Built {
                        node,
                        size: 1,
                        height: 0,
                    },
                    anchor,
                )?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "seq", mark);
                self.open(mark, anchor, FrameKind::Sequence(Vec::new()))?;
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "map", mark);
                let kind = FrameKind::Mapping {
                    entries: Vec::new(),
                    next: NextValue::Key,
                    index: None,
                };
                self.open(mark, anchor, kind)?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close()?,
            Event::Alias(id) => self.alias(id, mark)?,
        }
        Ok(())
    }

    fn open(&mut self, mark: Mark, anchor: usize, kind: FrameKind) -> Result<(), ParseError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error_here(mark, nesting_too_deep()));
        }
        self.stack.push(Frame {
            mark,
            anchor,
            size: 1,
            height: 1,
            kind,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), ParseError> {
        let Some(frame) = self.stack.pop() else {
            // The parser pairs starts and ends; nothing to close means nothing to do.
            return Ok(());
        };
        let value = match frame.kind {
            FrameKind::Sequence(items) => Value::Sequence(items),
            FrameKind::Mapping { entries, .. } => Value::Mapping(entries),
        };
        let built = Built {
            node: Node {
                mark: frame.mark,
                value,
            },
            size: frame.size,
            height: frame.height,
        };
        self.complete(built, frame.anchor)
    }

    fn alias(&mut self, id: usize, mark: Mark) -> Result<(), ParseError> {
        let Some((size, height)) = self.anchors.get(&id).map(|a| (a.size, a.height)) else {
            // The parser resolves names; an id without a finished node is an alias
            // inside the node it names.
            return Err(self.error_here(mark, "an alias cannot refer to a node that contains it"));
        };
        if self.stack.len() + height > MAX_DEPTH {
            return Err(self.error_here(
                mark,
                format!(
                    "this alias nests its anchor deeper than {MAX_DEPTH} levels of lists and \
                     mappings"
                ),
            ));
        }
        // Charged before the copy is made, so that a bomb is refused before it costs.
        self.charge_copy(
            size,
            mark,
            "aliases expand to more than {MAX_COPIED_NODES} nodes; write the values out instead \
             of nesting aliases",
        )?;
        let Some(mut copy) = self.anchors.get(&id).cloned() else {
            return Ok(());
        };
        // Errors about the copy point at the alias the user wrote.
        copy.node.mark = mark;
        self.complete(copy, 0)
    }

    /// Attaches a finished node to its parent (or makes it the document's root).
    fn complete(&mut self, built: Built, anchor: usize) -> Result<(), ParseError> {
        if anchor != 0 {
            self.charge_copy(
                built.size,
                built.node.mark,
                "anchored values hold more than {MAX_COPIED_NODES} nodes in all; anchor only \
                 small values such as selectors",
            )?;
            self.anchors.insert(anchor, built.clone());
        }
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(built.node);
            return Ok(());
        };
        frame.size = frame.size.saturating_add(built.size);
        frame.height = frame.height.max(built.height + 1);
        let refused = match &mut frame.kind {
            FrameKind::Sequence(items) => {
                items.push(built.node);
                None
            }
            FrameKind::Mapping {
                entries,
                next,
                index,
            } => match std::mem::replace(next, NextValue::Key) {
                NextValue::ValueOf(key) => {
                    entries.push(Entry {
                        key,
                        value: built.node,
                    });
                    None
                }
                NextValue::Discarded => None,
                NextValue::Key => match check_key(built.node, entries, index) {
                    Ok(key) => {
                        *next = NextValue::ValueOf(key);
                        None
                    }
                    Err((mark, field, message)) => {
                        *next = NextValue::Discarded;
                        Some((mark, field, message))
                    }
                },
            },
        };
        if let Some((mark, key, message)) = refused {
            // The frame now discards its next value, so the path ends at the mapping.
            let path = self.path();
            let field = match key {
                Some(k) => path.key(&k),
                None => path,
            };
            self.errors.push(ParseError {
                mark,
                field,
                message,
            });
        }
        Ok(())
    }

    /// Counts `nodes` copies against [`MAX_COPIED_NODES`]; `message` names the limit
    /// with a `{MAX_COPIED_NODES}` placeholder.
    fn charge_copy(&mut self, nodes: usize, mark: Mark, message: &str) -> Result<(), ParseError> {
        self.copied_nodes = self.copied_nodes.saturating_add(nodes);
        if self.copied_nodes <= MAX_COPIED_NODES {
            return Ok(());
        }
        let message = message.replace("{MAX_COPIED_NODES}", &MAX_COPIED_NODES.to_string());
        Err(self.error_here(mark, message))
    }

    fn scalar_style(
        &mut self,
        text: &str,
        style: saphyr_parser::ScalarStyle,
        tag: Option<&Tag>,
        mark: Mark,
    ) -> ScalarStyle {
        let untagged = match style {
            saphyr_parser::ScalarStyle::Plain => ScalarStyle::Plain,
            _ => ScalarStyle::Quoted,
        };
        let Some(tag) = tag else {
            return untagged;
        };
        let core = match core_tag_name(tag) {
            Some("str") => return ScalarStyle::Quoted,
            Some("null") => CoreType::Null,
            Some("bool") => CoreType::Bool,
            Some("int") => CoreType::Int,
            Some("float") => CoreType::Float,
            // `!` alone: "not resolved by content", i.e. a string.
            None if is_non_specific(tag) => return ScalarStyle::Quoted,
            _ => {
                self.refuse_tag(tag, mark);
                return untagged;
            }
        };
        if resolve_as(text, core).is_none() {
            self.push_error(
                mark,
                format!("value {text:?} does not match its tag {}", display_tag(tag)),
            );
            return untagged;
        }
        ScalarStyle::Tagged(core)
    }

    fn check_collection_tag(&mut self, tag: Option<&Tag>, expected: &str, mark: Mark) {
        let Some(tag) = tag else { return };
        if core_tag_name(tag) != Some(expected) && !is_non_specific(tag) {
            self.refuse_tag(tag, mark);
        }
    }

    fn refuse_tag(&mut self, tag: &Tag, mark: Mark) {
        self.push_error(
            mark,
            format!(
                "unsupported tag {}; only the YAML core tags (!!str, !!int, !!float, !!bool, \
                 !!null, !!seq, !!map) are accepted",
                display_tag(tag)
            ),
        );
    }

    fn push_error(&mut self, mark: Mark, message: String) {
        let error = self.error_here(mark, message);
        self.errors.push(error);
    }

    fn error_here(&self, mark: Mark, message: impl Into<String>) -> ParseError {
        ParseError {
            mark,
            field: self.path(),
            message: message.into(),
        }
    }

    fn scan_error(&self, e: &ScanError) -> ParseError {
        let m = e.marker();
        let mark = Mark {
            line: m.line(),
            column: m.col() + 1,
        };
        // The scanner reads ahead and stops at 255 open flow collections before the
        // builder sees the 65th: the same limit, reached first.
        if e.info() == "recursion limit exceeded" {
            return self.error_here(mark, nesting_too_deep());
        }
        self.error_here(mark, format!("invalid YAML: {}", e.info()))
    }

    /// The field path of the node being built.
    fn path(&self) -> FieldPath {
        let mut path = FieldPath::root();
        for frame in &self.stack {
            match &frame.kind {
                FrameKind::Sequence(items) => path.push(PathSegment::Index(items.len())),
                FrameKind::Mapping { next, .. } => match next {
                    NextValue::ValueOf(key) => path.push(PathSegment::Key(key.scalar.text.clone())),
                    NextValue::Key | NextValue::Discarded => break,
                },
            }
        }
        path
    }
}

type KeyError = (Mark, Option<String>, String);

/// Mappings with more keys than this look duplicates up in a hash index.
const INDEX_KEYS_FROM: usize = 16;

/// A node in key position as a [`Key`], or why it cannot be one. `entries` are the
/// mapping's entries so far; the key, if accepted, becomes the next one.
fn check_key(
    node: Node,
    entries: &[Entry],
    index: &mut Option<HashMap<String, usize>>,
) -> Result<Key, KeyError> {
    let Value::Scalar(scalar) = node.value else {
        let found = if matches!(node.value, Value::Sequence(_)) {
            "a list"
        } else {
            "a mapping"
        };
        return Err((
            node.mark,
            None,
            format!("a mapping key must be a string, found {found}"),
        ));
    };
    if scalar.text == "<<" && scalar.style == ScalarStyle::Plain {
        return Err((
            node.mark,
            None,
            "YAML merge keys (<<) are not supported; write the keys out".to_owned(),
        ));
    }
    let first = match index {
        Some(index) => index.get(&scalar.text).and_then(|&i| entries.get(i)),
        None => entries.iter().find(|e| e.key.scalar.text == scalar.text),
    };
    if let Some(first) = first {
        let first = first.key.mark.line;
        return Err((
            node.mark,
            Some(scalar.text.clone()),
            format!(
                "duplicate key {:?} (first defined at line {first})",
                scalar.text
            ),
        ));
    }
    match index {
        Some(index) => {
            index.insert(scalar.text.clone(), entries.len());
        }
        None if entries.len() + 1 >= INDEX_KEYS_FROM => {
            let keys = entries.iter().map(|e| e.key.scalar.text.clone());
            let mut built: HashMap<String, usize> = keys.zip(0..).collect();
            built.insert(scalar.text.clone(), entries.len());
            *index = Some(built);
        }
        None => {}
    }
    Ok(Key {
        mark: node.mark,
        scalar,
    })
}

/// `str` for `!!str` (however spelled), `None` for any other tag.
fn core_tag_name(tag: &Tag) -> Option<&str> {
    if tag.handle == CORE_TAG_PREFIX {
        return Some(&tag.suffix);
    }
    // Verbatim `!<tag:yaml.org,2002:str>` arrives with an empty handle.
    if tag.handle.is_empty() {
        return tag.suffix.strip_prefix(CORE_TAG_PREFIX);
    }
    None
}

fn is_non_specific(tag: &Tag) -> bool {
    tag.handle.is_empty() && tag.suffix == "!"
}

fn display_tag(tag: &Tag) -> String {
    match core_tag_name(tag) {
        Some(name) => format!("!!{name}"),
        None if tag.handle.is_empty() => tag.suffix.clone(),
        None => tag.to_string(),
    }
}

fn nesting_too_deep() -> String {
    format!("nesting is deeper than {MAX_DEPTH} levels of lists and mappings")
}

fn to_mark(span: Span) -> Mark {
    Mark {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse_stream(text) {
            Ok(docs) => panic!("parsed: {docs:?}"),
            Err(errors) => errors
                .iter()
                .map(|e| format!("{}: {}: {}", e.mark, e.field, e.message))
                .collect(),
        }
    }

    #[test]
    fn nodes_carry_one_based_positions() {
        let docs = parse_stream("a: 1\nb:\n  - x\n").unwrap();
        let root = &docs[0].root;
        assert_eq!(root.mark, Mark { line: 1, column: 1 });
        assert_eq!(root.get("a").unwrap().mark, Mark { line: 1, column: 4 });
        let b = root.get("b").unwrap();
        assert_eq!(b.mark, Mark { line: 3, column: 3 });
        let Value::Sequence(items) = &b.value else {
            panic!()
        };
        assert_eq!(items[0].mark, Mark { line: 3, column: 5 });
    }

    #[test]
    fn empty_documents_are_skipped_but_counted() {
        let docs = parse_stream("---\n---\n# nothing\n---\na: 1\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].index, 2);
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, &str)] = &[
            (
                "a: 1\nb:\n  c: 1\n  c: 2\n",
                "4:3: b.c: duplicate key \"c\" (first defined at line 3)",
            ),
            (
                "? [a]\n: 1\n",
                "1:3: (document): a mapping key must be a string, found a list",
            ),
            (
                "a: &x {b: 1}\nc:\n  <<: *x\n",
                "3:3: c: YAML merge keys (<<) are not supported; write the keys out",
            ),
            (
                "a: !foo b\n",
                "1:4: a: unsupported tag !foo; only the YAML core tags (!!str, !!int, \
                 !!float, !!bool, !!null, !!seq, !!map) are accepted",
            ),
            (
                "a: !!int abc\n",
                "1:4: a: value \"abc\" does not match its tag !!int",
            ),
            (
                "a: &x [*x]\n",
                "1:8: a[0]: an alias cannot refer to a node that contains it",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(errors(text), vec![expected.to_string()], "{text:?}");
        }
    }

    #[test]
    fn duplicates_are_found_in_large_mappings_too() {
        let mut text: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k3: again\n");
        assert_eq!(
            errors(&text),
            ["41:1: k3: duplicate key \"k3\" (first defined at line 4)"]
        );
        let docs = parse_stream(&text.replace("k3: again", "k40: 40")).unwrap();
        let Value::Mapping(entries) = &docs[0].root.value else {
            panic!()
        };
        assert_eq!(entries.len(), 41);
    }

    #[test]
    fn tags_of_the_core_schema_decide_the_type() {
        let docs = parse_stream("a: !!str 80\nb: !!int \"80\"\nc: ! 1\n").unwrap();
        let style = |k: &str| match &docs[0].root.get(k).unwrap().value {
            Value::Scalar(s) => s.style,
            _ => panic!(),
        };
        assert_eq!(style("a"), ScalarStyle::Quoted);
        assert_eq!(style("b"), ScalarStyle::Tagged(CoreType::Int));
        assert_eq!(style("c"), ScalarStyle::Quoted);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        let errors = errors(&text);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].ends_with("nesting is deeper than 64 levels of lists and mappings"),
            "{errors:?}"
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let list = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
        }
        let errors = errors(&text);
        assert!(
            errors[0].contains("aliases expand to more than 100000 nodes"),
            "{errors:?}"
        );
    }

    #[test]
    fn small_aliases_are_copied() {
        let docs = parse_stream("a: &sel {app: web}\nb: *sel\n").unwrap();
        let root = &docs[0].root;
        assert_eq!(
            root.get("b").unwrap().get("app").unwrap().as_text(),
            Some("web")
        );
        assert_eq!(root.get("b").unwrap().mark, Mark { line: 2, column: 4 });
    }
}
