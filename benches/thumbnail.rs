//! What a confirmation costs in CPU, per image, against vipsthumbnail (libvips) on the same
//! files in the same run: a 12-megapixel camera-like JPEG and a 4-megapixel PNG.
//!
//! - `…/signpost`: verification (structure, a full decode) and both thumbnails (400 and 800
//!   px) from that one decode: everything signpost does with the bytes.
//! - `…/vipsthumbnail`: `vipsthumbnail FILE -s 800` to a JPEG at quality 80, one process per
//!   image (shrink-on-load decode, one size, no verification).
//! - `vips_start`: vipsthumbnail on a 1 × 1 PNG, its start-up, to subtract.
//!
//! The vips cases are skipped when `vipsthumbnail` is not installed (Debian's
//! `libvips-tools`; `scripts/bench` installs it and prints the ratios).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use signpost::imaging::{DecodeLimits, SIZES, thumbnails, verify};
use signpost::testdata;
use signpost::upload::ImageType;

const LIMITS: DecodeLimits = DecodeLimits {
    max_pixels: 50_000_000,
    max_alloc: 512 * 1024 * 1024,
};

fn vips_available() -> bool {
    Command::new("vipsthumbnail")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn vipsthumbnail(file: &Path, out: &Path) {
    let status = Command::new("vipsthumbnail")
        .arg(file)
        .args(["-s", "800", "-o"])
        .arg(format!("{}/v_%s.jpg[Q=80,strip]", out.display()))
        .status()
        .expect("vipsthumbnail runs");
    assert!(status.success());
}

fn files(dir: &Path) -> Vec<(&'static str, ImageType, Vec<u8>, std::path::PathBuf)> {
    let jpeg = testdata::photo(4000, 3000, 7);
    let png = {
        let rgb = image::load_from_memory(&testdata::photo(2400, 1700, 9))
            .expect("the photo decodes")
            .into_rgb8();
        let mut out = Vec::new();
        rgb.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encoding into memory cannot fail");
        out
    };
    let mut v = Vec::new();
    for (name, t, bytes, file) in [
        ("jpeg_12mp", ImageType::Jpeg, jpeg, "photo12mp.jpg"),
        ("png_4mp", ImageType::Png, png, "photo4mp.png"),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, &bytes).expect("the bench file is written");
        v.push((name, t, bytes, path));
    }
    v
}

fn thumbnail(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let vips = vips_available();
    if !vips {
        eprintln!(
            "vipsthumbnail is not installed (apt-get install libvips-tools): its cases are skipped"
        );
    }
    let mut g = c.benchmark_group("thumbnail");
    g.sample_size(10);
    for (name, t, bytes, path) in files(dir.path()) {
        eprintln!("{name}: {} bytes", bytes.len());
        g.bench_function(format!("{name}_signpost"), |b| {
            b.iter(|| {
                let verified = verify(black_box(&bytes), true, &LIMITS).expect("verifies");
                assert_eq!(verified.image_type, t);
                let pixels = verified.pixels.expect("decoded");
                thumbnails(pixels, &SIZES).expect("thumbnails")
            })
        });
        if vips {
            g.bench_function(format!("{name}_vipsthumbnail"), |b| {
                b.iter(|| vipsthumbnail(&path, dir.path()))
            });
        }
    }
    if vips {
        let tiny = dir.path().join("tiny.png");
        std::fs::write(&tiny, testdata::png(1, 1)).expect("written");
        g.bench_function("vips_start", |b| {
            b.iter(|| vipsthumbnail(&tiny, dir.path()))
        });
    }
    g.finish();
}

criterion_group!(benches, thumbnail);
criterion_main!(benches);
