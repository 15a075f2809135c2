//! What a stored file really is: its type from its bytes, its dimensions from its header
//! (as shown, turned by its EXIF orientation), the pixel limit, and a structure that holds
//! together (every PNG chunk and its CRC, a JPEG that reaches its end marker, a GIF trailer,
//! a WebP RIFF size), then a full decode under a memory limit, whose pixels make the
//! thumbnails. Pure: the caller brings the bytes.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, ImageResult, Limits};

use super::Decoded;
use crate::upload::{Dimensions, ImageType};

/// The largest colour profile carried into the thumbnails.
const MAX_ICC_PROFILE_BYTES: usize = 1024 * 1024;

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
    /// As shown: the header's width and height, swapped when the EXIF orientation turns
    /// the image a quarter (browsers and the thumbnails show it turned).
    pub dimensions: Dimensions,
    /// None when the bytes were only a prefix of the file, or decoding would have needed
    /// more memory than allowed: the header and structure checks passed. The pixels are
    /// as stored, not turned: their orientation is beside them.
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
    // As stored: turning changes no pixel count.
    let dimensions = header_dimensions(bytes, actual)?;
    let pixels = u64::from(dimensions.width) * u64::from(dimensions.height);
    if pixels > limits.max_pixels {
        return Err(VerifyError::TooManyPixels {
            dimensions,
            max: limits.max_pixels,
        });
    }
    if !complete {
        // The orientation is in the first bytes when it is there at all (JPEG APP1, PNG
        // eXIf before IDAT); one that cannot be read leaves the image as stored.
        let orientation = decoder(bytes, actual, limits)
            .and_then(|mut d| d.orientation())
            .unwrap_or(Orientation::NoTransforms);
        return Ok(Verified {
            image_type: actual,
            dimensions: shown(dimensions, orientation),
            pixels: None,
        });
    }
    match actual {
        ImageType::Png => png_chunks(bytes)?,
        ImageType::Jpeg => jpeg_markers(bytes)?,
        ImageType::Gif => gif_trailer(bytes)?,
        ImageType::Webp => riff_size(bytes)?,
    }
    let (orientation, pixels) = decode(bytes, actual, dimensions, limits)?;
    Ok(Verified {
        image_type: actual,
        dimensions: shown(dimensions, orientation),
        pixels,
    })
}

/// The dimensions of an image stored as `stored`, turned as `orientation` says.
fn shown(stored: Dimensions, orientation: Orientation) -> Dimensions {
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => Dimensions {
            width: stored.height,
            height: stored.width,
        },
        Orientation::NoTransforms
        | Orientation::Rotate180
        | Orientation::FlipHorizontal
        | Orientation::FlipVertical => stored,
    }
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

/// A decoder for `bytes`, its headers read, under the allocation limit.
fn decoder<'a>(
    bytes: &'a [u8],
    t: ImageType,
    limits: &DecodeLimits,
) -> ImageResult<impl ImageDecoder + 'a> {
    let format = match t {
        ImageType::Jpeg => ImageFormat::Jpeg,
        ImageType::Png => ImageFormat::Png,
        ImageType::Gif => ImageFormat::Gif,
        ImageType::Webp => ImageFormat::WebP,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = Limits::default();
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    reader.into_decoder()
}

