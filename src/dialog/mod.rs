//! The decision for one shopper message: risk first, then the shop's FAQ and the intent model;
//! answer, ask which one, ask for a missing value, or hand off to a human queue. Every
//! [`Decision`] carries a [`Trace`] of what led to it (risk hits, scores, the thresholds in force,
//! the rule that decided), which is what the agent console and the eval replay show.
//!
//! Order, and why: risk signals are checked before anything else and never wait behind a
//! confidence check (a life-care message must not get an FAQ answer, however well it matches);
//! then explicit feedback ("没用"); then the shop's reception mode; then the FAQ, because a
//! merchant's own answer beats a platform default; then the intent's default response; then a
//! fallback that counts as unhelpful, so two of them in a row reach a human.

pub mod action;
pub mod extract;
pub mod policy;
pub mod responses;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

pub use crate::domain::{Conversation, DialogState, Owner, Reason, Speaker, Turn};
use crate::knowledge::{Knowledge, KnowledgeError};
use crate::nlu::cascade::{Cascade, Tier};
use crate::nlu::{NluError, OOS};
use crate::risk::{model::LifeCareModel, RiskDetector, RiskHit, RiskKind};
use crate::text;
pub use policy::{BusinessHours, DialogConfig, Policy, PolicyOverride, Reception};
use responses::IntentResponse;

#[derive(Debug, thiserror::Error)]
pub enum DialogError {
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error(transparent)]
    Nlu(#[from] NluError),
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
}

/// The language a reply is written in: Chinese when the shopper wrote any Chinese.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn of(message: &str) -> Lang {
        if message.chars().any(text::is_cjk) {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// One quick-reply choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// What the button says.
    pub label: String,
    /// What the bot receives when it is pressed (an FAQ id or an intent).
    pub value: String,
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Source {
    Faq(String),
    Intent(String),
    /// The merchant's webhook, by action name.
    Action(String),
}

/// What the bot does with a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Action {
    /// Reply with an answer. `notify_human` also puts the chat in a human's queue.
    Answer {
        text: String,
        buttons: Vec<String>,
        link: Option<String>,
        source: Source,
        notify_human: bool,
    },
    /// Ask for a value the answer needs.
    AskFor { slot: String, text: String },
    /// The best candidates are too close: ask which one.
    Clarify { text: String, choices: Vec<Choice> },
    /// Hand the chat to a human; `reply` is what the shopper sees now.
    Handoff {
        reason: Reason,
        priority: u8,
        queue: String,
        reply: String,
    },
    /// Outside business hours: say so instead of handing off.
    Closed { text: String },
    /// A human owns the conversation; the bot stays silent (the message is kept).
    Silent,
}

/// An FAQ candidate as the trace shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqCandidate {
    pub id: String,
    pub score: f32,
    pub matched: String,
    /// The intent the fast model reads in the entry's standard question (the best candidate
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

/// Everything that led to a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The rule that decided (`risk.life_care`, `faq.confident`, `intent.ambiguous`, ...).
    pub rule: String,
    pub risk: Vec<RiskHit>,
    /// The top intents with calibrated probabilities (out-of-scope left out).
    pub intents: Vec<(String, f32)>,
    pub faq: Vec<FaqCandidate>,
    /// The policy in force for this shop when the message arrived.
    pub policy: Policy,
    pub slots: BTreeMap<String, String>,
    pub unhelpful: u32,
    /// Whether the intent model's own verdict was in scope (its `oos` class and threshold).
    #[serde(default)]
    pub intent_in_scope: bool,
    /// Which intent tier answered (the fast model, or the encoder behind it in a cascade).
    #[serde(default)]
    pub tier: Tier,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    pub trace: Trace,
}

/// What the engine needs to know about the world for one message.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub now: DateTime<FixedOffset>,
    /// Online agents of this shop with free capacity (human-first reception needs it).
    pub agents_available: usize,
}

