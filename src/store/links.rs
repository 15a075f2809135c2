//! Upload links in the bucket: their records (`.signpost/links/<id>.json`), the markers of
//! the uploads they confirmed (their budget), and the link key every instance shares.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use super::{S3Client, StoreError};
use crate::identity::links::{
    LINK_KEY_OBJECT, LINKS_PREFIX, LinkError, LinkRecord, confirmed_key, confirmed_prefix,
    record_key,
};
use crate::secret::Secret;

/// Largest link record read back.
const MAX_RECORD: usize = 16 * 1024;

pub async fn read(client: &S3Client, id: &str) -> Result<Option<LinkRecord>, StoreError> {
    let Some(bytes) = client.get(&record_key(id), MAX_RECORD).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&bytes).ok())
}

pub async fn write(client: &S3Client, record: &LinkRecord) -> Result<(), StoreError> {
    // A struct of strings, numbers and times serializes without failing.
    let json = serde_json::to_vec_pretty(record).unwrap_or_default();
    client
        .put(
            &record_key(&record.link.id),
            Bytes::from(json),
            "application/json",
        )
        .await
}

/// Every link's record.
pub async fn list(client: &S3Client) -> Result<Vec<LinkRecord>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client.list(LINKS_PREFIX, after.as_deref(), 1000).await?;
        for o in &page.objects {
            let Some(id) = o
                .key
                .strip_prefix(LINKS_PREFIX)
                .and_then(|k| k.strip_suffix(".json"))
            else {
                continue;
            };
            if id.contains('/') {
                continue;
            }
            if let Some(r) = read(client, id).await? {
                out.push(r);
            }
        }
        match (page.truncated, page.objects.last()) {
            (true, Some(last)) => after = Some(last.key.clone()),
            _ => return Ok(out),
        }
    }
}

/// How many uploads a link has confirmed, counting at most `up_to`.
pub async fn used(client: &S3Client, id: &str, up_to: usize) -> Result<usize, StoreError> {
    let page = client.list(&confirmed_prefix(id), None, up_to).await?;
    Ok(page.objects.len())
}

/// Count one confirmed upload against its link's budget, or refuse it: the first
/// `uploads` markers (in the order the uploads were signed) are the ones that count, so two
/// instances confirming at once cannot both take the last place.
pub async fn claim(
    client: &S3Client,
    id: &str,
    signed_at_ms: i64,
    upload_id: &str,
) -> Result<Result<(), LinkError>, StoreError> {
    let Some(record) = read(client, id).await? else {
        return Ok(Err(LinkError::Invalid));
    };
    let budget = record.link.uploads as usize;
    let marker = confirmed_key(id, signed_at_ms, upload_id);
    if client.head(&marker).await?.is_some() {
        return Ok(Ok(()));
    }
    if used(client, id, budget).await? >= budget {
        return Ok(Err(LinkError::Exhausted));
    }
    client
        .put(&marker, Bytes::from_static(b"{}"), "application/json")
        .await?;
    let counted = client
        .list(&confirmed_prefix(id), None, budget)
        .await?
        .objects;
    if counted.iter().any(|o| o.key == marker) {
        Ok(Ok(()))
    } else {
        client.delete(&marker).await?;
        Ok(Err(LinkError::Exhausted))
    }
}

/// The link key: `--link-key`, or the one kept in the bucket, made on first use.
pub async fn link_key(
    client: &S3Client,
    configured: Option<&Secret>,
) -> Result<Secret, StoreError> {
    if let Some(k) = configured {
        return Ok(k.clone());
    }
    if let Some(bytes) = client.get(LINK_KEY_OBJECT, 1024).await? {
        return Ok(Secret::new(String::from_utf8_lossy(&bytes).trim()));
    }
    let key = STANDARD.encode(rand::random::<[u8; 32]>());
    client
        .put(LINK_KEY_OBJECT, Bytes::from(key), "text/plain")
        .await?;
    // Another instance may have made one at the same moment: use what the bucket holds.
    let stored = client
        .get(LINK_KEY_OBJECT, 1024)
        .await?
        .ok_or_else(|| StoreError::BadResponse("the link key vanished".into()))?;
    Ok(Secret::new(String::from_utf8_lossy(&stored).trim()))
}
