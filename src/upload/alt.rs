//! Alternative text: a description of an image for people who use screen readers, signed as
//! `x-amz-meta-alt`, and the text used when an upload has none.

use super::{Dimensions, ImageType, ValidationError};

/// The longest description accepted, in characters.
pub const MAX_ALT_CHARS: usize = 250;

/// A description as given: `Ok(None)` when blank, `AltInvalid` when it is longer than
/// [`MAX_ALT_CHARS`] or is not one line of text (line breaks, other control characters).
pub fn parse_alt(given: &str) -> Result<Option<String>, ValidationError> {
    let alt = given.trim();
    if alt.chars().count() > MAX_ALT_CHARS || alt.chars().any(char::is_control) {
        return Err(ValidationError::AltInvalid);
    }
    Ok((!alt.is_empty()).then(|| alt.to_owned()))
}

/// Words camera and phone apps put in file names: they say nothing about the picture.
const CAMERA_WORDS: [&str; 12] = [
    "img",
    "image",
    "dsc",
    "dscn",
    "dscf",
    "pxl",
    "mvimg",
    "photo",
    "picture",
    "screenshot",
    "upload",
    "dcim",
];

/// The alternative text of an upload without a description: its file name's words, when
/// they say something (`holiday-beach_2.jpg` → "holiday beach 2"), or what it is
/// ("PNG image, 4032 × 3024") for names a camera made up (`IMG_2041.JPG`).
pub fn default_alt(filename: &str, dimensions: Dimensions, image_type: ImageType) -> String {
    let stem = match filename.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 5 => stem,
        _ => filename,
    };
    let words: Vec<&str> = stem
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let telling = words.iter().any(|w| {
        w.chars().filter(|c| c.is_alphabetic()).count() >= 3
            && !CAMERA_WORDS.iter().any(|c| w.eq_ignore_ascii_case(c))
    });
    if telling {
        words.join(" ").chars().take(MAX_ALT_CHARS).collect()
    } else {
        format!(
            "{} image, {} × {}",
            image_type.label(),
            dimensions.width,
            dimensions.height
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::encode_metadata;

    #[test]
    fn a_description_is_one_short_line() {
        assert_eq!(parse_alt("  "), Ok(None));
        assert_eq!(
            parse_alt(" A cat on a mat "),
            Ok(Some("A cat on a mat".into()))
        );
        assert_eq!(parse_alt(&"é".repeat(250)), Ok(Some("é".repeat(250))));
        for bad in ["a".repeat(251), "two\nlines".into(), "tab\there".into()] {
            assert_eq!(parse_alt(&bad), Err(ValidationError::AltInvalid), "{bad}");
        }
    }

    #[test]
    fn without_a_description_the_name_speaks_if_it_can() {
        let d = Dimensions {
            width: 4032,
            height: 3024,
        };
        let alt = |name| default_alt(name, d, ImageType::Jpeg);
        assert_eq!(alt("holiday-beach_2.jpg"), "holiday beach 2");
        assert_eq!(alt("Crème brûlée.png"), "Crème brûlée");
        assert_eq!(alt("IMG_2041.JPG"), "JPEG image, 4032 × 3024");
        assert_eq!(alt("PXL_20261129_101010.jpg"), "JPEG image, 4032 × 3024");
        assert_eq!(alt("upload"), "JPEG image, 4032 × 3024");
        assert_eq!(alt("2026-11-29.jpeg"), "JPEG image, 4032 × 3024");
    }

    #[test]
    fn the_longest_name_owner_and_description_fit_s3s_metadata_limit() {
        // S3's limit on an object's user metadata: the bytes of every `x-amz-meta-*` name
        // and value.
        const USER_METADATA_LIMIT: usize = 2048;
        // Every field at its longest, in characters that take the most bytes once encoded.
        let name = encode_metadata(&"é".repeat(super::super::request::MAX_FILENAME_BYTES / 2));
        let owner = encode_metadata(&"é".repeat(crate::identity::MAX_OWNER / 2));
        let alt = encode_metadata(&"😀".repeat(MAX_ALT_CHARS));
        let link = "A".repeat(22);
        let fields = [
            ("x-amz-meta-filename", name.as_str()),
            ("x-amz-meta-owner", owner.as_str()),
            ("x-amz-meta-link", link.as_str()),
            ("x-amz-meta-width", "65535"),
            ("x-amz-meta-height", "65535"),
            ("x-amz-meta-alt", alt.as_str()),
        ];
        let used: usize = fields.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(used <= USER_METADATA_LIMIT, "{used} bytes");
    }
}
