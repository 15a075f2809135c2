//! s3s-fs as the embedded store serves it: every operation s3s-fs has, delegated as it is,
//! except where it differs from S3 in ways clients notice:
//!
//! - listings carry each object's ETag, as S3's do (s3s-fs 0.14 leaves it out, and readers
//!   compare a listed ETag with what they verified);
//! - a multipart upload id works only with the key it was created for (s3s-fs 0.14 looks
//!   at the id alone, so a part or a completion signed for one key could use another key's
//!   upload, and its stored headers);
//! - a completed multipart upload's answer has its `Location` (Uppy needs it);
//! - an object is read whole or not at all, never between the steps s3s-fs writes it in
//!   (see [`super::locks`]);
//! - a listing is never failed by a delete (s3s-fs reads each file it lists, and a file
//!   deleted in between failed the whole listing with a 500);
//! - a deleted object leaves nothing behind (s3s-fs 0.14 removes its bytes and keeps the
//!   files of its type, metadata and ETag for ever);
//! - a completion that lists its parts wrongly is refused and leaves the upload as it was,
//!   to be completed again or aborted (s3s-fs 0.14 ends the upload before it checks the
//!   parts, and keeps them on disk for ever).

use std::path::PathBuf;

use futures_util::FutureExt;
use http::{Extensions, HeaderMap, Method, Uri};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::sync::RwLock;

use super::locks::ObjectLocks;

pub struct Store {
    inner: s3s_fs::FileSystem,
    /// s3s-fs's root folder.
    root: PathBuf,
    locks: ObjectLocks,
    /// Listings share it; a delete takes it alone.
    listing: RwLock<()>,
}

impl Store {
    pub fn new(inner: s3s_fs::FileSystem, root: PathBuf) -> Self {
        Self {
            inner,
            root,
            locks: ObjectLocks::default(),
            listing: RwLock::new(()),
        }
    }

    /// A file s3s-fs 0.14 keeps about an object beside its bytes.
    fn side_file(&self, bucket: &str, key: &str, what: &str) -> PathBuf {
        self.root.join(super::names::side_file(bucket, key, what))
    }

    /// Remove the files of a deleted object's type, metadata and ETag.
    async fn forget(&self, bucket: &str, key: &str) {
        if key.ends_with('/') {
            return;
        }
        for what in ["metadata.json", "internal.json"] {
            let file = self.side_file(bucket, key, what);
            match tokio::fs::remove_file(&file).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(file = %file.display(), error = %e, "embedded store: cannot remove a deleted object's metadata");
                }
                _ => {}
            }
        }
    }

    /// Whether `upload_id` is a multipart upload of `key`: s3s-fs 0.14 keeps the headers
    /// of each upload in `.bucket-B.object-K.upload-ID.metadata.json` from its creation to
    /// its completion or abort.
    fn check_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        let id_ok = uuid::Uuid::try_parse(upload_id).is_ok_and(|u| u.to_string() == upload_id);
        let file = self.side_file(bucket, key, &format!("upload-{upload_id}.metadata.json"));
        if id_ok && file.is_file() {
            Ok(())
        } else {
            Err(s3_error!(
                NoSuchUpload,
                "The specified multipart upload does not exist for this key"
            ))
        }
    }

    /// Refuse a completion as S3 would, before s3s-fs ends the upload: at least one part,
    /// numbered from 1 without gaps, each one uploaded, each but the last at least 5 MiB.
    fn check_parts(&self, upload_id: &str, parts: Option<&[CompletedPart]>) -> S3Result<()> {
        const MIN_PART: u64 = 5 * 1024 * 1024;
        let parts = parts.unwrap_or_default();
        if parts.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let mut sizes = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            if part.part_number.and_then(|n| usize::try_from(n).ok()) != Some(i + 1) {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order, from 1 without gaps"
                ));
            }
            let file = self
                .root
                .join(format!(".upload_id-{upload_id}.part-{}", i + 1));
            let Ok(meta) = std::fs::metadata(&file) else {
                return Err(s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found"
                ));
            };
            sizes.push(meta.len());
        }
        if let Some((_last, others)) = sizes.split_last()
            && others.iter().any(|size| *size < MIN_PART)
        {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size"
            ));
        }
        Ok(())
    }

    /// The ETag s3s-fs keeps for an object (read from its metadata, not from the bytes
    /// when it has one).
    async fn etag(&self, bucket: &str, key: &str) -> Option<ETag> {
        let input = HeadObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(key.to_owned())
            .build()
            .ok()?;
        let req = S3Request {
            input,
            method: Method::HEAD,
            uri: Uri::from_static("/"),
            headers: HeaderMap::new(),
            extensions: Extensions::new(),
            credentials: None,
            region: None,
            service: None,
            trailing_headers: None,
        };
        let _whole = self.locks.read(bucket, key).await;
        self.inner.head_object(req).await.ok()?.output.e_tag
    }
}

