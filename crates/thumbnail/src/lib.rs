//! Thumbnails from the pixels that signpost's verification decoded: the longest side brought
//! down to each size (never up), the EXIF orientation applied, encoded afresh (so no
//! metadata, GPS included, survives). Opaque images become JPEG; images with transparency
//! lossless WebP. Pure and CPU-bound.
//!
//! A crate of its own so that it is compiled optimised in test builds too: the resizer's
//! and the encoder's generic code is instantiated here, and unoptimised it is a hundred
//! times slower (seconds for one camera photo).

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageEncoder, RgbImage, RgbaImage};

/// The longest sides made: 400 px for the gallery, 800 px for screens of double density.
pub const SIZES: [u32; 2] = [400, 800];
/// JPEG quality: what vipsthumbnail and most image services default to, near enough.
const JPEG_QUALITY: u8 = 80;

/// A decoded image, how its camera says to turn it, and the colour profile its pixels are
/// in (a phone's Display P3, a camera's Adobe RGB), if it carries one.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub pixels: DynamicImage,
    pub orientation: Orientation,
    /// Carried into the thumbnails: without it their pixels would be read as sRGB, and
    /// their colours shift.
    pub icc_profile: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbnailFormat {
    Jpeg,
    /// Lossless: kept for images with transparency (PNG, GIF, WebP).
    Webp,
}

impl ThumbnailFormat {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    pub fn from_mime(mime: &str) -> Option<Self> {
        [Self::Jpeg, Self::Webp]
            .into_iter()
            .find(|f| f.mime() == mime)
    }
}

/// One thumbnail: `size` is the longest side it was made for (one of [`SIZES`]); `width`
/// and `height` are its own, after orientation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub format: ThumbnailFormat,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a thumbnail could not be made: {0}")]
pub struct ThumbnailError(String);

/// The pixels, 8-bit, with or without an alpha channel.
enum Pixels {
    Rgb(Image<'static>),
    Rgba(Image<'static>),
}

impl Pixels {
    fn from(image: DynamicImage) -> Result<Self, ThumbnailError> {
        let (w, h) = (image.width(), image.height());
        let fir = |buf: Vec<u8>, t: PixelType| {
            Image::from_vec_u8(w, h, buf, t).map_err(|e| ThumbnailError(e.to_string()))
        };
        // `into_rgb8` of an RGB8 image (most photos) moves its buffer rather than copying it.
        if image.color().has_alpha() {
            let rgba = image.into_rgba8();
            if rgba.pixels().all(|p| p.0[3] == u8::MAX) {
                let rgb = DynamicImage::ImageRgba8(rgba).into_rgb8();
                return Ok(Self::Rgb(fir(rgb.into_raw(), PixelType::U8x3)?));
            }
            Ok(Self::Rgba(fir(rgba.into_raw(), PixelType::U8x4)?))
        } else {
            Ok(Self::Rgb(fir(
                image.into_rgb8().into_raw(),
                PixelType::U8x3,
            )?))
        }
    }

    fn image(&self) -> &Image<'static> {
        match self {
            Self::Rgb(i) | Self::Rgba(i) => i,
        }
    }

    fn resized(&self, resizer: &mut Resizer, w: u32, h: u32) -> Result<Self, ThumbnailError> {
        let src = self.image();
        let mut dst = Image::new(w, h, src.pixel_type());
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        resizer
            .resize(src, &mut dst, &options)
            .map_err(|e| ThumbnailError(e.to_string()))?;
        Ok(match self {
            Self::Rgb(_) => Self::Rgb(dst),
            Self::Rgba(_) => Self::Rgba(dst),
        })
    }

    /// Turned as the orientation says, and encoded with the colour profile, if any.
    fn encode(
        &self,
        orientation: Orientation,
        icc_profile: Option<&[u8]>,
    ) -> Result<(u32, u32, ThumbnailFormat, Vec<u8>), ThumbnailError> {
        let src = self.image();
        let (w, h) = (src.width(), src.height());
        let buf = src.buffer().to_vec();
        let bad = || ThumbnailError("the resized pixels do not fill the image".into());
        let mut image = match self {
            Self::Rgb(_) => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, buf).ok_or_else(bad)?),
            Self::Rgba(_) => {
                DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, buf).ok_or_else(bad)?)
            }
        };
        image.apply_orientation(orientation);
        let (w, h) = (image.width(), image.height());
        let mut out = Vec::new();
        match image {
            DynamicImage::ImageRgb8(rgb) => {
                let side = |v: u32| {
                    u16::try_from(v).map_err(|_| ThumbnailError("too wide for JPEG".into()))
                };
                let mut encoder = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
                if let Some(icc) = icc_profile {
                    encoder
                        .add_icc_profile(icc)
                        .map_err(|e| ThumbnailError(e.to_string()))?;
                }
                encoder
                    .encode(
                        rgb.as_raw(),
                        side(w)?,
                        side(h)?,
                        jpeg_encoder::ColorType::Rgb,
                    )
                    .map_err(|e| ThumbnailError(e.to_string()))?;
                Ok((w, h, ThumbnailFormat::Jpeg, out))
            }
            other => {
                let rgba = other.into_rgba8();
                let mut encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
                if let Some(icc) = icc_profile {
                    encoder
                        .set_icc_profile(icc.to_vec())
                        .map_err(|e| ThumbnailError(e.to_string()))?;
                }
                encoder
                    .write_image(rgba.as_raw(), w, h, ExtendedColorType::Rgba8)
                    .map_err(|e| ThumbnailError(e.to_string()))?;
                Ok((w, h, ThumbnailFormat::Webp, out))
            }
        }
    }
}