/// The orientation, and the first frame decoded under the limits: `None` when it would
/// need more memory than allowed.
fn decode(
    bytes: &[u8],
    t: ImageType,
    dimensions: Dimensions,
    limits: &DecodeLimits,
) -> Result<(Orientation, Option<Decoded>), VerifyError> {
    let mut decoder = decoder(bytes, t, limits)
        .map_err(|e| broken(format!("its header does not decode: {e}")))?;
    let (w, h) = decoder.dimensions();
    if (w, h) != (dimensions.width, dimensions.height) {
        return Err(broken(format!(
            "its decoder sees {w} × {h}, its header says {dimensions}"
        )));
    }
    // Read before the memory check: an image too large to decode is still shown turned.
    // An orientation that cannot be read is no reason to refuse the pixels.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    // The decoded buffer is what the decoder says its pixels take (a 16-bit RGBA PNG: eight
    // bytes a pixel), and at least four bytes a pixel, the RGBA the thumbnails convert to.
    // This check is what holds the limit: `DynamicImage::from_decoder` does not reserve
    // the buffer against `Limits` in image 0.25, and the PNG decoder ignores `max_alloc`.
    let pixels = u64::from(w) * u64::from(h);
    if decoder.total_bytes().max(pixels.saturating_mul(4)) > limits.max_alloc {
        return Ok((orientation, None));
    }
    // A profile larger than any real one (they are a few kilobytes) is not carried along.
    let icc_profile = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|p| p.len() <= MAX_ICC_PROFILE_BYTES);
    match DynamicImage::from_decoder(decoder) {
        Ok(pixels) => Ok((
            orientation,
            Some(Decoded {
                pixels,
                orientation,
                icc_profile,
            }),
        )),
        Err(image::ImageError::Limits(_)) => Ok((orientation, None)),
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

    /// A `size` × `size` RGBA PNG, 16 bits a channel when `sixteen`.
    fn png_rgba(size: u32, sixteen: bool) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        if sixteen {
            image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_pixel(
                size,
                size,
                image::Rgba([40_000, 20_000, 10_000, 65_535]),
            )
            .write_to(&mut out, ImageFormat::Png)
        } else {
            image::RgbaImage::from_pixel(size, size, image::Rgba([160, 80, 40, 255]))
                .write_to(&mut out, ImageFormat::Png)
        }
        .unwrap();
        out.into_inner()
    }

    #[test]
    fn a_16_bit_image_is_held_to_the_memory_limit_by_its_real_size() {
        // 400 × 400: 640 000 bytes at 8 bits a channel, 1 280 000 at 16.
        let limits = DecodeLimits {
            max_pixels: 50_000_000,
            max_alloc: 1 << 20,
        };
        let deep = verify(&png_rgba(400, true), true, &limits).unwrap();
        assert_eq!(deep.image_type, ImageType::Png);
        assert!(
            deep.pixels.is_none(),
            "16-bit: checked from its structure only"
        );
        let v = verify(&png_rgba(400, false), true, &limits).unwrap();
        assert!(v.pixels.is_some(), "8-bit: decoded");
    }

    #[test]
    fn dimensions_are_as_displayed_after_the_exif_orientation() {
        let landscape = Dimensions {
            width: 900,
            height: 600,
        };
        let portrait = Dimensions {
            width: 600,
            height: 900,
        };
        for (orientation, shown) in [
            (1, landscape),
            (3, landscape),
            (5, portrait),
            (6, portrait),
            (7, portrait),
            (8, portrait),
        ] {
            let jpeg = testdata::jpeg_oriented(900, 600, orientation);
            let v = check(&jpeg, ImageType::Jpeg).unwrap();
            assert_eq!(v.dimensions, shown, "orientation {orientation}");
            // The pixels stay as stored, with the orientation for the thumbnails to apply.
            let d = v.pixels.unwrap();
            assert_eq!((d.pixels.width(), d.pixels.height()), (900, 600));
            assert_eq!(
                d.orientation,
                image::metadata::Orientation::from_exif(orientation as u8).unwrap()
            );
            // Too large to decode, or only a prefix read: shown the same way.
            let small = DecodeLimits {
                max_pixels: 50_000_000,
                max_alloc: 1000,
            };
            let v = verify(&jpeg, true, &small).unwrap();
            assert!(v.pixels.is_none());
            assert_eq!(
                v.dimensions, shown,
                "orientation {orientation}, not decoded"
            );
            let v = verify(&jpeg, false, &LIMITS).unwrap();
            assert_eq!(v.dimensions, shown, "orientation {orientation}, a prefix");
        }
        // The pixel limit counts the stored pixels, which turning does not change.
        let tight = DecodeLimits {
            max_pixels: 900 * 600,
            max_alloc: LIMITS.max_alloc,
        };
        assert!(verify(&testdata::jpeg_oriented(900, 600, 6), true, &tight).is_ok());
    }

    #[test]
    fn riff_sizes() {
        assert!(riff_size(b"RIFF\x04\0\0\0WEBP").is_ok());
        assert!(riff_size(b"RIFF\x10\0\0\0WEBP").is_err());
    }
}
