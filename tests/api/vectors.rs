//! The AWS documentation's signing vectors, byte for byte, and property tests of the
//! policy builder.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use signpost::policy::{PostForm, PostPolicy, Signer, Version, all_fields_covered, sigv2, sigv4};
use signpost::secret::{Credentials, Secret};

const V4_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// "Example: Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)": the
/// policy as the page shows it, CRLF line ends, no trailing newline.
const V4_POLICY: &str = "{ \"expiration\": \"2015-12-30T12:00:00.000Z\",\r\n  \"conditions\": [\r\n    {\"bucket\": \"sigv4examplebucket\"},\r\n    [\"starts-with\", \"$key\", \"user/user1/\"],\r\n    {\"acl\": \"public-read\"},\r\n    {\"success_action_redirect\": \"http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html\"},\r\n    [\"starts-with\", \"$Content-Type\", \"image/\"],\r\n    {\"x-amz-meta-uuid\": \"14365123651274\"},\r\n    {\"x-amz-server-side-encryption\": \"AES256\"},\r\n    [\"starts-with\", \"$x-amz-meta-tag\", \"\"],\r\n\r\n    {\"x-amz-credential\": \"AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request\"},\r\n    {\"x-amz-algorithm\": \"AWS4-HMAC-SHA256\"},\r\n    {\"x-amz-date\": \"20151229T000000Z\" }\r\n  ]\r\n}";

/// "HTTP POST Examples" (S3 developer guide, Signature Version 2): LF line ends and a
/// trailing newline.
const V2_POLICY: &str = "{ \"expiration\": \"2007-12-01T12:00:00.000Z\",\n  \"conditions\": [\n    {\"bucket\": \"johnsmith\"},\n    [\"starts-with\", \"$key\", \"user/eric/\"],\n    {\"acl\": \"public-read\"},\n    {\"success_action_redirect\": \"http://johnsmith.s3.amazonaws.com/successful_upload.html\"},\n    [\"starts-with\", \"$Content-Type\", \"image/\"],\n    {\"x-amz-meta-uuid\": \"14365123651274\"},\n    [\"starts-with\", \"$x-amz-meta-tag\", \"\"]\n  ]\n}\n";

#[test]
fn sigv4_browser_post_example_byte_for_byte() {
    assert_eq!(V4_POLICY.len(), 648);
    assert_eq!(
        V4_POLICY.matches("\r\n").count(),
        V4_POLICY.matches('\n').count(),
        "CRLF only"
    );
    let b64 = STANDARD.encode(V4_POLICY);
    assert!(b64.starts_with("eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0K"));
    assert!(b64.ends_with("ICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9"));
    let key = sigv4::SigningKey::derive(V4_SECRET, "20151229", "us-east-1", "s3");
    assert_eq!(
        hex::encode(key.as_bytes()),
        "cbcef1ebeaefc82cce6530b9f0a9ae598846065f5c5bae0674bd5ebc4ba52d28"
    );
    assert_eq!(
        key.sign(b64.as_bytes()),
        "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
    );
}

#[test]
fn sigv2_http_post_example_byte_for_byte() {
    assert_eq!(V2_POLICY.len(), 395);
    assert!(!V2_POLICY.contains('\r') && V2_POLICY.ends_with("}\n"));
    let b64 = STANDARD.encode(V2_POLICY);
    assert!(b64.starts_with("eyAiZXhwaXJhdGlvbiI6ICIyMDA3LTEyLTAxVDEyOjAwOjAwLjAwMFoiLAog"));
    assert_eq!(
        sigv2::sign("uV3F3YluFJax1cknvbcGwgjvx4QpvB+leU8dUj2o", b64.as_bytes()),
        "0RavWzkygo6QX9caELEqKi9kDbU="
    );
}

#[test]
fn compact_sigv4_vector_from_our_serializer() {
    let expected = r#"{"expiration":"2013-08-06T12:00:00.000Z","conditions":[{"acl":"public-read"},["starts-with","$Content-Type","image/"],["starts-with","$key","user/user1/"],["starts-with","$x-amz-meta-tag",""],{"x-amz-meta-uuid":"14365123651274"},{"bucket":"examplebucket"},{"x-amz-algorithm":"AWS4-HMAC-SHA256"},{"x-amz-credential":"AKIAIOSFODNN7EXAMPLE/20130806/us-east-1/s3/aws4_request"},{"x-amz-date":"20130806T120000Z"}]}"#;
    let mut p = PostPolicy::new(Utc.with_ymd_and_hms(2013, 8, 6, 12, 0, 0).unwrap());
    p.exact("acl", "public-read")
        .starts_with("Content-Type", "image/")
        .starts_with("key", "user/user1/")
        .starts_with("x-amz-meta-tag", "")
        .exact("x-amz-meta-uuid", "14365123651274")
        .exact("bucket", "examplebucket")
        .exact("x-amz-algorithm", "AWS4-HMAC-SHA256")
        .exact(
            "x-amz-credential",
            "AKIAIOSFODNN7EXAMPLE/20130806/us-east-1/s3/aws4_request",
        )
        .exact("x-amz-date", "20130806T120000Z");
    let json = p.to_json();
    assert_eq!(std::str::from_utf8(&json).unwrap(), expected);
    let key = sigv4::SigningKey::derive(V4_SECRET, "20130806", "us-east-1", "s3");
    assert_eq!(
        key.sign(STANDARD.encode(&json).as_bytes()),
        "5bc8a7be4a6fc6445b94d0f4096f8cf3dfa00303529f8a68ea7dc0c23bb83cd9"
    );
}

