//! Presigned URLs of the requests of a multipart upload, for a browser to send (Uppy 6's
//! `signRequest`): SigV4 query signatures (rusty-s3) for the bucket as browsers reach it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusty_s3::S3Action;
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, ListParts, UploadPart,
};
use url::Url;

use super::StoreTarget;

/// One request of a multipart upload of `key`.
#[derive(Debug, Clone, Copy)]
pub enum MultipartRequest<'a> {
    /// `POST ?uploads`, signed with these headers (`Content-Type`, `x-amz-meta-*`): the
    /// browser must send them exactly.
    Create {
        headers: &'a [(String, String)],
    },
    Part {
        upload_id: &'a str,
        part_number: u16,
    },
    Complete {
        upload_id: &'a str,
    },
    Abort {
        upload_id: &'a str,
    },
    ListParts {
        upload_id: &'a str,
    },
}

fn timestamp(at: DateTime<Utc>) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(at.timestamp_millis())
        .unwrap_or_else(|_| jiff::Timestamp::now())
}

/// Sign `request` for `key` at `at`, valid for `ttl`.
pub fn presign(
    target: &StoreTarget,
    key: &str,
    request: MultipartRequest<'_>,
    at: DateTime<Utc>,
    ttl: Duration,
) -> Url {
    let (bucket, creds, at) = (&target.bucket, Some(&target.credentials), &timestamp(at));
    match request {
        MultipartRequest::Create { headers } => {
            let mut action = CreateMultipartUpload::new(bucket, creds, key);
            for (name, value) in headers {
                action
                    .headers_mut()
                    .insert(name.to_ascii_lowercase(), value.clone());
            }
            action.sign_with_time(ttl, at)
        }
        MultipartRequest::Part {
            upload_id,
            part_number,
        } => UploadPart::new(bucket, creds, key, part_number, upload_id).sign_with_time(ttl, at),
        MultipartRequest::Complete { upload_id } => {
            CompleteMultipartUpload::new(bucket, creds, key, upload_id, std::iter::empty())
                .sign_with_time(ttl, at)
        }
        MultipartRequest::Abort { upload_id } => {
            AbortMultipartUpload::new(bucket, creds, key, upload_id).sign_with_time(ttl, at)
        }
        MultipartRequest::ListParts { upload_id } => {
            ListParts::new(bucket, creds, key, upload_id).sign_with_time(ttl, at)
        }
    }
}
