//! Object keys, upload ids and the metadata encoding.
//!
//! A key is `PREFIX + id + "/" + safe file name`, always chosen by the server. The id is a
//! UUID (version 8) whose first 48 bits are the *inverted* signing time in milliseconds, so
//! S3's ascending key order lists the newest uploads first without reading the whole bucket.
//! Keys with other UUIDs (older uploads) stay readable; they simply carry no time.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::ImageType;

const MAX_MILLIS: u64 = 0xFFFF_FFFF_FFFF;
/// Longest safe file name (stem and extension) put in a key, and read from one.
pub const MAX_SAFE_NAME: usize = 80;
/// Shortest limit a store may set on it (the embedded store's keys are limited in length).
pub const MIN_SAFE_NAME: usize = 16;

/// A validated key prefix: `uploads/`-like, strict characters, ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("the key prefix must not be empty (use e.g. `uploads/`)".into());
        }
        if s.len() > 200 {
            return Err("the key prefix is longer than 200 characters".into());
        }
        if !s.ends_with('/') {
            return Err(format!("the key prefix must end with `/` (try `{s}/`)"));
        }
        if s.starts_with('/') {
            return Err("the key prefix must not start with `/`".into());
        }
        if let Some(c) = s.chars().find(|&c| !(is_valid_key_char(c) || c == '/')) {
            return Err(format!(
                "the key prefix may only contain letters, digits, `.`, `-`, `_` and `/` (found {c:?})"
            ));
        }
        if s[..s.len() - 1]
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err("the key prefix must not contain empty, `.` or `..` segments".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The characters of a key's file name part (and, with `/`, of its prefix).
pub fn is_valid_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// The id folder of one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UploadId(Uuid);

impl UploadId {
    /// A time-ordered id: inverted milliseconds, then 74 random bits.
    pub fn new(at: DateTime<Utc>, random: [u8; 10]) -> Self {
        let millis = u64::try_from(at.timestamp_millis())
            .unwrap_or(0)
            .min(MAX_MILLIS);
        let inverted = MAX_MILLIS - millis;
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&inverted.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&random);
        Self(Uuid::new_v8(b))
    }

    pub fn random(at: DateTime<Utc>) -> Self {
        Self::new(at, rand::random())
    }

    pub fn parse(s: &str) -> Option<Self> {
        // Only the canonical lowercase hyphenated form: one key, one spelling.
        if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        Uuid::try_parse(s).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// When the id was made, for time-ordered (version 8) ids.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        if self.0.get_version_num() != 8 {
            return None;
        }
        let b = self.0.as_bytes();
        let mut be = [0u8; 8];
        be[2..].copy_from_slice(&b[..6]);
        let millis = MAX_MILLIS - u64::from_be_bytes(be);
        Utc.timestamp_millis_opt(i64::try_from(millis).ok()?)
            .single()
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// A key that signpost made, or that has its shape: `PREFIX<uuid>/<safe name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    key: String,
    id: UploadId,
    name_at: usize,
}

impl ObjectKey {
    pub fn new(prefix: &KeyPrefix, id: UploadId, safe_name: &str) -> Self {
        let key = format!("{prefix}{id}/{safe_name}");
        let name_at = key.len() - safe_name.len();
        Self { key, id, name_at }
    }

