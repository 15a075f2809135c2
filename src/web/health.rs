use actix_web::HttpResponse;

/// `GET /healthz`: the process serves. Signing does not need the store, so neither does this.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body("ok\n")
}
