//! The upload domain, pure like the signing core: which images are allowed, how a request
//! is validated, how object keys and metadata are formed, how a stored file is verified,
//! and the one code path that turns a validated request into a signed form.

mod alt;
mod image;
mod key;
pub mod multipart;
mod presign;
mod request;

pub use alt::{MAX_ALT_CHARS, default_alt, parse_alt};
pub use image::{Dimensions, ImageType};
pub use key::{
    KeyPrefix, MAX_SAFE_NAME, MIN_SAFE_NAME, ObjectKey, UploadId, decode_metadata, encode_metadata,
    is_valid_key_char, safe_file_name,
};
pub use presign::{
    Clock, Completion, FormFields, PresignAnswer, Presigner, SignedUpload, Uploader,
};
pub use request::{Limits, UploadRequest, ValidUpload, ValidationError, human_bytes};
