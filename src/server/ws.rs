//! The shopper websocket, protocol v1 (`docs/protocol.md`): hello/welcome with a resume token,
//! client ids acknowledged with server sequence numbers, events replayed on resume in order and
//! exactly once, error frames for bad input without dropping the connection.
//!
//! Conversations and their events live in memory for now; the storage issue makes an ack mean
//! "durably stored".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset};
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Mutex};

use super::error::ServerError;
use super::{AppState, MAX_MESSAGE_CHARS};
use crate::dialog::Action;
use crate::domain::{Conversation, Event, HandoffInfo, Speaker};
use crate::handoff::HandoffStore;
use crate::knowledge;
use crate::store::StoredConversation;

/// Protocol versions this server speaks.
pub const VERSIONS: &[u32] = &[1];
/// Largest frame accepted.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Initial read buffer per connection.
pub(crate) const READ_BUFFER: usize = 4 * 1024;
/// Bytes of queued frames after which tungstenite writes without waiting for a flush; the
/// buffer itself starts empty and grows only as far as what is queued.
pub(crate) const WRITE_BUFFER: usize = 16 * 1024;
/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What a conversation's open connections receive.
#[derive(Debug, Clone)]
pub enum Live {
    Event(Box<Event>),
    /// Someone else in the conversation is typing.
    Typing(Speaker),
}

/// Frames the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Out {
    Welcome {
        v: u32,
        conversation: String,
        token: String,
        seq: u64,
    },
    Ack {
        client_id: String,
        seq: u64,
    },
    Event(Box<Event>),
    Error {
        code: &'static str,
        message: String,
    },
    Typing {
        from: Speaker,
    },
    Rated {
        seq: u64,
    },
}

