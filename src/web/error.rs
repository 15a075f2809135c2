//! Errors of the web layer. A [`Problem`] carries a status, a stable machine code and a
//! sentence for people; it renders as a full page, as an htmx-style fragment, or as JSON,
//! depending on the endpoint that failed.

use std::borrow::Cow;
use std::marker::PhantomData;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde::Serialize;

use crate::store::{ConfirmError, RejectionKind, StoreError};
use crate::upload::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no page at this address. The upload page is at /.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This address does not accept that method.",
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "Too many uploads signed from your address; try again in {} seconds.",
                    retry_after.max(1)
                ),
            )
        }
    }

    /// 429 `quota_exceeded`: the day's bytes are used; they come back at `reset`.
    pub fn quota_exceeded(
        per_day: u64,
        reset: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let wait = u64::try_from((reset - now).num_seconds())
            .unwrap_or(0)
            .max(1);
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                format!(
                    "Today's upload quota ({}) is used up; it resets at {} UTC.",
                    crate::upload::human_bytes(per_day),
                    reset.format("%Y-%m-%d %H:%M")
                ),
            )
        }
    }

    /// The title of the error page.
    pub fn title(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "This link is not valid",
            401 => "Sign-in required",
            403 => "Not allowed",
            404 => "Not found",
            405 => "Method not allowed",
            409 => "This upload changed",
            413 => "Too large",
            415 => "Unsupported type",
            422 => "This file cannot be uploaded",
            429 => "Slow down",
            502 => "The storage service answered badly",
            503 => "The storage service is unavailable",
            _ => "Something went wrong",
        }
    }

    fn headers(&self, resp: &mut HttpResponse) {
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

impl From<&StoreError> for Problem {
    fn from(e: &StoreError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut p = Self::new(
            status,
            e.code(),
            format!("{}. Try again in a moment.", capitalise(&e.to_string())),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            p.retry_after = Some(5);
        }
        p
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Self::from(&e)
    }
}

impl From<ConfirmError> for Problem {
    fn from(e: ConfirmError) -> Self {
        let status = match &e {
            ConfirmError::Store(s) => return Self::from(s),
            ConfirmError::WrongBucket | ConfirmError::KeyOutsidePrefix | ConfirmError::BadEtag => {
                StatusCode::BAD_REQUEST
            }
            ConfirmError::NotFound => StatusCode::NOT_FOUND,
            ConfirmError::EtagMismatch => StatusCode::CONFLICT,
            ConfirmError::Rejected {
                kind: RejectionKind::Link(_),
                ..
            } => StatusCode::FORBIDDEN,
            ConfirmError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.code(), capitalise(&e.to_string()))
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Validation problems: 422 for the page's fragment; the API refines the status.
impl From<ValidationError> for Problem {
    fn from(e: ValidationError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
    }
}

/// How a [`Problem`] is shown: each endpoint answers in its own format.
pub trait Format {
    fn respond(p: &Problem) -> HttpResponse;
}

/// A full HTML page, through `error.html`.
#[derive(Debug)]
pub struct Page;

/// The image-meta fragment's small `role="alert"` paragraph.
#[derive(Debug)]
pub struct Fragment;

/// `/api/*`: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct Json;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    assets: super::assets::AssetUrls,
    status: u16,
    title: &'a str,
    code: &'a str,
    message: &'a str,
}

impl Format for Page {
    fn respond(p: &Problem) -> HttpResponse {
        super::html(
            p.status,
            &ErrorPage {
                assets: super::assets::AssetUrls::unversioned(),
                status: p.status.as_u16(),
                title: p.title(),
                code: p.code,
                message: &p.message,
            },
        )
    }
}

#[derive(Template)]
#[template(path = "partials/error_fragment.html")]
struct ErrorFragment<'a> {
    code: &'a str,
    message: &'a str,
}

impl Format for Fragment {
    fn respond(p: &Problem) -> HttpResponse {
        super::html(
            p.status,
            &ErrorFragment {
                code: p.code,
                message: &p.message,
            },
        )
    }
}

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    error: ApiErrorInner<'a>,
}

#[derive(Serialize)]
struct ApiErrorInner<'a> {
    code: &'a str,
    message: &'a str,
}

impl Format for Json {
    fn respond(p: &Problem) -> HttpResponse {
        HttpResponse::build(p.status).json(ApiErrorBody {
            error: ApiErrorInner {
                code: p.code,
                message: &p.message,
            },
        })
    }
}

/// A handler's error: a problem, answered in the endpoint's format.
#[derive(Debug)]
pub struct Refusal<F>(pub Problem, PhantomData<F>);

pub type PageError = Refusal<Page>;
pub type FragmentError = Refusal<Fragment>;
pub type ApiError = Refusal<Json>;

impl<F> Refusal<F> {
    pub fn new(p: Problem) -> Self {
        Self(p, PhantomData)
    }
}

impl<F> std::fmt::Display for Refusal<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.code, self.0.message)
    }
}

impl<F: Format + std::fmt::Debug> ResponseError for Refusal<F> {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = F::respond(&self.0);
        self.0.headers(&mut resp);
        resp
    }
}

impl<F, T: Into<Problem>> From<T> for Refusal<F> {
    fn from(p: T) -> Self {
        Self::new(p.into())
    }
}

/// A problem outside any handler (no route, wrong method): JSON under `/api/`, a page
/// elsewhere.
pub fn respond_for_path(path: &str, p: &Problem) -> HttpResponse {
    let mut resp = if path.starts_with("/api/") {
        Json::respond(p)
    } else {
        Page::respond(p)
    };
    p.headers(&mut resp);
    resp
}

impl ApiError {
    /// The API's statuses for validation problems: 415 for a type that is not accepted,
    /// 413 for a file over the limit, 422 for the rest.
    pub fn validation(e: ValidationError) -> Self {
        let status = match e {
            ValidationError::ContentTypeNotAllowed { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ValidationError::FileTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(Problem::new(status, e.code(), e.to_string()))
    }
}
