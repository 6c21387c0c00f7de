//! A serde `Deserializer` over the node tree whose errors say which field, on which
//! line, and what was expected.
//!
//! Leniencies follow what `kubectl apply` accepts, because users' manifests were written
//! for it: any plain scalar reads as a string (`port: 80` into a string field), integers
//! may be quoted (`port: "80"` into a number field), and `null` reads as the field's
//! empty value (Go's JSON decoder leaves the zero value). Everything else is strict.

use serde::de::{self, Deserialize, DeserializeSeed, Visitor};

use super::error::{DeError, Path, quote_short, short};
use super::scalar::Resolved;
use super::{Entry, Mark, Node, Scalar, Value};
use crate::diag::FieldPath;

/// Reads `node` as a `T`. `base` is the node's own path within its document, so that
/// errors name the field as the user wrote it.
pub(crate) fn from_node<'de, T: Deserialize<'de>>(
    node: &'de Node,
    base: &FieldPath,
) -> Result<T, DeError> {
    let path = Path::Base(base);
    T::deserialize(NodeDe::new(node, &path))
}

/// What a deserializer reads: a node, or a mapping key (always a scalar).
#[derive(Clone, Copy)]
enum NodeRef<'de> {
    Scalar(&'de Scalar),
    Sequence(&'de [Node]),
    Mapping(&'de [Entry]),
}

impl NodeRef<'_> {
    /// The value as an error message names it: `a string "foo"`, `the integer 80`.
    fn describe(self) -> String {
        match self {
            NodeRef::Sequence(_) => "a list".to_owned(),
            NodeRef::Mapping(_) => "a mapping".to_owned(),
            NodeRef::Scalar(s) => match s.resolve() {
                Resolved::Null => "null".to_owned(),
                Resolved::Str => format!("a string {}", quote_short(&s.text)),
                Resolved::Bool(_) => format!("the boolean {}", s.text),
                Resolved::Int(_) | Resolved::BigInt => format!("the integer {}", short(&s.text)),
                Resolved::Float(_) => format!("the number {}", short(&s.text)),
            },
        }
    }
}

struct NodeDe<'de, 'p> {
    value: NodeRef<'de>,
    mark: Mark,
    path: &'p Path<'p>,
    /// A mapping key reads as its text even when it looks like null (`~: x`).
    key: bool,
}

impl<'de, 'p> NodeDe<'de, 'p> {
    fn new(node: &'de Node, path: &'p Path<'p>) -> Self {
        let value = match &node.value {
            Value::Scalar(s) => NodeRef::Scalar(s),
            Value::Sequence(items) => NodeRef::Sequence(items),
            Value::Mapping(entries) => NodeRef::Mapping(entries),
        };
        Self {
            value,
            mark: node.mark,
            path,
            key: false,
        }
    }

    fn located<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|e| e.at(self.path, self.mark))
    }

    fn mismatch(&self, expected: &str) -> DeError {
        DeError::new(format!(
            "expected {expected}, found {}",
            self.value.describe()
        ))
        .at(self.path, self.mark)
    }

    fn null_scalar(&self) -> bool {
        matches!(self.value, NodeRef::Scalar(s) if s.resolve() == Resolved::Null)
    }

    /// An integer in `min..=max`, from a plain scalar or a quoted decimal string.
    fn integer(&self, min: i128, max: i128) -> Result<i128, DeError> {
        let NodeRef::Scalar(s) = self.value else {
            return Err(self.mismatch("an integer"));
        };
        match s.integer() {
            Some(Resolved::Int(n)) if (min..=max).contains(&n) => Ok(n),
            Some(_) => Err(DeError::new(format!(
                "invalid value: {}, expected an integer from {min} to {max}",
                short(&s.text)
            ))
            .at(self.path, self.mark)),
            None => Err(self.mismatch("an integer")),
        }
    }

    fn visit_sequence<V: Visitor<'de>>(
        &self,
        items: &'de [Node],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let mut access = SeqDe {
            items: items.iter().enumerate(),
            path: self.path,
        };
        self.located(visitor.visit_seq(&mut access))
    }

    fn visit_mapping<V: Visitor<'de>>(
        &self,
        entries: &'de [Entry],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let mut access = MapDe {
            entries: entries.iter(),
            current: None,
            path: self.path,
        };
        self.located(visitor.visit_map(&mut access))
    }
}