/// A merchant's logged-in shopper: the id, and its HMAC-SHA256 under the shop's secret (hex).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    id: String,
    signature: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resume {
    conversation: String,
    token: String,
    #[serde(default)]
    last_seq: u64,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum In {
    Hello {
        v: u32,
        shop: String,
        resume: Option<Resume>,
        user: Option<Identity>,
    },
    Message {
        client_id: String,
        text: String,
    },
    Typing {},
    /// The shopper's answer to a rating question (the event `seq`).
    Rating {
        seq: u64,
        score: u8,
    },
}

const TYPES: &[&str] = &["hello", "message", "typing", "rating"];

/// One conversation's event log, shared by every connection that has it open.
pub struct Session {
    id: String,
    pub(crate) shop: String,
    token: String,
    events: Vec<Event>,
    /// client_id → the seq its message got, so a retry is acknowledged, not processed again:
    /// every stored message of the conversation, shopper's and agents'.
    acks: HashMap<String, u64>,
    tx: broadcast::Sender<Live>,
}

impl Session {
    fn new(id: String, shop: String, token: String, events: Vec<Event>) -> Session {
        // Small: a connection that falls behind catches up from the log (`Lagged`), and ten
        // thousand idle shoppers should not each hold a big ring.
        let (tx, _) = broadcast::channel(16);
        Session {
            id,
            shop,
            token,
            events,
            acks: HashMap::new(),
            tx,
        }
    }

    /// The event after the last one (and `offset` more), with nothing but its text.
    pub(crate) fn next_event(
        &self,
        offset: u64,
        from: Speaker,
        text: String,
        at: DateTime<FixedOffset>,
    ) -> Event {
        Event {
            seq: self.events.len() as u64 + 1 + offset,
            from,
            text,
            buttons: Vec::new(),
            handoff: None,
            link: None,
            rating_for: None,
            at,
        }
    }

    /// Add stored events to the log, to every open connection, and to the server's bus (agents).
    pub(crate) fn publish(&mut self, events: Vec<Event>, bus: &broadcast::Sender<super::Notice>) {
        for e in events {
            self.events.push(e.clone());
            // Nobody listening is fine: the event is in the log for the next resume.
            let _ = self.tx.send(Live::Event(Box::new(e.clone())));
            let _ = bus.send(super::Notice::Event {
                conversation: self.id.clone(),
                event: e,
            });
        }
    }

    /// Tell the conversation's connections that `from` is typing.
    pub(crate) fn typing(&self, from: Speaker) {
        let _ = self.tx.send(Live::Typing(from));
    }

    fn from_store(
        stored: &StoredConversation,
        events: Vec<Event>,
        acks: HashMap<String, u64>,
    ) -> Session {
        let mut s = Session::new(
            stored.id.clone(),
            stored.shop.clone(),
            stored.token.clone(),
            events,
        );
        s.acks = acks;
        s
    }

    /// The sequence number the message with this client id got, if it was stored. The session
    /// knows every client id of its conversation (loaded with it, then kept as messages are
    /// stored), so a retry is answered without asking the store.
    pub(crate) fn ack_of(&self, client_id: &str) -> Option<u64> {
        self.acks.get(client_id).copied()
    }

    /// Remember the sequence number a stored message got.
    pub(crate) fn acked(&mut self, client_id: String, seq: u64) {
        self.acks.insert(client_id, seq);
    }
}

/// Open sessions by conversation id.
pub type Sessions = dashmap::DashMap<String, Arc<Mutex<Session>>>;

/// 128 random bits from the OS, hex.
pub(crate) fn random_token() -> String {
    use std::io::Read;
    let mut buf = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut buf).is_ok() {
            return buf.iter().map(|b| format!("{b:02x}")).collect();
        }
    }
    // No /dev/urandom: hash what varies (weaker, still unguessable across processes).
    use sha2::Digest;
    let seed = format!(
        "{:?}{:?}{}",
        std::time::SystemTime::now(),
        std::thread::current().id(),
        std::process::id()
    );
    sha2::Sha256::digest(seed.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

use super::auth::same;

pub async fn shopper(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Response {
    let from = super::Origin::of(&headers);
    let Some(slot) = state.per_ip.connect(peer.ip()) else {
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too many open connections from this address",
        )
            .into_response();
    };
    let ip = peer.ip();
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // Chat frames are small; tungstenite's default 128 KiB read buffer per connection is
        // what ten thousand idle shoppers would cost. The buffer grows for a bigger frame.
        .read_buffer_size(READ_BUFFER)
        // Frames queue until the flush after them, so an ack and the events after it leave in
        // one write (with 0, each frame was a write of its own: three syscalls a message).
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            connection(socket, state, from, ip).await;
            drop(slot);
        })
}

/// Check a verified shopper identity: `Ok(None)` without one, the user id with a good one.
fn verify(
    state: &AppState,
    shop: &str,
    user: Option<Identity>,
) -> Result<Option<String>, &'static str> {
    let Some(user) = user else { return Ok(None) };
    if user.id.is_empty() || user.id.len() > 256 {
        return Err("a user id is 1 to 256 bytes");
    }
    let secret = state
        .store
        .embed(shop)
        .map_err(|_| "the shop's settings could not be read")?
        .secret
        .ok_or("this shop has no identity secret; leave user out")?;
    let expected = super::auth::hmac_sha256_hex(secret.as_bytes(), user.id.as_bytes());
    if same(&expected, &user.signature.to_ascii_lowercase()) {
        Ok(Some(user.id))
    } else {
        Err("the user id's signature does not match")
    }
}

