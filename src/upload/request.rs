//! Validation of what a browser (or an API client) says about the file it wants to upload.
//! One function serves the image-meta fragment, the JSON API and the CLI, so they refuse the
//! same things with the same codes.

use serde::Deserialize;

use super::ImageType;

/// Longest original file name accepted, in bytes (what file systems allow).
pub const MAX_FILENAME_BYTES: usize = 255;
/// Largest width or height accepted from the browser.
pub const MAX_DIMENSION: u32 = 65_535;

/// The limits that sign the policy and that the page shows: one source for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub allowed: Vec<ImageType>,
    pub max_bytes: u64,
    /// The longest file name a key ends with: [`MAX_SAFE_NAME`](super::key::MAX_SAFE_NAME),
    /// or less on a store whose keys are limited in length (the embedded store).
    pub max_name: usize,
}

impl Limits {
    pub fn allows(&self, t: ImageType) -> bool {
        self.allowed.contains(&t)
    }

    /// "JPEG, PNG, GIF or WebP"
    pub fn allowed_labels(&self) -> String {
        let labels: Vec<&str> = self.allowed.iter().map(|t| t.label()).collect();
        match labels.split_last() {
            None => String::new(),
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }

    /// `image/jpeg,image/png,…` for an `accept` attribute.
    pub fn accept(&self) -> String {
        let mimes: Vec<&str> = self.allowed.iter().map(|t| t.mime()).collect();
        mimes.join(",")
    }
}

/// "10 MiB", "512 KiB", "900 bytes".
pub fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB {
        format_unit(n, MIB, "MiB")
    } else if n >= KIB {
        format_unit(n, KIB, "KiB")
    } else {
        format!("{n} bytes")
    }
}

fn format_unit(n: u64, unit: u64, name: &str) -> String {
    // Rounded to the nearest tenth, as the page's script shows sizes.
    let tenths = (u128::from(n) * 10 + u128::from(unit) / 2) / u128::from(unit);
    let (whole, tenth) = (tenths / 10, tenths % 10);
    if tenth == 0 {
        format!("{whole} {name}")
    } else {
        format!("{whole}.{tenth} {name}")
    }
}

/// What a client asks to upload, as it arrives (query string, JSON or CLI flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Whom to sign for: only a delegate API token may name another owner.
    pub owner: Option<String>,
    /// A description for screen readers, signed as `x-amz-meta-alt`.
    pub alt: Option<String>,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidUpload {
    /// The name as the user's machine gave it (trimmed; control characters refused).
    pub original_name: String,
    pub image_type: ImageType,
    pub size: Option<u64>,
    pub dimensions: Option<(u32, u32)>,
    /// Its description, trimmed (None when blank).
    pub alt: Option<String>,
}

/// Why a request was refused. `code()` is stable: clients may match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("Choose a file: the request has no file name.")]
    FilenameMissing,
    #[error(
        "The file name is longer than {MAX_FILENAME_BYTES} bytes; rename the file and try again."
    )]
    FilenameTooLong,
    #[error("The file name contains control characters; rename the file and try again.")]
    FilenameInvalid,
    #[error("The file has no type; choose a {allowed} image.")]
    ContentTypeMissing { allowed: String },
    #[error("{given} is not accepted; choose a {allowed} image.")]
    ContentTypeNotAllowed { given: String, allowed: String },
    #[error("The file size is missing; it must be between 1 byte and {max}.")]
    SizeMissing { max: String },
    #[error("The file is empty; choose an image of at most {max}.")]
    FileEmpty { max: String },
    #[error("The file is {size}, larger than the {max} limit; choose a smaller image.")]
    FileTooLarge { size: String, max: String },
    #[error(
        "Width and height must be given together, each a whole number from 1 to {MAX_DIMENSION}."
    )]
    DimensionsInvalid,
    #[error(
        "The description must be one line of at most {} characters.",
        super::MAX_ALT_CHARS
    )]
    AltInvalid,
}

impl ValidationError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::FilenameMissing => "filename_missing",
            Self::FilenameTooLong => "filename_too_long",
            Self::FilenameInvalid => "filename_invalid",
            Self::ContentTypeMissing { .. } => "content_type_missing",
            Self::ContentTypeNotAllowed { .. } => "content_type_not_allowed",
            Self::SizeMissing { .. } => "size_missing",
            Self::FileEmpty { .. } => "file_empty",
            Self::FileTooLarge { .. } => "file_too_large",
            Self::DimensionsInvalid => "dimensions_invalid",
            Self::AltInvalid => "alt_invalid",
        }
    }
}

