//! The FAQ entry: what a merchant writes once and the bot answers many times.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// Longest entry id, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// Longest standard or similar question: the longest message a shopper may send. Real FAQs carry
/// long paraphrases (a story ending in the question), and one of them must not refuse the file.
pub const MAX_QUESTION_CHARS: usize = crate::text::MAX_MESSAGE_CHARS;
/// Longest answer (policies with their conditions run to a few thousand characters).
pub const MAX_ANSWER_CHARS: usize = 10_000;
/// Longest value of any other field (category, tag, sku, link, button).
pub const MAX_FIELD_CHARS: usize = 300;
/// Most similar questions one entry may carry.
pub const MAX_SIMILAR: usize = 500;

/// One merchant FAQ entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqEntry {
    /// Stable id chosen by the merchant (`ship-001`); edits and re-imports keep it.
    pub id: String,
    /// The standard question.
    pub question: String,
    /// Paraphrases shoppers use. Retrieval matches the best of the standard and these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<String>,
    pub answer: Answer,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Before this instant the entry is not returned (a promotion that has not started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<FixedOffset>>,
    /// After this instant the entry is not returned (a promotion that has ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<DateTime<FixedOffset>>,
    /// The product the entry is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Answer, and also tell a human agent (an order change the warehouse must see, say).
    #[serde(default)]
    pub notify_human: bool,
    /// A disabled entry is kept (and exported) but never returned.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// What the bot replies.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Answer {
    pub text: String,
    /// Quick-reply buttons shown under the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl FaqEntry {
    /// An enabled entry with a plain-text answer and nothing else set (benchmarks, tests).
    pub fn plain(id: String, question: String, similar: Vec<String>, answer: String) -> FaqEntry {
        FaqEntry {
            id,
            question,
            similar,
            answer: Answer {
                text: answer,
                ..Answer::default()
            },
            category: String::new(),
            tags: Vec::new(),
            valid_from: None,
            valid_to: None,
            sku: None,
            notify_human: false,
            enabled: true,
        }
    }

    /// Whether the entry may be returned at `now`: enabled and inside its validity window.
    pub fn is_active(&self, now: DateTime<FixedOffset>) -> bool {
        self.enabled
            && self.valid_from.is_none_or(|from| from <= now)
            && self.valid_to.is_none_or(|to| now <= to)
    }

    /// The standard question followed by the similar ones.
    pub fn questions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.question.as_str()).chain(self.similar.iter().map(String::as_str))
    }
}