async fn send(socket: &mut WebSocket, out: &Out) -> bool {
    let text = serde_json::to_string(out).expect("frames serialize");
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// Queue a frame without writing it out: the caller flushes once for several frames, one
/// system call instead of one each (under load the ack, the message and the reply of every
/// shopper message were three).
async fn feed(socket: &mut WebSocket, out: &Out) -> bool {
    let text = serde_json::to_string(out).expect("frames serialize");
    socket.feed(Message::Text(text.into())).await.is_ok()
}

/// The next item already waiting in the channel, if any (`try_recv` in `recv`'s terms).
fn try_next(
    rx: &mut broadcast::Receiver<Live>,
) -> Option<Result<Live, broadcast::error::RecvError>> {
    use broadcast::error::{RecvError, TryRecvError};
    match rx.try_recv() {
        Ok(live) => Some(Ok(live)),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
    }
}

/// Queue `first` and every item already waiting in the conversation's channel for this
/// connection (not flushed): events it has not sent yet, others' typing, and after a lag the
/// missed events from the session's log. `false` once the connection is gone or the channel
/// closed.
async fn relay(
    socket: &mut WebSocket,
    first: Option<Result<Live, broadcast::error::RecvError>>,
    rx: &mut broadcast::Receiver<Live>,
    session: &Arc<Mutex<Session>>,
    sent: &mut u64,
) -> bool {
    let mut next = first;
    while let Some(item) = next.take() {
        let ok = match item {
            Ok(Live::Event(e)) if e.seq > *sent => {
                *sent = e.seq;
                feed(socket, &Out::Event(e)).await
            }
            Ok(Live::Typing(from)) if from != Speaker::Shopper => {
                feed(socket, &Out::Typing { from }).await
            }
            Ok(_) => true,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Fell behind: catch up from the log.
                let missed: Vec<Event> = session
                    .lock()
                    .await
                    .events
                    .iter()
                    .filter(|e| e.seq > *sent)
                    .cloned()
                    .collect();
                let mut ok = true;
                for e in missed {
                    *sent = e.seq;
                    if !feed(socket, &Out::Event(Box::new(e))).await {
                        ok = false;
                        break;
                    }
                }
                ok
            }
            Err(broadcast::error::RecvError::Closed) => false,
        };
        if !ok {
            return false;
        }
        next = try_next(rx);
    }
    true
}

fn error(code: &'static str, message: impl Into<String>) -> Out {
    Out::Error {
        code,
        message: message.into(),
    }
}

/// A refused frame, before it becomes a front's error frame (small, so `Result`s that carry it
/// stay small).
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<Refusal> for Out {
    fn from(r: Refusal) -> Out {
        Out::Error {
            code: r.code,
            message: r.message,
        }
    }
}

/// Parse one frame of a JSON protocol whose frames carry one of `types`: `Ok(None)` for control
/// frames, `Err` for what the client must be told. The shopper and agent sockets share it.
pub(crate) fn parse_frame<T: serde::de::DeserializeOwned>(
    msg: Message,
    types: &[&str],
) -> Result<Option<T>, Refusal> {
    let text = match msg {
        Message::Text(t) => t.to_string(),
        Message::Binary(b) => {
            return Err(match std::str::from_utf8(&b) {
                Ok(_) => Refusal::new("binary_frame", "send JSON in text frames"),
                Err(_) => Refusal::new(
                    "binary_frame",
                    "binary frame (and not valid UTF-8); send JSON in text frames",
                ),
            })
        }
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return Ok(None),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Refusal::new("bad_json", e.to_string()))?;
    let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if !types.contains(&kind) {
        return Err(Refusal::new(
            "unknown_type",
            format!(
                "unknown type '{kind}'; expected one of {}",
                types.join(", ")
            ),
        ));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| Refusal::new("bad_json", e.to_string()))
}

