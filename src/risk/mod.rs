//! Risk signals, checked before anything else on every shopper message.
//!
//! Six kinds ([`RiskKind`]): life-care (suicide and self-harm talk, direct or indirect), dangerous
//! medicine (sleeping pills, painkillers or pesticide in quantity), an elderly or struggling
//! shopper (小棉袄), an angry dispute, an explicit ask for a human, and a scam a shopper reports
//! (刷单, 代付, someone posing as the shop's service on WeChat). Each kind is one [`Detector`] in
//! a file of its own that owns its rules, its switch and its caring reply; the message is read
//! once into a [`Scan`] that every detector shares. Each is a set of named,
//! readable rules ([`lexicon`]) over the normalized message and the recent turns, so every hit says
//! which rule fired on which words: an agent or an auditor can see why a chat was escalated, and a
//! miss can be fixed by adding words, not by retraining.
//!
//! Lexicon rules were chosen over a trained classifier for life-care because the cost of a miss is
//! a life and the only labelled high-risk Chinese text available to this project (SOS-1K) is real
//! people's words that may only be used to measure, not to train; rules written from crisis-line
//! warning-sign lists generalise without learning from those posts. Idioms that look like risk
//! (笑死我了, 想死你了, "this price is killing me", "dying to get this dress") are blanked out first,
//! and negations (我不会自杀) cancel the rules that can be negated.

pub mod lexicon;
pub mod model;
pub mod pattern;
mod scan;

mod dispute;
mod elderly;
mod fraud;
mod human;
mod life_care;
mod medicine;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::Reason;
use lexicon::Rule;
pub use scan::warm_up;
use scan::Scan;

/// Every detector, in the order they run (a later one may read the hits of an earlier one: the
/// dangerous-medicine detector adds a life-care hit when the shopper is in distress). A new kind
/// is a file beside this one and a line here.
static DETECTORS: &[&dyn Detector] = &[
    &life_care::LifeCare,
    &human::HumanRequest,
    &medicine::DangerousMedicine,
    &elderly::Elderly,
    &dispute::Dispute,
    &fraud::Fraud,
];

/// What kind of risk a message carries. Ordered by priority: a life-care hit outranks all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskKind {
    LifeCare,
    DangerousMedicine,
    Fraud,
    Elderly,
    Dispute,
    HumanRequest,
}

impl RiskKind {
    /// Every kind, highest priority first.
    pub const ALL: &[RiskKind] = &[
        RiskKind::LifeCare,
        RiskKind::DangerousMedicine,
        RiskKind::Fraud,
        RiskKind::Elderly,
        RiskKind::Dispute,
        RiskKind::HumanRequest,
    ];

    /// Why a conversation with this risk goes to a human (which decides its queue and priority).
    pub fn reason(self) -> Reason {
        match self {
            RiskKind::LifeCare => Reason::LifeCare,
            RiskKind::DangerousMedicine => Reason::DangerousMedicine,
            RiskKind::Fraud => Reason::Fraud,
            RiskKind::Elderly => Reason::Elderly,
            RiskKind::Dispute => Reason::Dispute,
            RiskKind::HumanRequest => Reason::HumanRequest,
        }
    }

    /// The kind's name as the config, the trace and the labelled logs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::LifeCare => "life_care",
            RiskKind::DangerousMedicine => "dangerous_medicine",
            RiskKind::Fraud => "fraud",
            RiskKind::Elderly => "elderly",
            RiskKind::Dispute => "dispute",
            RiskKind::HumanRequest => "human_request",
        }
    }

    /// The kind a name (or the labelled logs' short `medicine`) stands for.
    pub fn parse(name: &str) -> Option<RiskKind> {
        match name {
            "medicine" => Some(RiskKind::DangerousMedicine),
            _ => RiskKind::ALL.iter().copied().find(|k| k.as_str() == name),
        }
    }
}

/// One detector firing on the current message (earlier turns count as context): which rule, on
/// which words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskHit {
    pub kind: RiskKind,
    pub rule: String,
    /// The words that matched, as they read after normalization.
    pub evidence: Vec<String>,
}

impl RiskHit {
    pub fn new(kind: RiskKind, rule: &str, evidence: Vec<String>) -> RiskHit {
        RiskHit {
            kind,
            rule: rule.to_string(),
            evidence,
        }
    }
}

/// One kind of risk: its rules, its switch and what the bot says when it hands the chat over.
trait Detector: Sync {
    fn kind(&self) -> RiskKind;
    /// Whether a shop may turn it off, and whether it is on when the config says nothing.
    /// Life-care cannot be turned off.
    fn switch(&self) -> Switch;
    /// Its named lexicon rules (matched for every detector in one pass, see [`Scan`]).
    fn rules(&self) -> &'static [Rule] {
        &[]
    }
    /// The reply while the chat goes to a person, Chinese and English; `None`: the plain one.
    fn reply(&self) -> Option<(&'static str, &'static str)> {
        None
    }
    /// Build whatever it keeps besides its rules now, not on the first message.
    fn warm_up(&self) {}
    /// Add this kind's hits for the scanned message. `hits` holds those of the detectors before.
    fn detect(&self, scan: &Scan, models: &Models, hits: &mut Vec<RiskHit>);
}

