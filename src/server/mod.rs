//! The HTTP front. For now: `/healthz`, reporting the loaded intent model, `/v1/classify` for
//! trying the model from a browser or curl, `/v1/faq/search` over a shop's FAQ, and
//! `POST /v1/message`, one shopper message through the dialogue engine (conversations kept in
//! memory, handoffs queued). Websockets, storage and the pages come with the server issue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub mod admin;
pub mod agent;
pub mod auth;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod ws;

use crate::dialog::{
    Action, ConfigWatch, Context, Conversation, Decision, DialogError, Engine, Speaker,
};
use crate::handoff::{HandoffStore, MemoryHandoff, Ticket};
use crate::knowledge;
use crate::store::ChatStore;
use error::ServerError;

/// What happens on the server that agent connections follow: one channel for all, each
/// connection keeps what concerns its agent.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A new event in a conversation (shopper, bot or agent).
    Event {
        conversation: String,
        event: crate::domain::Event,
    },
    /// Someone in a conversation is typing.
    Typing { conversation: String, from: Speaker },
    /// Queues or assignments changed: agents refresh their view.
    Queues,
}

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
    /// Everything agent connections follow.
    pub bus: tokio::sync::broadcast::Sender<Notice>,
    /// Open agent connections per agent, so the last one to close marks the agent away.
    pub agent_connections: dashmap::DashMap<String, usize>,
    /// How long a life-care chat may wait before it escalates (then twice that: a supervisor).
    pub escalate_after: chrono::Duration,
    /// Set when the server stops: websocket connections close themselves (code 1012).
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Open websocket connections, so shutdown can wait for them to close.
    pub open_sockets: std::sync::atomic::AtomicUsize,
    /// Connections and messages per client address.
    pub per_ip: Arc<limits::IpLimiter>,
    /// Serve `/v1/echo` (for the load benchmark).
    pub echo: bool,
}

/// Counts an open websocket connection for as long as it lives.
pub(crate) struct SocketGuard<'a>(&'a AtomicUsize);

impl<'a> SocketGuard<'a> {
    pub(crate) fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        SocketGuard(count)
    }
}

impl Drop for SocketGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The close frame every websocket gets when the server stops: 1012, "service restart", tells
/// clients to reconnect (and resume) shortly.
pub(crate) fn going_away() -> axum::extract::ws::Message {
    axum::extract::ws::Message::Close(Some(axum::extract::ws::CloseFrame {
        code: 1012,
        reason: "server restarting; reconnect and resume".into(),
    }))
}

impl AppState {
    /// `handoff` is [`MemoryHandoff::durable`] over the same store in a server, plain memory in
    /// tests that do not restart. Per-IP limits are the defaults; see [`AppState::with_limits`].
    pub fn new(
        engine: Engine,
        config: Option<ConfigWatch>,
        store: Arc<dyn ChatStore>,
        handoff: MemoryHandoff,
    ) -> Self {
        // Install the recorder before anything is counted.
        metrics::handle();
        AppState {
            engine,
            handoff,
            config,
            sessions: ws::Sessions::new(),
            store,
            bus: tokio::sync::broadcast::channel(4096).0,
            agent_connections: dashmap::DashMap::new(),
            escalate_after: chrono::Duration::seconds(60),
            shutdown: tokio::sync::watch::channel(false).0,
            open_sockets: AtomicUsize::new(0),
            per_ip: Arc::new(limits::IpLimiter::new(limits::Limits::default())),
            echo: false,
        }
    }

    pub fn with_echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    pub fn with_limits(mut self, limits: limits::Limits) -> Self {
        self.per_ip = Arc::new(limits::IpLimiter::new(limits));
        self
    }

    /// One shopper message through the engine, the way every front (HTTP, websocket) does it:
    /// follow the config file, decide with the agents free now, keep the conversation, and queue
    /// the handoff the decision asks for (assigning it at once if an agent is free).
    pub fn decide(
        &self,
        conv: &mut Conversation,
        text: &str,
        now: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<Decision, DialogError> {
        let started = std::time::Instant::now();
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
            metrics::handoff(&ticket.reason.name());
            self.handoff.enqueue(ticket, now);
            self.dispatch(now);
        }
        metrics::decision(
            action_kind(&decision.action),
            started.elapsed().as_secs_f64(),
        );
        // The intent model ran (risk and owner rules decide before it): which tier answered.
        if !decision.trace.intents.is_empty() {
            metrics::intent_tier(decision.trace.tier.as_str());
        }
        Ok(decision)
    }

    /// Escalate life-care chats that waited too long and give waiting chats to free agents;
    /// tell agent connections when anything changed.
    pub fn dispatch(&self, now: chrono::DateTime<chrono::FixedOffset>) {
        let escalated = self.handoff.escalate(now, self.escalate_after);
        let assigned = self.handoff.assign(now);
        if !escalated.is_empty() || !assigned.is_empty() {
            let _ = self.bus.send(Notice::Queues);
        }
    }
}

pub(crate) fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::Answer { .. } => "answer",
        Action::AskFor { .. } => "ask_for",
        Action::Clarify { .. } => "clarify",
        Action::Handoff { .. } => "handoff",
        Action::Closed { .. } => "closed",
        Action::Silent => "silent",
    }
}

/// Where a browser request comes from, for the shop's embed allow-list.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    origin: Option<String>,
    host: Option<String>,
}