    /// Parse an untrusted key: it must lie under `prefix`, in signpost's shape, with strict
    /// characters only.
    pub fn parse(prefix: &KeyPrefix, key: &str) -> Option<Self> {
        let rest = key.strip_prefix(prefix.as_str())?;
        let (id, name) = rest.split_once('/')?;
        let id = UploadId::parse(id)?;
        if name.is_empty()
            || name.len() > MAX_SAFE_NAME
            || name.starts_with('.')
            || !name.chars().all(is_valid_key_char)
        {
            return None;
        }
        Some(Self {
            key: key.to_owned(),
            id,
            name_at: key.len() - name.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    pub fn into_string(self) -> String {
        self.key
    }

    pub fn id(&self) -> UploadId {
        self.id
    }

    pub fn file_name(&self) -> &str {
        &self.key[self.name_at..]
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// Latin letters with accents, folded to ASCII so names stay readable in keys.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ą' => "A",
        'æ' => "ae",
        'Æ' => "AE",
        'ç' | 'ć' | 'č' => "c",
        'Ç' | 'Ć' | 'Č' => "C",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "E",
        'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' => "I",
        'ł' => "l",
        'Ł' => "L",
        'ñ' | 'ń' | 'ň' => "n",
        'Ñ' | 'Ń' | 'Ň' => "N",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ō' | 'Ő' => "O",
        'œ' => "oe",
        'Œ' => "OE",
        'ř' => "r",
        'Ř' => "R",
        'ś' | 'š' | 'ş' => "s",
        'Ś' | 'Š' | 'Ş' => "S",
        'ß' => "ss",
        'ť' | 'ţ' => "t",
        'Ť' | 'Ţ' => "T",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' | 'Ů' | 'Ű' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        _ => return None,
    })
}

/// Reduce an untrusted file name to a safe, readable key part: the last path component,
/// accents folded, anything outside `[A-Za-z0-9._-]` turned into `-`, no leading dot, at
/// most `max_len` characters (between [`MIN_SAFE_NAME`] and [`MAX_SAFE_NAME`]), and an
/// extension that matches the image type.
pub fn safe_file_name(original: &str, image_type: ImageType, max_len: usize) -> String {
    let base = original.rsplit(['/', '\\']).next().unwrap_or(original);
    let (stem, ext) = match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
        _ => (base, None),
    };
    let ext = ext
        .and_then(|e| {
            image_type
                .extensions()
                .iter()
                .find(|known| known.eq_ignore_ascii_case(e))
        })
        .unwrap_or(&image_type.extensions()[0]);

    let mut cleaned = String::new();
    for c in stem.chars() {
        if c == '.' {
            // A dot inside the stem is kept, but never two in a row (no `..`).
            if !cleaned.ends_with('.') {
                cleaned.push(c);
            }
        } else if c != '-' && is_valid_key_char(c) {
            cleaned.push(c);
        } else if let Some(f) = fold(c) {
            cleaned.push_str(f);
        } else if !(cleaned.is_empty() || cleaned.ends_with('-')) {
            cleaned.push('-');
        }
    }
    // `cleaned` is ASCII: one character is one byte.
    let trim = |c: char| matches!(c, '-' | '.' | '_');
    let max_stem = max_len.clamp(MIN_SAFE_NAME, MAX_SAFE_NAME) - 1 - ext.len();
    let start = cleaned.trim_start_matches(trim);
    let stem = start[..start.len().min(max_stem)].trim_end_matches(trim);
    let stem = if stem.is_empty() { "image" } else { stem };
    format!("{stem}.{ext}")
}

/// Encode a user-supplied value for an `x-amz-meta-*` field: S3 metadata travels in HTTP
/// headers, so anything but printable ASCII is sent as an RFC 2047 encoded word, the way S3
/// itself returns non-ASCII metadata. A plain value is returned as it is.
pub fn encode_metadata(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.starts_with("=?");
    if plain {
        value.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(value))
    }
}

/// Decode what [`encode_metadata`] made (and S3's own `=?UTF-8?B?…?=` / `?Q?` words).
pub fn decode_metadata(value: &str) -> String {
    let Some(inner) = value.strip_prefix("=?").and_then(|v| v.strip_suffix("?=")) else {
        return value.to_owned();
    };
    let mut parts = inner.splitn(3, '?');
    let (Some(charset), Some(enc), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
        return value.to_owned();
    };
    if !charset.eq_ignore_ascii_case("utf-8") {
        return value.to_owned();
    }
    let bytes = if enc.eq_ignore_ascii_case("b") {
        STANDARD.decode(text).ok()
    } else if enc.eq_ignore_ascii_case("q") {
        decode_q(text)
    } else {
        None
    };
    bytes
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| value.to_owned())
}

