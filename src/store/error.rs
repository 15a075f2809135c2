use std::time::Duration;

/// What went wrong talking to the store. Messages name the endpoint, never a URL with a
/// signature or token in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the storage service at {endpoint} is unreachable ({detail})")]
    Unreachable { endpoint: String, detail: String },
    #[error("the storage service at {endpoint} did not answer within {} ms", .after.as_millis())]
    Timeout { endpoint: String, after: Duration },
    #[error("the storage service refused the request: {status} {code}{}", message_suffix(.message))]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the storage service failed: {status} {code}{}", message_suffix(.message))]
    Failed {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the storage service sent an answer signpost cannot read ({0})")]
    BadResponse(String),
}

fn message_suffix(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {m}")
    }
}

impl StoreError {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "store_unreachable",
            Self::Timeout { .. } => "store_timeout",
            Self::Refused { .. } => "store_refused",
            Self::Failed { .. } => "store_failed",
            Self::BadResponse(_) => "store_bad_response",
        }
    }

    /// Whether the store itself cannot be reached (as opposed to one request going wrong).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Timeout { .. })
    }

    /// 503 when the store cannot be reached (try again later), 502 when it answered badly.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => 503,
            Self::Refused { .. } | Self::Failed { .. } | Self::BadResponse(_) => 502,
        }
    }

    /// Pull the `<Code>` and `<Message>` out of an S3 error body, bounded and printable.
    pub(crate) fn from_status(status: u16, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
        let tag = |name: &str| -> String {
            let open = format!("<{name}>");
            let close = format!("</{name}>");
            text.split_once(&open)
                .and_then(|(_, rest)| rest.split_once(&close))
                .map(|(v, _)| v.chars().filter(|c| !c.is_control()).take(200).collect())
                .unwrap_or_default()
        };
        let code = tag("Code");
        let message = tag("Message");
        let code = if code.is_empty() {
            "UnknownError".to_owned()
        } else {
            code
        };
        if status >= 500 {
            Self::Failed {
                status,
                code,
                message,
            }
        } else {
            Self::Refused {
                status,
                code,
                message,
            }
        }
    }
}
