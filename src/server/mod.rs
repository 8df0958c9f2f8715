//! The HTTP front. For now: `/healthz`, reporting the loaded intent model, `/v1/classify` for
//! trying the model from a browser or curl, and `/v1/faq/search` over a shop's FAQ. Websockets,
//! storage and the pages come with the server issue.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::knowledge::{self, Knowledge, KnowledgeError};
use crate::nlu::IntentModel;

/// What handlers share.
pub struct AppState {
    pub model: IntentModel,
    pub knowledge: Knowledge,
}

/// The router, separate from binding so tests can drive it directly.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/classify", get(classify))
        .route("/v1/faq/search", get(faq_search))
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "intent_model": {
            "labels": state.model.labels().len(),
            "features": state.model.meta.features,
            "threshold": state.model.meta.threshold,
        }
    }))
}

#[derive(Deserialize)]
struct ClassifyQuery {
    text: String,
}

async fn classify(State(state): State<Arc<AppState>>, Query(q): Query<ClassifyQuery>) -> Response {
    let state = state.clone();
    // A forward pass is CPU work: keep it off the async workers.
    let result = tokio::task::spawn_blocking(move || state.model.classify(&q.text)).await;
    match result {
        Ok(Ok(mut p)) => {
            p.ranked.truncate(5);
            Json(p).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct FaqQuery {
    shop: String,
    text: String,
    k: Option<usize>,
}

async fn faq_search(State(state): State<Arc<AppState>>, Query(q): Query<FaqQuery>) -> Response {
    let state = state.clone();
    let k = q.k.unwrap_or(5).min(50);
    let result = tokio::task::spawn_blocking(move || {
        state
            .knowledge
            .search(&q.shop, &q.text, k, knowledge::now())
    })
    .await;
    match result {
        Ok(Ok(hits)) => Json(hits).into_response(),
        Ok(Err(e @ KnowledgeError::UnknownShop(_))) => {
            (StatusCode::NOT_FOUND, e.to_string()).into_response()
        }
        Ok(Err(e @ KnowledgeError::InvalidShop(_))) => {
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serve until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
