//! Walking the records of a message without interpreting more of them than needed.
//!
//! hickory-proto's `Message::read` decodes every record's data, and refuses a whole message
//! when one record of a type it knows holds data it finds odd. The proxy relays messages
//! byte for byte and only needs A, AAAA and CNAME data, so it reads each record's header with
//! hickory's decoder, decodes those three types and skips the rest by their length: a
//! record type hickory does not know, or decodes strictly, never costs a client its answer.

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError};

/// Compression pointers followed while reading one name. A name has at most 127 labels and
/// an encoder points at labels, never at another pointer, so a real name needs far fewer;
/// the bound stops a crafted chain of pointers (each a step back) from costing thousands of
/// steps per name, in a message that can hold thousands of names.
pub const MAX_POINTER_HOPS: usize = 128;

/// Why a name could not be read; hickory's errors plus the pointer bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("more than {MAX_POINTER_HOPS} compression pointers in one name")]
    TooManyPointers,
    #[error("{0}")]
    Decode(String),
}

/// Reads a domain name at the decoder's position: the pointer bound first, then hickory.
///
/// hickory enforces the rest: labels of at most 63 bytes (length bytes 64–191 are reserved
/// label types and refused), names of at most 255 bytes, pointers that point strictly
/// backwards (no loops), no reading past the end.
pub fn read_name(decoder: &mut BinDecoder<'_>) -> Result<Name, NameError> {
    check_pointer_hops(decoder)?;
    Name::read(decoder).map_err(|e| NameError::Decode(e.to_string()))
}

fn check_pointer_hops(decoder: &BinDecoder<'_>) -> Result<(), NameError> {
    let mut probe = decoder_at(decoder, decoder.index());
    let mut hops = 0;
    loop {
        let Ok(len) = probe.read_u8().map(|b| b.unverified()) else {
            // Truncated: hickory reports it.
            return Ok(());
        };
        match len {
            0 => return Ok(()),
            l if l & 0xc0 == 0xc0 => {
                let Ok(low) = probe.read_u8().map(|b| b.unverified()) else {
                    return Ok(());
                };
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(NameError::TooManyPointers);
                }
                let target = usize::from(u16::from_be_bytes([l & 0x3f, low]));
                // Forward and self pointers are hickory's to refuse; follow backward ones only,
                // so that every step of this walk is bounded by the hop count.
                if target >= probe.index() - 2 {
                    return Ok(());
                }
                probe = decoder_at(&probe, target);
            }
            l if l & 0xc0 == 0 => {
                if probe.read_slice(usize::from(l)).is_err() {
                    return Ok(());
                }
            }
            _ => return Ok(()),
        }
    }
}

/// A decoder over the same message as `decoder`, positioned at `index` (which must not be
/// past the end: callers pass positions they have read up to, or backward pointers).
fn decoder_at<'a>(decoder: &BinDecoder<'a>, index: usize) -> BinDecoder<'a> {
    let mut whole = decoder.clone(0);
    // Cannot fail: index ≤ the message length.
    let _ = whole.read_slice(index);
    whole
}

/// The data of a record, as far as the proxy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(std::net::Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Cname(Name),
    /// OPT: its TTL field carries the extended RCODE and flags.
    Opt,
    Other,
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub name: Name,
    pub record_type: RecordType,
    pub class: u16,
    pub ttl: u32,
    pub data: RecordData,
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("owner name: {0}")]
    Name(NameError),
    #[error("{0}")]
    Decode(String),
    #[error("{record_type} record data of {len} bytes")]
    BadLength { record_type: RecordType, len: u16 },
    #[error("CNAME target: {0}")]
    Target(NameError),
}

impl From<DecodeError> for RecordError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e.to_string())
    }
}

/// Reads one record at the decoder's position.
pub fn read_record(decoder: &mut BinDecoder<'_>) -> Result<RawRecord, RecordError> {
    let name = read_name(decoder).map_err(RecordError::Name)?;
    let record_type = RecordType::from(decoder.read_u16()?.unverified());
    let class = decoder.read_u16()?.unverified();
    let ttl = decoder.read_u32()?.unverified();
    let len = decoder.read_u16()?.unverified();
    let data_start = decoder.index();
    let data = match record_type {
        RecordType::A => {
            let bytes = decoder.read_slice(usize::from(len))?.unverified();
            let octets: [u8; 4] = bytes
                .try_into()
                .map_err(|_| RecordError::BadLength { record_type, len })?;
            RecordData::A(octets.into())
        }
        RecordType::AAAA => {
            let bytes = decoder.read_slice(usize::from(len))?.unverified();
            let octets: [u8; 16] = bytes
                .try_into()
                .map_err(|_| RecordError::BadLength { record_type, len })?;
            RecordData::Aaaa(octets.into())
        }
        RecordType::CNAME => {
            // The target may be compressed, pointing anywhere earlier in the message: read it
            // in place, then check it took exactly the declared length.
            if decoder.len() < usize::from(len) {
                return Err(DecodeError::InsufficientBytes.into());
            }
            let target = read_name(decoder).map_err(RecordError::Target)?;
            if decoder.index() - data_start != usize::from(len) {
                return Err(RecordError::BadLength { record_type, len });
            }
            RecordData::Cname(target)
        }
        RecordType::OPT => {
            decoder.read_slice(usize::from(len))?;
            RecordData::Opt
        }
        _ => {
            decoder.read_slice(usize::from(len))?;
            RecordData::Other
        }
    };
    Ok(RawRecord {
        name,
        record_type,
        class,
        ttl,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message whose name at `start` is a chain of `hops` pointers, each one step back,
    /// ending at the label `a`.
    fn pointer_chain(hops: usize) -> (Vec<u8>, usize) {
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x01a\x00");
        let mut target = 12usize;
        for _ in 0..hops {
            let at = msg.len();
            msg.extend_from_slice(&(0xc000u16 | target as u16).to_be_bytes());
            target = at;
        }
        (msg, target)
    }

    fn read_at(msg: &[u8], at: usize) -> Result<Name, NameError> {
        let mut d = BinDecoder::new(msg);
        d.read_slice(at).unwrap();
        read_name(&mut d)
    }

    #[test]
    fn pointer_chains_are_bounded() {
        let (msg, at) = pointer_chain(MAX_POINTER_HOPS);
        assert_eq!(read_at(&msg, at).unwrap().to_ascii(), "a.");
        let (msg, at) = pointer_chain(MAX_POINTER_HOPS + 1);
        assert_eq!(read_at(&msg, at), Err(NameError::TooManyPointers));
    }

    #[test]
    fn self_and_forward_pointers_are_refused() {
        // A pointer to itself, and one to the byte after it.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[0xc0, 12]);
        assert!(matches!(read_at(&msg, 12), Err(NameError::Decode(_))));
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[0xc0, 14, 0]);
        assert!(matches!(read_at(&msg, 12), Err(NameError::Decode(_))));
    }

    #[test]
    fn cname_data_must_fill_its_length() {
        let mut msg = vec![0u8; 12];
        // owner "a.", CNAME, IN, ttl 5, rdlength 4 but target "b." takes 3
        msg.extend_from_slice(b"\x01a\x00\x00\x05\x00\x01\x00\x00\x00\x05\x00\x04\x01b\x00\x00");
        let mut d = BinDecoder::new(&msg);
        d.read_slice(12).unwrap();
        assert_eq!(
            read_record(&mut d),
            Err(RecordError::BadLength {
                record_type: RecordType::CNAME,
                len: 4
            })
        );
    }
}
