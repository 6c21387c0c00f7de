//! The host a `host` rule must match: the authority lowercased, without a trailing dot on the
//! name and without the scheme's default port, so that `API.example.com.:80` is
//! `api.example.com`.
//!
//! A departure from Cilium, which matches the authority as sent (spec §11): there `host: api`
//! misses `Host: api:80` and `Host: API`, which name the same origin (RFC 9110 §4.2.3: the
//! host is case-insensitive and the default port equivalent to none). A rule written for
//! Cilium with an explicit default port (`api:80`) no longer matches here; `api(:80)?` does
//! on both. Other ports stay: `api:8080` is matched as `api:8080`.
//!
//! The syntax is strict — a DNS-style name (letters, digits, `-`, `.`, `_`, `~`), an IPv4
//! address or a bracketed IPv6 address, and an optional port — because anything looser is a
//! host that some upstream parses differently (`a@b`, `a b`, `a%2eb`).

use std::borrow::Cow;
use std::net::Ipv6Addr;

use super::RequestRejection;

/// A normalised authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Host<'a> {
    /// `name` or `name:port`, as rules see it.
    pub(super) text: Cow<'a, str>,
    /// Length of the name within `text`.
    name_len: usize,
    /// The port, unless it was absent, empty or the default one.
    pub(super) port: Option<u16>,
}

impl Host<'_> {
    pub(super) fn name(&self) -> &str {
        self.text.get(..self.name_len).unwrap_or("")
    }
}

/// Normalises an authority (`host[:port]`); `default_port` is dropped when present. An empty
/// authority is `None` (RFC 9112 §3.2 lets a request without one send an empty Host).
pub(super) fn normalize(
    raw: &str,
    default_port: Option<u16>,
) -> Result<Option<Host<'_>>, RequestRejection> {
    if raw.is_empty() {
        return Ok(None);
    }
    if let Some(byte) = raw.bytes().find(|b| !(0x21..0x7f).contains(b)) {
        return Err(RequestRejection::InvalidHost(
            if byte == b' ' || byte == b'\t' {
                "it has whitespace"
            } else {
                "it has a byte outside visible ASCII"
            },
        ));
    }
    if raw.contains('@') {
        return Err(RequestRejection::InvalidHost(
            "it has user information ('@'), which HTTP forbids (RFC 9110 §4.2.4)",
        ));
    }

    let (name, port_text) = if let Some(rest) = raw.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err(RequestRejection::InvalidHost(
                "an IPv6 address lacks its ']'",
            ));
        };
        let (inside, after) = rest.split_at(end);
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(RequestRejection::InvalidHost(
                "the text in brackets is not an IPv6 address",
            ));
        }
        let name = raw.get(..end + 2).unwrap_or(raw);
        let after = after.get(1..).unwrap_or("");
        match after.strip_prefix(':') {
            Some(port) => (name, Some(port)),
            None if after.is_empty() => (name, None),
            None => {
                return Err(RequestRejection::InvalidHost(
                    "text follows the IPv6 address",
                ));
            }
        }
    } else {
        let (name, port) = match raw.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (raw, None),
        };
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(RequestRejection::InvalidHost(
                "the name has a character other than letters, digits, '-', '.', '_' and '~'",
            ));
        }
        (name, port)
    };

    let port = match port_text {
        None | Some("") => None,
        Some(digits) => {
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RequestRejection::InvalidHost("the port is not a number"));
            }
            Some(
                digits
                    .parse::<u16>()
                    .map_err(|_| RequestRejection::InvalidHost("the port is above 65535"))?,
            )
        }
    };
    let port = port.filter(|&p| Some(p) != default_port);

    let bracketed = name.starts_with('[');
    let bare = if bracketed {
        name
    } else {
        name.strip_suffix('.').unwrap_or(name)
    };
    if bare.is_empty() {
        return Err(RequestRejection::InvalidHost("the name is empty"));
    }
    // Only the one trailing dot of a fully qualified name is dropped; other empty labels
    // (`a..b`, `.a`, `a..`) name nothing and resolvers treat them differently.
    if !bracketed && (bare.starts_with('.') || bare.ends_with('.') || bare.contains("..")) {
        return Err(RequestRejection::InvalidHost("the name has an empty label"));
    }

    let unchanged = bare.len() == name.len()
        && !bare.bytes().any(|b| b.is_ascii_uppercase())
        && port_text.map(str::len) == port.map(decimal_len)
        && port_text.is_some() == port.is_some();
    let text = if unchanged {
        Cow::Borrowed(raw)
    } else {
        let mut text = bare.to_ascii_lowercase();
        if let Some(p) = port {
            text.push(':');
            text.push_str(&p.to_string());
        }
        Cow::Owned(text)
    };
    Ok(Some(Host {
        text,
        name_len: bare.len(),
        port,
    }))
}

fn decimal_len(n: u16) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str, default_port: Option<u16>) -> Result<Option<String>, RequestRejection> {
        normalize(raw, default_port).map(|h| h.map(|h| h.text.into_owned()))
    }

    #[test]
    fn lowercases_strips_the_trailing_dot_and_the_default_port() {
        let cases: &[(&str, Option<u16>, &str)] = &[
            ("api", Some(80), "api"),
            ("API:80", Some(80), "api"),
            ("api.example.com.", Some(80), "api.example.com"),
            ("Api.Example.Com.:80", Some(80), "api.example.com"),
            ("api:", Some(80), "api"),
            ("api:8080", Some(80), "api:8080"),
            ("api:443", Some(443), "api"),
            ("api:80", Some(443), "api:80"),
            ("api:0080", Some(80), "api"),
            ("api:443", None, "api:443"),
            ("10.0.0.1:80", Some(80), "10.0.0.1"),
            ("[::1]:80", Some(80), "[::1]"),
            ("[::1]:8080", Some(80), "[::1]:8080"),
            ("[FE80::1]", Some(80), "[fe80::1]"),
        ];
        for (raw, port, want) in cases {
            assert_eq!(
                norm(raw, *port).as_ref(),
                Ok(&Some((*want).to_owned())),
                "{raw}"
            );
        }
    }

    #[test]
    fn borrows_a_host_that_is_already_normal() {
        for raw in ["api.example.com", "api:8080", "[::1]"] {
            let got = normalize(raw, Some(80));
            assert!(
                matches!(
                    &got,
                    Ok(Some(Host {
                        text: Cow::Borrowed(_),
                        ..
                    }))
                ),
                "{raw}: {got:?}"
            );
        }
    }

    #[test]
    fn an_empty_authority_is_none() {
        assert_eq!(norm("", Some(80)), Ok(None));
    }

    #[test]
    fn rejects_hosts_that_upstreams_parse_differently() {
        for raw in [
            "user@api",
            "api:80@evil",
            "a b",
            "api:http",
            "api:65536",
            "a:1:2",
            "[::1",
            "[not-v6]",
            "[::1]x",
            "api%2eevil",
            "api\\evil",
            "api/evil",
            ".",
            "..",
            "a..b",
            ".a",
            "a..",
            ":80",
            "\u{e9}",
        ] {
            assert!(
                matches!(norm(raw, Some(80)), Err(RequestRejection::InvalidHost(_))),
                "{raw:?} must be refused"
            );
        }
    }

    #[test]
    fn separates_name_and_port() {
        let Ok(Some(h)) = normalize("API:8080", Some(80)) else {
            panic!("must parse")
        };
        assert_eq!((h.name(), h.port), ("api", Some(8080)));
    }
}
