//! The path a rule must match, made canonical so that no spelling of a path reaches a
//! resource under a name the rules did not see.
//!
//! In order, as Envoy does for Cilium (`normalize_path`, then `merge_slashes`):
//!
//! 1. Every byte must be visible ASCII; no `#`; no `\` in the path.
//! 2. Percent-encoding: `%` must be followed by two hex digits. Unreserved characters are
//!    decoded (`%41` → `A`, `%7E` → `~`, `%2E` → `.`), everything else keeps its escape with
//!    uppercase hex (`%3a` → `%3A`), since decoding a reserved character changes the path's
//!    structure. `%00` is refused, and so are `%C0` and `%C1`, which only begin overlong
//!    UTF-8 (`%C0%AE` is `.` to a lenient decoder). `%2F`, `%5C` (any case) are escaped
//!    slashes: see [`EscapedSlashAction`].
//! 3. Dot segments are removed (RFC 3986 §5.2.4), after decoding, so `%2E%2E` is `..` too.
//!    A dot segment with parameters (`..;x`, `.;`) is refused: Tomcat and Spring read it as
//!    `..`, a known way past path rules.
//! 4. Runs of `/` become one (`//admin` → `/admin`).
//!
//! The query string is validated (step 1) but kept as sent: it is not hierarchical, and rules
//! match it as text (spec §11: the path includes the query).
//!
//! The proxy must forward the normalised path, not the one received: otherwise the upstream
//! may resolve a different resource than the one the rules allowed.

use std::borrow::Cow;

use super::{EscapedSlashAction, RequestRejection};

/// The normalised path and query, and whether an escaped slash was unescaped (only with
/// [`EscapedSlashAction::UnescapeAndRedirect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NormalPath<'a> {
    pub(super) path_and_query: Cow<'a, str>,
    pub(super) unescaped_slashes: bool,
}

/// Normalises `path_and_query`, which must start with `/`.
pub(super) fn normalize(
    path_and_query: &str,
    escaped_slashes: EscapedSlashAction,
) -> Result<NormalPath<'_>, RequestRejection> {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    if !path.starts_with('/') {
        return Err(RequestRejection::InvalidTarget(
            "origin-form must start with '/'",
        ));
    }
    // Most paths are already canonical: no escapes, no empty or dot segments. They are
    // returned as they are, without allocating; the one pass that validates the bytes also
    // tells whether the path is one of them.
    let mut canonical = true;
    let mut previous = 0u8;
    for (at, byte) in path_and_query.bytes().enumerate() {
        if !(0x21..0x7f).contains(&byte) {
            return Err(RequestRejection::InvalidTargetByte { byte, at });
        }
        if byte == b'#' {
            return Err(RequestRejection::Fragment);
        }
        if at < path.len() {
            if byte == b'\\' {
                return Err(RequestRejection::Backslash);
            }
            // `%`, `//`, or a segment starting with `.` (which may be a dot segment).
            canonical &= byte != b'%' && !(previous == b'/' && matches!(byte, b'/' | b'.'));
            previous = byte;
        }
    }
    if canonical {
        return Ok(NormalPath {
            path_and_query: Cow::Borrowed(path_and_query),
            unescaped_slashes: false,
        });
    }

    let (decoded, unescaped_slashes) = decode(path, escaped_slashes)?;
    let mut out = remove_dot_segments_and_merge_slashes(&decoded)?;
    out.push_str(query);
    // A segment such as `.well-known` takes the slow path and comes out unchanged: report
    // it unchanged, so the proxy does not rewrite a URI for nothing.
    let path_and_query = if out == path_and_query {
        Cow::Borrowed(path_and_query)
    } else {
        Cow::Owned(out)
    };
    Ok(NormalPath {
        path_and_query,
        unescaped_slashes,
    })
}

