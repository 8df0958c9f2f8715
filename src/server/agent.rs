//! The agent websocket (`/v1/agent/ws`, `docs/protocol.md`): an agent authenticates with a key,
//! sees the queues of its shop and skills live, takes chats (or is given them), replies, adds
//! private notes, transfers, and resolves, which hands the chat back to the bot and asks the
//! shopper for a rating.
//!
//! Agent messages go through the conversation's session like the shopper's: stored first, then
//! shown, under the session lock, so the transcript has one order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::auth::hash_token;
use super::ws::{self, Refusal, MAX_FRAME_BYTES};
use super::{metrics, AppState, Notice, MAX_MESSAGE_CHARS};
use crate::dialog::{Speaker, Turn};
use crate::domain::Event;
use crate::domain::Role;
use crate::handoff::{Agent, AgentStatus, HandoffError, HandoffStore, Target, Ticket};

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum In {
    Auth {
        v: u32,
        token: String,
    },
    Status {
        status: AgentStatus,
    },
    Take {
        conversation: String,
    },
    Open {
        conversation: String,
    },
    Reply {
        conversation: String,
        client_id: String,
        text: String,
    },
    Typing {
        conversation: String,
    },
    Note {
        conversation: String,
        text: String,
    },
    Transfer {
        conversation: String,
        queue: Option<String>,
        agent: Option<String>,
    },
    Resolve {
        conversation: String,
    },
}

const TYPES: &[&str] = &[
    "auth", "status", "take", "open", "reply", "typing", "note", "transfer", "resolve",
];

/// A ticket as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TicketView {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub waited_seconds: i64,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out {
    Ready {
        v: u32,
        agent: Box<Agent>,
    },
    /// The agent's view: waiting tickets it may take, and its own.
    Queues {
        waiting: Vec<TicketView>,
        mine: Vec<TicketView>,
    },
    /// A chat is now this agent's: the ticket with the reason and evidence, and the transcript.
    Assigned {
        ticket: Ticket,
        transcript: Vec<Arc<Turn>>,
    },
    Transcript {
        ticket: Ticket,
        transcript: Vec<Arc<Turn>>,
    },
    Event {
        conversation: String,
        event: Event,
    },
    Typing {
        conversation: String,
        from: Speaker,
    },
    Ack {
        client_id: String,
        seq: u64,
    },
    Ok {
        request: &'static str,
        conversation: Option<String>,
    },
    Error {
        code: &'static str,
        message: String,
    },
}

fn error(code: &'static str, message: impl Into<String>) -> Out {
    refusal(code, message).into()
}

/// A refusal, counted in the metrics.
fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    metrics::frame_error(code);
    Refusal::new(code, message)
}

impl From<Refusal> for Out {
    fn from(r: Refusal) -> Out {
        Out::Error {
            code: r.code,
            message: r.message,
        }
    }
}

async fn send(socket: &mut WebSocket, out: &Out) -> bool {
    let text = serde_json::to_string(out).expect("frames serialize");
    socket.send(Message::Text(text.into())).await.is_ok()
}

fn parse(msg: Message) -> Result<Option<In>, Refusal> {
    ws::parse_frame(msg, TYPES).inspect_err(|r| metrics::frame_error(r.code))
}

