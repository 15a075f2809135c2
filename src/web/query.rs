//! Strict query strings: bounded length and count, no duplicated names, valid UTF-8 after
//! percent-decoding. Anything else is a clear 400, never a silent guess.

use std::borrow::Cow;

use super::error::Problem;

pub const MAX_QUERY_BYTES: usize = 4096;
pub const MAX_PARAMS: usize = 16;

/// Parsed parameters, borrowing from the request where no decoding was needed.
#[derive(Debug, Default)]
pub struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// `s` split at an ASCII byte. A plain byte scan: `str::split` with a `char` searches
/// through memchr, which costs more than it saves on strings this short.
fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == sep) {
            // The separator is ASCII: both sides of it are char boundaries.
            Some(at) => {
                rest = Some(&r[at + 1..]);
                Some(&r[..at])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// `application/x-www-form-urlencoded` decoding in one pass: `+` is a space, `%XX` a byte
/// (a `%` without two hex digits stays as it is), and the result must be UTF-8.
fn decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['+', '%']) {
        return Some(Cow::Borrowed(s));
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    // Two hex digits make one byte: `h * 16 + l` is at most 255.
                    out.push((h * 16 + l) as u8);
                    i += 2;
                } else {
                    out.push(b);
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

impl<'a> Query<'a> {
    /// Parse a raw query string (without `?`).
    pub fn parse(raw: &'a str) -> Result<Self, Problem> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(Problem::bad_request(
                "query_too_long",
                format!("The address is too long (its query is over {MAX_QUERY_BYTES} bytes)."),
            ));
        }
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(8);
        for part in split_ascii(raw, b'&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PARAMS {
                return Err(Problem::bad_request(
                    "query_too_many_parameters",
                    format!("The address has more than {MAX_PARAMS} parameters."),
                ));
            }
            let (k, v) = match part.bytes().position(|b| b == b'=') {
                // `=` is ASCII: both sides of it are char boundaries.
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, ""),
            };
            let (Some(k), Some(v)) = (decode(k), decode(v)) else {
                return Err(Problem::bad_request(
                    "query_invalid_encoding",
                    "The address's parameters are not valid UTF-8 text.",
                ));
            };
            if pairs.iter().any(|(seen, _)| *seen == k) {
                let shown: String = k.chars().filter(|c| !c.is_control()).take(40).collect();
                return Err(Problem::bad_request(
                    "query_duplicate_parameter",
                    format!("The parameter “{shown}” is given more than once."),
                ));
            }
            pairs.push((k, v));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// A parameter that must be absent or a whole number.
    pub fn number<T: std::str::FromStr>(
        &self,
        name: &'static str,
        problem: impl Fn() -> Problem,
    ) -> Result<Option<T>, Problem> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| problem()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn splits_like_str_split(s in "[a&=é]{0,12}") {
            prop_assert_eq!(split_ascii(&s, b'&').collect::<Vec<_>>(), s.split('&').collect::<Vec<_>>());
        }

        // The one-pass decoder agrees with the percent-encoding crate's two passes.
        #[test]
        fn decodes_like_percent_encoding(s in "[a-zA-Z0-9%+ .é€]{0,24}|(%[0-9a-fA-F]{2}|%|[a-z+]){0,12}") {
            let reference = percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned());
            prop_assert_eq!(decode(&s).map(Cow::into_owned), reference);
        }
    }

    #[test]
    fn parses_and_refuses_what_it_should() {
        let q = Query::parse("filename=a%20b+c.png&size=3").unwrap();
        assert_eq!(q.get("filename"), Some("a b c.png"));
        assert_eq!(
            Query::parse("a=1&a=2").unwrap_err().code,
            "query_duplicate_parameter"
        );
        assert_eq!(
            Query::parse("a=%ff").unwrap_err().code,
            "query_invalid_encoding"
        );
        assert_eq!(
            Query::parse(&"a".repeat(5000)).unwrap_err().code,
            "query_too_long"
        );
        let many: Vec<String> = (0..20).map(|i| format!("p{i}=1")).collect();
        assert_eq!(
            Query::parse(&many.join("&")).unwrap_err().code,
            "query_too_many_parameters"
        );
        assert_eq!(Query::parse("%zz=1").unwrap().get("%zz"), Some("1"));
        assert_eq!(Query::parse("a=%4").unwrap().get("a"), Some("%4"));
        assert_eq!(Query::parse("a=1%").unwrap().get("a"), Some("1%"));
        assert_eq!(
            Query::parse("a=%e2%82%ac+%2B").unwrap().get("a"),
            Some("€ +")
        );
        assert_eq!(Query::parse("a=%C3%A9").unwrap().get("a"), Some("é"));
        assert_eq!(
            Query::parse("a=%c3").unwrap_err().code,
            "query_invalid_encoding"
        );
    }
}