fn decode_q(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hi = bytes.next()?;
                let lo = bytes.next()?;
                out.push(u8::from_str_radix(std::str::from_utf8(&[hi, lo]).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> KeyPrefix {
        KeyPrefix::parse("uploads/").unwrap()
    }

    #[test]
    fn newer_ids_sort_first_and_keep_their_time() {
        let t1 = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        let t2 = Utc.timestamp_millis_opt(1_700_000_000_001).unwrap();
        let a = UploadId::new(t1, [0xff; 10]);
        let b = UploadId::new(t2, [0; 10]);
        assert!(b.to_string() < a.to_string(), "newer must sort first");
        assert_eq!(a.time(), Some(t1));
        assert_eq!(UploadId::parse(&a.to_string()), Some(a));
        let v4 = Uuid::new_v4().to_string();
        assert_eq!(UploadId::parse(&v4).unwrap().time(), None);
    }

    fn safe_file_name(original: &str, image_type: ImageType) -> String {
        super::safe_file_name(original, image_type, MAX_SAFE_NAME)
    }

    #[test]
    fn safe_names_are_readable_and_strict() {
        let png = ImageType::Png;
        assert_eq!(safe_file_name("Mein Foto (1).PNG", png), "Mein-Foto-1.png");
        assert_eq!(safe_file_name("../../etc/passwd", png), "passwd.png");
        assert_eq!(
            safe_file_name("C:\\Users\\me\\Crème brûlée.png", png),
            "Creme-brulee.png"
        );
        assert_eq!(safe_file_name("<b>alert(1)<b>.png", png), "b-alert-1-b.png");
        assert_eq!(
            safe_file_name("<script>alert(1)</script>.png", png),
            "script.png"
        );
        assert_eq!(safe_file_name(".htaccess", png), "htaccess.png");
        assert_eq!(safe_file_name("写真.png", png), "image.png");
        assert_eq!(safe_file_name("a..b.jpeg", ImageType::Jpeg), "a.b.jpeg");
        assert_eq!(safe_file_name("photo.jpg", png), "photo.png");
        assert_eq!(safe_file_name("", png), "image.png");
        assert_eq!(safe_file_name("a -- b__c.PNG", png), "a-b__c.png");
        let long = "x".repeat(500);
        assert_eq!(safe_file_name(&long, png).len(), MAX_SAFE_NAME);
        assert_eq!(safe_file_name("--._x_.png", png), "x.png");
        // A cut that lands just after a separator drops it too.
        let stem = "a".repeat(MAX_SAFE_NAME - 5);
        assert_eq!(
            safe_file_name(&format!("{stem} bbb.png"), png),
            format!("{stem}.png")
        );
        // A store with shorter keys gets shorter names, never below MIN_SAFE_NAME.
        assert_eq!(super::safe_file_name(&long, png, 60).len(), 60);
        assert_eq!(
            super::safe_file_name(&long, png, 3),
            format!("{}.png", "x".repeat(12))
        );
        assert_eq!(super::safe_file_name("cat.png", png, 60), "cat.png");
    }

    #[test]
    fn keys_parse_only_under_the_prefix_in_the_strict_shape() {
        let id = UploadId::new(Utc::now(), [1; 10]);
        let key = ObjectKey::new(&prefix(), id, "cat.png");
        assert_eq!(ObjectKey::parse(&prefix(), key.as_str()), Some(key.clone()));
        assert_eq!(key.file_name(), "cat.png");
        for bad in [
            format!("other/{id}/cat.png"),
            format!("uploads/{id}/../cat.png"),
            format!("uploads/{id}/"),
            format!("uploads/{id}/.hidden"),
            format!("uploads/{id}/a b.png"),
            format!("uploads/{}/cat.png", id.to_string().to_uppercase()),
            "uploads/not-a-uuid/cat.png".to_owned(),
        ] {
            assert_eq!(ObjectKey::parse(&prefix(), &bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(KeyPrefix::parse("uploads/").is_ok());
        assert!(KeyPrefix::parse("a/b-c_d.e/").is_ok());
        for bad in ["", "uploads", "/uploads/", "up//x/", "../x/", "a b/", "ü/"] {
            assert!(KeyPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_round_trips_and_is_header_safe() {
        for v in [
            "plain.png",
            "Crème brûlée.png",
            " spaced ",
            "=?UTF-8?B?x?=",
            "tab\there",
            "写真.png",
        ] {
            let e = encode_metadata(v);
            assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)), "{e}");
            assert_eq!(decode_metadata(&e), v);
            assert_eq!(e == v, v == "plain.png", "{v:?}");
        }
        assert_eq!(
            decode_metadata("=?UTF-8?Q?Cr=C3=A8me_br=C3=BBl=C3=A9e?="),
            "Crème brûlée"
        );
    }
}