/// A config file a running process follows: checked at most once a second, reloaded when its
/// modification time or size changes, so `honeydesk tune --apply` (or an operator's edit) reaches a
/// running `serve` without a restart. A file that fails to load is logged and the config in force
/// stays.
pub struct ConfigWatch {
    path: std::path::PathBuf,
    state: std::sync::Mutex<(Option<(std::time::SystemTime, u64)>, std::time::Instant)>,
}

impl ConfigWatch {
    pub fn new(path: &std::path::Path) -> Self {
        ConfigWatch {
            path: path.to_path_buf(),
            state: std::sync::Mutex::new((Self::stamp(path), std::time::Instant::now())),
        }
    }

    /// The file followed.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
        let m = std::fs::metadata(path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// Reload into `engine` if the file changed since the last look.
    pub fn refresh(&self, engine: &Engine) {
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        if state.1.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        state.1 = std::time::Instant::now();
        let now = Self::stamp(&self.path);
        if now == state.0 {
            return;
        }
        match DialogConfig::load(&self.path) {
            Ok(config) => {
                engine.set_config(config);
                state.0 = now;
                tracing::info!(path = %self.path.display(), "reloaded the dialogue config");
            }
            Err(e) => tracing::warn!(error = %e, "kept the dialogue config in force"),
        }
    }
}

/// Phrases that say the last answer did not help.
const UNHELPFUL: &[&str] = &[
    "没用",
    "没有用",
    "不是这个",
    "答非所问",
    "不是我要问的",
    "不是我问的",
    "不对",
    "听不懂",
    "你在说什么",
    "说的什么",
    "机器人吧",
    "not helpful",
    "that's not what i asked",
    "thats not what i asked",
    "wrong answer",
    "useless",
    "doesn't help",
    "didn't help",
    "not what i asked",
    "you don't understand",
];

/// Words that add no request to an [`UNHELPFUL`] phrase: who or what was unhelpful, fillers.
const FEEDBACK_FILLER: &[&str] = &[
    "你这个",
    "你们",
    "这个",
    "回答",
    "机器人",
    "客服",
    "你",
    "的",
    "了",
    "啊",
    "呀",
    "吧",
    "呢",
    "真",
    "太",
    "完全",
    "根本",
    "answer",
    "answers",
    "reply",
    "try",
    "again",
    "please",
    "the",
    "this",
    "that",
    "that's",
    "thats",
    "your",
    "you",
    "bot",
    "robot",
    "is",
    "was",
    "are",
    "totally",
    "so",
    "very",
    "really",
    "completely",
    "a",
    "an",
    "it",
    "lol",
];

/// Whether `normalized` says only that the last answer missed: with every [`UNHELPFUL`] phrase
/// and [`FEEDBACK_FILLER`] word taken out, no letter or character is left.
fn only_feedback(normalized: &str) -> bool {
    let mut rest = normalized.to_string();
    for p in UNHELPFUL {
        rest = rest.replace(p, " ");
    }
    let mut rest: String = rest
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    // Whole words for the Latin fillers; anywhere for the Chinese ones.
    for f in FEEDBACK_FILLER.iter().filter(|f| !f.is_ascii()) {
        rest = rest.replace(f, " ");
    }
    rest.split_whitespace()
        .all(|w| FEEDBACK_FILLER.contains(&w))
}

/// The dialogue engine. Shared by every conversation; holds no per-conversation state.
/// Most FAQ questions whose intent an engine keeps read (then it starts over).
const ENTRY_INTENTS_KEPT: usize = 100_000;

pub struct Engine {
    intents: Arc<Cascade>,
    /// The intent the fast model reads in an FAQ entry's standard question, by the question: an
    /// entry asks the same thing until the merchant edits it, and the edit is a new key.
    entry_intents: dashmap::DashMap<String, Option<String>>,
    knowledge: Arc<Knowledge>,
    life_care: Option<Arc<LifeCareModel>>,
    config: ArcSwap<DialogConfig>,
    responses: HashMap<String, IntentResponse>,
}

impl Engine {
    /// `intents`: the fast model alone (an `Arc<IntentModel>`) or a [`Cascade`].
    pub fn new(
        intents: impl Into<Cascade>,
        knowledge: Arc<Knowledge>,
        life_care: Option<Arc<LifeCareModel>>,
        config: DialogConfig,
    ) -> Self {
        Engine {
            intents: Arc::new(intents.into()),
            entry_intents: dashmap::DashMap::new(),
            knowledge,
            life_care,
            config: ArcSwap::from_pointee(config),
            responses: responses::bundled(),
        }
    }

