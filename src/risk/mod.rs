//! Risk signals, checked before anything else on every shopper message.
//!
//! Five kinds ([`RiskKind`]): life-care (suicide and self-harm talk, direct or indirect), dangerous
//! medicine (sleeping pills, painkillers or pesticide in quantity), an elderly or struggling
//! shopper (小棉袄), an angry dispute, and an explicit ask for a human. Each is a set of named,
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

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use crate::domain::Reason;
use crate::text;
use lexicon::{
    CONTEXT, DANGEROUS, DISTRESS, DISTRESS_THRESHOLD, HUMAN_EXACT, IDIOMS, NEGATIONS, QUANTITY,
    RULES, SHOP, SHOP_DISTRESS_THRESHOLD,
};
use pattern::PatternSet;

/// What kind of risk a message carries. Ordered by priority: a life-care hit outranks all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskKind {
    LifeCare,
    DangerousMedicine,
    Elderly,
    Dispute,
    HumanRequest,
}

impl RiskKind {
    /// Why a conversation with this risk goes to a human (which decides its queue and priority).
    pub fn reason(self) -> Reason {
        match self {
            RiskKind::LifeCare => Reason::LifeCare,
            RiskKind::DangerousMedicine => Reason::DangerousMedicine,
            RiskKind::Elderly => Reason::Elderly,
            RiskKind::Dispute => Reason::Dispute,
            RiskKind::HumanRequest => Reason::HumanRequest,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::LifeCare => "life_care",
            RiskKind::DangerousMedicine => "dangerous_medicine",
            RiskKind::Elderly => "elderly",
            RiskKind::Dispute => "dispute",
            RiskKind::HumanRequest => "human_request",
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

/// Which detectors run. Life-care has no switch: it is always on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskSwitches {
    pub dangerous_medicine: bool,
    pub elderly: bool,
    pub dispute: bool,
    pub human_request: bool,
}

impl Default for RiskSwitches {
    fn default() -> Self {
        RiskSwitches {
            dangerous_medicine: true,
            elderly: true,
            dispute: true,
            human_request: true,
        }
    }
}

impl RiskSwitches {
    fn allows(&self, kind: RiskKind) -> bool {
        match kind {
            RiskKind::LifeCare => true,
            RiskKind::DangerousMedicine => self.dangerous_medicine,
            RiskKind::Elderly => self.elderly,
            RiskKind::Dispute => self.dispute,
            RiskKind::HumanRequest => self.human_request,
        }
    }
}

/// How many previous shopper turns the detectors look at.
pub const HISTORY_TURNS: usize = 3;

/// A message prepared for matching: normalized, idioms blanked.
struct Prepared {
    /// Normalized text with idioms blanked (for the rules).
    text: String,
    /// Normalized text with idioms kept (for anger, where 气死我了 *is* the signal).
    raw: String,
}

/// Every lexicon as a [`PatternSet`], built once per process.
struct Lexicons {
    idioms: PatternSet,
    /// The patterns of all [`RULES`], rule after rule, with `rule_of` naming each one's rule.
    rules: PatternSet,
    rule_of: Vec<usize>,
    distress: PatternSet,
    context: PatternSet,
    dangerous: PatternSet,
    quantity: PatternSet,
    anger: PatternSet,
    shop: PatternSet,
}

static LEXICONS: LazyLock<Lexicons> = LazyLock::new(|| {
    let weighted = |list: &'static [(&'static str, f32)]| PatternSet::new(list.iter().map(|w| w.0));
    Lexicons {
        idioms: PatternSet::new(IDIOMS.iter().copied()),
        rules: PatternSet::new(RULES.iter().flat_map(|r| r.patterns.iter().copied())),
        rule_of: RULES
            .iter()
            .enumerate()
            .flat_map(|(i, r)| std::iter::repeat_n(i, r.patterns.len()))
            .collect(),
        distress: weighted(DISTRESS),
        context: weighted(CONTEXT),
        dangerous: PatternSet::new(DANGEROUS.iter().copied()),
        quantity: PatternSet::new(QUANTITY.iter().copied()),
        anger: PatternSet::new(ANGER.iter().copied()),
        shop: PatternSet::new(SHOP.iter().copied()),
    }
});

