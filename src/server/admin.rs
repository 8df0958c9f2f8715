//! The merchant and operator REST API under `/v1/admin`, authenticated with
//! `Authorization: Bearer <key>`. A merchant key reaches its own shop only; an operator key every
//! shop. Errors are JSON `{"error": ...}` with a status that says whose fault it was.
//!
//! - `GET  /v1/admin/shops`: the shops this key reaches
//! - `GET  /v1/admin/shops/{shop}/faq[?format=csv|jsonl]`: export
//! - `PUT  /v1/admin/shops/{shop}/faq?format=csv|tsv|xlsx|json|jsonl`: import the body, all or
//!   nothing; 422 with every bad row
//! - `PUT` / `DELETE /v1/admin/shops/{shop}/faq/{id}`: one entry
//! - `GET  /v1/admin/shops/{shop}/settings`: the policy in force and the shop's overrides
//! - `POST /v1/admin/shops/{shop}/settings/preview`: what a change would do to the shop's recent
//!   decisions, before applying it
//! - `PUT  /v1/admin/shops/{shop}/settings`: apply a change (written to `honeydesk.toml`)
//! - `GET  /v1/admin/shops/{shop}/numbers`: automation, handoffs by reason, satisfaction
//! - `GET  /v1/admin/shops/{shop}/conversations[/{id}]`: recent conversations, one transcript
//! - `GET` / `PUT /v1/admin/shops/{shop}/embed`: the origins allowed to embed the widget
//! - `POST /v1/admin/shops/{shop}/embed/secret`: a new secret for signing shopper ids (shown once)

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::hash_token;
use super::error::ServerError;
use super::AppState;
use crate::dialog::{self, Choose, DialogConfig, PolicyOverride};
use crate::domain::Role;
use crate::knowledge::{self, import, FaqEntry};
use crate::store::DecisionRecord;

/// How many recent decisions a preview and the numbers look at.
const RECENT: usize = 5000;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/admin/shops", get(shops))
        .route("/v1/admin/shops/{shop}/faq", get(export).put(import_faq))
        .route(
            "/v1/admin/shops/{shop}/faq/{id}",
            put(upsert).delete(delete),
        )
        .route("/v1/admin/shops/{shop}/settings", get(settings).put(apply))
        .route("/v1/admin/shops/{shop}/settings/preview", post(preview))
        .route("/v1/admin/shops/{shop}/numbers", get(numbers))
        .route("/v1/admin/shops/{shop}/embed", get(embed).put(set_origins))
        .route("/v1/admin/shops/{shop}/embed/secret", post(rotate_secret))
        .route("/v1/admin/shops/{shop}/conversations", get(conversations))
        .route(
            "/v1/admin/shops/{shop}/conversations/{id}",
            get(conversation),
        )
        // FAQ spreadsheets are larger than axum's 2 MB default.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

/// Largest FAQ file accepted.
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// Whoever the bearer key belongs to.
pub struct Caller(pub Role);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ServerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |why: &str| ServerError::new(StatusCode::UNAUTHORIZED, why.to_string());
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing 'Authorization: Bearer <key>'"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("expected 'Authorization: Bearer <key>'"))?;
        match state.store.key_role(&hash_token(token.trim()))? {
            Some(role) => Ok(Caller(role)),
            None => Err(unauthorized("unknown key")),
        }
    }
}

/// A shop the caller's key may manage, read from the route's `{shop}`: every handler under
/// `/v1/admin/shops/{shop}` takes one, so none can forget the check (401 without a key, 400 for
/// an invalid shop id, 403 for another merchant's shop).
pub struct ManagedShop(pub String);

impl FromRequestParts<Arc<AppState>> for ManagedShop {
    type Rejection = ServerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Path(params) = Path::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ServerError::bad_request(e.body_text()))?;
        let shop = params
            .get("shop")
            .cloned()
            .ok_or_else(|| ServerError::internal("an admin route without {shop}"))?;
        caller.manage(&shop)?;
        Ok(ManagedShop(shop))
    }
}