#[test]
fn the_signer_reproduces_the_compact_vector_fields() {
    // The same credentials and time through the form signer: its signature must be the
    // HMAC of exactly the policy it emits.
    let signer = Signer::new(
        Version::V4,
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new(V4_SECRET),
            session_token: Some(Secret::new("TOKEN/with+chars=")),
        },
        "us-east-1",
    );
    let now = Utc.with_ymd_and_hms(2013, 8, 6, 12, 0, 0).unwrap();
    let mut form = PostForm::new(now + chrono::Duration::minutes(10));
    form.bucket("examplebucket")
        .field("key", "user/user1/a.png")
        .content_length_range(1, 10);
    let signed = signer.sign(form, now);
    let names: Vec<&str> = signed.fields.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(
        names,
        [
            "key",
            "x-amz-algorithm",
            "x-amz-credential",
            "x-amz-date",
            "x-amz-security-token",
            "policy",
            "x-amz-signature"
        ]
    );
    assert_eq!(signed.get("x-amz-date"), Some("20130806T120000Z"));
    assert_eq!(
        signed.get("x-amz-credential"),
        Some("AKIAIOSFODNN7EXAMPLE/20130806/us-east-1/s3/aws4_request")
    );
    let key = sigv4::SigningKey::derive(V4_SECRET, "20130806", "us-east-1", "s3");
    assert_eq!(
        key.sign(signed.get("policy").unwrap().as_bytes()),
        signed.get("x-amz-signature").unwrap()
    );
    let policy = String::from_utf8(signed.policy_json().unwrap()).unwrap();
    assert!(
        policy.contains(r#"{"x-amz-security-token":"TOKEN/with+chars="}"#),
        "{policy}"
    );
    all_fields_covered(&signed.fields, &signed.policy_json().unwrap()).unwrap();
}

fn v2_signer() -> Signer {
    Signer::new(
        Version::V2,
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("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"),
            session_token: None,
        },
        "us-east-1",
    )
}

#[test]
fn the_v2_form_has_the_tutorials_fields() {
    let now = Utc.with_ymd_and_hms(2007, 12, 1, 11, 50, 0).unwrap();
    let mut form = PostForm::new(now + chrono::Duration::minutes(10));
    form.bucket("johnsmith")
        .field("key", "user/eric/a.jpg")
        .field("Content-Type", "image/jpeg");
    let signer = v2_signer();
    let signed = signer.sign(form, now);
    let names: Vec<&str> = signed.fields.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(
        names,
        [
            "key",
            "Content-Type",
            "AWSAccessKeyId",
            "Policy",
            "Signature"
        ]
    );
    assert_eq!(
        sigv2::sign(
            "uV3F3YluFJax1cknvbcGwgjvx4QpvB+leU8dUj2o",
            signed.get("Policy").unwrap().as_bytes()
        ),
        signed.get("Signature").unwrap()
    );
}

proptest! {
    // Every run ends: a case that takes over 10 s fails (proptest enforces it by running the
    // cases in a child process, this test re-run), and shrinking a failure stops after 1024
    // steps or 30 s.
    #![proptest_config(ProptestConfig {
        cases: 512,
        timeout: 10_000,
        max_shrink_iters: 1024,
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_metadata_parses_back_and_every_field_is_covered(
        name in any::<String>(),
        tag in "\\PC{0,40}",
        key in "[ -~]{0,80}",
        v4 in any::<bool>(),
    ) {
        let signer = if v4 {
            Signer::new(
                Version::V4,
                Credentials {
                    access_key_id: "AKID".into(),
                    secret_access_key: Secret::new("secret"),
                    session_token: None,
                },
                "eu-west-1",
            )
        } else {
            v2_signer()
        };
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut form = PostForm::new(now + chrono::Duration::minutes(10));
        form.bucket("b").field("key", key.clone()).field("x-amz-meta-filename", name.clone());
        form.field_starting_with("x-amz-meta-tag", tag.clone(), "");
        form.content_length_range(1, 100);
        let signed = signer.sign(form, now);
        let json = signed.policy_json().unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let conditions = doc["conditions"].as_array().unwrap();
        // bucket, key, filename, tag, length range, then the signature's own.
        prop_assert_eq!(conditions.len(), if v4 { 8 } else { 5 });
        prop_assert_eq!(conditions[1]["key"].as_str(), Some(key.as_str()));
        prop_assert_eq!(conditions[2]["x-amz-meta-filename"].as_str(), Some(name.as_str()));
        let fields: Vec<(&str, String)> = signed
            .fields
            .iter()
            .map(|(name, value)| (*name, value.to_string()))
            .collect();
        prop_assert!(all_fields_covered(&fields, &json).is_ok());
    }
}