/// Whether a kind can be switched off per shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    Always,
    On,
    Off,
}

/// The learned models a detector may consult.
#[derive(Default)]
struct Models<'a> {
    life_care: Option<&'a model::LifeCareModel>,
}

/// The hits of the named rules of `kind` on the current message, in rule order.
fn rule_hits_of(scan: &Scan, kind: RiskKind, hits: &mut Vec<RiskHit>) {
    for (rule, words) in &scan.current.rules {
        if rule.kind == kind {
            hits.push(RiskHit::new(kind, rule.name, words.clone()));
        }
    }
}

/// Every detector's named rules, in the order they are matched.
pub fn rules() -> impl Iterator<Item = &'static Rule> {
    DETECTORS.iter().flat_map(|d| d.rules().iter())
}

fn detector(kind: RiskKind) -> &'static dyn Detector {
    *DETECTORS
        .iter()
        .find(|d| d.kind() == kind)
        .expect("every kind has a detector")
}

/// The reply while a conversation with this risk goes to a person, in Chinese or English, when
/// the kind has one of its own.
pub fn reply(kind: RiskKind, chinese: bool) -> Option<&'static str> {
    detector(kind)
        .reply()
        .map(|(zh, en)| if chinese { zh } else { en })
}

/// Which detectors run, by the names of their switches (`[risk]` in `honeydesk.toml`: `elderly =
/// false`). Life-care has no switch: it is always on. Unknown names are refused when the config
/// is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, bool>", into = "BTreeMap<String, bool>")]
pub struct RiskSwitches {
    on: BTreeMap<RiskKind, bool>,
}

impl Default for RiskSwitches {
    fn default() -> Self {
        let on = DETECTORS
            .iter()
            .filter_map(|d| match d.switch() {
                Switch::Always => None,
                s => Some((d.kind(), s == Switch::On)),
            })
            .collect();
        RiskSwitches { on }
    }
}

impl TryFrom<BTreeMap<String, bool>> for RiskSwitches {
    type Error = String;
    fn try_from(set: BTreeMap<String, bool>) -> Result<Self, String> {
        let mut switches = RiskSwitches::default();
        for (name, on) in set {
            let kind = RiskKind::ALL.iter().copied().find(|k| k.as_str() == name);
            match kind.filter(|k| switches.on.contains_key(k)) {
                Some(kind) => {
                    switches.on.insert(kind, on);
                }
                None => {
                    let known: Vec<&str> = switches.on.keys().map(|k| k.as_str()).collect();
                    return Err(format!(
                        "unknown risk switch `{name}` (life-care is always on; the switches are {})",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(switches)
    }
}

impl From<RiskSwitches> for BTreeMap<String, bool> {
    fn from(s: RiskSwitches) -> Self {
        s.on.into_iter()
            .map(|(k, on)| (k.as_str().to_string(), on))
            .collect()
    }
}

impl RiskSwitches {
    pub fn allows(&self, kind: RiskKind) -> bool {
        self.on.get(&kind).copied().unwrap_or(true)
    }

    /// Turn a kind on or off (life-care stays on).
    pub fn set(&mut self, kind: RiskKind, on: bool) {
        if let Some(v) = self.on.get_mut(&kind) {
            *v = on;
        }
    }
}

/// How many previous shopper turns the detectors look at.
pub const HISTORY_TURNS: usize = 3;

/// The risk detectors.
#[derive(Debug, Clone, Default)]
pub struct RiskDetector {
    pub switches: RiskSwitches,
    /// The learned life-care classifier, consulted when the lexicon finds no life-care words.
    pub model: Option<Arc<model::LifeCareModel>>,
}

impl RiskDetector {
    pub fn new(switches: RiskSwitches) -> Self {
        RiskDetector {
            switches,
            model: None,
        }
    }

    /// Add the learned life-care classifier.
    pub fn with_model(mut self, model: Arc<model::LifeCareModel>) -> Self {
        self.model = Some(model);
        self
    }

    /// Every risk hit for `message`, given the shopper's earlier messages (oldest first), sorted
    /// by priority (life-care first).
    pub fn detect(&self, message: &str, history: &[String]) -> Vec<RiskHit> {
        let scan = Scan::new(message, history);
        let models = Models {
            life_care: self.model.as_deref(),
        };
        let mut hits = Vec::new();
        for d in DETECTORS {
            d.detect(&scan, &models, &mut hits);
        }
        hits.retain(|h| self.switches.allows(h.kind));
        hits.sort_by_key(|h| h.kind);
        hits
    }

    /// Whether the message (alone) triggers life-care; what the life-care measurement counts.
    pub fn is_life_care(&self, message: &str) -> bool {
        self.detect(message, &[])
            .iter()
            .any(|h| h.kind == RiskKind::LifeCare)
    }
}
