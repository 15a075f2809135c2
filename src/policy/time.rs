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

fn push2(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

fn push_year(out: &mut String, year: i32) {
    if (0..=9999).contains(&year) {
        let y = year.unsigned_abs();
        push2(out, y / 100);
        push2(out, y % 100);
    } else {
        // Outside what S3 dates can be; keep the text faithful anyway.
        out.push_str(&format!("{year:04}"));
    }
}

/// `YYYY?MM?DD` with `sep` between the parts (none when `None`).
fn push_date(out: &mut String, p: &Parts, sep: Option<char>) {
    push_year(out, p.year);
    if let Some(c) = sep {
        out.push(c);
    }
    push2(out, p.month);
    if let Some(c) = sep {
        out.push(c);
    }
    push2(out, p.day);
}

fn push_time(out: &mut String, p: &Parts, sep: Option<char>) {
    push2(out, p.hour);
    if let Some(c) = sep {
        out.push(c);
    }
    push2(out, p.minute);
    if let Some(c) = sep {
        out.push(c);
    }
    push2(out, p.second);
}

/// `2026-01-01T12:00:00.000Z`: ISO 8601, UTC, milliseconds, as S3 expects of a policy's
/// `expiration`.
pub fn iso8601_millis(t: DateTime<Utc>) -> String {
    let p = parts(t);
    let mut s = String::with_capacity(24);
    push_date(&mut s, &p, Some('-'));
    s.push('T');
    push_time(&mut s, &p, Some(':'));
    s.push('.');
    s.push(char::from(b'0' + (p.millis / 100) as u8));
    push2(&mut s, p.millis % 100);
    s.push('Z');
    s
}

/// `2026-01-01T12:00:00Z`
pub fn rfc3339_seconds(t: DateTime<Utc>) -> String {
    let p = parts(t);
    let mut s = String::with_capacity(20);
    push_date(&mut s, &p, Some('-'));
    s.push('T');
    push_time(&mut s, &p, Some(':'));
    s.push('Z');
    s
}

/// `20260101T120000Z`: `x-amz-date`.
pub fn amz_date(t: DateTime<Utc>) -> String {
    let p = parts(t);
    let mut s = String::with_capacity(16);
    push_date(&mut s, &p, None);
    s.push('T');
    push_time(&mut s, &p, None);
    s.push('Z');
    s
}

/// `20260101`: the credential scope's date.
pub fn scope_date(t: DateTime<Utc>) -> String {
    let p = parts(t);
    let mut s = String::with_capacity(8);
    push_date(&mut s, &p, None);
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
        ] {
            assert_eq!(
                iso8601_millis(t),
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
            assert_eq!(amz_date(t), t.format("%Y%m%dT%H%M%SZ").to_string());
            assert_eq!(scope_date(t), t.format("%Y%m%d").to_string());
            assert_eq!(
                rfc3339_seconds(t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
    }
}
