//! What a stored file really is: its type from its bytes, its dimensions from its header,
//! the pixel limit, and a structure that holds together (every PNG chunk and its CRC, a JPEG
//! that reaches its end marker, a GIF trailer, a WebP RIFF size), then a full decode under a
//! memory limit, whose pixels make the thumbnails. Pure: the caller brings the bytes.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::Decoded;
use crate::upload::{Dimensions, ImageType};

/// What decoding may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Images with more pixels are refused (a claimed size counts: pixel bombs).
    pub max_pixels: u64,
    /// The decoder's allocations; an image that needs more is checked from its structure
    /// only, and shown without a decoded thumbnail.
    pub max_alloc: u64,
}

/// A file that passed: what it is, and its pixels when they were decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub image_type: ImageType,
    pub dimensions: Dimensions,
    /// None when the bytes were only a prefix of the file, or decoding would have needed
    /// more memory than allowed: the header and structure checks passed.
    pub pixels: Option<Decoded>,
}

/// Why a file is refused. Each is certain: the bytes themselves say so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the file is not an image signpost accepts (its first bytes match no JPEG, PNG, GIF or WebP header)"
    )]
    NotAnImage,
    #[error("the image claims {dimensions} pixels, more than the {max} pixels allowed")]
    TooManyPixels { dimensions: Dimensions, max: u64 },
    #[error("the image is broken ({0})")]
    Broken(String),
}

fn broken(why: impl Into<String>) -> VerifyError {
    VerifyError::Broken(why.into())
}

/// Verify `bytes`, the file's first bytes (`complete`: all of them). Its type comes from
/// the bytes; whether it is allowed, and what it was stored as, is the caller's question.
pub fn verify(
    bytes: &[u8],
    complete: bool,
    limits: &DecodeLimits,
) -> Result<Verified, VerifyError> {
    let actual = ImageType::sniff(bytes).ok_or(VerifyError::NotAnImage)?;
    let dimensions = header_dimensions(bytes, actual)?;
    let pixels = u64::from(dimensions.width) * u64::from(dimensions.height);
    if pixels > limits.max_pixels {
        return Err(VerifyError::TooManyPixels {
            dimensions,
            max: limits.max_pixels,
        });
    }
    if !complete {
        return Ok(Verified {
            image_type: actual,
            dimensions,
            pixels: None,
        });
    }
    match actual {
        ImageType::Png => png_chunks(bytes)?,
        ImageType::Jpeg => jpeg_markers(bytes)?,
        ImageType::Gif => gif_trailer(bytes)?,
        ImageType::Webp => riff_size(bytes)?,
    }
    let pixels = decode(bytes, actual, dimensions, limits)?;
    Ok(Verified {
        image_type: actual,
        dimensions,
        pixels,
    })
}

/// Width and height from the header alone.
fn header_dimensions(bytes: &[u8], t: ImageType) -> Result<Dimensions, VerifyError> {
    let size = imagesize::blob_size(bytes)
        .map_err(|e| broken(format!("its {} header cannot be read: {e}", t.label())))?;
    let width = u32::try_from(size.width).map_err(|_| broken("its width is out of range"))?;
    let height = u32::try_from(size.height).map_err(|_| broken("its height is out of range"))?;
    if width == 0 || height == 0 {
        return Err(broken("its header says it has no pixels"));
    }
    Ok(Dimensions { width, height })
}

