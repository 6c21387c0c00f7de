//! Header-section checks: size limits, header values, and body framing (Content-Length and
//! Transfer-Encoding, RFC 9112 §6).
//!
//! Framing is where request smuggling lives: if the proxy and the upstream disagree about
//! where a body ends, the rest of it becomes a request the proxy never checked. Every
//! ambiguous combination is refused rather than resolved, even the ones RFC 9112 lets a
//! server resolve (Content-Length with Transfer-Encoding, repeated equal Content-Lengths),
//! because the upstream may resolve them differently.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue};

use super::{Limits, RequestRejection};

/// How the request body is delimited, once the head is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFraming {
    /// HTTP/1 without Content-Length or Transfer-Encoding: no body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// HTTP/1.1 `Transfer-Encoding: chunked`.
    Chunked,
    /// HTTP/2 without Content-Length: the body ends with the stream.
    EndOfStream,
}

/// Bytes counted per header field on top of its name and value: `": "` and CRLF, as on an
/// HTTP/1 wire. (HPACK's accounting adds 32; the limit is about memory, not the exact
/// encoding, so one rule for both versions keeps it predictable.)
const FIELD_OVERHEAD: usize = 4;

/// Headers that HTTP/2 forbids, being about one HTTP/1 connection (RFC 9113 §8.2.2). `te` is
/// handled apart: it may carry `trailers`.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Limits on the header section, and values no parser should have let through.
pub(super) fn check_header_section(
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<(), RequestRejection> {
    let count = headers.len();
    if count > limits.max_header_count {
        return Err(RequestRejection::TooManyHeaders {
            count,
            limit: limits.max_header_count,
        });
    }
    let mut size = 0usize;
    for (name, value) in headers {
        size = size.saturating_add(name.as_str().len() + value.len() + FIELD_OVERHEAD);
        if size > limits.max_header_bytes {
            return Err(RequestRejection::HeadersTooLarge {
                size,
                limit: limits.max_header_bytes,
            });
        }
        // `HeaderValue`'s checked constructors refuse these, but parsers build values with
        // the unchecked (unsafe) one after their own scan; a CR or LF forwarded upstream
        // would start a new header line. Safe code cannot build such a value, so no test
        // here can either.
        if value
            .as_bytes()
            .iter()
            .any(|&b| matches!(b, b'\r' | b'\n' | 0))
        {
            return Err(RequestRejection::InvalidHeaderValue {
                name: name.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

/// The framing of an HTTP/1.x request (`http10`: version 1.0).
pub(super) fn http1(headers: &HeaderMap, http10: bool) -> Result<BodyFraming, RequestRejection> {
    let length = content_length(headers)?;
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_none() {
        return Ok(length.map_or(BodyFraming::Empty, BodyFraming::Length));
    }
    // RFC 9112 §6.1: Transfer-Encoding on 1.0 means faulty framing.
    if http10 {
        return Err(RequestRejection::TransferEncodingInHttp10);
    }
    // §6.3 lets a server drop Content-Length in favour of Transfer-Encoding; an upstream that
    // does the opposite sees a different body, so neither is chosen.
    if length.is_some() {
        return Err(RequestRejection::ContentLengthWithTransferEncoding);
    }
    let mut total = 0usize;
    let mut chunked = 0usize;
    let mut last_is_chunked = false;
    for coding in codings.flat_map(list_items) {
        total += 1;
        last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
        chunked += usize::from(last_is_chunked);
    }
    // §6.3: without chunked last, the body length cannot be known: 400. Chunked twice is
    // forbidden (§7).
    if !last_is_chunked || chunked != 1 {
        return Err(RequestRejection::ChunkedNotFinal);
    }
    // §6.1: a coding the server does not implement (gzip, chunked) is 501.
    if total != 1 {
        return Err(RequestRejection::UnsupportedTransferCoding);
    }
    Ok(BodyFraming::Chunked)
}

/// The framing of an HTTP/2 (or HTTP/3) request, which must not carry HTTP/1 connection
/// headers.
pub(super) fn http2(headers: &HeaderMap) -> Result<BodyFraming, RequestRejection> {
    for name in CONNECTION_SPECIFIC {
        if headers.contains_key(name) {
            return Err(RequestRejection::ConnectionSpecificHeader { name });
        }
    }
    if headers
        .get_all(http::header::TE)
        .iter()
        .flat_map(list_items)
        .any(|t| !t.eq_ignore_ascii_case(b"trailers"))
    {
        return Err(RequestRejection::ConnectionSpecificHeader { name: "te" });
    }
    Ok(content_length(headers)?.map_or(BodyFraming::EndOfStream, BodyFraming::Length))
}

/// The one Content-Length value, if any. A repeated value — on two lines or as a list —
/// is refused even when the copies agree.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, RequestRejection> {
    let mut items = headers
        .get_all(CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','));
    let Some(first) = items.next() else {
        return Ok(None);
    };
    if items.next().is_some() {
        return Err(RequestRejection::DuplicateContentLength);
    }
    let digits = trim_ows(first);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RequestRejection::InvalidContentLength);
    }
    digits
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .map(Some)
        .ok_or(RequestRejection::InvalidContentLength)
}

/// The non-empty elements of a comma-separated header list (RFC 9110 §5.6.1), trimmed.
fn list_items(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn http1_framing() {
        type R = Result<BodyFraming, RequestRejection>;
        type Fields = &'static [(&'static str, &'static str)];
        let cases: &[(Fields, bool, R)] = &[
            (&[], false, Ok(BodyFraming::Empty)),
            (
                &[("content-length", "42")],
                false,
                Ok(BodyFraming::Length(42)),
            ),
            (
                &[("content-length", " 0 ")],
                false,
                Ok(BodyFraming::Length(0)),
            ),
            (
                &[("transfer-encoding", "chunked")],
                false,
                Ok(BodyFraming::Chunked),
            ),
            (
                &[("transfer-encoding", "Chunked")],
                false,
                Ok(BodyFraming::Chunked),
            ),
            (
                &[("transfer-encoding", " , chunked")],
                false,
                Ok(BodyFraming::Chunked),
            ),
            // RFC 9112 §6.3 ¶3 and the classic CL.TE / TE.CL smuggling pairs.
            (
                &[("content-length", "5"), ("transfer-encoding", "chunked")],
                false,
                Err(RequestRejection::ContentLengthWithTransferEncoding),
            ),
            (
                &[("content-length", "5"), ("content-length", "5")],
                false,
                Err(RequestRejection::DuplicateContentLength),
            ),
            (
                &[("content-length", "5, 6")],
                false,
                Err(RequestRejection::DuplicateContentLength),
            ),
            (
                &[("content-length", "+5")],
                false,
                Err(RequestRejection::InvalidContentLength),
            ),
            (
                &[("content-length", "-1")],
                false,
                Err(RequestRejection::InvalidContentLength),
            ),
            (
                &[("content-length", "0x10")],
                false,
                Err(RequestRejection::InvalidContentLength),
            ),
            (
                &[("content-length", "")],
                false,
                Err(RequestRejection::InvalidContentLength),
            ),
            (
                &[("content-length", "99999999999999999999")],
                false,
                Err(RequestRejection::InvalidContentLength),
            ),
            (
                &[("transfer-encoding", "gzip")],
                false,
                Err(RequestRejection::ChunkedNotFinal),
            ),
            (
                &[("transfer-encoding", "chunked, gzip")],
                false,
                Err(RequestRejection::ChunkedNotFinal),
            ),
            (
                &[
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                false,
                Err(RequestRejection::ChunkedNotFinal),
            ),
            (
                &[("transfer-encoding", "xchunked")],
                false,
                Err(RequestRejection::ChunkedNotFinal),
            ),
            (
                &[("transfer-encoding", "chunked;q=1")],
                false,
                Err(RequestRejection::ChunkedNotFinal),
            ),
            (
                &[("transfer-encoding", "")],
                false,
                Err(RequestRejection::ChunkedNotFinal),
            ),
            (
                &[("transfer-encoding", "gzip, chunked")],
                false,
                Err(RequestRejection::UnsupportedTransferCoding),
            ),
            (
                &[("transfer-encoding", "chunked")],
                true,
                Err(RequestRejection::TransferEncodingInHttp10),
            ),
        ];
        for (fields, http10, want) in cases {
            assert_eq!(
                &http1(&headers(fields), *http10),
                want,
                "{fields:?} 1.0={http10}"
            );
        }
    }

    /// RFC 9113 §8.2.2.
    #[test]
    fn http2_refuses_connection_specific_headers() {
        for name in CONNECTION_SPECIFIC {
            let map = headers(&[(name, "x")]);
            assert_eq!(
                http2(&map),
                Err(RequestRejection::ConnectionSpecificHeader { name }),
                "{name}"
            );
        }
        assert_eq!(
            http2(&headers(&[("te", "trailers")])),
            Ok(BodyFraming::EndOfStream)
        );
        assert_eq!(
            http2(&headers(&[("te", "trailers, gzip")])),
            Err(RequestRejection::ConnectionSpecificHeader { name: "te" })
        );
        assert_eq!(
            http2(&headers(&[("content-length", "3")])),
            Ok(BodyFraming::Length(3))
        );
        assert_eq!(
            http2(&headers(&[
                ("content-length", "3"),
                ("content-length", "3")
            ])),
            Err(RequestRejection::DuplicateContentLength)
        );
    }

    #[test]
    fn limits_header_count_and_size() {
        let limits = Limits {
            max_header_count: 2,
            max_header_bytes: 20,
            ..Limits::default()
        };
        let ok = headers(&[("a", "1234567"), ("b", "1")]);
        assert_eq!(check_header_section(&ok, &limits), Ok(()));
        let three = headers(&[("a", "1"), ("b", "1"), ("c", "1")]);
        assert_eq!(
            check_header_section(&three, &limits),
            Err(RequestRejection::TooManyHeaders { count: 3, limit: 2 })
        );
        let big = headers(&[("a", "12345678901234567")]);
        assert_eq!(
            check_header_section(&big, &limits),
            Err(RequestRejection::HeadersTooLarge {
                size: 22,
                limit: 20
            })
        );
    }
}
