//! Timestamp forms used in signatures, written directly (chrono's `format` parses its
//! pattern on every call, which showed up on the signing path).

use chrono::{DateTime, Datelike, Timelike, Utc};

struct Parts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

fn parts(t: DateTime<Utc>) -> Parts {
    Parts {
        year: t.year(),
        month: t.month(),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: t.second(),
        // Leap seconds report 1000..: clamp into the field.
        millis: (t.nanosecond() / 1_000_000).min(999),
    }
}

/// `n % 100` as two ASCII digits.
fn two(n: u32) -> [u8; 2] {
    [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]
}

/// A formatted timestamp, kept on the stack: most are written once into a larger text (a
/// policy, a page) and need no `String` of their own.
#[derive(Clone, Copy)]
pub struct Stamp {
    /// Room for the longest form with chrono's widest year (`-262143`).
    bytes: [u8; 32],
    len: usize,
}

impl Stamp {
    fn new() -> Self {
        Self {
            bytes: [0; 32],
            len: 0,
        }
    }

    fn push(&mut self, piece: &[u8]) {
        self.bytes[self.len..self.len + piece.len()].copy_from_slice(piece);
        self.len += piece.len();
    }

    /// `YYYY·MM·DD` with `sep` between the parts.
    fn date(&mut self, p: &Parts, sep: &[u8]) {
        match u32::try_from(p.year).ok().filter(|y| *y <= 9999) {
            Some(y) => {
                self.push(&two(y / 100));
                self.push(&two(y % 100));
            }
            // Outside what S3 dates can be; keep the text faithful anyway.
            None => self.push(format!("{:04}", p.year).as_bytes()),
        }
        self.push(sep);
        self.push(&two(p.month));
        self.push(sep);
        self.push(&two(p.day));
    }

    /// `hh·mm·ss` with `sep` between the parts.
    fn time(&mut self, p: &Parts, sep: &[u8]) {
        self.push(&two(p.hour));
        self.push(sep);
        self.push(&two(p.minute));
        self.push(sep);
        self.push(&two(p.second));
    }

    pub fn as_str(&self) -> &str {
        // Digits, signs and separators only: always ASCII, so always UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::ops::Deref for Stamp {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<Stamp> for String {
    fn from(s: Stamp) -> Self {
        s.as_str().to_owned()
    }
}

impl<'a> From<Stamp> for std::borrow::Cow<'a, str> {
    fn from(s: Stamp) -> Self {
        std::borrow::Cow::Owned(s.into())
    }
}

/// `date T time` of `t`, with `date_sep` and `time_sep` between their parts: the start of
/// every form below but the scope date.
fn date_time(t: DateTime<Utc>, date_sep: &[u8], time_sep: &[u8]) -> (Stamp, Parts) {
    let p = parts(t);
    let mut s = Stamp::new();
    s.date(&p, date_sep);
    s.push(b"T");
    s.time(&p, time_sep);
    (s, p)
}

/// `2026-01-01T12:00:00.000Z`: ISO 8601, UTC, milliseconds, as S3 expects of a policy's
/// `expiration`.
pub fn iso8601_millis(t: DateTime<Utc>) -> Stamp {
    let (mut s, p) = date_time(t, b"-", b":");
    s.push(&[b'.', b'0' + (p.millis / 100) as u8]);
    s.push(&two(p.millis));
    s.push(b"Z");
    s
}

/// `2026-01-01T12:00:00Z`
pub fn rfc3339_seconds(t: DateTime<Utc>) -> Stamp {
    let (mut s, _) = date_time(t, b"-", b":");
    s.push(b"Z");
    s
}

/// `20260101T120000Z`: `x-amz-date`.
pub fn amz_date(t: DateTime<Utc>) -> Stamp {
    let (mut s, _) = date_time(t, b"", b"");
    s.push(b"Z");
    s
}

/// `20260101`: the credential scope's date.
pub fn scope_date(t: DateTime<Utc>) -> Stamp {
    let mut s = Stamp::new();
    s.date(&parts(t), b"");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_forms_match_chronos() {
        for t in [
            Utc.with_ymd_and_hms(2015, 12, 29, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 29, 3, 4, 5).unwrap()
                + chrono::Duration::milliseconds(7),
            Utc.with_ymd_and_hms(999, 1, 2, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(2030, 10, 31, 9, 8, 7).unwrap()
                + chrono::Duration::milliseconds(999),
            Utc.with_ymd_and_hms(2030, 10, 31, 9, 8, 7).unwrap()
                + chrono::Duration::milliseconds(50),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        ] {
            assert_eq!(
                iso8601_millis(t).as_str(),
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
            assert_eq!(
                amz_date(t).as_str(),
                t.format("%Y%m%dT%H%M%SZ").to_string().as_str()
            );
            assert_eq!(
                scope_date(t).as_str(),
                t.format("%Y%m%d").to_string().as_str()
            );
            assert_eq!(
                rfc3339_seconds(t).as_str(),
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
    }

    #[test]
    fn years_outside_four_digits_are_written_in_full() {
        let t = |y| Utc.with_ymd_and_hms(y, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            iso8601_millis(t(10000)).as_str(),
            "10000-01-02T03:04:05.000Z"
        );
        assert_eq!(amz_date(t(-1)).as_str(), "-0010102T030405Z");
        let widest = DateTime::<Utc>::MIN_UTC;
        assert!(iso8601_millis(widest).starts_with("-262143-01-01T00:00:00.000Z"));
    }

    proptest::proptest! {
        #[test]
        fn every_instant_matches_chrono(secs in -62_167_219_200i64..253_402_300_800, ms in 0u32..1000) {
            let t = DateTime::from_timestamp(secs, ms * 1_000_000).unwrap();
            proptest::prop_assert_eq!(String::from(iso8601_millis(t)), t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            proptest::prop_assert_eq!(String::from(amz_date(t)), t.format("%Y%m%dT%H%M%SZ").to_string());
            proptest::prop_assert_eq!(String::from(scope_date(t)), t.format("%Y%m%d").to_string());
            proptest::prop_assert_eq!(String::from(rfc3339_seconds(t)), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
    }
}