/// Every chunk whole with a matching CRC, IHDR first (13 bytes), IEND last.
fn png_chunks(b: &[u8]) -> Result<(), VerifyError> {
    let mut at = 8;
    let mut first = true;
    loop {
        let Some(head) = b.get(at..at + 8) else {
            return Err(broken("it ends before its IEND chunk (truncated)"));
        };
        let len = usize::try_from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))
            .map_err(|_| broken("a chunk length is out of range"))?;
        let kind = &head[4..8];
        let end = at
            .checked_add(8)
            .and_then(|x| x.checked_add(len))
            .and_then(|x| x.checked_add(4))
            .ok_or_else(|| broken("a chunk length is out of range"))?;
        let Some(chunk) = b.get(at + 4..end) else {
            return Err(broken("its last chunk is cut short (truncated)"));
        };
        let (data, crc) = chunk.split_at(chunk.len() - 4);
        let mut hasher = flate2::Crc::new();
        hasher.update(data);
        if hasher.sum().to_be_bytes() != crc {
            return Err(broken(format!(
                "the CRC of its {} chunk does not match",
                String::from_utf8_lossy(kind)
            )));
        }
        if first && (kind != b"IHDR" || len != 13) {
            return Err(broken("its first chunk is not a 13-byte IHDR"));
        }
        first = false;
        at = end;
        if kind == b"IEND" {
            return Ok(());
        }
    }
}

