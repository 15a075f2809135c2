//! `signpost presign`: the same signed fields as `POST /api/presign`, printed as JSON for a
//! script or `curl -F` (the file goes last: `-F file=@photo.png`).

use crate::config::{PresignArgs, Settings};
use crate::store::{Backend, public_url};
use crate::upload::{Clock, Completion, UploadRequest, Uploader};

/// The JSON, or a message for the user.
pub fn presign(settings: &Settings, args: &PresignArgs, clock: Clock) -> Result<String, String> {
    let request = UploadRequest {
        filename: Some(args.filename.clone()),
        content_type: Some(args.content_type.clone()),
        size: args.size,
        width: args.width,
        height: args.height,
        owner: None,
        alt: None,
    };
    if !crate::identity::valid_owner(&args.owner) {
        return Err(format!("--owner {:?} is not a user name", args.owner));
    }
    let valid = request
        .validate(&settings.limits, false)
        .map_err(|e| format!("{} ({})", e, e.code()))?;
    let public = public_url(settings, settings.bind).map_err(|e| e.to_string())?;
    let backend = Backend::connect(settings, &public).map_err(|e| e.to_string())?;
    let presigner = backend
        .presigner(settings, &public)
        .map_err(|e| e.to_string())?;
    let signed = presigner.presign(
        &valid,
        Completion::Created,
        clock,
        &Uploader::new(args.owner.clone()),
    );
    serde_json::to_string(&signed.answer()).map_err(|e| e.to_string())
}