impl UploadRequest {
    /// Validate against `limits`. `require_size`: the page and the API always know the size;
    /// the CLI may not (the policy's length range still bounds the upload).
    pub fn validate(
        &self,
        limits: &Limits,
        require_size: bool,
    ) -> Result<ValidUpload, ValidationError> {
        let name = self.filename.as_deref().map(str::trim).unwrap_or_default();
        if name.is_empty() {
            return Err(ValidationError::FilenameMissing);
        }
        if name.len() > MAX_FILENAME_BYTES {
            return Err(ValidationError::FilenameTooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(ValidationError::FilenameInvalid);
        }

        let allowed = || limits.allowed_labels();
        let given = self
            .content_type
            .as_deref()
            .map(str::trim)
            .unwrap_or_default();
        if given.is_empty() {
            return Err(ValidationError::ContentTypeMissing { allowed: allowed() });
        }
        let image_type = ImageType::from_mime(given)
            .filter(|t| limits.allows(*t))
            .ok_or_else(|| ValidationError::ContentTypeNotAllowed {
                given: describe_type(given),
                allowed: allowed(),
            })?;

        let max = || human_bytes(limits.max_bytes);
        match self.size {
            None if require_size => return Err(ValidationError::SizeMissing { max: max() }),
            Some(0) => return Err(ValidationError::FileEmpty { max: max() }),
            Some(n) if n > limits.max_bytes => {
                return Err(ValidationError::FileTooLarge {
                    size: human_bytes(n),
                    max: max(),
                });
            }
            _ => {}
        }

        let dimensions = match (self.width, self.height) {
            (None, None) => None,
            (Some(w), Some(h))
                if (1..=MAX_DIMENSION).contains(&w) && (1..=MAX_DIMENSION).contains(&h) =>
            {
                Some((w, h))
            }
            _ => return Err(ValidationError::DimensionsInvalid),
        };

        let alt = match self.alt.as_deref() {
            Some(given) => super::parse_alt(given)?,
            None => None,
        };

        Ok(ValidUpload {
            original_name: name.to_owned(),
            image_type,
            size: self.size,
            dimensions,
            alt,
        })
    }
}

/// A short, printable description of an untrusted content type for an error message.
fn describe_type(given: &str) -> String {
    let shown: String = given.chars().filter(|c| !c.is_control()).take(60).collect();
    if given.eq_ignore_ascii_case("image/svg+xml") {
        "SVG (image/svg+xml)".to_owned()
    } else {
        format!("The type “{shown}”")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            allowed: ImageType::ALL.to_vec(),
            max_bytes: 10 * 1024 * 1024,
            max_name: crate::upload::key::MAX_SAFE_NAME,
        }
    }

    fn req(name: &str, ty: &str, size: u64) -> UploadRequest {
        UploadRequest {
            filename: Some(name.into()),
            content_type: Some(ty.into()),
            size: Some(size),
            ..Default::default()
        }
    }

    #[test]
    fn accepts_a_plain_image() {
        let (r, l) = (req("cat.png", "image/png", 10), limits());
        let ok = r.validate(&l, true).unwrap();
        assert_eq!(ok.image_type, ImageType::Png);
    }

    #[test]
    fn each_kind_of_bad_input_has_its_code() {
        let l = limits();
        let code = |r: UploadRequest| r.validate(&l, true).unwrap_err().code();
        assert_eq!(code(req("", "image/png", 1)), "filename_missing");
        assert_eq!(
            code(req(&"a".repeat(300), "image/png", 1)),
            "filename_too_long"
        );
        assert_eq!(code(req("a\0b.png", "image/png", 1)), "filename_invalid");
        assert_eq!(code(req("a.png", "", 1)), "content_type_missing");
        assert_eq!(
            code(req("a.svg", "image/svg+xml", 1)),
            "content_type_not_allowed"
        );
        assert_eq!(code(req("a.png", "image/png", 0)), "file_empty");
        assert_eq!(
            code(req("a.png", "image/png", 10 * 1024 * 1024 + 1)),
            "file_too_large"
        );
        let mut r = req("a.png", "image/png", 1);
        r.size = None;
        assert_eq!(code(r.clone()), "size_missing");
        assert!(r.validate(&l, false).is_ok());
        let mut r = req("a.png", "image/png", 1);
        r.width = Some(10);
        assert_eq!(code(r.clone()), "dimensions_invalid");
        r.height = Some(0);
        assert_eq!(code(r), "dimensions_invalid");
    }

    #[test]
    fn messages_say_what_is_allowed() {
        let e = req("a.svg", "image/svg+xml", 1)
            .validate(&limits(), true)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "SVG (image/svg+xml) is not accepted; choose a JPEG, PNG, GIF or WebP image."
        );
        let e = req("a.png", "image/png", 20 * 1024 * 1024)
            .validate(&limits(), true)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "The file is 20 MiB, larger than the 10 MiB limit; choose a smaller image."
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(900), "900 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10 MiB");
        assert_eq!(human_bytes(2000), "2 KiB");
        assert_eq!(human_bytes(1_996_000), "1.9 MiB");
    }
}