async fn connection(
    mut socket: WebSocket,
    state: Arc<AppState>,
    from: super::Origin,
    ip: std::net::IpAddr,
) {
    let _open = super::SocketGuard::new(&state.open_sockets);
    let mut stopping = state.shutdown.subscribe();
    // 1. hello
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        loop {
            match socket.recv().await {
                Some(Ok(msg)) => match parse_frame(msg, TYPES) {
                    Ok(Some(In::Hello {
                        v,
                        shop,
                        resume,
                        user,
                    })) => return Some((v, shop, resume, user)),
                    Ok(Some(_)) => {
                        if !send(&mut socket, &error("not_open", "say hello first")).await {
                            return None;
                        }
                    }
                    Ok(None) => {}
                    Err(refusal) => {
                        if !send(&mut socket, &refusal.into()).await {
                            return None;
                        }
                    }
                },
                _ => return None,
            }
        }
    })
    .await;
    let Ok(Some((v, shop, resume, user))) = hello else {
        return;
    };
    if !VERSIONS.contains(&v) {
        let _ = send(
            &mut socket,
            &error(
                "bad_json",
                format!("version {v} is not spoken here; versions: {VERSIONS:?}"),
            ),
        )
        .await;
        return;
    }
    if knowledge::check_shop(&shop).is_err() || !state.engine.knowledge().has_shop(&shop) {
        let _ = send(
            &mut socket,
            &error("unknown_shop", format!("unknown shop '{shop}'")),
        )
        .await;
        return;
    }

    match state.store.embed(&shop) {
        Ok(embed) if from.allowed(&embed) => {}
        Ok(_) => {
            let _ = send(
                &mut socket,
                &error(
                    "origin_refused",
                    format!("shop '{shop}' does not allow its widget on this site"),
                ),
            )
            .await;
            return;
        }
        Err(e) => {
            let _ = send(&mut socket, &error("internal", e.to_string())).await;
            return;
        }
    }
    let user = match verify(&state, &shop, user) {
        Ok(user) => user,
        Err(why) => {
            let _ = send(&mut socket, &error("bad_identity", why)).await;
            return;
        }
    };
    // A verified shopper without a resume token continues their newest conversation, from any
    // device: the whole history follows.
    let resume = match (resume, &user) {
        (None, Some(u)) => match state.store.conversation_of_user(&shop, u) {
            Ok(Some(conversation)) => {
                load_session(&state, &conversation).map(|session| (conversation, session, 0))
            }
            _ => None,
        },
        (Some(r), _) => {
            let Some(session) = load_session(&state, &r.conversation) else {
                let _ = send(&mut socket, &error("bad_resume", "unknown conversation")).await;
                return;
            };
            let ok = {
                let s = session.lock().await;
                s.shop == shop && same(&s.token, &r.token)
            };
            if !ok {
                let _ = send(
                    &mut socket,
                    &error("bad_resume", "the token does not match"),
                )
                .await;
                return;
            }
            Some((r.conversation, session, r.last_seq))
        }
        (None, None) => None,
    };

    // 2. the session: resumed or new.
    let (id, session, last_seq) = match resume {
        Some(resumed) => resumed,
        None => {
            let id = super::new_conversation_id();
            let token = random_token();
            let opened = crate::domain::now().to_rfc3339();
            if let Err(e) =
                state
                    .store
                    .open_conversation(&id, &shop, &token, &opened, user.as_deref())
            {
                let _ = send(&mut socket, &error("internal", e.to_string())).await;
                return;
            }
            let session = Arc::new(Mutex::new(Session::new(
                id.clone(),
                shop.clone(),
                token,
                Vec::new(),
            )));
            state.sessions.insert(id.clone(), session.clone());
            state
                .handoff
                .save(&Conversation::new(id.clone(), shop.clone()));
            (id, session, 0)
        }
    };

    // Subscribe before replaying, so nothing published in between is missed; `sent` drops the
    // overlap.
    let (mut rx, backlog, token, seq) = {
        let s = session.lock().await;
        let backlog: Vec<Event> = s
            .events
            .iter()
            .filter(|e| e.seq > last_seq)
            .cloned()
            .collect();
        (
            s.tx.subscribe(),
            backlog,
            s.token.clone(),
            s.events.len() as u64,
        )
    };
    let welcome = Out::Welcome {
        v: 1,
        conversation: id.clone(),
        token,
        seq,
    };
    if !send(&mut socket, &welcome).await {
        return;
    }
    let mut sent = last_seq;
    for e in backlog {
        sent = e.seq;
        if !send(&mut socket, &Out::Event(Box::new(e))).await {
            return;
        }
    }

    // 3. the conversation
    // Rate limit: a burst of four seconds' worth, refilled at the connection rate (0: off).
    let per_second = state.per_ip.limits.connection_rate;
    let burst = per_second * 4.0;
    let mut tokens = burst;
    let mut refilled = Instant::now();
    loop {
        tokio::select! {
            _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                let _ = socket.send(super::going_away()).await;
                return;
            }
            event = rx.recv() => {
                // This one and whatever else is already waiting go out in one write.
                if !relay(&mut socket, Some(event), &mut rx, &session, &mut sent).await { return; }
                if socket.flush().await.is_err() { return; }
            },
            frame = socket.recv() => {
                let Some(Ok(msg)) = frame else { return };
                let is_close = matches!(msg, Message::Close(_));
                let parsed = parse_frame(msg, TYPES);
                if is_close { return; }
                let (client_id, text) = match parsed {
                    Ok(Some(In::Message { client_id, text })) => (client_id, text),
                    Ok(Some(In::Hello { .. })) => {
                        if !send(&mut socket, &error("bad_json", "already open; hello once per connection")).await { return; }
                        continue;
                    }
                    Ok(Some(In::Typing {})) => {
                        let _ = state.bus.send(super::Notice::Typing { conversation: id.clone(), from: Speaker::Shopper });
                        continue;
                    }
                    Ok(Some(In::Rating { seq, score })) => {
                        let out = rate(&state, &id, &session, seq, score).await;
                        if !send(&mut socket, &out).await { return; }
                        continue;
                    }
                    Ok(None) => continue,
                    Err(refusal) => {
                        if !send(&mut socket, &refusal.into()).await { return; }
                        continue;
                    }
                };
                let chars = text.chars().count();
                if chars == 0 || chars > MAX_MESSAGE_CHARS || client_id.is_empty() || client_id.len() > 128 {
                    let out = if chars > MAX_MESSAGE_CHARS {
                        error("too_large", format!("{chars} characters; the limit is {MAX_MESSAGE_CHARS}"))
                    } else {
                        error("bad_json", "a message needs a client_id (1-128 bytes) and non-empty text")
                    };
                    if !send(&mut socket, &out).await { return; }
                    continue;
                }
                tokens = (tokens + refilled.elapsed().as_secs_f64() * per_second).min(burst);
                refilled = Instant::now();
                if (per_second > 0.0 && tokens < 1.0) || !state.per_ip.message(ip) {
                    if !send(&mut socket, &error("rate_limited", "too many messages; slow down")).await { return; }
                    continue;
                }
                tokens -= 1.0;
                match handle(&state, &id, &session, client_id, text).await {
                    Ok(ack) => {
                        // The ack, then the message and the reply (published before the ack
                        // was made, so already in the channel), in one write.
                        if !feed(&mut socket, &ack).await { return; }
                        let waiting = try_next(&mut rx);
                        if !relay(&mut socket, waiting, &mut rx, &session, &mut sent).await { return; }
                        if socket.flush().await.is_err() { return; }
                    }
                    Err(e) => {
                        if !send(&mut socket, &error("internal", e.message)).await { return; }
                    }
                }
            }
        }
    }
}