    /// The intent of an FAQ entry's standard question, as the fast model reads it (`None`: out of
    /// scope).
    fn entry_intent(&self, question: &str) -> Result<Option<String>, NluError> {
        if let Some(known) = self.entry_intents.get(question) {
            return Ok(known.clone());
        }
        let intent = self.intents.fast().classify(question)?.intent;
        if self.entry_intents.len() >= ENTRY_INTENTS_KEPT {
            self.entry_intents.clear();
        }
        self.entry_intents
            .insert(question.to_string(), intent.clone());
        Ok(intent)
    }

    /// The intent models the engine asks.
    pub fn intents(&self) -> &Arc<Cascade> {
        &self.intents
    }

    /// Replace the configuration; the next message of every shop sees it.
    pub fn set_config(&self, config: DialogConfig) {
        self.config.store(Arc::new(config));
    }

    pub fn config(&self) -> Arc<DialogConfig> {
        self.config.load_full()
    }

    pub fn knowledge(&self) -> &Knowledge {
        &self.knowledge
    }

    /// Whether deciding for `shop` may wait on something slow: the sentence encoder (the
    /// cascade's accurate tier, or the FAQ's semantic pass) or a merchant webhook. A server
    /// runs those decisions on threads made for blocking; the others, a few hundred
    /// microseconds of CPU, it runs in place, where handing them to another thread and back
    /// cost about a tenth of the CPU per message.
    pub fn may_block(&self, shop: &str) -> bool {
        self.intents.head().is_some()
            || self.knowledge.is_semantic()
            || self.config.load().has_actions(shop)
    }