impl Caller {
    /// `Ok` if this key may manage `shop` (a valid shop id); 403 otherwise.
    fn manage(&self, shop: &str) -> Result<(), ServerError> {
        knowledge::check_shop(shop)?;
        if self.0.may_manage(shop) {
            Ok(())
        } else {
            Err(ServerError::new(
                StatusCode::FORBIDDEN,
                format!("this {} key does not reach shop '{shop}'", self.0.name()),
            ))
        }
    }
}

/// Blocking work (index builds, file writes, SQLite) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ServerError::internal)?
}

async fn shops(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ServerError> {
    let all = state.engine.knowledge().shops();
    let shops: Vec<String> = all.into_iter().filter(|s| caller.0.may_manage(s)).collect();
    Ok(Json(serde_json::json!({ "shops": shops })).into_response())
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

fn format_of(name: &str) -> Result<import::Format, ServerError> {
    import::Format::from_path(std::path::Path::new(&format!("x.{name}"))).ok_or_else(|| {
        ServerError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown format '{name}'; use csv, tsv, xlsx, json or jsonl"),
        )
    })
}

async fn export(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
    Query(q): Query<FormatQuery>,
) -> Result<Response, ServerError> {
    let entries = state.engine.knowledge().entries(&shop)?;
    Ok(match q.format.as_deref() {
        Some("csv") => (
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            import::write_csv(&entries),
        )
            .into_response(),
        Some("jsonl") => (
            [(axum::http::header::CONTENT_TYPE, "application/jsonl")],
            import::write_jsonl(&entries),
        )
            .into_response(),
        None | Some("json") => Json(entries).into_response(),
        Some(other) => {
            return Err(ServerError::new(
                StatusCode::BAD_REQUEST,
                format!("export formats: json, csv, jsonl; not '{other}'"),
            ))
        }
    })
}

#[derive(Serialize)]
struct BadRow {
    at: String,
    reason: String,
}

async fn import_faq(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
    Query(q): Query<FormatQuery>,
    body: Bytes,
) -> Result<Response, ServerError> {
    let format = format_of(q.format.as_deref().unwrap_or("csv"))?;
    let entries = match import::parse(&body, format) {
        Ok(entries) => entries,
        Err(errors) => {
            let rows: Vec<BadRow> = errors
                .iter()
                .map(|e| BadRow {
                    at: e.at.to_string(),
                    reason: e.reason.clone(),
                })
                .collect();
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({
                    "error": format!("{} bad row(s), nothing was imported", rows.len()),
                    "rows": rows,
                })),
            )
                .into_response());
        }
    };
    let n = entries.len();
    blocking(move || Ok(state.engine.knowledge().replace(&shop, entries)?)).await?;
    Ok(Json(serde_json::json!({ "imported": n })).into_response())
}