/// The shopper rates the chat an agent resolved, answering the question event `seq`.
async fn rate(
    state: &Arc<AppState>,
    id: &str,
    session: &Arc<Mutex<Session>>,
    seq: u64,
    score: u8,
) -> Out {
    if !(1..=5).contains(&score) {
        return error("bad_json", "score must be 1 to 5");
    }
    let (shop, agent) = {
        let s = session.lock().await;
        let asked = s
            .events
            .iter()
            .find(|e| e.seq == seq && e.rating_for.is_some());
        match asked {
            Some(e) => (s.shop.clone(), e.rating_for.clone()),
            None => return error("bad_json", format!("event {seq} does not ask for a rating")),
        }
    };
    let rating = crate::store::Rating {
        conversation: id.to_string(),
        seq,
        shop,
        agent,
        score,
        at: crate::domain::now().to_rfc3339(),
    };
    match state.store.add_rating(&rating) {
        Ok(true) => {
            super::metrics::rating(score);
            Out::Rated { seq }
        }
        Ok(false) => error("bad_json", "already rated"),
        Err(e) => error("internal", e.to_string()),
    }
}

/// The session of a conversation: in memory, or loaded from the store (after a restart).
pub(crate) fn load_session(state: &Arc<AppState>, id: &str) -> Option<Arc<Mutex<Session>>> {
    if let Some(s) = state.sessions.get(id) {
        return Some(s.clone());
    }
    let stored = state.store.conversation(id).ok()??;
    let events = state.store.events_after(id, 0).ok()?;
    let acks = state.store.acks(id).ok()?;
    if let Some(conv) = &stored.state {
        state.handoff.save(conv);
    }
    let session = Arc::new(Mutex::new(Session::from_store(&stored, events, acks)));
    Some(
        state
            .sessions
            .entry(id.to_string())
            .or_insert(session)
            .clone(),
    )
}

