//! The hot path, piece by piece: signing (SigV4 cold and cached, SigV2), building and
//! serialising the policy, presigning a whole upload, rendering the image-meta partial, and
//! the whole fragment handler through the actix test service.

use std::hint::black_box;
use std::time::Duration;

use actix_web::test as atest;
use actix_web::web;
use askama::Template;
use base64::Engine;
use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use signpost::config::{Config, Settings};
use signpost::policy::{PostForm, Signer, Version, sigv2, sigv4};
use signpost::secret::{Credentials, Secret};
use signpost::store::{Backend, public_url};
use signpost::upload::{
    Clock, Completion, ImageType, KeyPrefix, Limits, Presigner, UploadRequest, Uploader,
};
use signpost::web::fragment::ImageMetaFragment;
use signpost::web::index::MetaView;
use signpost::web::startup::{app, state};

// The binary's allocator, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new(SECRET),
        session_token: None,
    }
}

fn presigner(version: Version) -> Presigner {
    Presigner {
        signer: Signer::new(version, credentials(), "us-east-1"),
        bucket: "signpost".into(),
        form_url: "http://127.0.0.1:9000/signpost".into(),
        redirect_url: "http://127.0.0.1:8080/uploaded".into(),
        prefix: KeyPrefix::parse("uploads/").expect("valid prefix"),
        limits: Limits {
            allowed: ImageType::ALL.to_vec(),
            max_bytes: 10 * 1024 * 1024,
            max_name: signpost::upload::MAX_SAFE_NAME,
        },
        ttl: Duration::from_secs(600),
        acl: None,
    }
}

fn form(now: chrono::DateTime<Utc>) -> PostForm {
    let mut f = PostForm::new(now + chrono::Duration::minutes(10));
    f.bucket("signpost")
        .field(
            "key",
            "uploads/fe5ddab2-7fcb-86a3-9339-5115a5e46ae4/holiday-photo.png",
        )
        .field("Content-Type", "image/png")
        .field("success_action_redirect", "http://127.0.0.1:8080/uploaded")
        .field("x-amz-meta-filename", "Holiday photo.png")
        .field("x-amz-meta-width", "4032")
        .field("x-amz-meta-height", "3024")
        .content_length_range(1, 10 * 1024 * 1024);
    f
}

fn signing(c: &mut Criterion) {
    let now = Utc::now();
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(b"{\"expiration\":\"2026-01-01T00:00:00.000Z\",\"conditions\":[{\"bucket\":\"signpost\"},{\"key\":\"uploads/fe5ddab2-7fcb-86a3-9339-5115a5e46ae4/holiday-photo.png\"},{\"Content-Type\":\"image/png\"},[\"content-length-range\",1,10485760]]}");
    let mut g = c.benchmark_group("sign");
    g.bench_function("sigv4_cold_key", |b| {
        b.iter(|| {
            let key = sigv4::SigningKey::derive(black_box(SECRET), "20260101", "us-east-1", "s3");
            key.sign(black_box(policy_b64.as_bytes()))
        })
    });
    let cache = sigv4::KeyCache::new("AKID", Secret::new(SECRET), "us-east-1");
    g.bench_function("sigv4_cached_key", |b| {
        b.iter(|| cache.day(now).key.sign(black_box(policy_b64.as_bytes())))
    });
    g.bench_function("sigv2", |b| {
        b.iter(|| sigv2::sign(black_box(SECRET), black_box(policy_b64.as_bytes())))
    });
    g.finish();

    let mut g = c.benchmark_group("policy");
    g.bench_function("build_and_serialise", |b| {
        b.iter(|| {
            let mut p = signpost::policy::PostPolicy::new(now);
            p.exact("bucket", "signpost")
                .exact(
                    "key",
                    "uploads/fe5ddab2-7fcb-86a3-9339-5115a5e46ae4/holiday-photo.png",
                )
                .exact("Content-Type", "image/png")
                .exact("success_action_redirect", "http://127.0.0.1:8080/uploaded")
                .exact("x-amz-meta-filename", "Holiday photo.png")
                .content_length_range(1, 10 * 1024 * 1024)
                .exact("x-amz-algorithm", "AWS4-HMAC-SHA256")
                .exact(
                    "x-amz-credential",
                    "AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/s3/aws4_request",
                )
                .exact("x-amz-date", "20260101T000000Z");
            p.to_json()
        })
    });
    let signer = Signer::new(Version::V4, credentials(), "us-east-1");
    g.bench_function("sign_form_v4", |b| b.iter(|| signer.sign(form(now), now)));
    g.finish();

    let p4 = presigner(Version::V4);
    let p2 = presigner(Version::V2);
    let request = UploadRequest {
        filename: Some("Holiday photo.png".into()),
        content_type: Some("image/png".into()),
        size: Some(2_345_678),
        width: Some(4032),
        height: Some(3024),
        owner: None,
        alt: None,
    };
    let mut g = c.benchmark_group("presign");
    g.bench_function("validate_and_presign_v4", |b| {
        b.iter(|| {
            let valid = request.validate(&p4.limits, true).expect("valid");
            p4.presign(
                &valid,
                Completion::Redirect,
                Clock::System,
                &Uploader::anonymous(),
            )
        })
    });
    g.bench_function("validate_and_presign_v2", |b| {
        b.iter(|| {
            let valid = request.validate(&p2.limits, true).expect("valid");
            p2.presign(
                &valid,
                Completion::Redirect,
                Clock::System,
                &Uploader::anonymous(),
            )
        })
    });
    let valid = request.validate(&p4.limits, true).expect("valid");
    g.bench_function("render_image_meta_partial", |b| {
        b.iter_batched(
            || {
                p4.presign(
                    &valid,
                    Completion::Redirect,
                    Clock::System,
                    &Uploader::anonymous(),
                )
            },
            |signed| {
                ImageMetaFragment {
                    meta: MetaView::new(signed, None),
                }
                .render()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn handler(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::embedded(dir.path());
    config.bind = "127.0.0.1:8080".parse().expect("addr");
    config.embedded_s3_bind = "127.0.0.1:0".parse().expect("addr");
    let settings = Settings::from_config(config, None, None).expect("settings");
    let public = public_url(&settings, settings.bind).expect("public url");
    let backend = Backend::start(&settings, &public).expect("embedded store");
    let st = web::Data::new(state(settings, public, &backend, Clock::System).expect("state"));
    let sys = actix_web::rt::System::new();
    let svc = sys.block_on(atest::init_service(app(st)));
    let mut g = c.benchmark_group("handler");
    for (name, uri) in [
        ("healthz", "/healthz"),
        (
            "fragment_image_meta",
            "/fragments/image-meta?filename=Holiday%20photo.png&content_type=image%2Fpng&size=2345678&width=4032&height=3024",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                sys.block_on(async {
                    let resp =
                        atest::call_service(&svc, atest::TestRequest::get().uri(uri).to_request())
                            .await;
                    assert!(resp.status().is_success());
                    atest::read_body(resp).await
                })
            })
        });
    }
    g.finish();
    drop(backend);
}

criterion_group!(benches, signing, handler);
criterion_main!(benches);
