//! `spec.dns.upstream`: the resolver the DNS proxy forwards every query to.
//!
//! An address, not a name: the proxy that would resolve it is the one being configured.
//! The port defaults to 53, as in `resolv.conf`; an IPv6 address with a port takes
//! brackets (`[fd00::10]:53`), as in a URL.

use std::net::{IpAddr, SocketAddr};

use sluice_l7::quote::go_quote;

/// The DNS port, when `upstream` names none.
pub(crate) const DEFAULT_DNS_PORT: u16 = 53;

/// Reads `spec.dns.upstream`; the error is the whole user-facing message.
pub(crate) fn dns_upstream(text: &str) -> Result<SocketAddr, String> {
    let invalid = |why: &str| {
        format!(
            "invalid upstream {}: {why}; write an IP address with an optional port, like \
             10.96.0.10, 10.96.0.10:53 or [fd00::10]:53",
            go_quote(text)
        )
    };
    let addr = if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, DEFAULT_DNS_PORT)
    } else if let Ok(addr) = text.parse::<SocketAddr>() {
        addr
    } else if looks_like_a_name(text) {
        return Err(invalid(
            "a name, not an address (the DNS proxy cannot resolve the resolver it forwards to)",
        ));
    } else {
        return Err(invalid("not an IP address or address:port"));
    };
    if addr.port() == 0 {
        return Err(invalid("port 0"));
    }
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        return Err(invalid("not the address of one resolver"));
    }
    Ok(addr)
}

/// `kube-dns.kube-system` or `dns.local:53`: letters, and no more than the one colon of a
/// port (IPv6 addresses, which also hold letters, have several).
fn looks_like_a_name(text: &str) -> bool {
    let host = match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        Some(_) => return false,
        None => text,
    };
    host.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_and_without_port() {
        // Forms of `resolv.conf`'s `nameserver` (an address, port 53) and of URL authorities
        // (RFC 3986 §3.2.2: IPv6 with a port in brackets).
        let ok: &[(&str, &str)] = &[
            ("10.96.0.10", "10.96.0.10:53"),
            ("10.96.0.10:5353", "10.96.0.10:5353"),
            ("fd00::10", "[fd00::10]:53"),
            ("[fd00::10]:53", "[fd00::10]:53"),
            ("[fd00::10]:5353", "[fd00::10]:5353"),
            ("127.0.0.53", "127.0.0.53:53"),
        ];
        for (text, want) in ok {
            assert_eq!(
                dns_upstream(text).map(|a| a.to_string()).as_deref(),
                Ok(*want),
                "{text}"
            );
        }
    }

    #[test]
    fn what_is_not_one_resolver_address_is_refused_with_the_reason() {
        let bad: &[(&str, &str)] = &[
            ("kube-dns.kube-system", "a name, not an address"),
            ("dns.local:53", "a name, not an address"),
            ("10.96.0.300", "not an IP address or address:port"),
            ("10.96.0.10:", "not an IP address or address:port"),
            ("fd00::10:53:", "not an IP address or address:port"),
            ("10.96.0.10:0", "port 0"),
            ("10.96.0.10:65536", "not an IP address or address:port"),
            ("0.0.0.0", "not the address of one resolver"),
            ("[::]:53", "not the address of one resolver"),
            ("224.0.0.251", "not the address of one resolver"),
            ("255.255.255.255:53", "not the address of one resolver"),
            ("", "not an IP address or address:port"),
        ];
        for (text, why) in bad {
            let error = dns_upstream(text).expect_err(text);
            assert!(
                error.starts_with(&format!("invalid upstream {}: {why}", go_quote(text))),
                "{text}: {error}"
            );
        }
    }
}
