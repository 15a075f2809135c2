//! Strict query strings: bounded length and count, no duplicated names, valid UTF-8 after
//! percent-decoding. Anything else is a clear 400, never a silent guess.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use super::error::Problem;

pub const MAX_QUERY_BYTES: usize = 4096;
pub const MAX_PARAMS: usize = 16;

/// Parsed parameters, borrowing from the request where no decoding was needed.
#[derive(Debug, Default)]
pub struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// `+` is a space, then percent-decoding (a `%` without two hex digits stays as it is); the
/// result must be UTF-8. Borrowed when there is nothing to decode, else one allocation.
fn decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return Some(Cow::Borrowed(s));
    }
    // `+` is not a hex digit, so decoding between the `+`s is decoding the whole.
    let mut decoded = Vec::with_capacity(s.len());
    for (i, part) in s.split('+').enumerate() {
        if i > 0 {
            decoded.push(b' ');
        }
        decoded.extend(percent_decode(part.as_bytes()));
    }
    String::from_utf8(decoded).ok().map(Cow::Owned)
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
        // Split on bytes: `&` and `=` are ASCII, so every cut is on a character boundary,
        // and a byte search is cheaper than a `char` pattern on these short pieces.
        let at = |part: &[u8], byte: u8| part.iter().position(|&b| b == byte);
        let mut rest = raw;
        while !rest.is_empty() {
            let (part, next) = match at(rest.as_bytes(), b'&') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            };
            rest = next;
            if part.is_empty() {
                continue;
            }
            if pairs.len() == MAX_PARAMS {
                return Err(Problem::bad_request(
                    "query_too_many_parameters",
                    format!("The address has more than {MAX_PARAMS} parameters."),
                ));
            }
            let (k, v) = match at(part.as_bytes(), b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
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

    proptest::proptest! {
        /// `+` is handled before percent-decoding (`%2B` stays a plus), and nothing is
        /// copied when nothing changes.
        #[test]
        fn decoding_matches_the_percent_encoding_crate(s in "([a-zA-Z0-9%+&= ._-]|%[0-9a-fA-F]{2}|%[0-9a-fA-F]|[é€])*") {
            let plus = s.replace('+', " ");
            let expected = percent_encoding::percent_decode_str(&plus).decode_utf8().ok();
            let got = decode(&s);
            proptest::prop_assert_eq!(got.as_deref(), expected.as_deref());
            let borrowed = matches!(got, Some(Cow::Borrowed(_)));
            proptest::prop_assert_eq!(borrowed, !s.contains(['+', '%']));
        }
    }
}
