//! The timestamp forms signatures use. Every signature writes two of them, so the two go
//! through chrono's RFC 3339 writer (its fast path); the day's scope date, written once a
//! day, through a format string.

use chrono::{DateTime, SecondsFormat, Utc};

/// The credential scope's date (`20260101`).
pub const SCOPE_DATE: &str = "%Y%m%d";

/// A policy's `expiration`: ISO 8601, UTC, with milliseconds (`2026-01-01T12:00:00.000Z`).
pub fn iso8601_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2026-01-01T12:00:00Z`
pub fn rfc3339_seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `x-amz-date`: ISO 8601's basic format (`20260101T120000Z`), which is the extended one
/// (`2026-01-01T12:00:00Z`) without its separators.
pub fn amz_date(t: DateTime<Utc>) -> String {
    rfc3339_seconds(t).replace(['-', ':'], "")
}

/// `20260101`
pub fn scope_date(t: DateTime<Utc>) -> String {
    t.format(SCOPE_DATE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_forms_s3_expects() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 3, 4, 5).unwrap()
            + chrono::Duration::milliseconds(7);
        assert_eq!(iso8601_millis(t), "2026-11-29T03:04:05.007Z");
        assert_eq!(rfc3339_seconds(t), "2026-11-29T03:04:05Z");
        assert_eq!(amz_date(t), "20261129T030405Z");
        assert_eq!(scope_date(t), "20261129");
        let round = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(iso8601_millis(round), "2026-01-01T12:00:00.000Z");
    }
}
