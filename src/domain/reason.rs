use serde::{Deserialize, Serialize};

/// Why a conversation goes to a human. Decides the queue and the priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    LifeCare,
    DangerousMedicine,
    /// A scam the shopper reports or is drawn into (刷单, 代付, a fake service on WeChat).
    Fraud,
    Elderly,
    Dispute,
    HumanRequest,
    /// Nothing the bot knows is confident enough, twice.
    LowConfidence,
    /// The shopper said the bot's answers did not help, twice.
    Unhelpful,
    /// The FAQ entry answered asks for a human to follow up.
    NotifyHuman,
    /// The shop receives shoppers with humans first.
    Reception,
    /// A merchant action failed or timed out.
    ActionFailed,
}

impl Reason {
    /// Queue priority, higher first.
    pub fn priority(self) -> u8 {
        match self {
            Reason::LifeCare => 100,
            Reason::DangerousMedicine => 90,
            Reason::Fraud => 70,
            Reason::Elderly => 60,
            Reason::Dispute => 50,
            Reason::NotifyHuman | Reason::ActionFailed => 35,
            Reason::HumanRequest | Reason::Unhelpful | Reason::LowConfidence => 30,
            Reason::Reception => 20,
        }
    }

    /// The name of the reason as the wire and the metrics spell it.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    /// The queue (skill) this reason goes to.
    pub fn queue(self) -> &'static str {
        match self {
            Reason::LifeCare | Reason::DangerousMedicine => "life_care",
            Reason::Fraud => "fraud",
            Reason::Elderly => "elderly_care",
            Reason::Dispute => "disputes",
            Reason::NotifyHuman | Reason::ActionFailed => "after_sales",
            Reason::HumanRequest
            | Reason::Unhelpful
            | Reason::LowConfidence
            | Reason::Reception => "general",
        }
    }
}

/// Every human queue, highest-priority first.
pub const QUEUES: &[&str] = &[
    "life_care",
    "fraud",
    "disputes",
    "elderly_care",
    "after_sales",
    "general",
];
