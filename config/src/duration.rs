//! Durations as the Gateway API writes them (GEP-2257): one to four groups of up to five
//! digits and a unit, `h`, `m`, `s` or `ms`, like `15s`, `1m30s` or `500ms`. Users of
//! `HTTPRoute` timeouts already know the format; Go's `time.ParseDuration` accepts
//! every such string with the same meaning.

use std::time::Duration;

/// At most this many `<number><unit>` groups (GEP-2257).
const MAX_GROUPS: usize = 4;
/// At most this many digits per group (GEP-2257).
const MAX_DIGITS: usize = 5;

/// Why a duration was refused, as a sentence that ends a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "write whole numbers with a unit h, m, s or ms, like \"15s\", \"1m30s\" or \"500ms\" (Gateway API duration)"
    )]
    Format,
    #[error("a number has more than {MAX_DIGITS} digits")]
    TooManyDigits,
    #[error("more than {MAX_GROUPS} number-and-unit groups")]
    TooManyGroups,
}

/// Parses a GEP-2257 duration. Zero (`0s`) is a valid duration; whether it is a valid
/// *setting* is the caller's to say.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let bytes = text.as_bytes();
    let mut total = Duration::ZERO;
    let mut groups = 0;
    let mut i = 0;
    if bytes.is_empty() {
        return Err(DurationError::Format);
    }
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() {
            return Err(DurationError::Format);
        }
        if digits.len() > MAX_DIGITS {
            return Err(DurationError::TooManyDigits);
        }
        let n: u64 = digits.parse().map_err(|_| DurationError::Format)?;
        let rest = &text[i..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return Err(DurationError::Format);
        };
        i += len;
        groups += 1;
        if groups > MAX_GROUPS {
            return Err(DurationError::TooManyGroups);
        }
        // At most 4 × 99999 h: far from overflowing.
        let n = u32::try_from(n).map_err(|_| DurationError::TooManyDigits)?;
        total += unit * n;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from GEP-2257's examples and its regular expression
    /// `^([0-9]{1,5}(h|m|s|ms)){1,4}$`.
    #[test]
    fn gateway_api_durations() {
        let ok = [
            ("0h", 0),
            ("25h", 90_000_000),
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1h2m3s4ms", 3_723_004),
            ("99999s", 99_999_000),
        ];
        for (text, ms) in ok {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        let malformed = [
            "", "15", "s", "0.5h", "1.5s", "1d", "-1s", "15 s", "15S", "1m30", "µs1",
        ];
        for bad in malformed {
            assert_eq!(parse(bad), Err(DurationError::Format), "{bad:?}");
        }
        assert_eq!(parse("100000s"), Err(DurationError::TooManyDigits));
        assert_eq!(parse("1h1m1s1ms1s"), Err(DurationError::TooManyGroups));
    }
}
