//! Query names in the one form policy and events see: lowercase presentation format with the
//! final dot (`www.cilium.io.`), as `sluice_l7::dns::canonical_name` produces for names
//! typed by users.

use hickory_proto::rr::Name;

/// `name` lowercased, in presentation format, with the final dot; the root is `.`.
///
/// Label characters `[-0-9A-Za-z_*]` stand for themselves (letters lowercased). Every other
/// byte is escaped as RFC 1035 §5.1 presentation format does: printable ASCII as `\c`, the
/// rest as `\DDD` in decimal. A name with a dot or a space inside a label therefore never
/// reads like another, valid name, and, since `\` is no label character, no selector but
/// a match-all one can match it — the same outcome as in Cilium, which matches escaped
/// names (miekg/dns) against its patterns.
pub fn canonical(name: &Name) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for label in name.iter() {
        for &b in label {
            match b {
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'*' => out.push(char::from(b)),
                b'A'..=b'Z' => out.push(char::from(b.to_ascii_lowercase())),
                0x21..=0x7e => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                _ => {
                    out.push('\\');
                    out.push(char::from(b'0' + b / 100));
                    out.push(char::from(b'0' + b / 10 % 10));
                    out.push(char::from(b'0' + b % 10));
                }
            }
        }
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_labels(labels: &[&[u8]]) -> Name {
        Name::from_labels(labels.iter().copied()).unwrap()
    }

    #[test]
    fn lowercase_with_final_dot() {
        assert_eq!(
            canonical(&from_labels(&[b"WwW", b"Cilium", b"IO"])),
            "www.cilium.io."
        );
        assert_eq!(canonical(&Name::root()), ".");
        assert_eq!(
            canonical(&from_labels(&[b"_sip", b"_tcp", b"x-1"])),
            "_sip._tcp.x-1."
        );
    }

    #[test]
    fn other_bytes_are_escaped() {
        assert_eq!(canonical(&from_labels(&[b"a.b", b"io"])), "a\\.b.io.");
        assert_eq!(canonical(&from_labels(&[b"a b", b"io"])), "a\\032b.io.");
        assert_eq!(
            canonical(&from_labels(&[b"\xff\x00", b"io"])),
            "\\255\\000.io."
        );
        assert_eq!(canonical(&from_labels(&[b"a\\", b"io"])), "a\\\\.io.");
    }
}
