//! Real image files for tests, benches and `signpost check`, generated in memory.

use std::io::Write;

use image::ImageEncoder;

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(&out[start..]);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A valid RGB PNG of `width` × `height` pixels (a colour gradient), which browsers decode.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    png_compressed(width, height, flate2::Compression::fast())
}

/// [`png`] without compression: about 3 bytes a pixel, for files of camera sizes.
pub fn png_uncompressed(width: u32, height: u32) -> Vec<u8> {
    png_compressed(width, height, flate2::Compression::none())
}

fn png_compressed(width: u32, height: u32, level: flate2::Compression) -> Vec<u8> {
    let mut raw = Vec::with_capacity((height as usize) * (1 + 3 * width as usize));
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            // Truncation to u8 is the point: a repeating gradient.
            raw.extend_from_slice(&[(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), level);
    z.write_all(&raw).expect("writing into memory cannot fail");
    let idat = z.finish().expect("writing into memory cannot fail");

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolour, deflate, no filter, no interlace

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A PNG whose header claims `width` × `height` pixels over a few bytes of data: a pixel
/// bomb, whose decoder would allocate for every pixel it claims.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&[0u8; 4096])
        .expect("writing into memory cannot fail");
    let idat = z.finish().expect("writing into memory cannot fail");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A baseline JPEG of `width` × `height` pixels (a colour gradient) at quality 85.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        // Truncation to u8 is the point: a repeating gradient.
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encoding into memory cannot fail");
    out
}

/// A 1 × 1 GIF.
pub fn gif() -> Vec<u8> {
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec()
}

/// Bytes that are text pretending to be an image.
pub fn svg_script() -> Vec<u8> {
    br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"></svg>"#.to_vec()
}

/// A JPEG whose EXIF says how to turn it (`orientation` 1–8; 6: turn 90° clockwise), with a
/// GPS position beside it, as phones write them. The pixels are stored `width` × `height`.
pub fn jpeg_oriented(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let plain = jpeg(width, height);
    // TIFF, big-endian: IFD0 with Orientation and a GPS IFD pointer, then a GPS IFD with
    // GPSLatitudeRef = "N".
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
    tiff.extend_from_slice(&2u16.to_be_bytes());
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    let gps_ifd: u32 = 8 + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1]);
    tiff.extend_from_slice(&gps_ifd.to_be_bytes());
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&[0x00, 0x01, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    with_segment(&plain, 0xE1, &app1)
}

/// `jpeg` with one more segment (`marker`, its `payload`) right after its start marker.
fn with_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).unwrap_or(u16::MAX);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A JPEG that carries `profile` as its ICC colour profile (one APP2 segment), as phones
/// embed Display P3.
pub fn jpeg_with_icc(width: u32, height: u32, profile: &[u8]) -> Vec<u8> {
    let mut app2 = b"ICC_PROFILE\0\x01\x01".to_vec();
    app2.extend_from_slice(profile);
    with_segment(&jpeg(width, height), 0xE2, &app2)
}

/// A PNG with an alpha channel: a gradient whose left half is `alpha` (0: clear).
pub fn png_translucent(width: u32, height: u32, alpha: u8) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(width, height, |x, y| {
        let a = if x < width / 2 { alpha } else { u8::MAX };
        // Truncation to u8 is the point: a repeating gradient.
        image::Rgba([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8, a])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgba8)
        .expect("encoding into memory cannot fail");
    out
}

/// A camera-like JPEG: a gradient under per-pixel noise, so that it does not compress below
/// camera sizes (12 megapixels at quality 90 make about 5 MB). `seed` varies the noise.
pub fn photo(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut s = seed ^ 0x9e37_79b9;
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = s >> 25;
        // Truncation to u8 is the point: gradient plus noise, wrapping.
        image::Rgb([
            ((x * 255 / width.max(1)) + n) as u8,
            ((y * 255 / height.max(1)) + (n >> 1)) as u8,
            (n * 3 + x) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encoding into memory cannot fail");
    out
}

/// A PNG of noise: it does not compress, so its size is about 3 × `width` × `height`.
pub fn png_noise(width: u32, height: u32) -> Vec<u8> {
    let mut s: u32 = 0x2545_f491;
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        let [a, b, c, _] = s.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .expect("encoding into memory cannot fail");
    out
}
