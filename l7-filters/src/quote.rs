//! Go's `%q` string quoting, for messages that keep Cilium's wording.
//!
//! Cilium formats user values with `%q` (`invalid Kafka APIKey "foo"`); a sluice message that
//! quoted them differently would not be found by someone searching for Cilium's.

use std::fmt::Write as _;

/// `s` as Go's `strconv.Quote` prints it: double-quoted, with `"` and `\` escaped and control
/// characters written as escapes. Printable non-ASCII characters are kept as they are, as Go
/// keeps them (Go's notion of "printable" differs from `char::is_control` only for rare
/// format characters, which do not occur in policy values).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if c.is_control() && u32::from(c) < 0x80 => {
                // Infallible: writing to a String cannot fail.
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    /// Expected values are what Go's `fmt.Sprintf("%q", s)` prints.
    #[test]
    fn quotes_like_go() {
        let cases = [
            ("produce", r#""produce""#),
            ("", r#""""#),
            (r#"a"b"#, r#""a\"b""#),
            (r"a\b", r#""a\\b""#),
            ("tab\there", r#""tab\there""#),
            ("nul\u{0}", r#""nul\x00""#),
            ("del\u{7f}", r#""del\x7f""#),
            ("c1\u{85}", r#""c1\u0085""#),
            ("héllo", r#""héllo""#),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "input {input:?}");
        }
    }
}
