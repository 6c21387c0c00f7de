//! Scalar types by the YAML 1.2 core schema.
//!
//! Only plain scalars are resolved: `"80"` stays a string, `80` is an integer. YAML 1.1
//! spellings (`yes`, `on`, `0777` as octal, `1_000`) are strings here, as in the
//! Kubernetes API server's YAML 1.2-leaning decoder for the cases that matter
//! (`port: "yes"` is never a boolean).

use super::{CoreType, Scalar, ScalarStyle};

/// What a scalar means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i128),
    /// An integer literal too large for any Rust integer type.
    BigInt,
    Float(f64),
    Str,
}

impl Resolved {
    pub fn kind_name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) | Self::BigInt => "an integer",
            Self::Float(_) => "a number",
            Self::Str => "a string",
        }
    }
}

impl Scalar {
    pub fn resolve(&self) -> Resolved {
        match self.style {
            ScalarStyle::Quoted => Resolved::Str,
            ScalarStyle::Plain => resolve_plain(&self.text),
            ScalarStyle::Tagged(core) => resolve_as(&self.text, core).unwrap_or(Resolved::Str),
        }
    }

    /// An integer from a plain scalar, or from a quoted decimal string: Kubernetes
    /// manifests write ports and counts both ways (`port: 80`, `port: "80"`).
    pub fn integer(&self) -> Option<Resolved> {
        match self.resolve() {
            r @ (Resolved::Int(_) | Resolved::BigInt) => Some(r),
            Resolved::Str if is_decimal(&self.text) => Some(parse_int(&self.text, 10)),
            _ => None,
        }
    }
}

/// The value of `text` read as `core`, or `None` when it is not one (`!!int abc`).
pub(crate) fn resolve_as(text: &str, core: CoreType) -> Option<Resolved> {
    let resolved = resolve_plain(text);
    let fits = match core {
        CoreType::Null => resolved == Resolved::Null,
        CoreType::Bool => matches!(resolved, Resolved::Bool(_)),
        CoreType::Int => matches!(resolved, Resolved::Int(_) | Resolved::BigInt),
        CoreType::Float => {
            return match resolved {
                Resolved::Float(_) => Some(resolved),
                Resolved::Int(i) => Some(Resolved::Float(i as f64)),
                _ => None,
            };
        }
    };
    fits.then_some(resolved)
}

fn resolve_plain(text: &str) -> Resolved {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if is_decimal(text) {
        return parse_int(text, 10);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return parse_int(hex, 16);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && !oct.is_empty()
        && oct.bytes().all(|b| matches!(b, b'0'..=b'7'))
    {
        return parse_int(oct, 8);
    }
    if is_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Resolved::Float(f);
    }
    Resolved::Str
}

/// `[-+]?[0-9]+`
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac_part {
        None => !int_part.is_empty() && all_digits(int_part),
        Some(frac) => {
            // `.5` and `5.` are floats; `.` alone is not.
            all_digits(int_part) && all_digits(frac) && !(int_part.is_empty() && frac.is_empty())
        }
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => is_decimal(e),
    };
    mantissa_ok && exponent_ok
}

fn parse_int(text: &str, radix: u32) -> Resolved {
    i128::from_str_radix(text, radix).map_or(Resolved::BigInt, Resolved::Int)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Resolved {
        resolve_plain(text)
    }

    /// Cases from the YAML 1.2.2 spec, §10.3.2 "Tag Resolution" (core schema table).
    #[test]
    fn core_schema_table() {
        let cases: &[(&str, Resolved)] = &[
            ("", Resolved::Null),
            ("~", Resolved::Null),
            ("null", Resolved::Null),
            ("NULL", Resolved::Null),
            ("true", Resolved::Bool(true)),
            ("False", Resolved::Bool(false)),
            ("0", Resolved::Int(0)),
            ("-19", Resolved::Int(-19)),
            ("+12", Resolved::Int(12)),
            ("0o14", Resolved::Int(12)),
            ("0xC", Resolved::Int(12)),
            ("0.", Resolved::Float(0.0)),
            ("-0.0", Resolved::Float(-0.0)),
            (".5", Resolved::Float(0.5)),
            ("+12e03", Resolved::Float(12000.0)),
            ("-2E+05", Resolved::Float(-200000.0)),
            ("-.inf", Resolved::Float(f64::NEG_INFINITY)),
            ("yes", Resolved::Str),
            ("0x", Resolved::Str),
            ("0o8", Resolved::Str),
            ("1_000", Resolved::Str),
            (".", Resolved::Str),
            ("1e", Resolved::Str),
            ("8080/TCP", Resolved::Str),
            (
                "99999999999999999999999999999999999999999",
                Resolved::BigInt,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(plain(text), *expected, "{text:?}");
        }
        assert!(matches!(plain(".NaN"), Resolved::Float(f) if f.is_nan()));
    }

    #[test]
    fn quoted_decimal_is_an_integer_only_when_asked() {
        let s = Scalar {
            text: "8080".into(),
            style: ScalarStyle::Quoted,
        };
        assert_eq!(s.resolve(), Resolved::Str);
        assert_eq!(s.integer(), Some(Resolved::Int(8080)));
        let hex = Scalar {
            text: "0x50".into(),
            style: ScalarStyle::Quoted,
        };
        assert_eq!(hex.integer(), None);
    }
}
