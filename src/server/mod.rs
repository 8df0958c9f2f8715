//! The HTTP front. For now: `/healthz`, reporting the loaded intent model, `/v1/classify` for
//! trying the model from a browser or curl, `/v1/faq/search` over a shop's FAQ, and
//! `POST /v1/message`, one shopper message through the dialogue engine (conversations kept in
//! memory, handoffs queued). Websockets, storage and the pages come with the server issue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub mod ws;

use crate::dialog::{ConfigWatch, Context, Conversation, Decision, DialogError, Engine};
use crate::handoff::{HandoffStore, MemoryHandoff, Ticket};
use crate::knowledge::{self, KnowledgeError};
use crate::store::ChatStore;

/// What handlers share.
pub struct AppState {
    pub engine: Engine,
    pub handoff: MemoryHandoff,
    /// The dialogue config file to follow, if any.
    pub config: Option<ConfigWatch>,
    /// Open websocket conversations and their event logs.
    pub sessions: ws::Sessions,
    /// Where conversations and events are kept.
    pub store: Arc<dyn ChatStore>,
}

impl AppState {
    pub fn new(engine: Engine, config: Option<ConfigWatch>, store: Arc<dyn ChatStore>) -> Self {
        AppState {
            engine,
            handoff: MemoryHandoff::new(),
            config,
            sessions: ws::Sessions::new(),
            store,
        }
    }
}

impl AppState {
    /// One shopper message through the engine, the way every front (HTTP, websocket) does it:
    /// follow the config file, decide with the agents free now, keep the conversation, and queue
    /// the handoff the decision asks for.
    pub fn decide(
        &self,
        conv: &mut Conversation,
        text: &str,
        now: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<Decision, DialogError> {
        if let Some(watch) = &self.config {
            watch.refresh(&self.engine);
        }
        let ctx = Context {
            now,
            agents_available: self.handoff.agents().iter().filter(|a| a.free()).count(),
        };
        let decision = self.engine.respond(conv, text, &ctx)?;
        self.handoff.save(conv);
        if let Some(ticket) = Ticket::from_decision(conv, &decision, now) {
            self.handoff.enqueue(ticket, now);
        }
        Ok(decision)
    }
}

/// Longest shopper message accepted, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// The router, separate from binding so tests can drive it directly.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/classify", get(classify))
        .route("/v1/faq/search", get(faq_search))
        .route("/v1/message", post(message))
        .route("/v1/ws", get(ws::shopper))
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "protocol_versions": ws::VERSIONS,
        "intent_model": {
            "labels": state.engine.intents().labels().len(),
            "features": state.engine.intents().meta.features,
            "threshold": state.engine.intents().meta.threshold,
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
    let result =
        tokio::task::spawn_blocking(move || state.engine.intents().classify(&q.text)).await;
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
            .engine
            .knowledge()
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

#[derive(Deserialize)]
struct MessageIn {
    shop: String,
    /// Omitted for a new conversation; the reply carries the id to send next time.
    conversation: Option<String>,
    text: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

pub(crate) fn new_conversation_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("c-{nanos:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn message(State(state): State<Arc<AppState>>, Json(m): Json<MessageIn>) -> Response {
    if let Err(e) = knowledge::check_shop(&m.shop) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    if !state.engine.knowledge().has_shop(&m.shop) {
        return error(StatusCode::NOT_FOUND, format!("unknown shop '{}'", m.shop));
    }
    let chars = m.text.chars().count();
    if chars == 0 || chars > MAX_MESSAGE_CHARS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("text must be 1 to {MAX_MESSAGE_CHARS} characters, got {chars}"),
        );
    }
    let state = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let now = knowledge::now();
        let mut conv = match &m.conversation {
            Some(id) => match state.handoff.conversation(id) {
                Some(c) if c.shop == m.shop => c,
                _ => {
                    return Err((
                        StatusCode::NOT_FOUND,
                        format!("unknown conversation '{id}'"),
                    ))
                }
            },
            None => Conversation::new(new_conversation_id(), m.shop.clone()),
        };
        let decision = state
            .decide(&mut conv, &m.text, now)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(serde_json::json!({ "conversation": conv.id, "decision": decision }))
    })
    .await;
    match result {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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