impl Origin {
    pub fn of(headers: &axum::http::HeaderMap) -> Origin {
        let get = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim_end_matches('/').to_string())
        };
        Origin {
            origin: get(axum::http::header::ORIGIN),
            host: get(axum::http::header::HOST),
        }
    }

    /// Requests without an `Origin` (not from a browser page) and from honeydesk's own pages
    /// pass; a page elsewhere must be on the shop's list. A browser cannot forge `Origin`, which
    /// is what makes the list mean something.
    pub fn allowed(&self, embed: &crate::store::Embed) -> bool {
        let Some(origin) = &self.origin else {
            return true;
        };
        let same_site = self
            .host
            .as_ref()
            .is_some_and(|h| *origin == format!("http://{h}") || *origin == format!("https://{h}"));
        same_site
            || embed
                .origins
                .iter()
                .any(|o| o.trim_end_matches('/') == origin)
    }
}

pub use crate::text::MAX_MESSAGE_CHARS;

/// The router, separate from binding so tests can drive it directly.
pub fn app(state: Arc<AppState>) -> Router {
    let router = if state.echo {
        Router::new().route("/v1/echo", get(echo))
    } else {
        Router::new()
    };
    router
        .route("/healthz", get(healthz))
        .route("/v1/classify", get(classify))
        .route("/v1/faq/search", get(faq_search))
        .route("/v1/message", post(message))
        .route("/v1/ws", get(ws::shopper))
        .route("/v1/agent/ws", get(agent::agent))
        .route("/metrics", get(metrics_page))
        .merge(admin::routes())
        .merge(pages::routes())
        .with_state(state)
}

/// A bare websocket echo: what the load benchmark measures the network and framing alone with.
async fn echo(ws: axum::extract::ws::WebSocketUpgrade) -> Response {
    use axum::extract::ws::Message;
    ws.read_buffer_size(ws::READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(|mut socket| async move {
            while let Some(Ok(msg)) = socket.recv().await {
                if let Message::Text(_) = msg {
                    if socket.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        })
}

async fn healthz(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "protocol_versions": ws::VERSIONS,
        "intent_model": {
            "labels": state.engine.intents().fast().labels().len(),
            "features": state.engine.intents().fast().meta.features,
            "threshold": state.engine.intents().fast().meta.threshold,
            "encoder": state.engine.intents().head().map(|h| &h.encoder.id.name),
            "escalate_below": state.engine.intents().meta().map(|m| m.escalate_below),
        }
    }))
}

async fn metrics_page(State(state): State<Arc<AppState>>) -> Response {
    let body = metrics::render(&state.handoff, crate::domain::now());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct ClassifyQuery {
    text: String,
}

async fn classify(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ClassifyQuery>,
) -> Result<Response, ServerError> {
    let state = state.clone();
    // A forward pass is CPU work: keep it off the async workers.
    let mut p =
        tokio::task::spawn_blocking(move || state.engine.intents().classify(&q.text)).await??;
    p.prediction.ranked.truncate(5);
    Ok(Json(p).into_response())
}

#[derive(Deserialize)]
struct FaqQuery {
    shop: String,
    text: String,
    k: Option<usize>,
}

async fn faq_search(
    State(state): State<Arc<AppState>>,
    Query(q): Query<FaqQuery>,
) -> Result<Response, ServerError> {
    let state = state.clone();
    let k = q.k.unwrap_or(5).min(50);
    let hits = tokio::task::spawn_blocking(move || {
        state
            .engine
            .knowledge()
            .search(&q.shop, &q.text, k, crate::domain::now())
    })
    .await??;
    Ok(Json(hits).into_response())
}

#[derive(Deserialize)]
struct MessageIn {
    shop: String,
    /// Omitted for a new conversation; the reply carries the id to send next time.
    conversation: Option<String>,
    text: String,
}

pub(crate) fn new_conversation_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("c-{nanos:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn message(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Json(m): Json<MessageIn>,
) -> Result<Response, ServerError> {
    knowledge::check_shop(&m.shop)?;
    if !Origin::of(&headers).allowed(&state.store.embed(&m.shop)?) {
        return Err(ServerError::new(
            StatusCode::FORBIDDEN,
            format!("shop '{}' does not allow its widget on this site", m.shop),
        ));
    }
    if !state.engine.knowledge().has_shop(&m.shop) {
        return Err(ServerError::not_found(format!("unknown shop '{}'", m.shop)));
    }
    let chars = m.text.chars().count();
    if chars == 0 || chars > MAX_MESSAGE_CHARS {
        return Err(ServerError::bad_request(format!(
            "text must be 1 to {MAX_MESSAGE_CHARS} characters, got {chars}"
        )));
    }
    let state = state.clone();
    let body = tokio::task::spawn_blocking(move || {
        let now = crate::domain::now();
        let mut conv = match &m.conversation {
            Some(id) => match state.handoff.conversation(id) {
                Some(c) if c.shop == m.shop => c,
                _ => {
                    return Err(ServerError::not_found(format!(
                        "unknown conversation '{id}'"
                    )))
                }
            },
            None => Conversation::new(new_conversation_id(), m.shop.clone()),
        };
        let decision = state.decide(&mut conv, &m.text, now)?;
        Ok(serde_json::json!({ "conversation": conv.id, "decision": decision }))
    })
    .await??;
    Ok(Json(body).into_response())
}

/// How long shutdown waits for websocket connections to close.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Serve until `shutdown` resolves, with the dispatcher (escalation, assignment) ticking every
/// second. Then drain: HTTP requests in flight finish, every websocket is closed with 1012 after
/// the frame it is handling, and this returns once they are gone (or after 10 s).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ticker = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                every.tick().await;
                let state = state.clone();
                let _ =
                    tokio::task::spawn_blocking(move || state.dispatch(crate::domain::now())).await;
            }
        })
    };
    let stop = state.shutdown.clone();
    let served = axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await;
    ticker.abort();
    let deadline = tokio::time::Instant::now() + DRAIN;
    while state.open_sockets.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    served
}
