//! A `multipart/form-data` body as a browser builds it from an upload form: the fields in
//! order, then the file last. Used by `signpost check` and by the tests.

use bytes::Bytes;

/// Returns the `Content-Type` header value and the body.
pub fn form_body(
    fields: &[(&str, &str)],
    file_name: &str,
    file_type: &str,
    file: &[u8],
) -> (String, Bytes) {
    let boundary = format!("----signpost{:032x}", rand::random::<u128>());
    let mut body = Vec::with_capacity(file.len() + 256 * (fields.len() + 1));
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                escape(name)
            )
            .as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(
        format!(
            "Content-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {file_type}\r\n\r\n",
            escape(file_name)
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

/// Browsers percent-encode `"` and line breaks in multipart names (WHATWG).
fn escape(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}
