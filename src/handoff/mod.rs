//! The human side: queues with priorities and skills, agents with status and capacity,
//! assignment, escalation of life-care chats nobody takes, transfer, notes, and the way back to
//! the bot.
//!
//! Everything lives behind [`HandoffStore`]. [`MemoryHandoff`] keeps tickets, agents and
//! conversations under one lock: an assignment reads the queue and the agents and changes both,
//! and one lock makes that atomic without lock-ordering rules. Handoffs are rare next to
//! messages, so the lock is cold. Given a [`Journal`] (the server's SQLite store), every change is
//! handed to it before the lock is released, so the journal has them in the order they happened
//! (the store commits them with its next group, without the lock waiting), and
//! [`MemoryHandoff::durable`] reads it all back after a restart: waiting tickets, assignments,
//! agents and the conversations they concern.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;

use chrono::{DateTime, Duration, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::dialog::{Conversation, Lang, Owner, Reason, Speaker, Trace, Turn};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandoffError {
    #[error("unknown agent '{0}'")]
    UnknownAgent(String),
    #[error("no queued or assigned conversation '{0}'")]
    UnknownTicket(String),
    #[error("unknown conversation '{0}'")]
    UnknownConversation(String),
    #[error("agent '{agent}' cannot take '{conversation}': {why}")]
    CannotTake {
        agent: String,
        conversation: String,
        why: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    /// Logged in, taking no new chats.
    Busy,
    Away,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    /// Queues this agent serves (`life_care`, `after_sales`, `disputes`, `elderly_care`, `general`).
    pub skills: Vec<String>,
    /// Concurrent chats.
    pub capacity: usize,
    pub status: AgentStatus,
    /// Supervisors receive life-care chats that escalation could not place elsewhere.
    pub supervisor: bool,
    /// Conversations this agent owns now.
    pub active: Vec<String>,
    /// The shop this agent works for; `None` for the platform's own agents (the life-care
    /// specialists of a programme like 关爱生命 serve every shop).
    #[serde(default)]
    pub shop: Option<String>,
}

impl Agent {
    pub fn new(id: &str, skills: &[&str], capacity: usize) -> Agent {
        Agent {
            id: id.to_string(),
            name: id.to_string(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            capacity,
            status: AgentStatus::Online,
            supervisor: false,
            active: Vec::new(),
            shop: None,
        }
    }

    /// Online and below capacity: can take another chat.
    pub fn free(&self) -> bool {
        self.status == AgentStatus::Online && self.active.len() < self.capacity
    }

    /// Whether [`HandoffStore::assign`] may give `ticket` to this agent now: its shop, free with
    /// the queue's skill, or, once the ticket is escalated, free with any skill (or a supervisor
    /// who is not away, even when full).
    pub fn could_take(&self, ticket: &Ticket) -> bool {
        self.works_for(&ticket.shop)
            && match ticket.escalation {
                Escalation::None => self.free() && self.skills.contains(&ticket.queue),
                Escalation::AnyAgent => self.free(),
                Escalation::Supervisor => {
                    self.supervisor && self.status != AgentStatus::Away || self.free()
                }
            }
    }

    /// Whether this agent may see and take chats of `shop`.
    pub fn works_for(&self, shop: &str) -> bool {
        self.shop.as_deref().is_none_or(|s| s == shop)
    }

    /// Whether this agent may see `ticket`: its shop, and a queue in the agent's skills (any
    /// queue once escalated, since escalation exists to reach agents without the skill).
    pub fn may_see(&self, ticket: &Ticket) -> bool {
        self.works_for(&ticket.shop)
            && (self.skills.contains(&ticket.queue)
                || ticket.escalation != Escalation::None
                || ticket.agent.as_deref() == Some(self.id.as_str()))
    }
}

/// A boxed error from a [`Journal`]: the handoff layer does not know the storage's error type.
pub type JournalError = Box<dyn std::error::Error + Send + Sync>;

/// What changed in one operation, written in one transaction.
#[derive(Debug, Default)]
pub struct Changes<'a> {
    pub tickets: Vec<&'a Ticket>,
    /// Tickets closed (resolved).
    pub removed: Vec<&'a str>,
    pub agents: Vec<&'a Agent>,
    pub conversations: Vec<&'a Conversation>,
}

/// Everything [`MemoryHandoff::durable`] needs to start where the last process stopped.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub tickets: Vec<Ticket>,
    pub agents: Vec<Agent>,
    /// The conversations of those tickets.
    pub conversations: Vec<Conversation>,
}

/// Durable storage under a [`MemoryHandoff`]. Writes must reach storage in the order they are
/// made; `write` may return before they are durable (the server waits on its store's barrier
/// before it tells anyone).
pub trait Journal: Send + Sync {
    fn write(&self, changes: &Changes<'_>) -> Result<(), JournalError>;
    fn load(&self) -> Result<Snapshot, JournalError>;
}

/// A private note an agent leaves on a conversation (never shown to the shopper).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub agent: String,
    pub text: String,
    pub at: DateTime<FixedOffset>,
}

/// How far an unanswered life-care chat has been escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    None,
    /// Any online agent with room may take it, skill or not.
    AnyAgent,
    /// A supervisor takes it, even over capacity.
    Supervisor,
}

