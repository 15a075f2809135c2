//! Durations as people write them on a command line: `90s`, `30m`, `24h`, `7d`.

/// `24h`, `30m`, `7d`, `90s`: a positive whole number and one unit.
pub fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 24h, 30m or 7d"))?;
    let d = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => return Err(format!("{s:?} is not a duration like 24h, 30m or 7d")),
    }
    .ok_or_else(|| format!("{s:?} is too long"))?;
    if d <= chrono::Duration::zero() {
        return Err(format!("{s:?} must be longer than nothing"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(chrono::Duration::hours(24)));
        assert_eq!(parse_duration("30s"), Ok(chrono::Duration::seconds(30)));
        assert_eq!(parse_duration(" 7d "), Ok(chrono::Duration::days(7)));
        assert!(parse_duration("0h").is_err() && parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err() && parse_duration("").is_err());
        assert!(
            parse_duration("99999999999999d")
                .unwrap_err()
                .contains("too long")
        );
    }
}
