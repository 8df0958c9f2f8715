use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use super::{Reason, Speaker};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffInfo {
    pub reason: Reason,
    pub queue: String,
}

/// Something the shopper sees, with its place in the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub from: Speaker,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<String>,
    #[serde(default)]
    pub handoff: Option<HandoffInfo>,
    /// A link the answer points to, shown as a card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Set on the bot's rating question after an agent resolved the chat: the agent rated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_for: Option<String>,
    pub at: DateTime<FixedOffset>,
}