/// A conversation handed to humans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub conversation: String,
    pub shop: String,
    pub reason: Reason,
    pub priority: u8,
    pub queue: String,
    pub since: DateTime<FixedOffset>,
    /// What made the bot hand off (risk hits with their words, scores, thresholds).
    pub evidence: Trace,
    pub agent: Option<String>,
    pub escalation: Escalation,
    pub notes: Vec<Note>,
}

impl Ticket {
    /// The ticket a decision asks for: a handoff, or an answer whose entry notifies a human.
    pub fn from_decision(
        conv: &Conversation,
        decision: &crate::dialog::Decision,
        now: DateTime<FixedOffset>,
    ) -> Option<Ticket> {
        use crate::dialog::Action;
        let reason = match &decision.action {
            Action::Handoff { reason, .. } => *reason,
            Action::Answer {
                notify_human: true, ..
            } => Reason::NotifyHuman,
            _ => return None,
        };
        Some(Ticket {
            conversation: conv.id.clone(),
            shop: conv.shop.clone(),
            reason,
            priority: reason.priority(),
            queue: reason.queue().to_string(),
            since: now,
            evidence: decision.trace.clone(),
            agent: None,
            escalation: Escalation::None,
            notes: Vec::new(),
        })
    }
}

/// What an agent receives on assignment: the ticket and the whole transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub agent: String,
    pub ticket: Ticket,
    pub transcript: Vec<Arc<Turn>>,
}

/// Something the operators' log should show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<FixedOffset>,
    pub conversation: String,
    pub what: String,
}

/// Where a transfer sends a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Queue(String),
    Agent(String),
}

/// Queue and conversation state.
pub trait HandoffStore: Send + Sync {
    fn add_agent(&self, agent: Agent);
    fn set_status(&self, agent: &str, status: AgentStatus) -> Result<(), HandoffError>;
    fn agents(&self) -> Vec<Agent>;
    /// Online agents with room whose skills include `queue`.
    fn available(&self, queue: &str) -> usize;

    /// Store a conversation (after the engine handled a message).
    fn save(&self, conv: &Conversation);
    fn conversation(&self, id: &str) -> Option<Conversation>;

    /// Queue a conversation. If it is already queued, a higher-priority reason moves it.
    fn enqueue(&self, ticket: Ticket, now: DateTime<FixedOffset>);
    /// Tickets waiting in `queue`, in the order they will be served.
    fn waiting(&self, queue: &str) -> Vec<Ticket>;
    fn ticket(&self, conversation: &str) -> Option<Ticket>;
    /// Every open ticket, waiting or assigned, in the order they are served.
    fn tickets(&self) -> Vec<Ticket>;