    /// Decide what to do with `message` in `conv`, and record the shopper's and the bot's turns.
    pub fn respond(
        &self,
        conv: &mut Conversation,
        message: &str,
        ctx: &Context,
    ) -> Result<Decision, DialogError> {
        let policy = self.config.load().policy(&conv.shop);
        let history = conv.shopper_history(crate::risk::HISTORY_TURNS);
        // A message with no words (an order number alone) keeps the conversation's language.
        let lang = if message.chars().any(|c| c.is_alphabetic()) {
            Lang::of(message)
        } else {
            conv.turns
                .iter()
                .rev()
                .filter(|t| t.speaker == Speaker::Shopper)
                .find(|t| t.text.chars().any(|c| c.is_alphabetic()))
                .map_or(Lang::Zh, |t| Lang::of(&t.text))
        };
        conv.push_turn(Speaker::Shopper, message.to_string(), ctx.now);
        let normalized = text::normalize(message);
        for (slot, value) in extract::extract(&normalized) {
            conv.slots.insert(slot.to_string(), value);
        }
        let mut trace = Trace {
            rule: String::new(),
            risk: Vec::new(),
            intents: Vec::new(),
            faq: Vec::new(),
            policy: policy.clone(),
            slots: conv.slots.clone(),
            unhelpful: conv.unhelpful,
            intent_in_scope: false,
            tier: Tier::Fast,
        };

        // A human owns it: the message is in the transcript; the bot says nothing, unless it is
        // life-care talk, which still raises the conversation's priority (below).
        let mut detector = RiskDetector::new(policy.risk.clone());
        if let Some(m) = &self.life_care {
            detector = detector.with_model(m.clone());
        }
        trace.risk = detector.detect(message, &history);
        if conv.owner != Owner::Bot {
            let life_care = trace.risk.iter().any(|h| h.kind == RiskKind::LifeCare);
            let action = if life_care && conv.owner == Owner::Queued {
                handoff(Reason::LifeCare, lang)
            } else {
                Action::Silent
            };
            trace.rule = "owned_by_human".into();
            return Ok(self.finish(conv, action, trace, ctx));
        }

        // 1. Risk, before anything else.
        if let Some(top) = trace.risk.first() {
            let reason = top.kind.reason();
            trace.rule = format!("risk.{}", top.kind.as_str());
            let action = self.handoff_or_closed(reason, lang, &policy, ctx);
            return Ok(self.finish(conv, action, trace, ctx));
        }

        // 2. Feedback on the last answer.
        let said_unhelpful = UNHELPFUL.iter().any(|p| normalized.contains(p));
        if said_unhelpful {
            conv.unhelpful += 1;
            if conv.unhelpful >= policy.unhelpful_limit {
                trace.rule = "unhelpful.limit".into();
                let action = self.handoff_or_closed(Reason::Unhelpful, lang, &policy, ctx);
                return Ok(self.finish(conv, action, trace, ctx));
            }
        }

        // A message that is nothing but the complaint gives the bot nothing new to answer: a
        // second guess from "答非所问" alone is a guess at random. Ask again, with a human one tap
        // away (the limit above still hands off when the feedback repeats).
        if said_unhelpful && only_feedback(&normalized) {
            trace.rule = "unhelpful.ask_again".into();
            let (text, human) = match lang {
                Lang::Zh => ("抱歉没帮上忙～能换个说法说说您的问题吗？也可以直接找人工客服。", "转人工"),
                Lang::En => (
                    "Sorry that didn't help. Could you tell me your question another way? Or talk to a person.",
                    "talk to a person",
                ),
            };
            let action = Action::Clarify {
                text: text.into(),
                choices: vec![Choice {
                    label: human.into(),
                    value: human.into(),
                }],
            };
            return Ok(self.finish(conv, action, trace, ctx));
        }

        // 3. Reception mode.
        let to_human = match policy.reception {
            Reception::BotFirst => false,
            Reception::HumanFirst => ctx.agents_available > 0,
            Reception::Ratio { human_share } => share(&conv.id) < human_share,
        };
        if to_human
            && conv
                .turns
                .iter()
                .filter(|t| t.speaker == Speaker::Shopper)
                .count()
                == 1
        {
            trace.rule = "reception".into();
            let action = handoff(Reason::Reception, lang);
            return Ok(self.finish(conv, action, trace, ctx));
        }

        // 4. A value an earlier intent was waiting for.
        if let Some(intent) = conv.pending.clone() {
            if let Some(action) = self.intent_reply(conv, &intent, lang, &policy, message) {
                if !matches!(action, Action::AskFor { .. }) {
                    conv.pending = None;
                    trace.rule = "intent.pending_value".into();
                    return Ok(self.finish(conv, action, trace, ctx));
                }
            }
        }

        // 5. The shop's FAQ, then the intent model.
        let tiered = self.intents.classify(message)?;
        trace.tier = tiered.tier;
        let prediction = tiered.prediction;
        trace.intents = prediction
            .ranked
            .iter()
            .filter(|(l, _)| l != OOS)
            .take(3)
            .cloned()
            .collect();
        let hits = match self.knowledge.search(&conv.shop, message, 3, ctx.now) {
            Ok(h) => h,
            Err(KnowledgeError::UnknownShop(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        trace.faq = hits
            .iter()
            .map(|h| FaqCandidate {
                id: h.entry.id.clone(),
                score: h.score,
                matched: h.matched.clone(),
                intent: None,
            })
            .collect();

        trace.intent_in_scope = prediction.intent.is_some();
        let faq_scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
        // The best entry's own intent (cached by question, so an entry is classified once), kept
        // in the trace so that a threshold sweep can replay the agreement at every setting.
        if let Some(best) = hits.first() {
            trace.faq[0].intent = self.entry_intent(&best.entry.question)?;
        }
        let top_entry_intent = trace.faq.first().and_then(|c| c.intent.as_deref());
        match choose(
            &policy,
            &faq_scores,
            top_entry_intent,
            &trace.intents,
            trace.intent_in_scope,
        ) {
            Choose::Faq(i) => {
                trace.rule = if faq_scores[i] >= policy.faq_threshold {
                    "faq.confident".into()
                } else {
                    "faq.intent_agrees".into()
                };
                conv.unhelpful = if said_unhelpful { conv.unhelpful } else { 0 };
                let entry = &hits[i].entry;
                let action = Action::Answer {
                    text: entry.answer.text.clone(),
                    buttons: entry.answer.buttons.clone(),
                    link: entry.answer.link.clone(),
                    source: Source::Faq(entry.id.clone()),
                    notify_human: entry.notify_human,
                };
                return Ok(self.finish(conv, action, trace, ctx));
            }
            Choose::FaqClarify(close) => {
                trace.rule = "faq.ambiguous".into();
                let choices = close
                    .iter()
                    .map(|&i| Choice {
                        label: hits[i].entry.question.clone(),
                        value: hits[i].entry.id.clone(),
                    })
                    .collect();
                let action = Action::Clarify {
                    text: clarify_text(lang),
                    choices,
                };
                return Ok(self.finish(conv, action, trace, ctx));
            }
            Choose::Intent(i) => {
                let intent = trace.intents[i].0.clone();
                if let Some(action) = self.intent_reply(conv, &intent, lang, &policy, message) {
                    if trace.rule.is_empty() {
                        trace.rule = "intent.confident".into();
                    }
                    conv.unhelpful = if said_unhelpful { conv.unhelpful } else { 0 };
                    return Ok(self.finish(conv, action, trace, ctx));
                }
            }
            Choose::IntentClarify(close) => {
                trace.rule = "intent.ambiguous".into();
                let choices = close
                    .iter()
                    .map(|&i| Choice {
                        label: responses::intent_name(&trace.intents[i].0, lang),
                        value: trace.intents[i].0.clone(),
                    })
                    .collect();
                let action = Action::Clarify {
                    text: clarify_text(lang),
                    choices,
                };
                return Ok(self.finish(conv, action, trace, ctx));
            }
            Choose::Nothing => {}
        }

        // 6. Nothing confident: a fallback, which counts as unhelpful.
        if !said_unhelpful {
            conv.unhelpful += 1;
        }
        if conv.unhelpful >= policy.unhelpful_limit {
            trace.rule = "low_confidence.limit".into();
            let action = self.handoff_or_closed(Reason::LowConfidence, lang, &policy, ctx);
            return Ok(self.finish(conv, action, trace, ctx));
        }
        trace.rule = "fallback".into();
        let text = match lang {
            Lang::Zh => "抱歉亲，我没太明白，可以换个说法，或者选一个常见问题～",
            Lang::En => {
                "Sorry, I didn't quite get that. Could you rephrase, or pick a common topic?"
            }
        };
        let greeting = &self.responses["greeting"];
        let action = Action::Clarify {
            text: text.into(),
            choices: greeting
                .buttons(lang)
                .iter()
                .map(|b| Choice {
                    label: b.clone(),
                    value: b.clone(),
                })
                .collect(),
        };
        Ok(self.finish(conv, action, trace, ctx))
    }

    /// The response of `intent`: ask first for a value it needs; then the merchant's action if
    /// the shop has one, else the platform default. A failed action hands off.
    fn intent_reply(
        &self,
        conv: &mut Conversation,
        intent: &str,
        lang: Lang,
        policy: &Policy,
        message: &str,
    ) -> Option<Action> {
        let response = self.responses.get(intent)?;
        if let Some(missing) = response.needs.iter().find(|n| !conv.slots.contains_key(*n)) {
            conv.pending = Some(intent.to_string());
            let base = response.text(lang);
            let (ask, mentioned) = match (missing.as_str(), lang) {
                ("order_number", Lang::Zh) => ("（请提供订单号）".to_string(), "订单号"),
                ("order_number", Lang::En) => (
                    " (please send your order number)".to_string(),
                    "order number",
                ),
                (slot, Lang::Zh) => (format!("（请提供{slot}）"), slot),
                (slot, Lang::En) => (format!(" (please send your {slot})"), slot),
            };
            // The default responses usually ask already; only add the ask when they do not.
            let text = if base.contains(mentioned) {
                base.to_string()
            } else {
                format!("{base}{ask}")
            };
            return Some(Action::AskFor {
                slot: missing.clone(),
                text,
            });
        }
        if let Some((name, url)) = response
            .action
            .as_ref()
            .and_then(|a| policy.actions.get(a).map(|url| (a, url)))
        {
            let request = action::ActionRequest {
                action: name.clone(),
                shop: conv.shop.clone(),
                conversation: conv.id.clone(),
                intent: intent.to_string(),
                lang: match lang {
                    Lang::Zh => "zh".into(),
                    Lang::En => "en".into(),
                },
                message: message.to_string(),
                slots: conv.slots.clone(),
            };
            let timeout = std::time::Duration::from_millis(policy.action_timeout_ms);
            return Some(match action::call(url, timeout, &request) {
                Ok(reply) => Action::Answer {
                    text: reply.text,
                    buttons: reply.buttons,
                    link: reply.link,
                    source: Source::Action(name.clone()),
                    notify_human: false,
                },
                Err(why) => {
                    tracing::warn!(shop = %conv.shop, "{why}");
                    conv.action_error = Some(why);
                    handoff(Reason::ActionFailed, lang)
                }
            });
        }
        if !response.needs.is_empty() {
            // The values are known but this shop has no system for the bot to ask: a person
            // looks it up, with the values already collected.
            conv.action_error = Some(format!(
                "no webhook for '{}' in this shop",
                response.action.as_deref().unwrap_or(intent)
            ));
            return Some(handoff(Reason::ActionFailed, lang));
        }
        Some(Action::Answer {
            text: response.text(lang).to_string(),
            buttons: response.buttons(lang).to_vec(),
            link: None,
            source: Source::Intent(intent.to_string()),
            notify_human: false,
        })
    }

    fn handoff_or_closed(
        &self,
        reason: Reason,
        lang: Lang,
        policy: &Policy,
        ctx: &Context,
    ) -> Action {
        if reason != Reason::LifeCare && reason != Reason::DangerousMedicine {
            if let Some(hours) = &policy.hours {
                if !hours.is_open(ctx.now) {
                    let text = match lang {
                        Lang::Zh => hours.closed_message_zh.clone(),
                        Lang::En => hours.closed_message_en.clone(),
                    };
                    return Action::Closed { text };
                }
            }
        }
        handoff(reason, lang)
    }

    /// Record the bot's turn and the ownership change a handoff makes.
    fn finish(
        &self,
        conv: &mut Conversation,
        action: Action,
        mut trace: Trace,
        ctx: &Context,
    ) -> Decision {
        let said = match &action {
            Action::Answer { text, .. }
            | Action::AskFor { text, .. }
            | Action::Clarify { text, .. }
            | Action::Closed { text } => Some(text.clone()),
            Action::Handoff { reply, .. } => Some(reply.clone()),
            Action::Silent => None,
        };
        if let Some(text) = said {
            conv.push_turn(Speaker::Bot, text, ctx.now);
        }
        if matches!(action, Action::Handoff { .. }) && conv.owner == Owner::Bot {
            conv.owner = Owner::Queued;
        }
        if let Action::Answer {
            notify_human: true, ..
        } = action
        {
            trace.rule.push_str("+notify_human");
        }
        if let Some(why) = conv.action_error.take() {
            trace.rule = format!("action.failed: {why}");
        }
        trace.slots = conv.slots.clone();
        trace.unhelpful = conv.unhelpful;
        Decision { action, trace }
    }
}

/// The confidence part of a decision, on scores alone. `respond` uses it, and so does the eval
/// sweep, which re-runs it on recorded scores for every threshold setting it tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choose {
    /// Answer with this FAQ candidate.
    Faq(usize),
    /// Ask which of these FAQ candidates (2 or 3) is meant.
    FaqClarify(Vec<usize>),
    /// Use this intent's response.
    Intent(usize),
    /// Ask which of these intents is meant.
    IntentClarify(Vec<usize>),
    /// Nothing confident.
    Nothing,
}

/// Choose on scores. `faq` holds the FAQ candidates' scores, best first; `top_entry_intent` the
/// intent of the best candidate's standard question, if read; `intents` the top in-scope
/// intents, best first; `in_scope` whether the model's verdict was in scope at all.
///
/// The FAQ comes first because a merchant's own answer beats a platform default. The runner-up
/// counts whatever its score: two entries that match almost equally well are a question to ask,
/// even when only one of them clears the threshold. Below the FAQ threshold, the best entry
/// still answers when the intent model is confident (unambiguously, on its own threshold) in the
/// very intent the entry's question has, and the entry clears `faq_agree_threshold`: a shopper's
/// "我的快递三天没动了" shares few words with "物流一直不更新怎么办", but both read as
/// where_is_my_parcel, and the merchant's answer beats asking for an order number.
pub fn choose(
    policy: &Policy,
    faq: &[f32],
    top_entry_intent: Option<&str>,
    intents: &[(String, f32)],
    in_scope: bool,
) -> Choose {
    if let Some(&best) = faq.first().filter(|s| **s >= policy.faq_threshold) {
        let close: Vec<usize> = (1..faq.len())
            .filter(|&i| best - faq[i] < policy.ambiguity_gap)
            .collect();
        if close.is_empty() {
            return Choose::Faq(0);
        }
        return Choose::FaqClarify(std::iter::once(0).chain(close).take(3).collect());
    }
    if let Some((intent, p)) = intents.first().filter(|_| in_scope) {
        if *p >= policy.intent_threshold {
            let close: Vec<usize> = (1..intents.len())
                .filter(|&i| p - intents[i].1 < policy.ambiguity_gap)
                .collect();
            if close.is_empty() {
                let agrees = top_entry_intent == Some(intent.as_str())
                    && faq
                        .first()
                        .is_some_and(|s| *s >= policy.faq_agree_threshold);
                return if agrees {
                    Choose::Faq(0)
                } else {
                    Choose::Intent(0)
                };
            }
            return Choose::IntentClarify(std::iter::once(0).chain(close).take(3).collect());
        }
    }
    Choose::Nothing
}

fn clarify_text(lang: Lang) -> String {
    match lang {
        Lang::Zh => "亲，您想问的是哪一个呢？".into(),
        Lang::En => "Which of these do you mean?".into(),
    }
}

/// A handoff with the reply its risk detector gives (the caring reply, with a crisis line, for
/// life-care), or the plain one.
fn handoff(reason: Reason, lang: Lang) -> Action {
    let risk_reply = RiskKind::ALL
        .iter()
        .find(|k| k.reason() == reason)
        .and_then(|k| crate::risk::reply(*k, lang == Lang::Zh));
    let reply = risk_reply.unwrap_or(match lang {
        Lang::Zh => "好的，正在为您转接人工客服，请稍等～",
        Lang::En => "Sure, connecting you with a person now.",
    });
    Action::Handoff {
        reason,
        priority: reason.priority(),
        queue: reason.queue().to_string(),
        reply: reply.to_string(),
    }
}

/// A stable number in 0..1 for a conversation id (FNV-1a), for ratio reception.
fn share(id: &str) -> f32 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % 10_000) as f32 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_alone_is_told_from_feedback_with_a_question() {
        for bare in [
            "答非所问",
            "你这个回答没用",
            "没用，不是这个",
            "useless answer, try again",
            "that's not what i asked",
            "Wrong answer!!",
        ] {
            assert!(only_feedback(&text::normalize(bare)), "{bare}");
        }
        for asking in [
            "没用，我问的是运费谁出",
            "还是不行，没用",
            "not helpful, where is my parcel",
            "useless, I want a refund",
        ] {
            assert!(!only_feedback(&text::normalize(asking)), "{asking}");
        }
    }