macro_rules! deserialize_integer {
    ($($method:ident => $visit:ident: $ty:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n = self.integer(i128::from(<$ty>::MIN), i128::from(<$ty>::MAX))?;
            let n = <$ty>::try_from(n)
                .map_err(|_| DeError::new("integer out of range").at(self.path, self.mark))?;
            self.located(visitor.$visit(n))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            NodeRef::Sequence(items) => return self.visit_sequence(items, visitor),
            NodeRef::Mapping(entries) => return self.visit_mapping(entries, visitor),
            NodeRef::Scalar(s) => match s.resolve() {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(n) => match (i64::try_from(n), u64::try_from(n)) {
                    (Ok(n), _) => visitor.visit_i64(n),
                    (_, Ok(n)) => visitor.visit_u64(n),
                    _ => visitor.visit_i128(n),
                },
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::BigInt | Resolved::Str => visitor.visit_borrowed_str(&s.text),
            },
        };
        self.located(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            NodeRef::Scalar(s) => match s.resolve() {
                Resolved::Bool(b) => self.located(visitor.visit_bool(b)),
                _ => Err(self.mismatch("true or false")),
            },
            _ => Err(self.mismatch("true or false")),
        }
    }

    deserialize_integer! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = self.integer(0, i128::MAX)?;
        let n = u128::try_from(n)
            .map_err(|_| DeError::new("integer out of range").at(self.path, self.mark))?;
        self.located(visitor.visit_u128(n))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let NodeRef::Scalar(s) = self.value else {
            return Err(self.mismatch("a number"));
        };
        match s.resolve() {
            Resolved::Float(f) => self.located(visitor.visit_f64(f)),
            #[allow(clippy::cast_precision_loss)] // as YAML's own int-to-float reading
            Resolved::Int(n) => self.located(visitor.visit_f64(n as f64)),
            _ => Err(self.mismatch("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            NodeRef::Scalar(s) if !self.key && s.resolve() == Resolved::Null => {
                self.located(visitor.visit_borrowed_str(""))
            }
            NodeRef::Scalar(s) => self.located(visitor.visit_borrowed_str(&s.text)),
            _ => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            NodeRef::Scalar(s) => self.located(visitor.visit_borrowed_bytes(s.text.as_bytes())),
            _ => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.null_scalar() {
            self.located(visitor.visit_none())
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.null_scalar() {
            self.located(visitor.visit_unit())
        } else {
            Err(self.mismatch("null"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            NodeRef::Sequence(items) => self.visit_sequence(items, visitor),
            _ if self.null_scalar() => self.visit_sequence(&[], visitor),
            _ => Err(self.mismatch("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            NodeRef::Mapping(entries) => self.visit_mapping(entries, visitor),
            _ if self.null_scalar() => self.visit_mapping(&[], visitor),
            _ => Err(self.mismatch("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            NodeRef::Scalar(s) => {
                let access = de::value::BorrowedStrDeserializer::<DeError>::new(&s.text);
                self.located(visitor.visit_enum(access))
            }
            NodeRef::Mapping([entry]) => {
                let access = EnumDe {
                    entry,
                    path: self.path,
                };
                self.located(visitor.visit_enum(access))
            }
            _ => Err(self.mismatch("a value name or a mapping with one key")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            NodeRef::Scalar(s) => self.located(visitor.visit_borrowed_str(&s.text)),
            _ => Err(self.mismatch("a field name")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Nothing to read: skipping the subtree costs nothing in a tree.
        self.located(visitor.visit_unit())
    }
}

struct SeqDe<'de, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Node>>,
    path: &'p Path<'p>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((index, node)) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Index(self.path, index);
        let de = NodeDe::new(node, &path);
        let mark = de.mark;
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.at(&path, mark))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'de, 'p> {
    entries: std::slice::Iter<'de, Entry>,
    current: Option<&'de Entry>,
    path: &'p Path<'p>,
}

impl<'de> de::MapAccess<'de> for MapDe<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        // An unknown or malformed key is reported at the key, under its own name.
        let path = Path::Key(self.path, &entry.key.scalar.text);
        let de = NodeDe {
            value: NodeRef::Scalar(&entry.key.scalar),
            mark: entry.key.mark,
            path: &path,
            key: true,
        };
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.at(&path, entry.key.mark))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.current.take() else {
            return Err(DeError::new("a mapping value was read before its key"));
        };
        let path = Path::Key(self.path, &entry.key.scalar.text);
        let de = NodeDe::new(&entry.value, &path);
        let mark = de.mark;
        seed.deserialize(de).map_err(|e| e.at(&path, mark))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// `{variant: content}`, serde's externally tagged enum form.
struct EnumDe<'de, 'p> {
    entry: &'de Entry,
    path: &'p Path<'p>,
}

impl<'de, 'p> de::EnumAccess<'de> for EnumDe<'de, 'p> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let key = de::value::BorrowedStrDeserializer::<DeError>::new(&self.entry.key.scalar.text);
        let path = Path::Key(self.path, &self.entry.key.scalar.text);
        let variant = seed
            .deserialize(key)
            .map_err(|e| e.at(&path, self.entry.key.mark))?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumDe<'de, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        let path = Path::Key(self.path, &self.entry.key.scalar.text);
        Deserialize::deserialize(NodeDe::new(&self.entry.value, &path))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let path = Path::Key(self.path, &self.entry.key.scalar.text);
        seed.deserialize(NodeDe::new(&self.entry.value, &path))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        let path = Path::Key(self.path, &self.entry.key.scalar.text);
        de::Deserializer::deserialize_seq(NodeDe::new(&self.entry.value, &path), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = Path::Key(self.path, &self.entry.key.scalar.text);
        de::Deserializer::deserialize_map(NodeDe::new(&self.entry.value, &path), visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::yaml::parse_stream;

    fn read<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        let documents = parse_stream(text).map_err(|e| format!("{e:?}"))?;
        from_node(&documents[0].root, &FieldPath::root()).map_err(|e| e.to_string())
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        text: String,
        port: Option<u16>,
        count: Option<i64>,
        flag: Option<bool>,
        ratio: Option<f64>,
        #[serde(default)]
        list: Vec<String>,
        map: Option<BTreeMap<String, String>>,
        mode: Option<Mode>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Safe { level: u8 },
    }

    #[test]
    fn any_plain_scalar_reads_as_a_string() {
        for (yaml, text) in [
            ("text: 80", "80"),
            ("text: true", "true"),
            ("text: 1.50", "1.50"),
            ("text: 0x1F", "0x1F"),
            ("text: ~", ""),
            ("text:", ""),
            ("text: 'null'", "null"),
        ] {
            let sample: Sample = read(yaml).unwrap();
            assert_eq!(sample.text, text, "{yaml}");
        }
    }

    #[test]
    fn integers_read_from_plain_and_quoted_decimal_scalars() {
        let sample: Sample = read("port: \"8080\"\ncount: -16").unwrap();
        assert_eq!((sample.port, sample.count), (Some(8080), Some(-16)));
        assert_eq!(read::<Sample>("port: 0x50").unwrap().port, Some(80));
        assert_eq!(
            read::<Sample>("port: \"0x50\"").unwrap_err(),
            "1:7: port: expected an integer, found a string \"0x50\""
        );
        assert_eq!(
            read::<Sample>("port: -1").unwrap_err(),
            "1:7: port: invalid value: -1, expected an integer from 0 to 65535"
        );
        assert_eq!(
            read::<Sample>("count: 9223372036854775808").unwrap_err(),
            "1:8: count: invalid value: 9223372036854775808, expected an integer from \
             -9223372036854775808 to 9223372036854775807"
        );
    }

    #[test]
    fn booleans_and_numbers_are_strict() {
        assert_eq!(
            read::<Sample>("flag: yes").unwrap_err(),
            "1:7: flag: expected true or false, found a string \"yes\""
        );
        assert_eq!(
            read::<Sample>("flag: \"true\"").unwrap_err(),
            "1:7: flag: expected true or false, found a string \"true\""
        );
        assert_eq!(read::<Sample>("ratio: 2").unwrap().ratio, Some(2.0));
        assert_eq!(read::<Sample>("ratio: .5").unwrap().ratio, Some(0.5));
    }

    #[test]
    fn null_is_the_empty_value() {
        let sample: Sample = read("port: ~\nlist:\nmap: null\nmode:").unwrap();
        assert_eq!(sample.port, None);
        assert!(sample.list.is_empty());
        assert_eq!(sample.map, None);
        assert_eq!(sample.mode, None);
    }

    #[test]
    fn maps_of_strings_take_scalars_and_keep_key_text() {
        let sample: Sample = read("map: {a: 1, b: true, ~: x, \"c\": 'd'}").unwrap();
        let map = sample.map.unwrap();
        assert_eq!(map["a"], "1");
        assert_eq!(map["b"], "true");
        assert_eq!(map["~"], "x");
        assert_eq!(map["c"], "d");
        assert_eq!(
            read::<Sample>("map: {a: [1]}").unwrap_err(),
            "1:10: map.a: expected a string, found a list"
        );
    }

    #[test]
    fn enums_read_from_names_and_single_key_mappings() {
        assert_eq!(read::<Sample>("mode: fast").unwrap().mode, Some(Mode::Fast));
        assert_eq!(
            read::<Sample>("mode: {safe: {level: 3}}").unwrap().mode,
            Some(Mode::Safe { level: 3 })
        );
        assert_eq!(
            read::<Sample>("mode: slow").unwrap_err(),
            "1:7: mode: unknown value \"slow\"; expected one of: fast, safe"
        );
    }

    #[test]
    fn errors_are_located_at_the_offending_node() {
        assert_eq!(
            read::<Sample>("text: a\nlist:\n  - x\n  - {y: 1}\n").unwrap_err(),
            "4:5: list[1]: expected a string, found a mapping"
        );
        assert_eq!(
            read::<Sample>("text: a\nlst: []\n").unwrap_err(),
            "2:1: lst: unknown field \"lst\"; expected one of: text, port, count, flag, ratio, \
             list, map, mode"
        );
        assert_eq!(
            read::<Sample>("- 1\n").unwrap_err(),
            "1:1: (document): expected a mapping, found a list"
        );
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            inner: Inner,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            name: String,
        }
        // serde finds a field missing once the mapping is read: it lands on the mapping.
        assert_eq!(
            read::<Needs>("inner:\n  other: 1\n").unwrap_err(),
            "2:3: inner: missing field \"name\""
        );
    }
}
