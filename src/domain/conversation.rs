use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// Who speaks in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Shopper,
    Bot,
    Agent,
}

/// Who owns a conversation right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    Bot,
    /// Handed off, waiting in a queue: the bot is silent, the messages are kept for the agent.
    Queued,
    Agent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
    pub at: DateTime<FixedOffset>,
}

/// One shopper's conversation with one shop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub shop: String,
    /// Missing in the store's state rows, which keep the transcript as events.
    ///
    /// Shared turns: a conversation is copied out of the handoff store and back for every
    /// message, and copying each turn's text made a message's cost grow with the chat's length
    /// (in 60-message chats under load, the copies were the largest cost that grew; perf).
    #[serde(default)]
    pub turns: Vec<Arc<Turn>>,
    /// Values extracted so far (order number, phone, ...), newest wins.
    pub slots: BTreeMap<String, String>,
    /// Unhelpful bot turns in a row.
    pub unhelpful: u32,
    pub owner: Owner,
    /// An intent waiting for a value the shopper has not given yet.
    pub pending: Option<String>,
    /// Why the last merchant action failed, for the trace (taken by the next decision).
    #[serde(skip)]
    pub action_error: Option<String>,
}

impl Conversation {
    pub fn new(id: impl Into<String>, shop: impl Into<String>) -> Self {
        Conversation {
            id: id.into(),
            shop: shop.into(),
            turns: Vec::new(),
            slots: BTreeMap::new(),
            unhelpful: 0,
            owner: Owner::Bot,
            pending: None,
            action_error: None,
        }
    }

    /// Add a turn to the transcript (shared, see [`Self::turns`]).
    pub fn push_turn(&mut self, speaker: Speaker, text: String, at: DateTime<FixedOffset>) {
        self.turns.push(Arc::new(Turn { speaker, text, at }));
    }

    /// Everything but the transcript: what the store must write again when it changes.
    pub fn dialog_state(&self) -> DialogState {
        DialogState {
            slots: self.slots.clone(),
            unhelpful: self.unhelpful,
            owner: self.owner,
            pending: self.pending.clone(),
        }
    }

    /// The shopper's last `n` messages, oldest first (what the risk detectors read: they look
    /// back a few messages, and copying the whole history made every
    /// message of a long chat dearer than the last).
    pub fn shopper_history(&self, n: usize) -> Vec<String> {
        let mut recent: Vec<String> = self
            .turns
            .iter()
            .rev()
            .filter(|t| t.speaker == Speaker::Shopper)
            .take(n)
            .map(|t| t.text.clone())
            .collect();
        recent.reverse();
        recent
    }
}

/// A conversation's state without its transcript ([`Conversation::dialog_state`]): what the
/// store keeps of it beside the events. Most messages change none of it, and then the server
/// does not write it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialogState {
    pub slots: BTreeMap<String, String>,
    pub unhelpful: u32,
    pub owner: Owner,
    pub pending: Option<String>,
}
