//! Real image files for tests, benches and `signpost check`, generated in memory.

use std::io::Write;

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