/// Store the shopper's message, decide, store the reply. Returns the ack; the events reach every
/// open connection of the conversation through the session's channel.
async fn handle(
    state: &Arc<AppState>,
    id: &str,
    session: &Arc<Mutex<Session>>,
    client_id: String,
    text: String,
) -> Result<Out, ServerError> {
    let mut s = session.lock().await;
    if let Some(seq) = s.ack_of(&client_id) {
        return Ok(Out::Ack { client_id, seq });
    }
    let now = crate::domain::now();
    let shop = s.shop.clone();
    let decide = {
        let state = state.clone();
        let id = id.to_string();
        let text = text.clone();
        move || {
            let mut conv = state
                .handoff
                .conversation(&id)
                .unwrap_or_else(|| Conversation::new(id.clone(), shop));
            let before = conv.dialog_state();
            let decision = state.decide(&mut conv, &text, now)?;
            let changed = before != conv.dialog_state();
            Ok::<_, crate::dialog::DialogError>((decision, conv, changed))
        }
    };
    let decided = if state.engine.may_block(&s.shop) {
        tokio::task::spawn_blocking(decide).await?
    } else {
        decide()
    };
    let (decision, conv, changed) = decided?;

    let shopper = s.next_event(0, Speaker::Shopper, text, now);
    let record = crate::store::DecisionRecord {
        conversation: id.to_string(),
        seq: shopper.seq,
        shop: s.shop.clone(),
        kind: super::action_kind(&decision.action).to_string(),
        reason: match &decision.action {
            Action::Handoff { reason, .. } => Some(reason.name()),
            _ => None,
        },
        at: now.to_rfc3339(),
        trace: decision.trace.clone(),
    };
    let reply = |text: String| s.next_event(1, Speaker::Bot, text, now);
    let reply = match decision.action {
        Action::Answer {
            text,
            buttons,
            link,
            ..
        } => Some(Event {
            buttons,
            link,
            ..reply(text)
        }),
        Action::AskFor { text, .. } | Action::Closed { text } => Some(reply(text)),
        Action::Clarify { text, choices } => Some(Event {
            buttons: choices.into_iter().map(|c| c.label).collect(),
            ..reply(text)
        }),
        Action::Handoff {
            reason,
            queue,
            reply: text,
            ..
        } => Some(Event {
            handoff: Some(HandoffInfo { reason, queue }),
            ..reply(text)
        }),
        Action::Silent => None,
    };
    let mut batch = vec![(shopper.clone(), Some(client_id.clone()))];
    if let Some(event) = reply {
        batch.push((event, None));
    }
    // Durable first: only what is stored is acknowledged and shown. The write joins the store's
    // next group commit; this task waits for it without holding a worker thread.
    let (done, stored) = tokio::sync::oneshot::channel();
    // The stored state is what the conversation had before this message (every change to it is
    // written: here, or by the handoff journal), so an unchanged one is not written again.
    state.store.append_then(
        id,
        &batch,
        Some(&record),
        changed.then_some(&conv),
        Box::new(move |r| {
            let _ = done.send(r);
        }),
    );
    stored
        .await
        .map_err(|_| ServerError::internal("the store's writer is gone"))??;
    s.acked(client_id.clone(), shopper.seq);
    s.publish(batch.into_iter().map(|(e, _)| e).collect(), &state.bus);
    let _ = state.bus.send(super::Notice::Queues);
    Ok(Out::Ack {
        client_id,
        seq: shopper.seq,
    })
}