    /// Thresholds that are exact in binary, so a boundary test compares exactly what it says.
    fn policy() -> Policy {
        Policy {
            intent_threshold: 0.5,
            ambiguity_gap: 0.125,
            faq_threshold: 0.5,
            faq_agree_threshold: 0.25,
            ..Policy::default()
        }
    }

    fn intents(scores: &[(&str, f32)]) -> Vec<(String, f32)> {
        scores.iter().map(|(l, p)| (l.to_string(), *p)).collect()
    }

    #[test]
    fn choose_answers_from_the_faq_at_its_threshold_and_not_below() {
        let p = policy();
        assert_eq!(choose(&p, &[0.5], None, &[], false), Choose::Faq(0));
        assert_eq!(choose(&p, &[0.9, 0.1], None, &[], false), Choose::Faq(0));
        assert_eq!(choose(&p, &[0.49], None, &[], false), Choose::Nothing);
        assert_eq!(choose(&p, &[], None, &[], false), Choose::Nothing);
    }

    #[test]
    fn choose_asks_between_faq_entries_closer_than_the_gap() {
        let p = policy();
        // A gap of exactly ambiguity_gap is not close; anything less is.
        assert_eq!(choose(&p, &[0.75, 0.625], None, &[], false), Choose::Faq(0));
        assert_eq!(
            choose(&p, &[0.75, 0.6875], None, &[], false),
            Choose::FaqClarify(vec![0, 1])
        );
        // The runner-up counts even below the FAQ threshold, and at most three are offered.
        assert_eq!(
            choose(&p, &[0.5, 0.4375, 0.4375, 0.4375], None, &[], false),
            Choose::FaqClarify(vec![0, 1, 2])
        );
        // The FAQ wins over a confident intent.
        let i = intents(&[("refund", 0.99)]);
        assert_eq!(choose(&p, &[0.5], None, &i, true), Choose::Faq(0));
    }