/// JPEG markers from SOI, through each scan's entropy-coded data, to EOI. Bytes after EOI are
/// allowed (cameras append trailers); a file that stops before it is truncated.
fn jpeg_markers(b: &[u8]) -> Result<(), VerifyError> {
    let truncated = || broken("it ends before its end-of-image marker (truncated)");
    let mut i = 2;
    loop {
        if b.get(i) != Some(&0xFF) {
            return Err(broken("a marker is missing where one must be"));
        }
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *b.get(i).ok_or_else(truncated)?;
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Restart markers and TEM carry no length.
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let len = b
            .get(i..i + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
            .ok_or_else(truncated)?;
        if len < 2 {
            return Err(broken("a segment has an impossible length"));
        }
        i += len;
        if i > b.len() {
            return Err(truncated());
        }
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a
            // restart marker.
            loop {
                let p = b[i..]
                    .iter()
                    .position(|&x| x == 0xFF)
                    .ok_or_else(truncated)?;
                i += p;
                match b.get(i + 1) {
                    None => return Err(truncated()),
                    Some(0x00 | 0xD0..=0xD7 | 0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

fn gif_trailer(b: &[u8]) -> Result<(), VerifyError> {
    if b.last() == Some(&0x3B) {
        Ok(())
    } else {
        Err(broken("it ends before its trailer (truncated)"))
    }
}

/// The RIFF header's size covers the file (a pad byte aside).
fn riff_size(b: &[u8]) -> Result<(), VerifyError> {
    let declared = b
        .get(4..8)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])) + 8)
        .ok_or_else(|| broken("its RIFF header is cut short"))?;
    let len = b.len() as u64;
    if declared > len {
        return Err(broken(
            "it is shorter than its RIFF header says (truncated)",
        ));
    }
    if declared + 1 < len {
        return Err(broken("it has data beyond what its RIFF header covers"));
    }
    Ok(())
}

/// Decode the first frame under the limits; `Ok(None)` when it would need more memory
/// than allowed.
fn decode(
    bytes: &[u8],
    t: ImageType,
    dimensions: Dimensions,
    limits: &DecodeLimits,
) -> Result<Option<Decoded>, VerifyError> {
    let format = match t {
        ImageType::Jpeg => ImageFormat::Jpeg,
        ImageType::Png => ImageFormat::Png,
        ImageType::Gif => ImageFormat::Gif,
        ImageType::Webp => ImageFormat::WebP,
    };
    // Four bytes a pixel (RGBA8) is what most decodes need; 16-bit PNGs take twice that,
    // which the decoder's own allocation limit catches.
    let pixels = u64::from(dimensions.width) * u64::from(dimensions.height);
    if pixels.saturating_mul(4) > limits.max_alloc {
        return Ok(None);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = Limits::default();
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| broken(format!("its header does not decode: {e}")))?;
    let (w, h) = decoder.dimensions();
    if (w, h) != (dimensions.width, dimensions.height) {
        return Err(broken(format!(
            "its decoder sees {w} × {h}, its header says {dimensions}"
        )));
    }
    // An orientation that cannot be read is no reason to refuse the pixels.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    match DynamicImage::from_decoder(decoder) {
        Ok(pixels) => Ok(Some(Decoded {
            pixels,
            orientation,
        })),
        Err(image::ImageError::Limits(_)) => Ok(None),
        Err(e) => Err(broken(format!("its pixels do not decode: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    const LIMITS: DecodeLimits = DecodeLimits {
        max_pixels: 50_000_000,
        max_alloc: 256 * 1024 * 1024,
    };

    /// Verify a whole file that should be a `t`.
    fn check(bytes: &[u8], t: ImageType) -> Result<Verified, VerifyError> {
        let v = verify(bytes, true, &LIMITS)?;
        assert_eq!(v.image_type, t);
        Ok(v)
    }

    #[test]
    fn real_images_pass_with_their_header_dimensions() {
        let png = testdata::png(30, 20);
        let v = check(&png, ImageType::Png).unwrap();
        assert_eq!(
            v.dimensions,
            Dimensions {
                width: 30,
                height: 20
            }
        );
        assert!(v.pixels.is_some());
        let jpeg = testdata::jpeg(64, 48);
        let v = check(&jpeg, ImageType::Jpeg).unwrap();
        assert_eq!(
            v.dimensions,
            Dimensions {
                width: 64,
                height: 48
            }
        );
        assert!(v.pixels.is_some());
        assert!(
            check(&testdata::gif(), ImageType::Gif)
                .unwrap()
                .pixels
                .is_some()
        );
    }

    #[test]
    fn the_type_comes_from_the_bytes() {
        let png = testdata::png(3, 2);
        assert_eq!(
            verify(&png, true, &LIMITS).map(|v| v.image_type),
            Ok(ImageType::Png)
        );
        assert_eq!(
            check(&testdata::svg_script(), ImageType::Png),
            Err(VerifyError::NotAnImage)
        );
    }

    #[test]
    fn a_pixel_bomb_is_refused_from_its_header() {
        let bomb = testdata::png_claiming(100_000, 100_000);
        assert!(matches!(
            check(&bomb, ImageType::Png),
            Err(VerifyError::TooManyPixels { .. })
        ));
        // Even when only a prefix was read.
        assert!(matches!(
            verify(&bomb[..64], false, &LIMITS),
            Err(VerifyError::TooManyPixels { .. })
        ));
    }

    #[test]
    fn truncated_and_corrupt_files_are_broken() {
        let png = testdata::png(40, 30);
        for cut in [png.len() - 1, png.len() - 12, png.len() / 2, 40] {
            assert!(
                matches!(
                    check(&png[..cut], ImageType::Png),
                    Err(VerifyError::Broken(_))
                ),
                "cut at {cut}"
            );
        }
        let mut flipped = png.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        assert!(matches!(
            check(&flipped, ImageType::Png),
            Err(VerifyError::Broken(_))
        ));

        let jpeg = testdata::jpeg(64, 48);
        for cut in [jpeg.len() - 2, jpeg.len() / 2] {
            assert!(
                matches!(
                    check(&jpeg[..cut], ImageType::Jpeg),
                    Err(VerifyError::Broken(_))
                ),
                "cut at {cut}"
            );
        }
        let mut trailer = jpeg.clone();
        trailer.extend_from_slice(b"camera trailer");
        assert!(check(&trailer, ImageType::Jpeg).is_ok());

        let gif = testdata::gif();
        assert!(check(&gif[..gif.len() - 1], ImageType::Gif).is_err());
    }

    #[test]
    fn an_image_too_large_to_decode_is_checked_from_its_structure() {
        let png = testdata::png(200, 200);
        let small = DecodeLimits {
            max_pixels: 50_000_000,
            max_alloc: 1000,
        };
        let v = verify(&png, true, &small).unwrap();
        assert!(v.pixels.is_none());
    }

    #[test]
    fn riff_sizes() {
        assert!(riff_size(b"RIFF\x04\0\0\0WEBP").is_ok());
        assert!(riff_size(b"RIFF\x10\0\0\0WEBP").is_err());
    }
}