/// Build the lexicons' automata now rather than on the first message a detector sees. The first
/// message after `serve` started used to pay for them on a runtime worker (tens of milliseconds),
/// and every message queued behind it waited too.
pub fn warm_up() {
    LazyLock::force(&LEXICONS);
}

fn prepare(message: &str) -> Prepared {
    // Apostrophes are dropped, so "i'm", "im" and "I’m" read the same: people type English
    // contractions both ways, and the lexicons are written without them.
    let raw = format!(" {} ", text::normalize(message).replace('\'', ""));
    let mut text = raw.clone();
    let idioms = &LEXICONS.idioms;
    for i in idioms.candidates(&raw) {
        pattern::blank(&mut text, idioms.pattern(i));
    }
    Prepared { text, raw }
}

fn is_ascii_pattern(p: &str) -> bool {
    p.bytes().all(|b| b.is_ascii())
}

/// Every match of `p` in `text` that respects word boundaries (English) and, if asked, negation.
fn matches(text: &str, p: &str, negatable: bool) -> Option<String> {
    let mut from = 0;
    while let Some(span) = pattern::find(text, p, from) {
        from = span.0 + 1;
        while !text.is_char_boundary(from) {
            from += 1;
        }
        if is_ascii_pattern(p) && !pattern::on_word_boundaries(text, span) {
            continue;
        }
        if negatable && negated(text, span.0) && !starts_with_negation(p) {
            continue;
        }
        return Some(text[span.0..span.1].trim().to_string());
    }
    None
}

fn starts_with_negation(p: &str) -> bool {
    NEGATIONS.iter().any(|n| p.starts_with(n.trim_end()))
}

