//! Why a request is answered by the proxy instead of being evaluated and forwarded.

use http::{StatusCode, Version};

/// A request the proxy must not forward: answer it with [`Self::status`] and close the
/// connection when [`Self::closes_connection`] says so; record [`Self::reason`] in the flow.
///
/// `Display` is a sentence for logs. It never quotes the request's bytes back, so a log line
/// cannot be forged through it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestRejection {
    #[error("request-target is {len} bytes long, more than the limit of {limit}")]
    TargetTooLong { len: usize, limit: usize },
    #[error("request has {count} header fields, more than the limit of {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    #[error("request header section is {size} bytes, more than the limit of {limit}")]
    HeadersTooLarge { size: usize, limit: usize },
    #[error("HTTP version {0:?} is not supported")]
    UnsupportedVersion(Version),

    #[error(
        "request-target has byte 0x{byte:02x} at offset {at}: only visible ASCII may be sent, anything else percent-encoded"
    )]
    InvalidTargetByte { byte: u8, at: usize },
    #[error("request-target has a fragment ('#'), which a request never carries")]
    Fragment,
    #[error("path has a backslash, which some servers read as '/'")]
    Backslash,
    #[error(
        "path has an escaped slash (%2F or %5C), which some servers decode into a separator; send the path unescaped"
    )]
    EscapedSlash,
    #[error("path has %00, which some servers decode into a string terminator")]
    EncodedNul,
    #[error(
        "path has %C0 or %C1, which only begin overlong UTF-8 (read as '.' or '/' by lenient decoders)"
    )]
    OverlongUtf8,
    #[error("path has a '%' that is not followed by two hex digits")]
    BadPercentEncoding,
    #[error(
        "path has a dot segment with parameters ('..;' or '.;'), which some servers treat as '..'"
    )]
    DotSegmentWithParameters,
    #[error("request-target is not valid here: {0}")]
    InvalidTarget(&'static str),
    #[error("request-target scheme is neither http nor https")]
    UnsupportedScheme,

    #[error("HTTP/1.1 request has no Host header")]
    MissingHost,
    #[error("request has more than one Host header")]
    DuplicateHost,
    #[error("invalid host: {0}")]
    InvalidHost(&'static str),
    #[error(
        "the Host header names a different host than the request-target or :authority; send one host"
    )]
    HostMismatch,
    #[error("header {name} has a CR, LF or NUL byte in its value")]
    InvalidHeaderValue { name: String },

    #[error("request has both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    #[error("request has more than one Content-Length value")]
    DuplicateContentLength,
    #[error("Content-Length is not a decimal number of bytes")]
    InvalidContentLength,
    #[error("HTTP/1.0 request has a Transfer-Encoding header")]
    TransferEncodingInHttp10,
    #[error("Transfer-Encoding does not end with exactly one chunked")]
    ChunkedNotFinal,
    #[error("a transfer coding other than chunked is not implemented")]
    UnsupportedTransferCoding,
    #[error(
        "HTTP/2 request has connection-specific header {name}, which HTTP/2 forbids (RFC 9113 §8.2.2)"
    )]
    ConnectionSpecificHeader { name: &'static str },

    /// Not an error of the client's: with [`EscapedSlashAction::UnescapeAndRedirect`]
    /// (Cilium's default) a path with escaped slashes is answered with a redirect to the
    /// unescaped, normalised path.
    ///
    /// [`EscapedSlashAction::UnescapeAndRedirect`]: super::EscapedSlashAction::UnescapeAndRedirect
    #[error("path has escaped slashes: redirect to the unescaped path")]
    Redirect { location: String },
}

impl RequestRejection {
    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TargetTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::TooManyHeaders { .. } | Self::HeadersTooLarge { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Self::UnsupportedVersion(_) => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            // RFC 9112 §6.1: a transfer coding the server does not understand is 501.
            Self::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            // Envoy answers UNESCAPE_AND_REDIRECT with 307, which keeps the method and body.
            Self::Redirect { .. } => StatusCode::TEMPORARY_REDIRECT,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Whether the connection must be closed after the answer. Framing errors leave the
    /// proxy unable to tell where this request's body ends and the next request begins
    /// (RFC 9112 §6.3); continuing would let the rest of the body be read as a request.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::ContentLengthWithTransferEncoding
                | Self::DuplicateContentLength
                | Self::InvalidContentLength
                | Self::TransferEncodingInHttp10
                | Self::ChunkedNotFinal
                | Self::UnsupportedTransferCoding
        )
    }

    /// A short, fixed identifier for flows and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TargetTooLong { .. } => "target_too_long",
            Self::TooManyHeaders { .. } => "too_many_headers",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::InvalidTargetByte { .. } => "invalid_target_byte",
            Self::Fragment => "fragment_in_target",
            Self::Backslash => "backslash_in_path",
            Self::EscapedSlash => "escaped_slash_in_path",
            Self::EncodedNul => "encoded_nul_in_path",
            Self::OverlongUtf8 => "overlong_utf8_in_path",
            Self::BadPercentEncoding => "bad_percent_encoding",
            Self::DotSegmentWithParameters => "dot_segment_with_parameters",
            Self::InvalidTarget(_) => "invalid_target",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::MissingHost => "missing_host",
            Self::DuplicateHost => "duplicate_host",
            Self::InvalidHost(_) => "invalid_host",
            Self::HostMismatch => "host_mismatch",
            Self::InvalidHeaderValue { .. } => "invalid_header_value",
            Self::ContentLengthWithTransferEncoding => "content_length_with_transfer_encoding",
            Self::DuplicateContentLength => "duplicate_content_length",
            Self::InvalidContentLength => "invalid_content_length",
            Self::TransferEncodingInHttp10 => "transfer_encoding_in_http10",
            Self::ChunkedNotFinal => "chunked_not_final",
            Self::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Self::ConnectionSpecificHeader { .. } => "connection_specific_header",
            Self::Redirect { .. } => "escaped_slash_redirect",
        }
    }
}
