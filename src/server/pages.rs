//! The web pages, compiled into the binary so `serve` needs nothing beside it: the storefront
//! demo with the widget (`/`), the widget script (`/widget.js`), the agent console (`/agent`) and
//! the merchant console (`/merchant`). Plain HTML and JavaScript, no build step.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

fn page(
    content_type: &'static str,
    body: &'static str,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone {
    move || {
        std::future::ready(
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response(),
        )
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(page(HTML, include_str!("../../web/index.html"))))
        .route(
            "/widget.js",
            get(page(JS, include_str!("../../web/widget.js"))),
        )
        .route(
            "/agent",
            get(page(HTML, include_str!("../../web/agent.html"))),
        )
        .route(
            "/agent.js",
            get(page(JS, include_str!("../../web/agent.js"))),
        )
        .route(
            "/merchant",
            get(page(HTML, include_str!("../../web/merchant.html"))),
        )
        .route(
            "/merchant.js",
            get(page(JS, include_str!("../../web/merchant.js"))),
        )
        .route(
            "/console.css",
            get(page(CSS, include_str!("../../web/console.css"))),
        )
}