/// Whether a negation ends within the four characters before `start`.
fn negated(text: &str, start: usize) -> bool {
    let before: String = {
        let chars: Vec<char> = text[..start].chars().collect();
        chars[chars.len().saturating_sub(12)..].iter().collect()
    };
    let before = before.trim_end();
    let window: String = {
        let chars: Vec<char> = before.chars().collect();
        // CJK negations sit right before the verb (不会自杀); English ones a word or two earlier.
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    NEGATIONS.iter().any(|n| {
        if is_ascii_pattern(n) {
            let n = n.trim_end();
            before.ends_with(n) || before.rsplit(' ').take(3).any(|w| w == n)
        } else {
            window.contains(n)
        }
    })
}

fn distress(text: &str) -> (f32, Vec<String>) {
    let (core, mut words) = weigh(text, DISTRESS, &LEXICONS.distress);
    if core == 0.0 {
        return (0.0, words);
    }
    let (context, more) = weigh(text, CONTEXT, &LEXICONS.context);
    words.extend(more);
    (core + context, words)
}

/// The summed weight of the words of `list` (compiled as `set`) in `text`, and the words.
fn weigh(text: &str, list: &[(&str, f32)], set: &PatternSet) -> (f32, Vec<String>) {
    let mut total = 0.0;
    let mut words = Vec::new();
    for (word, weight) in set.candidates(text).into_iter().map(|i| list[i]) {
        let hit = if is_ascii_pattern(word) {
            matches(text, word, false).is_some()
        } else {
            text.contains(word)
        };
        if hit {
            total += weight;
            words.push(word.to_string());
        }
    }
    (total, words)
}

/// The first word of `set`, in list order, that matches in `text`.
fn any_of(text: &str, set: &PatternSet) -> Option<String> {
    set.candidates(text)
        .into_iter()
        .find_map(|i| matches(text, set.pattern(i), false))
}

/// Every rule of [`RULES`] that fires on `text`, as (rule index, matched words), in rule order.
fn rule_hits(text: &str) -> Vec<(usize, Vec<String>)> {
    let lex = &LEXICONS;
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    for i in lex.rules.candidates(text) {
        let rule = lex.rule_of[i];
        let Some(words) = matches(text, lex.rules.pattern(i), RULES[rule].negatable) else {
            continue;
        };
        match out.last_mut() {
            Some((r, ws)) if *r == rule => ws.push(words),
            _ => out.push((rule, vec![words])),
        }
    }
    out
}

fn any_rule_of(hits: &[(usize, Vec<String>)], kind: RiskKind) -> bool {
    hits.iter().any(|(r, _)| RULES[*r].kind == kind)
}

/// Short, loud expressions of anger. Two angry turns in a row make a dispute.
const ANGER: &[&str] = &[
    "气死我了",
    "什么破",
    "垃圾",
    "太差了",
    "差劲",
    "无语",
    "恶心",
    "坑人",
    "坑爹",
    "退钱",
    "滚",
    "有病",
    "耍我",
    "骗人",
    "忽悠",
    "态度太差",
    "!!!",
    "???",
    "什么玩意",
    "ridiculous",
    "unacceptable",
    "worst",
    "terrible",
    "furious",
    "angry",
    "wtf",
    "pathetic",
    "useless",
    "rubbish",
    "disgusting",
];

/// Distress and context weight below which a message's words are too thin for the n-gram model
/// alone at [`model::THRESHOLD`]: a single 海 (0.2), 病 or 楼 (0.3) is not talk about dying.
const WEAK_SIGNAL: f32 = 0.4;

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
        let current = prepare(message);
        let recent: Vec<Prepared> = history
            .iter()
            .rev()
            .take(HISTORY_TURNS)
            .map(|m| prepare(m))
            .collect();
        let current_rules = rule_hits(&current.text);
        let recent_rules: Vec<_> = recent.iter().map(|p| rule_hits(&p.text)).collect();
        let mut hits = Vec::new();
        fn push(hits: &mut Vec<RiskHit>, kind: RiskKind, rule: &str, evidence: Vec<String>) {
            hits.push(RiskHit {
                kind,
                rule: rule.to_string(),
                evidence,
            });
        }

        // Confusion alone is every shopper sometimes; it is handled with the elderly signals below.
        for (r, words) in &current_rules {
            let rule = &RULES[*r];
            if rule.name != "elderly.confused" {
                push(&mut hits, rule.kind, rule.name, words.clone());
            }
        }

        let bare = current
            .raw
            .trim()
            .trim_matches(|c: char| c.is_ascii_punctuation() || c == ' ');
        if HUMAN_EXACT.contains(&bare) && !hits.iter().any(|h| h.kind == RiskKind::HumanRequest) {
            push(
                &mut hits,
                RiskKind::HumanRequest,
                "human_request.bare",
                vec![bare.to_string()],
            );
        }

        // Indirect life-care talk: distress words adding up over this and the recent turns.
        let (weight, mut words) = distress(&current.text);
        let mut total = weight;
        for p in recent.iter().take(2) {
            let (w, more) = distress(&p.text);
            total += w * 0.5;
            words.extend(more);
        }
        let life_care_now = hits.iter().any(|h| h.kind == RiskKind::LifeCare);
        // 心累 about an order is about the order: beside a shop word, distress alone needs more.
        let threshold = if any_of(&current.text, &LEXICONS.shop).is_some() {
            SHOP_DISTRESS_THRESHOLD
        } else {
            DISTRESS_THRESHOLD
        };
        if !life_care_now && weight > 0.0 && total >= threshold {
            words.dedup();
            push(
                &mut hits,
                RiskKind::LifeCare,
                "life_care.distress",
                words.clone(),
            );
        }

        // The learned classifier, for indirect talk with no lexicon word. A model failure is
        // logged and leaves the lexicon's verdict standing: it can only add a hit.
        if let Some(m) = &self.model {
            // With a distress or method word the n-grams decide alone; on text far from both
            // their classes (poems, train tickets) their guess is noise, so without one they are
            // trusted only when the sentence vectors agree (below).
            let lex = &LEXICONS;
            let signal = weigh(&current.text, DISTRESS, &lex.distress).0
                + weigh(&current.text, CONTEXT, &lex.context).0;
            let some_signal = signal > 0.0;
            // One weak word (海 in 凉拌海带, 病 in 颈椎病) opens the gate only to a sure model.
            let model_threshold = if signal < WEAK_SIGNAL {
                model::AGREE_THRESHOLD
            } else {
                model::THRESHOLD
            };
            // The words whose removal lowers P(life-care) most, then the probabilities.
            let evidence = |probabilities: &[String]| {
                let mut words = m.explain(message).unwrap_or_default();
                words.extend_from_slice(probabilities);
                words
            };
            if !hits.iter().any(|h| h.kind == RiskKind::LifeCare) {
                match m.probabilities(&[message]) {
                    Ok(p) if some_signal && p[0] >= model_threshold => {
                        let evidence = evidence(&[format!("p={:.2}", p[0])]);
                        push(&mut hits, RiskKind::LifeCare, "life_care.model", evidence);
                    }
                    // Most English crisis talk that names no method and no distress word ("by
                    // then I'll be gone") is caught here, by two models of different kinds.
                    Ok(p) if p[0] >= model::AGREE_THRESHOLD => {
                        match m.vector_probability(message) {
                            Ok(Some(v)) if v >= model::AGREE_THRESHOLD => {
                                let evidence = evidence(&[
                                    format!("p={:.2}", p[0]),
                                    format!("vectors p={v:.2}"),
                                ]);
                                push(&mut hits, RiskKind::LifeCare, "life_care.agree", evidence);
                            }
                            Ok(_) => {}
                            Err(e) => tracing::error!(error = %e, "life-care vectors failed"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "life-care model failed"),
                }
            }
        }

        // Dangerous medicine: a lethal medicine with a quantity, or with distress now or lately.
        if let Some(drug) = any_of(&current.text, &LEXICONS.dangerous) {
            let quantity = any_of(&current.text, &LEXICONS.quantity).or_else(|| {
                recent
                    .iter()
                    .take(2)
                    .find_map(|p| any_of(&p.text, &LEXICONS.quantity))
            });
            let recent_life_care = recent_rules
                .iter()
                .any(|h| any_rule_of(h, RiskKind::LifeCare));
            let distressed = total >= 1.0 || recent_life_care;
            if let Some(q) = &quantity {
                push(
                    &mut hits,
                    RiskKind::DangerousMedicine,
                    "medicine.quantity",
                    vec![drug.clone(), q.clone()],
                );
            }
            if distressed {
                push(
                    &mut hits,
                    RiskKind::DangerousMedicine,
                    "medicine.with_distress",
                    vec![drug.clone()],
                );
                push(
                    &mut hits,
                    RiskKind::LifeCare,
                    "life_care.medicine_with_distress",
                    std::iter::once(drug).chain(words.iter().cloned()).collect(),
                );
            }
        }

        // Elderly: a self-description fires above; confusion needs company (another confused
        // turn, or an earlier self-description); the same message three times fires on its own.
        let elderly_before = recent_rules
            .iter()
            .any(|h| any_rule_of(h, RiskKind::Elderly));
        let confused = current_rules
            .iter()
            .find(|(r, _)| RULES[*r].name == "elderly.confused");
        if let (Some((r, words)), true) = (confused, elderly_before) {
            push(&mut hits, RiskKind::Elderly, RULES[*r].name, words.clone());
        }
        let asked = current.raw.trim();
        let repeats = recent
            .iter()
            .filter(|p| !asked.is_empty() && p.raw.trim() == asked)
            .count();
        if repeats >= 2 {
            push(
                &mut hits,
                RiskKind::Elderly,
                "elderly.repeats",
                vec![asked.to_string()],
            );
        }

        // Dispute: anger in this turn and in one of the two before.
        if let Some(word) = any_of(&current.raw, &LEXICONS.anger) {
            let anger = &LEXICONS.anger;
            if let Some(before) = recent.iter().take(2).find_map(|p| any_of(&p.raw, anger)) {
                push(
                    &mut hits,
                    RiskKind::Dispute,
                    "dispute.repeated_anger",
                    vec![before, word],
                );
            }
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