async fn upsert(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
    Path((_, id)): Path<(String, String)>,
    Json(entry): Json<FaqEntry>,
) -> Result<Response, ServerError> {
    if entry.id != id {
        return Err(ServerError::new(
            StatusCode::BAD_REQUEST,
            format!("the entry's id '{}' is not the path's '{id}'", entry.id),
        ));
    }
    if entry.question.trim().is_empty() || entry.answer.text.trim().is_empty() {
        return Err(ServerError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an entry needs a question and an answer",
        ));
    }
    blocking(move || Ok(state.engine.knowledge().upsert(&shop, entry)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ServerError> {
    blocking(move || Ok(state.engine.knowledge().delete(&shop, &id)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn known(state: &AppState, shop: &str) -> Result<(), ServerError> {
    if state.engine.knowledge().has_shop(shop) {
        Ok(())
    } else {
        Err(ServerError::new(
            StatusCode::NOT_FOUND,
            format!("unknown shop '{shop}'"),
        ))
    }
}

async fn settings(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
) -> Result<Response, ServerError> {
    known(&state, &shop)?;
    let config = state.engine.config();
    Ok(Json(serde_json::json!({
        "policy": config.policy(&shop),
        "overrides": config.shops.get(&shop).cloned().unwrap_or_default(),
    }))
    .into_response())
}

/// How a set of decisions split, under one policy.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Split {
    pub answer: usize,
    pub clarify: usize,
    pub fallback: usize,
}

/// What a change would do: the shop's recent decisions that went through the confidence rule,
/// re-decided with the stored scores under the current and the proposed policy.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub decisions: usize,
    pub current: Split,
    pub proposed: Split,
    /// Decisions whose outcome would change.
    pub changed: usize,
    pub policy: dialog::Policy,
}

/// Re-run [`dialog::choose`] on stored traces. Decisions made before the confidence rule (risk,
/// a human owning the chat, a pending value) are left out: thresholds do not touch them.
pub fn preview_on(
    records: &[DecisionRecord],
    current: &dialog::Policy,
    proposed: &dialog::Policy,
) -> Preview {
    let outcome = |p: &dialog::Policy, r: &DecisionRecord| {
        let faq: Vec<f32> = r.trace.faq.iter().map(|c| c.score).collect();
        match dialog::choose(
            p,
            &faq,
            r.trace.faq.first().and_then(|c| c.intent.as_deref()),
            &r.trace.intents,
            r.trace.intent_in_scope,
        ) {
            Choose::Faq(_) | Choose::Intent(_) => 0,
            Choose::FaqClarify(_) | Choose::IntentClarify(_) => 1,
            Choose::Nothing => 2,
        }
    };
    let relevant = records.iter().filter(|r| {
        let rule = r.trace.rule.as_str();
        rule.starts_with("faq.")
            || rule.starts_with("intent.")
            || rule.starts_with("fallback")
            || rule.starts_with("low_confidence")
    });
    let mut out = Preview {
        decisions: 0,
        current: Split::default(),
        proposed: Split::default(),
        changed: 0,
        policy: proposed.clone(),
    };
    for r in relevant {
        out.decisions += 1;
        let (a, b) = (outcome(current, r), outcome(proposed, r));
        for (split, o) in [(&mut out.current, a), (&mut out.proposed, b)] {
            match o {
                0 => split.answer += 1,
                1 => split.clarify += 1,
                _ => split.fallback += 1,
            }
        }
        out.changed += usize::from(a != b);
    }
    out
}

/// The config with `change` applied to `shop`, validated, without writing anything.
fn proposed(
    config: &DialogConfig,
    shop: &str,
    change: &PolicyOverride,
) -> Result<DialogConfig, ServerError> {
    let mut next = config.clone();
    let o = next.shops.entry(shop.to_string()).or_default();
    macro_rules! set {
        ($($f:ident),*) => { $( if change.$f.is_some() { o.$f = change.$f.clone(); } )* };
    }
    set!(
        intent_threshold,
        ambiguity_gap,
        faq_threshold,
        faq_agree_threshold,
        unhelpful_limit,
        risk,
        reception,
        hours,
        actions,
        action_timeout_ms
    );
    let text = toml::to_string(&next).map_err(ServerError::internal)?;
    DialogConfig::parse(&text).map_err(|e| ServerError::new(StatusCode::UNPROCESSABLE_ENTITY, e))
}

async fn preview(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
    Json(change): Json<PolicyOverride>,
) -> Result<Response, ServerError> {
    known(&state, &shop)?;
    let config = state.engine.config();
    let next = proposed(&config, &shop, &change)?;
    let state2 = state.clone();
    let shop2 = shop.clone();
    let records = blocking(move || Ok(state2.store.decisions(&shop2, RECENT)?)).await?;
    Ok(Json(preview_on(
        &records,
        &config.policy(&shop),
        &next.policy(&shop),
    ))
    .into_response())
}

async fn apply(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
    Json(change): Json<PolicyOverride>,
) -> Result<Response, ServerError> {
    known(&state, &shop)?;
    let Some(watch) = &state.config else {
        return Err(ServerError::new(
            StatusCode::CONFLICT,
            "this server was started without a config file to write",
        ));
    };
    let path = watch.path().to_path_buf();
    proposed(&state.engine.config(), &shop, &change)?;
    let state2 = state.clone();
    let shop2 = shop.clone();
    let config = blocking(move || {
        let config = DialogConfig::write_override(&path, &shop2, &change)
            .map_err(|e| ServerError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        // Apply now rather than at the next file check.
        state2.engine.set_config(config.clone());
        Ok(config)
    })
    .await?;
    Ok(Json(serde_json::json!({ "policy": config.policy(&shop) })).into_response())
}

/// A shop's numbers over its recent decisions.
#[derive(Debug, Serialize)]
pub struct Numbers {
    pub conversations: usize,
    pub shopper_messages: usize,
    /// Messages the bot answered itself (answer, ask_for, clarify, closed) over messages it was
    /// asked (the silent ones, while a human owned the chat, are not the bot's).
    pub automation_rate: f64,
    pub handoffs: usize,
    pub handoff_rate: f64,
    pub handoffs_by_reason: BTreeMap<String, usize>,
    pub decisions_by_kind: BTreeMap<String, usize>,
    pub ratings: usize,
    pub satisfaction: Option<f64>,
}

pub fn numbers_of(records: &[DecisionRecord], ratings: (usize, f64)) -> Numbers {
    let mut by_kind = BTreeMap::new();
    let mut by_reason = BTreeMap::new();
    let mut conversations = std::collections::HashSet::new();
    for r in records {
        *by_kind.entry(r.kind.clone()).or_insert(0) += 1;
        if let Some(reason) = &r.reason {
            *by_reason.entry(reason.clone()).or_insert(0) += 1;
        }
        conversations.insert(r.conversation.as_str());
    }
    let count = |k: &str| by_kind.get(k).copied().unwrap_or(0);
    let asked = records.len() - count("silent");
    let handoffs = count("handoff");
    let rate = |n: usize| {
        if asked == 0 {
            0.0
        } else {
            n as f64 / asked as f64
        }
    };
    Numbers {
        conversations: conversations.len(),
        shopper_messages: records.len(),
        automation_rate: rate(asked - handoffs),
        handoffs,
        handoff_rate: rate(handoffs),
        handoffs_by_reason: by_reason,
        decisions_by_kind: by_kind,
        ratings: ratings.0,
        satisfaction: (ratings.0 > 0).then_some(ratings.1),
    }
}

async fn numbers(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
) -> Result<Response, ServerError> {
    known(&state, &shop)?;
    let n = blocking(move || {
        let records = state.store.decisions(&shop, RECENT)?;
        Ok(numbers_of(&records, state.store.rating_summary(&shop)?))
    })
    .await?;
    Ok(Json(n).into_response())
}

async fn conversations(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
) -> Result<Response, ServerError> {
    let list = blocking(move || Ok(state.store.conversations(&shop, 100)?)).await?;
    let list: Vec<_> = list
        .into_iter()
        .map(|(id, opened_at)| serde_json::json!({ "id": id, "opened_at": opened_at }))
        .collect();
    Ok(Json(serde_json::json!({ "conversations": list })).into_response())
}

async fn conversation(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ServerError> {
    let events = blocking(move || {
        match state.store.conversation(&id)? {
            Some(c) if c.shop == shop => {}
            _ => {
                return Err(ServerError::new(
                    StatusCode::NOT_FOUND,
                    format!("no conversation '{id}' in shop '{shop}'"),
                ))
            }
        }
        Ok(state.store.events_after(&id, 0)?)
    })
    .await?;
    Ok(Json(serde_json::json!({ "events": events })).into_response())
}

async fn embed(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
) -> Result<Response, ServerError> {
    let e = state.store.embed(&shop)?;
    Ok(Json(serde_json::json!({
        "origins": e.origins,
        "identity_secret_set": e.secret.is_some(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Origins {
    origins: Vec<String>,
}

async fn set_origins(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
    Json(body): Json<Origins>,
) -> Result<Response, ServerError> {
    for o in &body.origins {
        // scheme://host[:port], nothing after it.
        let host = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
            .map(|h| h.trim_end_matches('/'));
        if host.is_none_or(|h| h.is_empty() || h.contains(['/', ' ', '?', '#'])) {
            return Err(ServerError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("'{o}' is not an origin; write it like https://shop.example.com"),
            ));
        }
    }
    let mut e = state.store.embed(&shop)?;
    e.origins = body
        .origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_string())
        .collect();
    state.store.set_embed(&shop, &e)?;
    Ok(Json(serde_json::json!({ "origins": e.origins })).into_response())
}

async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    ManagedShop(shop): ManagedShop,
) -> Result<Response, ServerError> {
    let mut e = state.store.embed(&shop)?;
    let secret = super::ws::random_token();
    e.secret = Some(secret.clone());
    state.store.set_embed(&shop, &e)?;
    Ok(Json(serde_json::json!({ "secret": secret })).into_response())
}
