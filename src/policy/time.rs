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

/// The year's four digits; `None` outside 0..=9999, which S3 dates never are.
fn year4(year: i32) -> Option<[u8; 4]> {
    let y = u32::try_from(year).ok().filter(|y| *y <= 9999)?;
    let ([a, b], [c, d]) = (two(y / 100), two(y % 100));
    Some([a, b, c, d])
}

/// A formatted timestamp, kept on the stack: most of them are written once into a larger
/// text (a policy, a page) and need no `String` of their own.
#[derive(Clone, PartialEq, Eq)]
pub struct Stamp(StampText);

#[derive(Clone, PartialEq, Eq)]
enum StampText {
    Ascii {
        bytes: [u8; 24],
        len: u8,
    },
    /// A year outside 0..=9999, which S3 dates never are: chrono's text.
    Other(String),
}

impl Stamp {
    fn ascii(pieces: &[u8]) -> Self {
        let mut bytes = [0u8; 24];
        bytes[..pieces.len()].copy_from_slice(pieces);
        // At most 24 pieces: every form below is.
        Self(StampText::Ascii {
            bytes,
            len: pieces.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Digits and separators only: always ASCII, so always UTF-8.
            StampText::Ascii { bytes, len } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            StampText::Other(s) => s,
        }
    }
}

impl std::ops::Deref for Stamp {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
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

fn stamp(t: DateTime<Utc>, pattern: &str, build: impl FnOnce([u8; 4], &Parts) -> Stamp) -> Stamp {
    let p = parts(t);
    match year4(p.year) {
        Some(year) => build(year, &p),
        None => Stamp(StampText::Other(t.format(pattern).to_string())),
    }
}

/// `2026-01-01T12:00:00.000Z`: ISO 8601, UTC, milliseconds, as S3 expects of a policy's
/// `expiration`.
pub fn iso8601_millis(t: DateTime<Utc>) -> Stamp {
    stamp(t, "%Y-%m-%dT%H:%M:%S%.3fZ", |[y0, y1, y2, y3], p| {
        let ([mo0, mo1], [d0, d1]) = (two(p.month), two(p.day));
        let ([h0, h1], [mi0, mi1], [s0, s1]) = (two(p.hour), two(p.minute), two(p.second));
        let [ms1, ms2] = two(p.millis);
        let ms0 = b'0' + (p.millis / 100) as u8;
        Stamp::ascii(&[
            y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0,
            s1, b'.', ms0, ms1, ms2, b'Z',
        ])
    })
}

/// `2026-01-01T12:00:00Z`
pub fn rfc3339_seconds(t: DateTime<Utc>) -> Stamp {
    stamp(t, "%Y-%m-%dT%H:%M:%SZ", |[y0, y1, y2, y3], p| {
        let ([mo0, mo1], [d0, d1]) = (two(p.month), two(p.day));
        let ([h0, h1], [mi0, mi1], [s0, s1]) = (two(p.hour), two(p.minute), two(p.second));
        Stamp::ascii(&[
            y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0,
            s1, b'Z',
        ])
    })
}

/// `20260101T120000Z`: `x-amz-date`.
pub fn amz_date(t: DateTime<Utc>) -> Stamp {
    stamp(t, "%Y%m%dT%H%M%SZ", |[y0, y1, y2, y3], p| {
        let ([mo0, mo1], [d0, d1]) = (two(p.month), two(p.day));
        let ([h0, h1], [mi0, mi1], [s0, s1]) = (two(p.hour), two(p.minute), two(p.second));
        Stamp::ascii(&[
            y0, y1, y2, y3, mo0, mo1, d0, d1, b'T', h0, h1, mi0, mi1, s0, s1, b'Z',
        ])
    })
}

/// `20260101`: the credential scope's date.
pub fn scope_date(t: DateTime<Utc>) -> Stamp {
    stamp(t, "%Y%m%d", |[y0, y1, y2, y3], p| {
        let ([mo0, mo1], [d0, d1]) = (two(p.month), two(p.day));
        Stamp::ascii(&[y0, y1, y2, y3, mo0, mo1, d0, d1])
    })
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
            // Outside four digits: chrono's own text.
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
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