/// Step 2: decodes unreserved characters, uppercases the remaining escapes.
fn decode(
    path: &str,
    escaped_slashes: EscapedSlashAction,
) -> Result<(String, bool), RequestRejection> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut unescaped_slashes = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(RequestRejection::BadPercentEncoding);
        };
        let decoded = hi << 4 | lo;
        match decoded {
            b'/' | b'\\' => match escaped_slashes {
                EscapedSlashAction::Reject => return Err(RequestRejection::EscapedSlash),
                // Envoy unescapes `%5C` to `\`, which its path canonicaliser then turns into
                // `/`: both end as a separator.
                EscapedSlashAction::UnescapeAndRedirect => {
                    out.push('/');
                    unescaped_slashes = true;
                }
            },
            0 => return Err(RequestRejection::EncodedNul),
            // Never valid in UTF-8: only an overlong encoding starts with them, and lenient
            // decoders read `%C0%AE` as `.` and `%C0%AF` as `/`.
            0xc0 | 0xc1 => return Err(RequestRejection::OverlongUtf8),
            b if is_unreserved(b) => out.push(char::from(b)),
            _ => {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(hi)]));
                out.push(char::from(HEX_UPPER[usize::from(lo)]));
            }
        }
        i += 3;
    }
    Ok((out, unescaped_slashes))
}

