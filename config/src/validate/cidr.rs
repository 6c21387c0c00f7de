//! Addresses and prefixes as Cilium and Kubernetes write them.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// Whether a bare address (no `/len`) is accepted, meaning a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BareIp {
    /// `fromCIDR` / `toCIDR`: a bare IP is a /32 or /128 (Cilium `api.CIDR`).
    Allowed,
    /// `cidrSet.cidr`, `except`, `ipBlock`: Cilium and Kubernetes require `addr/len`.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CidrError {
    Empty,
    NoSlash,
    BadAddress,
    BadPrefixLength,
    /// `10.0.0.0/255.0.255.0`: Cilium's `CIDR cannot specify non-contiguous mask %s`.
    NonContiguousMask,
    /// `10.0.0.0/255.0.0.0`: a valid mask, but neither Cilium nor Kubernetes parse this form.
    DottedMask,
}

impl CidrError {
    /// Why the text is not a prefix, for `unable to parse …: <reason>` messages.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NoSlash => "no '/': write the prefix length, e.g. 10.0.0.0/8 or 10.0.0.1/32",
            Self::BadAddress => "not an IPv4 or IPv6 address",
            Self::BadPrefixLength => {
                "bad prefix length: a decimal number up to 32 for IPv4 or 128 for IPv6"
            }
            Self::NonContiguousMask => "non-contiguous mask",
            Self::DottedMask => "dotted masks are not accepted: write the prefix length, e.g. /8",
        }
    }
}

/// Parses `addr/len` (or, when allowed, a bare address). Host bits may be set, as Go's
/// `netip.ParsePrefix` allows; the address is kept as written.
pub(super) fn parse(s: &str, bare: BareIp) -> Result<IpNet, CidrError> {
    if s.is_empty() {
        return Err(CidrError::Empty);
    }
    let Some((addr, len)) = s.split_once('/') else {
        let ip: IpAddr = s.parse().map_err(|_| CidrError::BadAddress)?;
        if bare == BareIp::Rejected {
            return Err(CidrError::NoSlash);
        }
        return IpNet::new(ip, max_len(ip)).map_err(|_| CidrError::BadPrefixLength);
    };
    let ip: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress)?;
    if ip.is_ipv4() && len.contains('.') {
        let mask: Ipv4Addr = len.parse().map_err(|_| CidrError::BadPrefixLength)?;
        let bits = u32::from(mask);
        return Err(if bits.leading_ones() + bits.trailing_zeros() == 32 {
            CidrError::DottedMask
        } else {
            CidrError::NonContiguousMask
        });
    }
    // Decimal digits only, no sign and no leading zero, as Go's ParsePrefix.
    let digits_ok = !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    let bits: u8 = len
        .parse()
        .ok()
        .filter(|_| digits_ok)
        .ok_or(CidrError::BadPrefixLength)?;
    IpNet::new(ip, bits).map_err(|_| CidrError::BadPrefixLength)
}

fn max_len(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Whether `inner` lies inside `outer`: same family, no shorter, and its address within
/// (Cilium `CIDRRule.Validate`).
pub(super) fn contains(outer: &IpNet, inner: &IpNet) -> bool {
    outer.prefix_len() <= inner.prefix_len() && outer.contains(&inner.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_and_bare_addresses() {
        let ok = [
            ("10.0.0.0/8", BareIp::Rejected, "10.0.0.0/8"),
            ("10.1.2.3/8", BareIp::Rejected, "10.1.2.3/8"),
            ("2001:db8::/32", BareIp::Rejected, "2001:db8::/32"),
            ("0.0.0.0/0", BareIp::Rejected, "0.0.0.0/0"),
            ("192.0.2.7", BareIp::Allowed, "192.0.2.7/32"),
            ("2001:db8::1", BareIp::Allowed, "2001:db8::1/128"),
        ];
        for (input, bare, want) in ok {
            assert_eq!(
                parse(input, bare).map(|n| n.to_string()),
                Ok(want.to_owned()),
                "{input}"
            );
        }
        let bad = [
            ("", BareIp::Allowed, CidrError::Empty),
            ("192.0.2.7", BareIp::Rejected, CidrError::NoSlash),
            ("example.com", BareIp::Allowed, CidrError::BadAddress),
            ("example.com", BareIp::Rejected, CidrError::BadAddress),
            ("10.0.0.0/33", BareIp::Rejected, CidrError::BadPrefixLength),
            ("10.0.0.0/08", BareIp::Rejected, CidrError::BadPrefixLength),
            ("10.0.0.0/-1", BareIp::Rejected, CidrError::BadPrefixLength),
            ("10.0.0.0/", BareIp::Rejected, CidrError::BadPrefixLength),
            (
                "2001:db8::/129",
                BareIp::Rejected,
                CidrError::BadPrefixLength,
            ),
            (
                "10.0.0.0/255.0.255.0",
                BareIp::Rejected,
                CidrError::NonContiguousMask,
            ),
            (
                "10.0.0.0/255.255.0.0",
                BareIp::Rejected,
                CidrError::DottedMask,
            ),
            ("fe80::1%eth0/64", BareIp::Rejected, CidrError::BadAddress),
            ("010.0.0.0/8", BareIp::Rejected, CidrError::BadAddress),
        ];
        for (input, bare, want) in bad {
            assert_eq!(parse(input, bare), Err(want), "{input}");
        }
    }

    /// Cilium pkg/policy/api/rule_validation.go CIDRRule.Validate: prefix length and address.
    #[test]
    fn containment() {
        let net = |s: &str| parse(s, BareIp::Rejected).ok();
        let cases = [
            ("10.0.0.0/8", "10.96.0.0/12", true),
            ("10.0.0.0/8", "10.0.0.0/8", true),
            ("10.0.0.0/8", "10.0.0.0/7", false),
            ("10.0.0.0/8", "11.0.0.0/16", false),
            ("10.0.0.0/8", "::/0", false),
        ];
        for (outer, inner, want) in cases {
            let (Some(o), Some(i)) = (net(outer), net(inner)) else {
                panic!("test prefixes must parse");
            };
            assert_eq!(contains(&o, &i), want, "{outer} ⊇ {inner}");
        }
    }
}
