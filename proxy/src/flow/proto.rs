//! Helpers for protojson: enums written by name (numbers accepted on input), 64-bit
//! integers written as strings, and the zero-value tests that leave unset fields out.

/// Declares a protobuf enum: the first variant is the zero value (omitted from JSON);
/// serialises as its proto name, deserialises from the name or the number.
macro_rules! proto_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $num:literal => $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            #[default]
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The proto enum value name.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )+ }
            }

            pub fn number(self) -> i32 {
                match self { $( $name::$variant => $num, )+ }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $( $text => Some($name::$variant), )+ _ => None }
            }

            pub fn from_number(n: i64) -> Option<Self> {
                match n { $( $num => Some($name::$variant), )+ _ => None }
            }

            /// Whether this is the zero value, which protojson leaves out.
            pub fn is_zero(&self) -> bool {
                self.number() == 0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "a {} name or number", stringify!($name))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_name(v).ok_or_else(|| E::custom(format!(
                            "unknown {} {v:?}", stringify!($name))))
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        $name::from_number(v).ok_or_else(|| E::custom(format!(
                            "unknown {} {v}", stringify!($name))))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$name, E> {
                        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

pub(crate) use proto_enum;

pub(crate) fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

pub(crate) fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

pub(crate) fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}

/// protojson writes 64-bit integers as strings (JavaScript numbers cannot hold them);
/// both forms are accepted on input.
pub(crate) mod u64_string {
    use std::fmt;

    use serde::Serializer;
    use serde::de::{self, Deserializer, Visitor};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an unsigned 64-bit integer, as a string or a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format!("negative value {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                v.parse()
                    .map_err(|_| E::custom(format!("invalid unsigned integer {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Escapes `<`, `>`, `&`, U+2028 and U+2029 as Go's `encoding/json` does (Hubble's
/// output passes through it), so lines compare byte for byte with `hubble observe`'s.
/// These characters only ever occur inside JSON strings, so a plain pass is safe.
pub fn go_html_escape(json: String) -> String {
    if !json
        .chars()
        .any(|c| matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}'))
    {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}
