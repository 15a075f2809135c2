//! Where browsers (and event receivers) fetch images: under `--public-base-url`, or by
//! presigned GETs from the bucket as browsers reach it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

use super::thumbnails::ThumbnailRef;
use super::{Confirmed, StoreTarget, client};

/// A thumbnail as the confirm API and the events give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbnailLink {
    pub width: u32,
    pub height: u32,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct ImageUrls {
    browser_target: Arc<StoreTarget>,
    public_base: Option<Url>,
}

impl ImageUrls {
    pub fn new(browser_target: Arc<StoreTarget>, public_base: Option<Url>) -> Self {
        Self {
            browser_target,
            public_base,
        }
    }

    fn public(&self, key: &str) -> Option<String> {
        let base = self.public_base.as_ref()?;
        Some(base.join(key).map(String::from).unwrap_or_default())
    }

    /// An upload's original.
    pub fn original(&self, key: &str, content_type: &str) -> String {
        self.public(key).unwrap_or_else(|| {
            client::presigned_get(&self.browser_target, key, Some(content_type)).into()
        })
    }

    /// A thumbnail: its URL stays the same for an hour, so browsers keep it (the object
    /// says `immutable`).
    pub fn thumbnail(&self, t: &ThumbnailRef) -> String {
        self.public(&t.key)
            .unwrap_or_else(|| client::presigned_get_hourly(&self.browser_target, &t.key).into())
    }

    /// An upload's thumbnails, smallest first, with their URLs signed now.
    pub fn thumbnail_links(&self, c: &Confirmed) -> Vec<ThumbnailLink> {
        c.thumbnails
            .iter()
            .flatten()
            .map(|t| ThumbnailLink {
                width: t.width,
                height: t.height,
                url: self.thumbnail(t),
            })
            .collect()
    }
}