/// Steps 3 and 4 on a decoded path that starts with `/`.
fn remove_dot_segments_and_merge_slashes(path: &str) -> Result<String, RequestRejection> {
    let mut kept: Vec<&str> = Vec::new();
    let mut segments = path.get(1..).unwrap_or("").split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if let Some((name, _parameters)) = segment.split_once(';')
            && (name == "." || name == "..")
        {
            return Err(RequestRejection::DotSegmentWithParameters);
        }
        match segment {
            "." | ".." => {
                if segment == ".." {
                    kept.pop();
                }
                // `/a/b/..` is `/a/`: a final dot segment leaves a directory.
                if last {
                    kept.push("");
                }
            }
            _ => kept.push(segment),
        }
    }
    // Empty segments are runs of `/`; only a final one (a trailing slash) stays.
    let mut out = String::with_capacity(path.len());
    let count = kept.len();
    for (i, segment) in kept.into_iter().enumerate() {
        if segment.is_empty() && i + 1 != count {
            continue;
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// RFC 3986 §2.3: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> Result<String, RequestRejection> {
        normalize(path, EscapedSlashAction::Reject).map(|p| p.path_and_query.into_owned())
    }

    /// RFC 3986 §5.4 examples (the path parts of the normal and abnormal resolutions), and
    /// Envoy's path normalisation tests (test/common/http/path_utility_test.cc).
    #[test]
    fn removes_dot_segments_and_merges_slashes() {
        let cases: &[(&str, &str)] = &[
            ("/", "/"),
            ("/a/b/c/./../../g", "/a/g"),
            ("/b/c/./g", "/b/c/g"),
            ("/b/c/g/", "/b/c/g/"),
            ("/b/c/..", "/b/"),
            ("/b/c/.", "/b/c/"),
            ("/b/c/../..", "/"),
            ("/../g", "/g"),
            ("/../../../g", "/g"),
            ("/./g", "/g"),
            ("/g.", "/g."),
            ("/.g", "/.g"),
            ("/..g", "/..g"),
            ("/g..", "/g.."),
            ("/.well-known/x", "/.well-known/x"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/a/b//", "/a/b/"),
            // Dot segments first, then merged slashes: `..` removes the empty segment.
            ("/a//../b", "/a/b"),
            ("/..", "/"),
            ("/.", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(*want), "{input}");
        }
    }

    #[test]
    fn decodes_unreserved_and_uppercases_other_escapes() {
        let cases: &[(&str, &str)] = &[
            ("/%41%62c", "/Abc"),
            ("/%7E%7euser", "/~~user"),
            ("/a%2db%5F%2E", "/a-b_."),
            ("/a%3ab", "/a%3Ab"),
            ("/%c3%a9", "/%C3%A9"),
            ("/%25", "/%25"),
            // Encoded dots are dots: removed like plain ones.
            ("/a/%2e%2E/b", "/b"),
            ("/a/%2e/b", "/a/b"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(*want), "{input}");
        }
    }

    #[test]
    fn keeps_the_query_as_sent() {
        assert_eq!(
            norm("/a/../b?x=/../%2f&y=%41").as_deref(),
            Ok("/b?x=/../%2f&y=%41")
        );
        assert_eq!(norm("/a?"), Ok("/a?".to_owned()));
        // A backslash is refused in the path only.
        assert_eq!(norm("/a?x=\\"), Ok("/a?x=\\".to_owned()));
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for path in [
            "/",
            "/api/v1/items?limit=10",
            "/a.b/c..d/e.",
            "/.well-known/x",
            "/a..:/b",
        ] {
            let got = normalize(path, EscapedSlashAction::Reject);
            assert!(
                matches!(
                    got,
                    Ok(NormalPath {
                        path_and_query: Cow::Borrowed(_),
                        ..
                    })
                ),
                "{path}: {got:?}"
            );
        }
    }

    #[test]
    fn rejects_what_cannot_be_made_safe() {
        let cases: &[(&str, RequestRejection)] = &[
            ("/a%2Fb", RequestRejection::EscapedSlash),
            ("/a%2fb", RequestRejection::EscapedSlash),
            ("/a%5Cb", RequestRejection::EscapedSlash),
            ("/a%5cb", RequestRejection::EscapedSlash),
            ("/a\\b", RequestRejection::Backslash),
            ("/a%00b", RequestRejection::EncodedNul),
            ("/a/%c0%ae%c0%ae/b", RequestRejection::OverlongUtf8),
            ("/a%C1%9Cb", RequestRejection::OverlongUtf8),
            ("/a%", RequestRejection::BadPercentEncoding),
            ("/a%4", RequestRejection::BadPercentEncoding),
            ("/a%zz", RequestRejection::BadPercentEncoding),
            ("/a%+1", RequestRejection::BadPercentEncoding),
            ("/a#frag", RequestRejection::Fragment),
            ("/a?b#frag", RequestRejection::Fragment),
            ("/..;/admin", RequestRejection::DotSegmentWithParameters),
            (
                "/public/..;x=1/admin",
                RequestRejection::DotSegmentWithParameters,
            ),
            ("/.;/admin", RequestRejection::DotSegmentWithParameters),
            ("/%2e%2e;/admin", RequestRejection::DotSegmentWithParameters),
            (
                "/a\0b",
                RequestRejection::InvalidTargetByte { byte: 0, at: 2 },
            ),
            (
                "/a b",
                RequestRejection::InvalidTargetByte { byte: b' ', at: 2 },
            ),
            (
                "/a\tb",
                RequestRejection::InvalidTargetByte { byte: b'\t', at: 2 },
            ),
            (
                "/a\x7fb",
                RequestRejection::InvalidTargetByte { byte: 0x7f, at: 2 },
            ),
            (
                "/a\u{e9}",
                RequestRejection::InvalidTargetByte { byte: 0xc3, at: 2 },
            ),
            (
                "/a?b\r\n",
                RequestRejection::InvalidTargetByte { byte: b'\r', at: 4 },
            ),
            (
                "a/b",
                RequestRejection::InvalidTarget("origin-form must start with '/'"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_ref(), Err(want), "{input:?}");
        }
    }

    /// Envoy's UNESCAPE_AND_REDIRECT: escaped slashes become separators, the result is
    /// normalised like any path, and the caller redirects to it.
    #[test]
    fn unescape_mode_turns_escaped_slashes_into_separators() {
        let got = normalize(
            "/public%2F..%2Fadmin?q",
            EscapedSlashAction::UnescapeAndRedirect,
        );
        assert_eq!(
            got,
            Ok(NormalPath {
                path_and_query: Cow::Owned("/admin?q".to_owned()),
                unescaped_slashes: true,
            })
        );
        let plain = normalize("/a/./b", EscapedSlashAction::UnescapeAndRedirect);
        assert!(matches!(
            plain,
            Ok(NormalPath {
                unescaped_slashes: false,
                ..
            })
        ));
    }
}
