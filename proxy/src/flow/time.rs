//! Flow timestamps: protobuf `Timestamp` semantics (seconds and nanoseconds since the
//! Unix epoch, UTC) with the two renderings Hubble uses: RFC 3339 in JSON and Go's
//! `StampMilli` (`Jan  2 15:04:05.000`) in the compact printer.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

const NANOS_PER_SECOND: u32 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A point in time, UTC, with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub seconds: i64,
    /// Always below one second.
    pub nanos: u32,
}

impl Timestamp {
    pub fn new(seconds: i64, nanos: u32) -> Self {
        Self {
            seconds: seconds + i64::from(nanos / NANOS_PER_SECOND),
            nanos: nanos % NANOS_PER_SECOND,
        }
    }

    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Go's `time.StampMilli` in UTC: `Jan  2 15:04:05.000` (the day padded with a space).
    pub fn stamp_milli(&self) -> String {
        let (_, month, day) = civil_from_days(self.seconds.div_euclid(SECONDS_PER_DAY));
        let secs = self.seconds.rem_euclid(SECONDS_PER_DAY);
        format!(
            "{} {day:>2} {:02}:{:02}:{:02}.{:03}",
            MONTHS[(month - 1) as usize],
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.nanos / 1_000_000
        )
    }

    /// RFC 3339 in UTC as protojson writes it: 0, 3, 6 or 9 fractional digits, the
    /// fewest that keep the value exact.
    pub fn rfc3339(&self) -> String {
        let (year, month, day) = civil_from_days(self.seconds.div_euclid(SECONDS_PER_DAY));
        let secs = self.seconds.rem_euclid(SECONDS_PER_DAY);
        let mut out = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        let n = self.nanos;
        if n != 0 {
            if n.is_multiple_of(1_000_000) {
                out.push_str(&format!(".{:03}", n / 1_000_000));
            } else if n.is_multiple_of(1_000) {
                out.push_str(&format!(".{:06}", n / 1_000));
            } else {
                out.push_str(&format!(".{n:09}"));
            }
        }
        out.push('Z');
        out
    }

    /// Parses RFC 3339 (`Z` or a numeric offset), as protojson accepts it.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
            return None;
        }
        if second > 60 {
            return None;
        }
        let mut rest = &s[19..];
        let mut nanos = 0u32;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            let value: u32 = frac[..digits].parse().ok()?;
            nanos = value * 10u32.pow(9 - digits as u32);
            rest = &frac[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let rb = rest.as_bytes();
                if rb.len() != 6 || rb[3] != b':' {
                    return None;
                }
                let sign = match rb[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let h: i64 = rest[1..3].parse().ok()?;
                let m: i64 = rest[4..6].parse().ok()?;
                sign * (h * 3600 + m * 60)
            }
        };
        let days = days_from_civil(year, month as u32, day as u32);
        let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset;
        Some(Self { seconds, nanos })
    }

    /// The time elapsed from `earlier` to `self`, zero when `earlier` is later.
    pub fn since(&self, earlier: &Self) -> Duration {
        let a = i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos);
        let b = i128::from(earlier.seconds) * 1_000_000_000 + i128::from(earlier.nanos);
        Duration::from_nanos(u64::try_from((a - b).max(0)).unwrap_or(u64::MAX))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self::new(
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    Self::new(secs, 0)
                } else {
                    Self::new(secs - 1, NANOS_PER_SECOND - d.subsec_nanos())
                }
            }
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v)
                    .ok_or_else(|| E::custom(format!("invalid timestamp {v:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from cilium/cilium hubble/pkg/printer/printer_test.go (`Test_fmtTimestamp`,
    /// the `json` case) and protojson's Timestamp rules.
    #[test]
    fn renders_like_hubble() {
        let cases = [
            // (seconds, nanos, StampMilli, RFC 3339)
            (0, 0, "Jan  1 00:00:00.000", "1970-01-01T00:00:00Z"),
            (
                1_530_984_600,
                123_000_000,
                "Jul  7 17:30:00.123",
                "2018-07-07T17:30:00.123Z",
            ),
            (
                1234,
                567_800_000,
                "Jan  1 00:20:34.567",
                "1970-01-01T00:20:34.567800Z",
            ),
            (
                1234,
                1,
                "Jan  1 00:20:34.000",
                "1970-01-01T00:20:34.000000001Z",
            ),
            (
                951_782_400,
                0,
                "Feb 29 00:00:00.000",
                "2000-02-29T00:00:00Z",
            ),
            (-1, 0, "Dec 31 23:59:59.000", "1969-12-31T23:59:59Z"),
        ];
        for (secs, nanos, stamp, rfc) in cases {
            let t = Timestamp::new(secs, nanos);
            assert_eq!(t.stamp_milli(), stamp, "{secs}.{nanos}");
            assert_eq!(t.rfc3339(), rfc, "{secs}.{nanos}");
            assert_eq!(Timestamp::parse_rfc3339(rfc), Some(t), "{rfc}");
        }
    }

    #[test]
    fn parses_offsets_and_rejects_garbage() {
        assert_eq!(
            Timestamp::parse_rfc3339("1970-01-01T01:00:00+01:00"),
            Some(Timestamp::new(0, 0))
        );
        for bad in [
            "",
            "1970-01-01",
            "1970-13-01T00:00:00Z",
            "1970-01-01T00:00:00",
            "x970-01-01T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn since_is_saturating() {
        let a = Timestamp::new(10, 500);
        let b = Timestamp::new(12, 100);
        assert_eq!(b.since(&a), Duration::new(1, 999_999_600));
        assert_eq!(a.since(&b), Duration::ZERO);
    }
}