    /// Give waiting tickets to agents: highest priority first, then longest waiting, each to
    /// the least-loaded free agent with the skill (or any, once escalated).
    fn assign(&self, now: DateTime<FixedOffset>) -> Vec<Assignment>;
    /// An agent takes a waiting ticket themselves.
    fn pick(
        &self,
        agent: &str,
        conversation: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<Assignment, HandoffError>;
    /// Escalate life-care tickets unassigned for longer than `after` (to any agent), and twice
    /// that (to a supervisor). Returns the escalations made, which are also logged.
    fn escalate(&self, now: DateTime<FixedOffset>, after: Duration) -> Vec<Event>;
    fn transfer(
        &self,
        conversation: &str,
        to: Target,
        now: DateTime<FixedOffset>,
    ) -> Result<(), HandoffError>;
    fn note(
        &self,
        conversation: &str,
        agent: &str,
        text: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<(), HandoffError>;
    /// An agent's message to the shopper, kept in the transcript.
    fn agent_says(
        &self,
        conversation: &str,
        agent: &str,
        text: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<(), HandoffError>;
    /// The agent is done: the conversation returns to the bot, which asks for a rating. Returns
    /// the closed ticket and the rating question.
    fn resolve(
        &self,
        conversation: &str,
        agent: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<(Ticket, String), HandoffError>;
    fn events(&self) -> Vec<Event>;
}

#[derive(Default)]
struct State {
    agents: HashMap<String, Agent>,
    tickets: HashMap<String, Ticket>,
    conversations: HashMap<String, Conversation>,
    events: Vec<Event>,
    /// What the current operation changed, for the journal.
    dirty: Dirty,
}

#[derive(Default)]
struct Dirty {
    tickets: HashSet<String>,
    agents: HashSet<String>,
    conversations: HashSet<String>,
}

/// The in-memory [`HandoffStore`], optionally written through to a [`Journal`].
#[derive(Default)]
pub struct MemoryHandoff {
    state: Mutex<State>,
    journal: Option<Arc<dyn Journal>>,
}

impl MemoryHandoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that writes every change to `journal`, starting from what it holds.
    pub fn durable(journal: Arc<dyn Journal>) -> Result<Self, JournalError> {
        let snapshot = journal.load()?;
        let mut state = State::default();
        for t in snapshot.tickets {
            state.tickets.insert(t.conversation.clone(), t);
        }
        for a in snapshot.agents {
            state.agents.insert(a.id.clone(), a);
        }
        for c in snapshot.conversations {
            state.conversations.insert(c.id.clone(), c);
        }
        Ok(MemoryHandoff {
            state: Mutex::new(state),
            journal: Some(journal),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write what the operation changed, before the lock is released so that writes reach the
    /// journal in the order they happened. A failed write is logged loudly; the in-memory state
    /// stays right for this process.
    fn commit(&self, s: &mut State) {
        let dirty = std::mem::take(&mut s.dirty);
        let Some(journal) = &self.journal else {
            return;
        };
        if dirty.tickets.is_empty() && dirty.agents.is_empty() && dirty.conversations.is_empty() {
            // Nothing changed: an empty transaction still costs a commit under the lock.
            return;
        }
        let changes = Changes {
            tickets: dirty
                .tickets
                .iter()
                .filter_map(|id| s.tickets.get(id))
                .collect(),
            removed: dirty
                .tickets
                .iter()
                .filter(|id| !s.tickets.contains_key(*id))
                .map(String::as_str)
                .collect(),
            agents: dirty
                .agents
                .iter()
                .filter_map(|id| s.agents.get(id))
                .collect(),
            conversations: dirty
                .conversations
                .iter()
                .filter_map(|id| s.conversations.get(id))
                .collect(),
        };
        if let Err(e) = journal.write(&changes) {
            tracing::error!(error = %e, "handoff state not written to the journal");
        }
    }
}

fn order(a: &Ticket, b: &Ticket) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.since.cmp(&b.since))
        .then_with(|| a.conversation.cmp(&b.conversation))
}

impl State {
    fn log(&mut self, at: DateTime<FixedOffset>, conversation: &str, what: String) {
        tracing::info!(conversation, "{what}");
        self.events.push(Event {
            at,
            conversation: conversation.to_string(),
            what,
        });
    }

    fn give(&mut self, agent: &str, conversation: &str, now: DateTime<FixedOffset>) -> Assignment {
        let a = self
            .agents
            .get_mut(agent)
            .expect("caller checked the agent");
        a.active.push(conversation.to_string());
        self.dirty.agents.insert(agent.to_string());
        self.dirty.tickets.insert(conversation.to_string());
        self.dirty.conversations.insert(conversation.to_string());
        let ticket = self
            .tickets
            .get_mut(conversation)
            .expect("caller checked the ticket");
        ticket.agent = Some(agent.to_string());
        let ticket = ticket.clone();
        let transcript = match self.conversations.get_mut(conversation) {
            Some(c) => {
                c.owner = Owner::Agent;
                c.turns.clone()
            }
            None => Vec::new(),
        };
        self.log(now, conversation, format!("assigned to {agent}"));
        Assignment {
            agent: agent.to_string(),
            ticket,
            transcript,
        }
    }

    /// `Ok` when `agent` is the one assigned to `conversation`; else why not.
    fn require_owner(
        &self,
        conversation: &str,
        agent: &str,
        why: &str,
    ) -> Result<(), HandoffError> {
        let owns = self
            .tickets
            .get(conversation)
            .is_some_and(|t| t.agent.as_deref() == Some(agent));
        if owns {
            Ok(())
        } else {
            Err(HandoffError::CannotTake {
                agent: agent.to_string(),
                conversation: conversation.to_string(),
                why: why.to_string(),
            })
        }
    }

    fn release(&mut self, conversation: &str) {
        for a in self.agents.values_mut() {
            if a.active.iter().any(|c| c == conversation) {
                a.active.retain(|c| c != conversation);
                self.dirty.agents.insert(a.id.clone());
            }
        }
    }
}

impl HandoffStore for MemoryHandoff {
    fn add_agent(&self, agent: Agent) {
        let mut s = self.lock();
        // An agent added again (a new key, changed skills) keeps the chats it owns.
        let active = match s.agents.get(&agent.id) {
            Some(old) => old.active.clone(),
            None => agent.active.clone(),
        };
        s.dirty.agents.insert(agent.id.clone());
        s.agents.insert(agent.id.clone(), Agent { active, ..agent });
        self.commit(&mut s);
    }

    fn set_status(&self, agent: &str, status: AgentStatus) -> Result<(), HandoffError> {
        let mut s = self.lock();
        let a = s
            .agents
            .get_mut(agent)
            .ok_or_else(|| HandoffError::UnknownAgent(agent.to_string()))?;
        a.status = status;
        s.dirty.agents.insert(agent.to_string());
        self.commit(&mut s);
        Ok(())
    }

    fn agents(&self) -> Vec<Agent> {
        let mut v: Vec<Agent> = self.lock().agents.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    fn available(&self, queue: &str) -> usize {
        self.lock()
            .agents
            .values()
            .filter(|a| a.free() && a.skills.iter().any(|s| s == queue))
            .count()
    }

    fn save(&self, conv: &Conversation) {
        self.lock()
            .conversations
            .insert(conv.id.clone(), conv.clone());
    }

    fn conversation(&self, id: &str) -> Option<Conversation> {
        self.lock().conversations.get(id).cloned()
    }

    fn enqueue(&self, ticket: Ticket, now: DateTime<FixedOffset>) {
        let mut s = self.lock();
        let id = ticket.conversation.clone();
        match s.tickets.get_mut(&id) {
            Some(existing) if ticket.priority > existing.priority => {
                let what = format!(
                    "raised from {:?} to {:?} ({})",
                    existing.reason, ticket.reason, ticket.queue
                );
                existing.reason = ticket.reason;
                existing.priority = ticket.priority;
                existing.evidence = ticket.evidence;
                if existing.agent.is_none() {
                    existing.queue = ticket.queue;
                }
                s.log(now, &id, what);
                s.dirty.tickets.insert(id.clone());
            }
            Some(_) => {}
            None => {
                let what = format!("queued in {} for {:?}", ticket.queue, ticket.reason);
                s.tickets.insert(id.clone(), ticket);
                s.log(now, &id, what);
                s.dirty.tickets.insert(id.clone());
                s.dirty.conversations.insert(id.clone());
            }
        }
        self.commit(&mut s);
    }

    fn waiting(&self, queue: &str) -> Vec<Ticket> {
        let s = self.lock();
        let mut v: Vec<Ticket> = s
            .tickets
            .values()
            .filter(|t| t.agent.is_none() && t.queue == queue)
            .cloned()
            .collect();
        v.sort_by(order);
        v
    }

    fn ticket(&self, conversation: &str) -> Option<Ticket> {
        self.lock().tickets.get(conversation).cloned()
    }

    fn tickets(&self) -> Vec<Ticket> {
        let mut v: Vec<Ticket> = self.lock().tickets.values().cloned().collect();
        v.sort_by(order);
        v
    }

    fn assign(&self, now: DateTime<FixedOffset>) -> Vec<Assignment> {
        let mut s = self.lock();
        // With nobody able to take a chat (the common case under load: every agent full), a long
        // queue must not cost a sort of all its tickets for every message.
        let anyone = s
            .agents
            .values()
            .any(|a| a.free() || a.supervisor && a.status != AgentStatus::Away);
        if !anyone {
            return Vec::new();
        }
        // Only tickets some agent could take now are sorted: under load most of a long queue
        // waits for skills nobody free has, and copying and sorting all of it for every
        // message was a twentieth of the server's CPU (perf). Taking a chat only makes agents
        // busier, so a ticket nobody could take before the loop stays so during it.
        let mut waiting: Vec<&Ticket> = s
            .tickets
            .values()
            .filter(|t| t.agent.is_none() && s.agents.values().any(|a| a.could_take(t)))
            .collect();
        waiting.sort_by(|a, b| order(a, b));
        let waiting: Vec<String> = waiting
            .into_iter()
            .map(|t| t.conversation.clone())
            .collect();
        let mut out = Vec::new();
        for conversation in waiting {
            let t = &s.tickets[&conversation];
            let candidates = s.agents.values().filter(|a| a.could_take(t));
            let best = candidates
                .min_by(|a, b| {
                    let load = |x: &Agent| x.active.len() as f64 / x.capacity.max(1) as f64;
                    load(a).total_cmp(&load(b)).then(a.id.cmp(&b.id))
                })
                .map(|a| a.id.clone());
            if let Some(agent) = best {
                out.push(s.give(&agent, &conversation, now));
            }
        }
        self.commit(&mut s);
        out
    }

    fn pick(
        &self,
        agent: &str,
        conversation: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<Assignment, HandoffError> {
        let mut s = self.lock();
        let a = s
            .agents
            .get(agent)
            .ok_or_else(|| HandoffError::UnknownAgent(agent.to_string()))?;
        let t = s
            .tickets
            .get(conversation)
            .ok_or_else(|| HandoffError::UnknownTicket(conversation.to_string()))?;
        let cannot = |why: &str| HandoffError::CannotTake {
            agent: agent.to_string(),
            conversation: conversation.to_string(),
            why: why.to_string(),
        };
        if t.agent.is_some() {
            return Err(cannot("it is already assigned"));
        }
        if !a.may_see(t) {
            return Err(cannot(
                "the conversation is not in this agent's shop and queues",
            ));
        }
        if !a.free() {
            return Err(cannot("the agent is not online with free capacity"));
        }
        let assignment = s.give(agent, conversation, now);
        self.commit(&mut s);
        Ok(assignment)
    }

    fn escalate(&self, now: DateTime<FixedOffset>, after: Duration) -> Vec<Event> {
        let mut s = self.lock();
        let mut made = Vec::new();
        let ids: Vec<String> = s
            .tickets
            .values()
            .filter(|t| t.agent.is_none() && t.reason == Reason::LifeCare)
            .map(|t| t.conversation.clone())
            .collect();
        for id in ids {
            let t = s.tickets.get_mut(&id).expect("listed above");
            let waited = now - t.since;
            let level = if waited >= after * 2 {
                Escalation::Supervisor
            } else if waited >= after {
                Escalation::AnyAgent
            } else {
                Escalation::None
            };
            if level > t.escalation {
                t.escalation = level;
                let what = format!(
                    "life-care chat unassigned for {}s: escalated to {level:?}",
                    waited.num_seconds()
                );
                s.log(now, &id, what);
                s.dirty.tickets.insert(id.clone());
                made.push(s.events.last().expect("just logged").clone());
            }
        }
        self.commit(&mut s);
        made
    }

    fn transfer(
        &self,
        conversation: &str,
        to: Target,
        now: DateTime<FixedOffset>,
    ) -> Result<(), HandoffError> {
        let mut s = self.lock();
        if !s.tickets.contains_key(conversation) {
            return Err(HandoffError::UnknownTicket(conversation.to_string()));
        }
        match to {
            Target::Queue(queue) => {
                s.release(conversation);
                let t = s.tickets.get_mut(conversation).expect("checked");
                t.agent = None;
                t.queue = queue.clone();
                if let Some(c) = s.conversations.get_mut(conversation) {
                    c.owner = Owner::Queued;
                }
                s.dirty.tickets.insert(conversation.to_string());
                s.dirty.conversations.insert(conversation.to_string());
                s.log(now, conversation, format!("transferred to queue {queue}"));
            }
            Target::Agent(agent) => {
                let a = s
                    .agents
                    .get(&agent)
                    .ok_or_else(|| HandoffError::UnknownAgent(agent.clone()))?;
                if a.status == AgentStatus::Away {
                    return Err(HandoffError::CannotTake {
                        agent,
                        conversation: conversation.to_string(),
                        why: "the agent is away".into(),
                    });
                }
                if !a.works_for(&s.tickets[conversation].shop) {
                    return Err(HandoffError::CannotTake {
                        agent,
                        conversation: conversation.to_string(),
                        why: "the agent does not work for this shop".into(),
                    });
                }
                s.release(conversation);
                s.give(&agent, conversation, now);
            }
        }
        self.commit(&mut s);
        Ok(())
    }

    fn note(
        &self,
        conversation: &str,
        agent: &str,
        text: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<(), HandoffError> {
        let mut s = self.lock();
        let t = s
            .tickets
            .get_mut(conversation)
            .ok_or_else(|| HandoffError::UnknownTicket(conversation.to_string()))?;
        t.notes.push(Note {
            agent: agent.to_string(),
            text: text.to_string(),
            at: now,
        });
        s.dirty.tickets.insert(conversation.to_string());
        self.commit(&mut s);
        Ok(())
    }

    fn agent_says(
        &self,
        conversation: &str,
        agent: &str,
        text: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<(), HandoffError> {
        let mut s = self.lock();
        s.require_owner(
            conversation,
            agent,
            "only the assigned agent can write to the shopper",
        )?;
        let c = s
            .conversations
            .get_mut(conversation)
            .ok_or_else(|| HandoffError::UnknownConversation(conversation.to_string()))?;
        c.push_turn(Speaker::Agent, text.to_string(), now);
        s.dirty.conversations.insert(conversation.to_string());
        self.commit(&mut s);
        Ok(())
    }

    fn resolve(
        &self,
        conversation: &str,
        agent: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<(Ticket, String), HandoffError> {
        let mut s = self.lock();
        s.require_owner(
            conversation,
            agent,
            "only the assigned agent can resolve it",
        )?;
        let ticket = s.tickets.remove(conversation).expect("checked");
        s.release(conversation);
        let mut lang = Lang::Zh;
        if let Some(c) = s.conversations.get_mut(conversation) {
            c.owner = Owner::Bot;
            c.unhelpful = 0;
            c.pending = None;
            if let Some(first) = c.turns.iter().find(|t| t.speaker == Speaker::Shopper) {
                lang = Lang::of(&first.text);
            }
        }
        let question = match lang {
            Lang::Zh => "亲，这次服务您满意吗？请为我们打个分（1-5分）～",
            Lang::En => "How did we do? Please rate this chat from 1 to 5.",
        }
        .to_string();
        if let Some(c) = s.conversations.get_mut(conversation) {
            c.push_turn(Speaker::Bot, question.clone(), now);
        }
        s.log(
            now,
            conversation,
            format!("resolved by {agent}, back to the bot"),
        );
        s.dirty.tickets.insert(conversation.to_string());
        s.dirty.conversations.insert(conversation.to_string());
        self.commit(&mut s);
        Ok((ticket, question))
    }

    fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }
}
