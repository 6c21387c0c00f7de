//! Request normalisation and anti-bypass checks, before any rule sees a request.
//!
//! A path rule protects a resource only if the proxy and the upstream agree on which
//! resource a request names. Every check here removes a way for them to disagree: spellings
//! of one path ([`path`]), of one host ([`host`]), hosts named twice (absolute-form target or
//! `:authority` against `Host`), and bodies framed two ways ([`framing`]). What can be made
//! canonical is; what cannot is refused with the status the proxy should answer.
//!
//! hyper and h2 already refuse some of this while parsing. These functions refuse it again:
//! HTTP/1 and HTTP/2 go through different parsers, parsers change, and the rule engine must
//! not depend on either for its safety.
//!
//! # Choices
//!
//! - **Escaped slashes** (`%2F`, `%5C`): refused with 400 by default
//!   ([`EscapedSlashAction::Reject`]). Whether `%2F` separates segments depends on the
//!   upstream, so no single normal form is right for every upstream; refusing is the only
//!   answer that cannot be wrong about the upstream. Legitimate clients rarely send them.
//!   Cilium's default is to unescape and redirect, which
//!   [`EscapedSlashAction::UnescapeAndRedirect`] does ([`RequestRejection::Redirect`]).
//! - **Method case**: methods are case-sensitive tokens (RFC 9110 §9.1). `get` is a different
//!   (unknown) method from `GET` and is not changed; a rule `GET` does not match it. Rules
//!   only allow, so a case variant can only be denied, never let through.
//! - **Host**: lowercased, trailing dot and default port removed (see [`host`]); a departure
//!   from Cilium's as-sent matching.
//! - **Backslash** in the path: refused (not a URI character; some servers read it as `/`).
//! - **Dot segments with parameters** (`/..;/`): refused (see [`path`]).
//!
//! The proxy must forward [`NormalizedRequest::path_and_query`], not the target it received.

mod framing;
mod host;
mod path;
mod rejection;
mod target;

use std::borrow::Cow;

use http::header::HOST;
use http::{HeaderMap, Method, Version};

pub use self::framing::BodyFraming;
pub use self::rejection::RequestRejection;
pub use self::target::RequestTarget;
use super::set::RequestView;

/// What to do with `%2F` and `%5C` in a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EscapedSlashAction {
    /// Answer 400. The default.
    #[default]
    Reject,
    /// Unescape them into `/`, normalise, and answer 307 to the result (Envoy's
    /// `UNESCAPE_AND_REDIRECT`, Cilium's default).
    UnescapeAndRedirect,
}

/// How the connection reached the proxy: decides the default port of an origin-form request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain TCP: `http`, port 80.
    #[default]
    Plain,
    /// TLS terminated by the proxy: `https`, port 443.
    Tls,
}

impl Transport {
    fn default_port(self) -> u16 {
        match self {
            Self::Plain => 80,
            Self::Tls => 443,
        }
    }
}

/// Size limits on a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Longest request-target, in bytes: beyond it, 414. Default 8 KiB, what most servers
    /// accept and far beyond what APIs send.
    pub max_target_len: usize,
    /// Most header fields (each value counts): beyond it, 431. Default 100, hyper's and
    /// Envoy's default.
    pub max_header_count: usize,
    /// Largest header section (names, values and 4 bytes per field): beyond it, 431. Default
    /// 64 KiB.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_target_len: 8 << 10,
            max_header_count: 100,
            max_header_bytes: 64 << 10,
        }
    }
}

/// Normalisation settings of a listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NormalizeConfig {
    pub limits: Limits,
    pub escaped_slashes: EscapedSlashAction,
    pub transport: Transport,
}

/// A request head as received.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    pub target: RequestTarget<'a>,
    pub version: Version,
    pub headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// The head of a request parsed by hyper (HTTP/1) or h2 (HTTP/2: the target comes from
    /// the pseudo-headers).
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            target: RequestTarget::from_uri(&parts.uri),
            version: parts.version,
            headers: &parts.headers,
        }
    }
}

/// A request that passed every check, with the path and host rules must see.
#[derive(Debug, Clone)]
pub struct NormalizedRequest<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    path_and_query: Option<Cow<'a, str>>,
    host: Option<Cow<'a, str>>,
    framing: BodyFraming,
}

impl<'a> NormalizedRequest<'a> {
    /// What the rules match.
    pub fn view(&self) -> RequestView<'_> {
        RequestView {
            method: self.method,
            path: self.path_and_query.as_deref(),
            host: self.host.as_deref(),
            headers: self.headers,
        }
    }

    /// The path and query to send upstream (origin-form); `None` for CONNECT.
    pub fn path_and_query(&self) -> Option<&str> {
        self.path_and_query.as_deref()
    }

    /// Whether [`Self::path_and_query`] differs from what the client sent, so the proxy must
    /// rewrite the request's URI before forwarding it.
    pub fn path_rewritten(&self) -> bool {
        matches!(self.path_and_query, Some(Cow::Owned(_)))
    }

    /// The host (authority) the rules see; `None` when the request names none.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    pub fn framing(&self) -> BodyFraming {
        self.framing
    }
}

