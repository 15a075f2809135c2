//! Strict query strings: bounded length and count, no duplicated names, valid UTF-8 after
//! percent-decoding. Anything else is a clear 400, never a silent guess.

use percent_encoding::percent_decode_str;

use super::error::Problem;

pub const MAX_QUERY_BYTES: usize = 4096;
pub const MAX_PARAMS: usize = 16;

/// Parsed parameters, in order.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// `+` is a space, then percent-decoding (a `%` without two hex digits stays as it is); the
/// result must be UTF-8.
fn decode(s: &str) -> Option<String> {
    if !s.contains(['+', '%']) {
        return Some(s.to_owned());
    }
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|d| d.into_owned())
}

impl Query {
    /// Parse a raw query string (without `?`).
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(Problem::bad_request(
                "query_too_long",
                format!("The address is too long (its query is over {MAX_QUERY_BYTES} bytes)."),
            ));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PARAMS {
                return Err(Problem::bad_request(
                    "query_too_many_parameters",
                    format!("The address has more than {MAX_PARAMS} parameters."),
                ));
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
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
            .map(|(_, v)| v.as_str())
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
        assert_eq!(q.get("size"), Some("3"));
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
        assert_eq!(Query::parse("a=b=c").unwrap().get("a"), Some("b=c"));
        assert_eq!(Query::parse("flag&&x=1").unwrap().get("flag"), Some(""));
        assert_eq!(
            Query::parse("a=%c3").unwrap_err().code,
            "query_invalid_encoding"
        );
    }
}