pub async fn agent(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> Response {
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(ws::READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| connection(socket, state))
}

/// The agent a key belongs to, if it is an agent key for a known agent.
fn authenticate(state: &AppState, token: &str) -> Result<Agent, Refusal> {
    let role = state
        .store
        .key_role(&hash_token(token))
        .map_err(|e| refusal("internal", e.to_string()))?;
    let Some(Role::Agent { agent }) = role else {
        return Err(refusal("unauthorized", "not an agent key"));
    };
    state
        .handoff
        .agents()
        .into_iter()
        .find(|a| a.id == agent)
        .ok_or_else(|| refusal("unauthorized", format!("agent '{agent}' no longer exists")))
}

async fn connection(mut socket: WebSocket, state: Arc<AppState>) {
    let _open = super::SocketGuard::new(&state.open_sockets);
    let auth = tokio::time::timeout(AUTH_TIMEOUT, async {
        loop {
            match socket.recv().await {
                Some(Ok(msg)) => match parse(msg) {
                    Ok(Some(In::Auth { v, token })) => return Some((v, token)),
                    Ok(Some(_)) => {
                        if !send(&mut socket, &error("not_open", "authenticate first")).await {
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
    let Ok(Some((v, token))) = auth else { return };
    if !ws::VERSIONS.contains(&v) {
        let _ = send(
            &mut socket,
            &error("bad_json", format!("version {v} is not spoken here")),
        )
        .await;
        return;
    }
    let me = match authenticate(&state, &token) {
        Ok(a) => a,
        Err(refusal) => {
            let _ = send(&mut socket, &refusal.into()).await;
            return;
        }
    };
    let id = me.id.clone();
    *state.agent_connections.entry(id.clone()).or_insert(0) += 1;
    if me.status == AgentStatus::Away {
        let _ = state.handoff.set_status(&id, AgentStatus::Online);
    }
    let mut rx = state.bus.subscribe();
    let ready = Out::Ready {
        v: 1,
        agent: Box::new(current(&state, &id).unwrap_or(me)),
    };
    if send(&mut socket, &ready).await {
        run(&mut socket, &state, &id, &mut rx).await;
    }
    // The last connection of this agent closing makes the agent away; its chats stay assigned.
    let last = {
        let mut n = state.agent_connections.entry(id.clone()).or_insert(1);
        *n = n.saturating_sub(1);
        *n == 0
    };
    if last {
        let _ = state.handoff.set_status(&id, AgentStatus::Away);
        let _ = state.bus.send(Notice::Queues);
    }
}

fn current(state: &AppState, id: &str) -> Option<Agent> {
    state.handoff.agents().into_iter().find(|a| a.id == id)
}

/// The agent's queue view, and its own chats.
fn view(state: &AppState, me: &Agent) -> (Vec<TicketView>, Vec<TicketView>) {
    let now = crate::domain::now();
    let (mut waiting, mut mine) = (Vec::new(), Vec::new());
    for t in state.handoff.tickets() {
        let waited_seconds = (now - t.since).num_seconds();
        if t.agent.as_deref() == Some(me.id.as_str()) {
            mine.push(TicketView {
                ticket: t,
                waited_seconds,
            });
        } else if t.agent.is_none() && me.may_see(&t) {
            waiting.push(TicketView {
                ticket: t,
                waited_seconds,
            });
        }
    }
    (waiting, mine)
}

/// Send the queue view, and an `assigned` frame for each chat that became this agent's.
async fn refresh(
    socket: &mut WebSocket,
    state: &AppState,
    id: &str,
    mine_before: &mut HashSet<String>,
) -> bool {
    let Some(me) = current(state, id) else {
        return false;
    };
    let (waiting, mine) = view(state, &me);
    let now_mine: HashSet<String> = mine.iter().map(|t| t.ticket.conversation.clone()).collect();
    let fresh: Vec<Ticket> = mine
        .iter()
        .filter(|t| !mine_before.contains(&t.ticket.conversation))
        .map(|t| t.ticket.clone())
        .collect();
    *mine_before = now_mine;
    if !send(socket, &Out::Queues { waiting, mine }).await {
        return false;
    }
    for ticket in fresh {
        let transcript = transcript(state, &ticket.conversation);
        if !send(socket, &Out::Assigned { ticket, transcript }).await {
            return false;
        }
    }
    true
}

fn transcript(state: &AppState, conversation: &str) -> Vec<Arc<Turn>> {
    state
        .handoff
        .conversation(conversation)
        .map(|c| c.turns)
        .unwrap_or_default()
}

async fn run(
    socket: &mut WebSocket,
    state: &Arc<AppState>,
    id: &str,
    rx: &mut broadcast::Receiver<Notice>,
) {
    let mut mine = HashSet::new();
    let mut stopping = state.shutdown.subscribe();
    state.dispatch(crate::domain::now());
    if !refresh(socket, state, id, &mut mine).await {
        return;
    }
    loop {
        tokio::select! {
            _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                let _ = socket.send(super::going_away()).await;
                return;
            }
            notice = rx.recv() => {
                let ok = match notice {
                    Ok(Notice::Queues) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        refresh(socket, state, id, &mut mine).await
                    }
                    Ok(Notice::Event { conversation, event }) if mine.contains(&conversation) => {
                        send(socket, &Out::Event { conversation, event }).await
                    }
                    Ok(Notice::Typing { conversation, from }) if mine.contains(&conversation) => {
                        send(socket, &Out::Typing { conversation, from }).await
                    }
                    Ok(_) => true,
                    Err(broadcast::error::RecvError::Closed) => false,
                };
                if !ok { return; }
            }
            frame = socket.recv() => {
                let Some(Ok(msg)) = frame else { return };
                if matches!(msg, Message::Close(_)) { return; }
                let out = match parse(msg) {
                    Ok(Some(request)) => {
                        let out = handle(state, id, request).await;
                        // What the request changed in the queues is durable before the agent
                        // hears it was done.
                        let (done, durable) = tokio::sync::oneshot::channel();
                        state.store.barrier_then(Box::new(move |r| { let _ = done.send(r); }));
                        match durable.await {
                            Ok(Ok(())) => out,
                            Ok(Err(e)) => error("internal", e.to_string()),
                            Err(_) => error("internal", "the store's writer is gone"),
                        }
                    }
                    Ok(None) => continue,
                    Err(refusal) => refusal.into(),
                };
                if !send(socket, &out).await { return; }
            }
        }
    }
}

fn refused(e: HandoffError) -> Out {
    let code = match e {
        HandoffError::CannotTake { .. } => "refused",
        _ => "unknown_conversation",
    };
    error(code, e.to_string())
}

/// One request from the agent. Changes to queues are announced on the bus, which refreshes every
/// agent's view (this one's included).
async fn handle(state: &Arc<AppState>, id: &str, request: In) -> Out {
    let now = crate::domain::now();
    let Some(me) = current(state, id) else {
        return error("unauthorized", "this agent no longer exists");
    };
    let visible = |conversation: &str| state.handoff.ticket(conversation).filter(|t| me.may_see(t));
    let changed = |request: &'static str, conversation: Option<String>| {
        let _ = state.bus.send(Notice::Queues);
        Out::Ok {
            request,
            conversation,
        }
    };
    match request {
        In::Auth { .. } => error("bad_json", "already authenticated"),
        In::Status { status } => match state.handoff.set_status(id, status) {
            Ok(()) => {
                state.dispatch(now);
                changed("status", None)
            }
            Err(e) => refused(e),
        },
        In::Take { conversation } => match state.handoff.pick(id, &conversation, now) {
            Ok(_) => changed("take", Some(conversation)),
            Err(e) => refused(e),
        },
        In::Open { conversation } => match visible(&conversation) {
            Some(ticket) => Out::Transcript {
                transcript: transcript(state, &conversation),
                ticket,
            },
            None => error(
                "unknown_conversation",
                format!("no conversation '{conversation}' in this agent's queues"),
            ),
        },
        In::Typing { conversation } => {
            if let Some(session) = owned_session(state, id, &conversation) {
                session.lock().await.typing(Speaker::Agent);
            }
            Out::Ok {
                request: "typing",
                conversation: Some(conversation),
            }
        }
        In::Note { conversation, text } => {
            if visible(&conversation).is_none() {
                return error(
                    "unknown_conversation",
                    format!("no conversation '{conversation}' in this agent's queues"),
                );
            }
            match state.handoff.note(&conversation, id, &text, now) {
                Ok(()) => changed("note", Some(conversation)),
                Err(e) => refused(e),
            }
        }
        In::Transfer {
            conversation,
            queue,
            agent,
        } => {
            let owns = state
                .handoff
                .ticket(&conversation)
                .is_some_and(|t| t.agent.as_deref() == Some(id));
            if !owns {
                return error("refused", "only the assigned agent can transfer a chat");
            }
            let target = match (queue, agent) {
                (Some(q), None) if crate::domain::QUEUES.contains(&q.as_str()) => Target::Queue(q),
                (None, Some(a)) => Target::Agent(a),
                _ => {
                    return error(
                        "bad_json",
                        format!(
                            "transfer needs one of queue ({}) or agent",
                            crate::domain::QUEUES.join(", ")
                        ),
                    )
                }
            };
            match state.handoff.transfer(&conversation, target, now) {
                Ok(()) => {
                    state.dispatch(now);
                    changed("transfer", Some(conversation))
                }
                Err(e) => refused(e),
            }
        }
        In::Reply {
            conversation,
            client_id,
            text,
        } => {
            let chars = text.chars().count();
            if chars == 0
                || chars > MAX_MESSAGE_CHARS
                || client_id.is_empty()
                || client_id.len() > 128
            {
                return error("bad_json", format!("a reply needs a client_id (1-128 bytes) and 1 to {MAX_MESSAGE_CHARS} characters"));
            }
            reply(state, id, &conversation, client_id, text).await
        }
        In::Resolve { conversation } => resolve(state, id, &conversation).await,
    }
}

fn owned_session(
    state: &Arc<AppState>,
    agent: &str,
    conversation: &str,
) -> Option<Arc<tokio::sync::Mutex<ws::Session>>> {
    let owns = state
        .handoff
        .ticket(conversation)
        .is_some_and(|t| t.agent.as_deref() == Some(agent));
    if owns {
        ws::load_session(state, conversation)
    } else {
        None
    }
}

/// The agent writes to the shopper: kept in the transcript, stored as an event, shown.
async fn reply(
    state: &Arc<AppState>,
    agent: &str,
    conversation: &str,
    client_id: String,
    text: String,
) -> Out {
    let now = crate::domain::now();
    // Agent client ids share the store's per-conversation uniqueness with the shopper's.
    let stored_id = format!("agent:{agent}:{client_id}");
    let Some(session) = owned_session(state, agent, conversation) else {
        // Not a websocket conversation (POST /v1/message), or not this agent's.
        return match state.handoff.agent_says(conversation, agent, &text, now) {
            Ok(()) => Out::Ok {
                request: "reply",
                conversation: Some(conversation.to_string()),
            },
            Err(e) => refused(e),
        };
    };
    let mut s = session.lock().await;
    if let Some(seq) = s.ack_of(&stored_id) {
        return Out::Ack { client_id, seq };
    }
    if let Err(e) = state.handoff.agent_says(conversation, agent, &text, now) {
        return refused(e);
    }
    let event = s.next_event(0, Speaker::Agent, text, now);
    if let Err(e) = state.store.append(
        conversation,
        &[(event.clone(), Some(stored_id.clone()))],
        None,
        None,
    ) {
        return error("internal", e.to_string());
    }
    metrics::agent_message();
    let seq = event.seq;
    s.acked(stored_id, seq);
    s.publish(vec![event], &state.bus);
    Out::Ack { client_id, seq }
}

/// The agent is done: the chat returns to the bot, which asks the shopper for a rating.
async fn resolve(state: &Arc<AppState>, agent: &str, conversation: &str) -> Out {
    let now = crate::domain::now();
    let session = owned_session(state, agent, conversation);
    let mut guard = match &session {
        Some(s) => Some(s.lock().await),
        None => None,
    };
    let (_, question) = match state.handoff.resolve(conversation, agent, now) {
        Ok(done) => done,
        Err(e) => return refused(e),
    };
    if let Some(s) = guard.as_mut() {
        let event = Event {
            buttons: (1..=5).map(|n| n.to_string()).collect(),
            rating_for: Some(agent.to_string()),
            ..s.next_event(0, Speaker::Bot, question, now)
        };
        if let Err(e) = state
            .store
            .append(conversation, &[(event.clone(), None)], None, None)
        {
            return error("internal", e.to_string());
        }
        s.publish(vec![event], &state.bus);
    }
    drop(guard);
    state.dispatch(now);
    let _ = state.bus.send(Notice::Queues);
    Out::Ok {
        request: "resolve",
        conversation: Some(conversation.to_string()),
    }
}
