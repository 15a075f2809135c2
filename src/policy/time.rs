//! The timestamp forms signatures use, as chrono format strings (parsed once: every
//! signature writes two of them).

use std::sync::LazyLock;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, SecondsFormat, Utc};

/// A policy's `expiration`: ISO 8601, UTC, with milliseconds (`2026-01-01T12:00:00.000Z`).
pub const ISO8601_MILLIS: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";
/// `x-amz-date` (`20260101T120000Z`).
pub const AMZ_DATE: &str = "%Y%m%dT%H%M%SZ";
/// The credential scope's date (`20260101`).
pub const SCOPE_DATE: &str = "%Y%m%d";

/// A format string, parsed.
fn items(format: &'static str) -> Vec<Item<'static>> {
    // The formats are constants that the tests below exercise.
    StrftimeItems::new(format)
        .parse()
        .expect("a valid chrono format")
}

static ISO8601_ITEMS: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| items(ISO8601_MILLIS));
static AMZ_DATE_ITEMS: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| items(AMZ_DATE));
static SCOPE_DATE_ITEMS: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| items(SCOPE_DATE));

/// `2026-01-01T12:00:00.000Z`
pub fn iso8601_millis(t: DateTime<Utc>) -> String {
    t.format_with_items(ISO8601_ITEMS.iter()).to_string()
}

/// `2026-01-01T12:00:00Z`
pub fn rfc3339_seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `20260101T120000Z`
pub fn amz_date(t: DateTime<Utc>) -> String {
    t.format_with_items(AMZ_DATE_ITEMS.iter()).to_string()
}

/// `20260101`
pub fn scope_date(t: DateTime<Utc>) -> String {
    t.format_with_items(SCOPE_DATE_ITEMS.iter()).to_string()
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