    #[test]
    fn choose_falls_back_to_a_confident_unambiguous_intent() {
        let p = policy();
        let i = intents(&[("refund", 0.5), ("exchange", 0.25)]);
        assert_eq!(choose(&p, &[0.25], None, &i, true), Choose::Intent(0));
        let below = intents(&[("refund", 0.49)]);
        assert_eq!(choose(&p, &[], None, &below, true), Choose::Nothing);
        // Out of scope overall: the in-scope runner-up list is not acted on.
        assert_eq!(choose(&p, &[], None, &i, false), Choose::Nothing);
        let close = intents(&[("refund", 0.75), ("exchange", 0.6875), ("warranty", 0.7)]);
        assert_eq!(
            choose(&p, &[], None, &close, true),
            Choose::IntentClarify(vec![0, 1, 2])
        );
        let gap = intents(&[("refund", 0.75), ("exchange", 0.625)]);
        assert_eq!(choose(&p, &[], None, &gap, true), Choose::Intent(0));
    }

    #[test]
    fn choose_lets_a_weak_faq_entry_answer_when_the_intent_model_reads_the_same_intent() {
        let p = policy();
        let i = intents(&[("where_is_my_parcel", 0.875)]);
        let same = Some("where_is_my_parcel");
        assert_eq!(choose(&p, &[0.25], same, &i, true), Choose::Faq(0));
        // Below faq_agree_threshold, or another intent in the entry: the intent's own response.
        assert_eq!(choose(&p, &[0.24], same, &i, true), Choose::Intent(0));
        assert_eq!(
            choose(&p, &[0.25], Some("refund"), &i, true),
            Choose::Intent(0)
        );
        // An ambiguous intent does not vouch for anything.
        let close = intents(&[("where_is_my_parcel", 0.875), ("urge_shipment", 0.8125)]);
        assert_eq!(
            choose(&p, &[0.25], same, &close, true),
            Choose::IntentClarify(vec![0, 1])
        );
    }
}