/// Checks and normalises a request head; see the module documentation.
///
/// Checks run cheapest and most fundamental first: size limits (414, 431), version (505),
/// target form against the method, path, host, then body framing. Nothing is allocated
/// unless the path or host needs rewriting.
pub fn normalize<'a>(
    head: &RequestHead<'a>,
    config: &NormalizeConfig,
) -> Result<NormalizedRequest<'a>, RequestRejection> {
    let limits = &config.limits;
    let target_len = head.target.len();
    if target_len > limits.max_target_len {
        return Err(RequestRejection::TargetTooLong {
            len: target_len,
            limit: limits.max_target_len,
        });
    }
    framing::check_header_section(head.headers, limits)?;
    let h2 = match head.version {
        Version::HTTP_10 | Version::HTTP_11 => false,
        Version::HTTP_2 | Version::HTTP_3 => true,
        other => return Err(RequestRejection::UnsupportedVersion(other)),
    };

    let connect = head.method == Method::CONNECT;
    let origin_port = config.transport.default_port();
    let (path_and_query, authority, default_port) = match head.target {
        RequestTarget::Origin(pq) if !connect => (Some(Cow::Borrowed(pq)), None, Some(origin_port)),
        RequestTarget::Origin(_) => {
            return Err(RequestRejection::InvalidTarget(
                "CONNECT takes a host:port target",
            ));
        }
        RequestTarget::Absolute {
            scheme,
            authority,
            path_and_query,
        } => {
            let port = if scheme.eq_ignore_ascii_case("http") {
                80
            } else if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                return Err(RequestRejection::UnsupportedScheme);
            };
            // HTTP/2 extended CONNECT (RFC 8441) has a path; HTTP/1 CONNECT never does.
            if connect && !h2 {
                return Err(RequestRejection::InvalidTarget(
                    "CONNECT takes a host:port target",
                ));
            }
            let pq = if path_and_query.is_empty() {
                Cow::Borrowed("/")
            } else if path_and_query.starts_with('?') {
                Cow::Owned(format!("/{path_and_query}"))
            } else {
                Cow::Borrowed(path_and_query)
            };
            (Some(pq), Some(authority), Some(port))
        }
        RequestTarget::Authority(authority) if connect => (None, Some(authority), None),
        RequestTarget::Authority(_) => {
            return Err(RequestRejection::InvalidTarget(
                "a host:port target is only for CONNECT",
            ));
        }
        RequestTarget::Asterisk if head.method == Method::OPTIONS => {
            (Some(Cow::Borrowed("*")), None, Some(origin_port))
        }
        RequestTarget::Asterisk => {
            return Err(RequestRejection::InvalidTarget("'*' is only for OPTIONS"));
        }
    };

    let path_and_query = match path_and_query {
        // h2 sends `OPTIONS *` as `:path: *`.
        Some(pq) if pq == "*" => {
            if head.method != Method::OPTIONS {
                return Err(RequestRejection::InvalidTarget("'*' is only for OPTIONS"));
            }
            Some(pq)
        }
        Some(pq) => Some(normalize_path(pq, config.escaped_slashes)?),
        None => None,
    };

    let host = resolve_host(head, authority, default_port, h2)?;

    let framing = if h2 {
        framing::http2(head.headers)?
    } else {
        framing::http1(head.headers, head.version == Version::HTTP_10)?
    };

    Ok(NormalizedRequest {
        method: head.method,
        headers: head.headers,
        path_and_query,
        host,
        framing,
    })
}

fn normalize_path(
    pq: Cow<'_, str>,
    escaped_slashes: EscapedSlashAction,
) -> Result<Cow<'_, str>, RequestRejection> {
    let (normal, unescaped_slashes) = match pq {
        Cow::Borrowed(text) => {
            let n = path::normalize(text, escaped_slashes)?;
            (n.path_and_query, n.unescaped_slashes)
        }
        Cow::Owned(text) => {
            let n = path::normalize(&text, escaped_slashes)?;
            (
                Cow::Owned(n.path_and_query.into_owned()),
                n.unescaped_slashes,
            )
        }
    };
    if unescaped_slashes {
        return Err(RequestRejection::Redirect {
            location: normal.into_owned(),
        });
    }
    Ok(normal)
}

/// The host rules see: the target's authority (absolute-form, CONNECT, HTTP/2 `:authority`)
/// or the Host header, which must agree when both are present.
fn resolve_host<'a>(
    head: &RequestHead<'a>,
    authority: Option<&'a str>,
    default_port: Option<u16>,
    h2: bool,
) -> Result<Option<Cow<'a, str>>, RequestRejection> {
    let mut values = head.headers.get_all(HOST).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(RequestRejection::DuplicateHost);
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400, even with an
    // absolute-form target.
    if header.is_none() && !h2 && head.version == Version::HTTP_11 {
        return Err(RequestRejection::MissingHost);
    }
    let header_text =
        match header {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                RequestRejection::InvalidHost("it has a byte outside visible ASCII")
            })?),
        };

    let from_target = match authority {
        Some(a) => host::normalize(a, default_port)?,
        None => None,
    };
    let target_port = from_target.as_ref().and_then(|h| h.port);
    // For CONNECT (no default port) a Host without a port names the target's port.
    let header_default = default_port.or(target_port);
    let from_header = match header_text {
        Some(text) => host::normalize(text, header_default)?,
        None => None,
    };

    match (from_target, from_header) {
        (Some(target), Some(header)) => {
            let header_port = header.port.or(if default_port.is_none() {
                target_port
            } else {
                None
            });
            if target.name() != header.name() || target.port != header_port {
                return Err(RequestRejection::HostMismatch);
            }
            Ok(Some(target.text))
        }
        (Some(target), None) => Ok(Some(target.text)),
        (None, Some(header)) => Ok(Some(header.text)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests;