/// The width and height that bring the longest side of `w` × `h` down to `size`.
fn fit(w: u32, h: u32, size: u32) -> (u32, u32) {
    let longest = w.max(h);
    if longest <= size {
        return (w, h);
    }
    let scale = |v: u32| {
        let scaled = (u64::from(v) * u64::from(size) + u64::from(longest) / 2) / u64::from(longest);
        // At most `size`, so it fits a u32; at least one pixel.
        u32::try_from(scaled).unwrap_or(size).max(1)
    };
    (scale(w), scale(h))
}

/// One thumbnail for each of `sizes` that differs from the smaller ones (a small image gets
/// one, at its own size). The largest is resized from the original, each smaller one from
/// the one above it, which is cheaper and looks the same.
pub fn thumbnails(decoded: Decoded, sizes: &[u32]) -> Result<Vec<Thumbnail>, ThumbnailError> {
    let (w, h) = (decoded.pixels.width(), decoded.pixels.height());
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable();
    // Each size with its dimensions, without repeats (sizes beyond the image's own give it).
    let mut plan: Vec<(u32, (u32, u32))> = Vec::new();
    for size in sizes {
        let dims = fit(w, h, size);
        if plan.last().is_none_or(|(_, d)| *d != dims) {
            plan.push((size, dims));
        }
    }
    let mut resizer = Resizer::new();
    let mut current = Pixels::from(decoded.pixels)?;
    let mut made = Vec::with_capacity(plan.len());
    for (size, (tw, th)) in plan.into_iter().rev() {
        let (cw, ch) = (current.image().width(), current.image().height());
        if (cw, ch) != (tw, th) {
            current = current.resized(&mut resizer, tw, th)?;
        }
        let (width, height, format, bytes) =
            current.encode(decoded.orientation, decoded.icc_profile.as_deref())?;
        made.push(Thumbnail {
            size,
            width,
            height,
            format,
            bytes,
        });
    }
    made.reverse();
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gradient photo, encoded as JPEG and decoded again, as verification hands it over.
    fn photo(w: u32, h: u32) -> DynamicImage {
        let img = RgbImage::from_fn(w, h, |x, y| {
            // Truncation to u8 is the point: a repeating gradient.
            image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode_image(&img)
            .unwrap();
        image::load_from_memory(&jpeg).unwrap()
    }

    fn decoded(image: DynamicImage) -> Decoded {
        Decoded {
            pixels: image,
            orientation: Orientation::NoTransforms,
            icc_profile: None,
        }
    }

    #[test]
    fn fit_keeps_the_aspect_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 400), (400, 300));
        assert_eq!(fit(3000, 4000, 800), (600, 800));
        assert_eq!(fit(300, 200, 400), (300, 200));
        assert_eq!(fit(10_000, 1, 400), (400, 1));
    }

    #[test]
    fn a_photo_gets_two_jpegs_without_metadata() {
        let photo = photo(1600, 1200);
        let made = thumbnails(decoded(photo), &SIZES).unwrap();
        let dims: Vec<_> = made.iter().map(|t| (t.size, t.width, t.height)).collect();
        assert_eq!(dims, [(400, 400, 300), (800, 800, 600)]);
        for t in &made {
            assert_eq!(t.format, ThumbnailFormat::Jpeg);
            let back = image::load_from_memory(&t.bytes).unwrap();
            assert_eq!((back.width(), back.height()), (t.width, t.height));
            assert!(!t.bytes.windows(4).any(|w| w == b"Exif"));
        }
    }

    #[test]
    fn transparency_is_kept_and_an_opaque_alpha_channel_is_not() {
        let mut rgba = RgbaImage::from_pixel(900, 300, image::Rgba([10, 200, 30, 128]));
        let made = thumbnails(decoded(DynamicImage::ImageRgba8(rgba.clone())), &SIZES).unwrap();
        assert!(made.iter().all(|t| t.format == ThumbnailFormat::Webp));
        let back = image::load_from_memory(&made[0].bytes).unwrap();
        assert_eq!(back.to_rgba8().get_pixel(5, 5).0[3], 128);
        for p in rgba.pixels_mut() {
            p.0[3] = 255;
        }
        let made = thumbnails(decoded(DynamicImage::ImageRgba8(rgba)), &SIZES).unwrap();
        assert!(made.iter().all(|t| t.format == ThumbnailFormat::Jpeg));
    }

    #[test]
    fn the_colour_profile_goes_with_the_pixels() {
        let profile = b"a colour profile, as the camera embedded it".to_vec();
        for pixels in [
            photo(900, 600),
            DynamicImage::ImageRgba8(RgbaImage::from_pixel(900, 600, image::Rgba([1, 2, 3, 4]))),
        ] {
            let made = thumbnails(
                Decoded {
                    icc_profile: Some(profile.clone()),
                    ..decoded(pixels)
                },
                &SIZES,
            )
            .unwrap();
            for t in &made {
                assert!(
                    t.bytes.windows(profile.len()).any(|w| w == profile),
                    "{:?} without the profile",
                    t.format
                );
            }
        }
    }

    #[test]
    fn a_small_image_gets_one_thumbnail_at_its_own_size() {
        let small = photo(64, 48);
        let made = thumbnails(decoded(small), &SIZES).unwrap();
        assert_eq!(made.len(), 1);
        assert_eq!((made[0].size, made[0].width, made[0].height), (400, 64, 48));
    }

    #[test]
    fn the_orientation_is_applied() {
        let photo = photo(1600, 1200);
        let made = thumbnails(
            Decoded {
                pixels: photo,
                orientation: Orientation::Rotate90,
                icc_profile: None,
            },
            &SIZES,
        )
        .unwrap();
        let dims: Vec<_> = made.iter().map(|t| (t.width, t.height)).collect();
        assert_eq!(dims, [(300, 400), (600, 800)]);
    }
}
