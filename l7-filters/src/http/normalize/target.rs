//! The request-target, in the four forms of RFC 9112 §3.2.

use http::Uri;

use super::RequestRejection;

/// A request-target, borrowed from the request. Nothing here is validated beyond telling the
/// forms apart; [`normalize`](super::normalize) checks every byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestTarget<'a> {
    /// `/path?query` (RFC 9112 §3.2.1).
    Origin(&'a str),
    /// `scheme://authority/path?query` (§3.2.2). An HTTP/2 request's `:scheme`,
    /// `:authority` and `:path` take this form too.
    Absolute {
        scheme: &'a str,
        authority: &'a str,
        /// Empty, or starting with `/` or `?`.
        path_and_query: &'a str,
    },
    /// `host:port`, for CONNECT (§3.2.3).
    Authority(&'a str),
    /// `*`, for a server-wide OPTIONS (§3.2.4).
    Asterisk,
}

impl<'a> RequestTarget<'a> {
    /// Classifies the request-target bytes of an HTTP/1 request line.
    pub fn parse(raw: &'a [u8]) -> Result<Self, RequestRejection> {
        let text = std::str::from_utf8(raw).map_err(|e| {
            let at = e.valid_up_to();
            RequestRejection::InvalidTargetByte {
                byte: raw.get(at).copied().unwrap_or(0),
                at,
            }
        })?;
        if text.is_empty() {
            return Err(RequestRejection::InvalidTarget(
                "the request-target is empty",
            ));
        }
        if text == "*" {
            return Ok(Self::Asterisk);
        }
        if text.starts_with('/') {
            return Ok(Self::Origin(text));
        }
        if let Some((scheme, rest)) = text.split_once("://")
            && is_scheme(scheme)
        {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path_and_query) = rest.split_at(end);
            return Ok(Self::Absolute {
                scheme,
                authority,
                path_and_query,
            });
        }
        Ok(Self::Authority(text))
    }

    /// The target of a request parsed by hyper or h2.
    ///
    /// `http::Uri` drops a fragment while parsing, so a `#` sent by the client can no longer
    /// be seen here; what is forwarded is then the path without it, which is what was
    /// matched.
    pub fn from_uri(uri: &'a Uri) -> Self {
        let path_and_query = uri.path_and_query().map_or("", |pq| pq.as_str());
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => Self::Absolute {
                scheme,
                authority: authority.as_str(),
                path_and_query,
            },
            (None, Some(authority)) => Self::Authority(authority.as_str()),
            _ if path_and_query == "*" => Self::Asterisk,
            // `Uri` has no form with a scheme and no authority, so this is origin-form.
            _ => Self::Origin(path_and_query),
        }
    }

    /// Its length on the wire, for the URI length limit.
    pub fn len(&self) -> usize {
        match self {
            Self::Origin(s) | Self::Authority(s) => s.len(),
            Self::Absolute {
                scheme,
                authority,
                path_and_query,
            } => scheme.len() + "://".len() + authority.len() + path_and_query.len(),
            Self::Asterisk => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_four_forms_apart() {
        let cases: &[(&str, RequestTarget<'_>)] = &[
            ("/a?b", RequestTarget::Origin("/a?b")),
            ("*", RequestTarget::Asterisk),
            (
                "http://Api:80/x?y",
                RequestTarget::Absolute {
                    scheme: "http",
                    authority: "Api:80",
                    path_and_query: "/x?y",
                },
            ),
            (
                "https://api?q",
                RequestTarget::Absolute {
                    scheme: "https",
                    authority: "api",
                    path_and_query: "?q",
                },
            ),
            (
                "api.example.com:443",
                RequestTarget::Authority("api.example.com:443"),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(RequestTarget::parse(raw.as_bytes()), Ok(*want), "{raw}");
            assert_eq!(want.len(), raw.len(), "{raw}");
        }
    }

    #[test]
    fn rejects_empty_and_non_utf8_targets() {
        assert!(matches!(
            RequestTarget::parse(b""),
            Err(RequestRejection::InvalidTarget(_))
        ));
        assert_eq!(
            RequestTarget::parse(b"/a\xff"),
            Err(RequestRejection::InvalidTargetByte { byte: 0xff, at: 2 })
        );
    }

    #[test]
    fn reads_hyper_uris() {
        let uri = |s: &'static str| Uri::from_static(s);
        let origin = uri("/a?b");
        assert_eq!(
            RequestTarget::from_uri(&origin),
            RequestTarget::Origin("/a?b")
        );
        let absolute = uri("http://api/x");
        assert_eq!(
            RequestTarget::from_uri(&absolute),
            RequestTarget::Absolute {
                scheme: "http",
                authority: "api",
                path_and_query: "/x"
            }
        );
        let authority = uri("api:443");
        assert_eq!(
            RequestTarget::from_uri(&authority),
            RequestTarget::Authority("api:443")
        );
        let star = uri("*");
        assert_eq!(RequestTarget::from_uri(&star), RequestTarget::Asterisk);
    }
}