#[async_trait::async_trait]
impl S3 for Store {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let mut resp = {
            let _no_deletes = self.listing.read().await;
            self.inner.list_objects_v2(req).await?
        };
        for object in resp.output.contents.iter_mut().flatten() {
            if object.e_tag.is_none()
                && let Some(key) = &object.key
            {
                object.e_tag = self.etag(&bucket, key).await;
            }
        }
        Ok(resp)
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let _writing = self.locks.write(&req.input.bucket, &req.input.key).await;
        self.inner.copy_object(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.inner.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let _no_listing = self.listing.write().await;
        let _writing = self.locks.write(&bucket, &key).await;
        let resp = self.inner.delete_object(req).await?;
        self.forget(&bucket, &key).await;
        Ok(resp)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let mut keys: Vec<String> = req
            .input
            .delete
            .objects
            .iter()
            .map(|o| o.key.clone())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        // One delete at a time (the listing lock), so taking several objects' locks cannot
        // deadlock: a write of another kind holds one object's lock and waits for nothing.
        let _no_listing = self.listing.write().await;
        let mut writing = Vec::with_capacity(keys.len());
        for key in &keys {
            writing.push(self.locks.write(&bucket, key).await);
        }
        let resp = self.inner.delete_objects(req).await?;
        for key in &keys {
            self.forget(&bucket, key).await;
        }
        Ok(resp)
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        // Held while the object is opened: its bytes are then read from that file, which a
        // put or a completion replaces (renames over) rather than changes. (A copy onto
        // another object writes in place; signpost copies an object only onto itself, which
        // leaves its bytes alone.)
        let _whole = self.locks.read(&req.input.bucket, &req.input.key).await;
        self.inner.get_object(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let _whole = self.locks.read(&req.input.bucket, &req.input.key).await;
        self.inner.head_object(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let _no_deletes = self.listing.read().await;
        self.inner.list_objects(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let _writing = self.locks.write(&req.input.bucket, &req.input.key).await;
        self.inner.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let i = &req.input;
        self.check_upload(&i.bucket, &i.key, &i.upload_id)?;
        self.inner.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let i = &req.input;
        self.check_upload(&i.bucket, &i.key, &i.upload_id)?;
        self.inner.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = &req.input;
        self.check_upload(&i.bucket, &i.key, &i.upload_id)?;
        self.inner.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = &req.input;
        self.check_upload(&i.bucket, &i.key, &i.upload_id)?;
        let parts = i.multipart_upload.as_ref().and_then(|m| m.parts.as_deref());
        self.check_parts(&i.upload_id, parts)?;
        // The object's URL as the client reached it (path style).
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_owned();
        let location = format!("http://{host}{}", req.uri.path());
        // s3s-fs assembles the parts before it answers (its future only carries the answer).
        let writing = self.locks.write(&req.input.bucket, &req.input.key).await;
        let mut resp = self.inner.complete_multipart_upload(req).await?;
        drop(writing);
        let out = &mut resp.output;
        match out.future.take() {
            // s3s-fs answers through a future (S3 keeps the connection alive while it
            // assembles the parts).
            Some(future) => {
                let future = future.map(move |r| {
                    r.map(|mut done| {
                        done.location = Some(location);
                        done
                    })
                });
                out.future = Some(future.boxed());
            }
            None => out.location = Some(location),
        }
        Ok(resp)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = &req.input;
        self.check_upload(&i.bucket, &i.key, &i.upload_id)?;
        self.inner.abort_multipart_upload(req).await
    }
}
