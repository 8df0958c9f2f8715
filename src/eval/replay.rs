//! Replaying labelled logs through the dialogue engine, and the metrics of what it decided.
//!
//! A log is one JSON object per line (or CSV with the same columns); only `text` is required:
//! `{"conversation", "shop", "text", "intent", "faq", "expected", "risk"}`. Lines with the same
//! `conversation` are replayed in file order as one conversation; lines without one are single
//! turns. When the engine hands off mid-conversation, the replay lets the human "resolve" at once,
//! so every later labelled line still gets a decision of its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::dialog::{
    choose, Action, Choose, Context, Conversation, Decision, Engine, Owner, Policy, Source,
};
use crate::risk::RiskKind;

/// What the shopper should have got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    Answer,
    Clarify,
    Handoff,
}

/// One labelled line.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledTurn {
    /// 1-based line (CSV: the record's line).
    pub line: usize,
    pub conversation: Option<String>,
    pub shop: Option<String>,
    pub text: String,
    pub intent: Option<String>,
    pub faq: Option<String>,
    pub expected: Option<Expected>,
    pub risk: Option<RiskKind>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    BadLine {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{0}: no labelled lines")]
    Empty(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    conversation: Option<serde_json::Value>,
    shop: Option<String>,
    text: Option<String>,
    intent: Option<String>,
    faq: Option<String>,
    expected: Option<String>,
    risk: Option<String>,
}

fn to_turn(raw: RawLine, line: usize) -> Result<LabelledTurn, String> {
    let text = raw
        .text
        .filter(|t| !t.trim().is_empty())
        .ok_or("missing \"text\"")?;
    let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let expected = match blank(raw.expected).as_deref() {
        None => None,
        Some("answer") => Some(Expected::Answer),
        Some("clarify") => Some(Expected::Clarify),
        Some("handoff") => Some(Expected::Handoff),
        Some(other) => {
            return Err(format!(
                "expected '{other}' is not answer, clarify or handoff"
            ))
        }
    };
    let risk = match blank(raw.risk) {
        None => None,
        Some(r) => Some(RiskKind::parse(&r).ok_or_else(|| {
            let kinds: Vec<&str> = RiskKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "risk '{r}' is not one of {} (or medicine)",
                kinds.join(", ")
            )
        })?),
    };
    let conversation = match raw.conversation {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err("conversation must be a string".into()),
    };
    Ok(LabelledTurn {
        line,
        conversation,
        shop: blank(raw.shop),
        text,
        intent: blank(raw.intent),
        faq: blank(raw.faq),
        expected,
        risk,
    })
}

/// Read a labelled log (`.csv` by extension, JSONL otherwise). With `skip_bad`, bad lines are
/// counted and skipped; without it the first one stops the load with its line number.
pub fn load(path: &Path, skip_bad: bool) -> Result<(Vec<LabelledTurn>, usize), LogError> {
    let p = path.display().to_string();
    let text = std::fs::read(path).map_err(|source| LogError::Io {
        path: p.clone(),
        source,
    })?;
    let mut turns = Vec::new();
    let mut bad = 0;
    let mut fail = |line: usize, reason: String| -> Result<(), LogError> {
        if skip_bad {
            bad += 1;
            Ok(())
        } else {
            Err(LogError::BadLine {
                path: p.clone(),
                line,
                reason,
            })
        }
    };
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut reader = csv::Reader::from_reader(&text[..]);
        let headers = reader
            .headers()
            .map_err(|e| LogError::BadLine {
                path: p.clone(),
                line: 1,
                reason: e.to_string(),
            })?
            .clone();
        for record in reader.records() {
            match record {
                Ok(r) => {
                    let line = r.position().map_or(0, |pos| pos.line() as usize);
                    match r
                        .deserialize::<RawLine>(Some(&headers))
                        .map_err(|e| e.to_string())
                        .and_then(|raw| to_turn(raw, line))
                    {
                        Ok(t) => turns.push(t),
                        Err(reason) => fail(line, reason)?,
                    }
                }
                Err(e) => {
                    let line = e.position().map_or(0, |pos| pos.line() as usize);
                    fail(line, e.to_string())?
                }
            }
        }
    } else {
        let text = match String::from_utf8(text) {
            Ok(t) => t,
            Err(e) => {
                let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                return Err(LogError::BadLine {
                    path: p,
                    line,
                    reason: "invalid UTF-8".into(),
                });
            }
        };
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RawLine>(l)
                .map_err(|e| e.to_string())
                .and_then(|raw| to_turn(raw, i + 1))
            {
                Ok(t) => turns.push(t),
                Err(reason) => fail(i + 1, reason)?,
            }
        }
    }
    if turns.is_empty() {
        return Err(LogError::Empty(p));
    }
    Ok((turns, bad))
}

/// What the engine decided for one line.
#[derive(Debug, Clone)]
pub struct TurnResult {
    pub decision: Decision,
    pub latency_us: f64,
}

/// Replay every line through `engine`, conversations in file order. `progress` is called with
/// (done, total) every 500 turns.
pub fn replay(
    engine: &Engine,
    turns: &[LabelledTurn],
    default_shop: &str,
    now: DateTime<FixedOffset>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<TurnResult>, crate::dialog::DialogError> {
    let mut conversations: HashMap<String, Conversation> = HashMap::new();
    let mut out = Vec::with_capacity(turns.len());
    let ctx = Context {
        now,
        agents_available: 1,
    };
    for (i, t) in turns.iter().enumerate() {
        let shop = t.shop.as_deref().unwrap_or(default_shop);
        let key = t
            .conversation
            .clone()
            .unwrap_or_else(|| format!("line-{}", t.line));
        let conv = conversations
            .entry(key.clone())
            .or_insert_with(|| Conversation::new(key, shop));
        // The human resolved whatever the last handoff was.
        conv.owner = Owner::Bot;
        let started = Instant::now();
        let decision = engine.respond(conv, &t.text, &ctx)?;
        out.push(TurnResult {
            decision,
            latency_us: started.elapsed().as_secs_f64() * 1e6,
        });
        if (i + 1) % 500 == 0 {
            progress(i + 1, turns.len());
        }
    }
    Ok(out)
}

/// The decision a shopper saw, in the log's vocabulary. Asking for a missing value (the order
/// number) is a clarifying question: the shopper has no answer yet.
pub fn decided(action: &Action) -> Expected {
    match action {
        Action::Answer { .. } => Expected::Answer,
        Action::Clarify { .. } | Action::AskFor { .. } => Expected::Clarify,
        Action::Handoff { .. } | Action::Closed { .. } | Action::Silent => Expected::Handoff,
    }
}

/// Which FAQ entries answer which intent, as the log's own labels say (every line labelled with
/// both an intent and an entry ties the two): so an FAQ answer to a line labelled only with an
/// intent can still be judged.
#[derive(Debug, Clone, Default)]
pub struct EntryIntents {
    by_entry: HashMap<String, HashSet<String>>,
    by_intent: HashMap<String, HashSet<String>>,
}

impl EntryIntents {
    pub fn of(turns: &[LabelledTurn]) -> EntryIntents {
        let mut out = EntryIntents::default();
        for t in turns {
            if let (Some(faq), Some(intent)) = (&t.faq, &t.intent) {
                out.by_entry
                    .entry(faq.clone())
                    .or_default()
                    .insert(intent.clone());
                out.by_intent
                    .entry(intent.clone())
                    .or_default()
                    .insert(faq.clone());
            }
        }
        out
    }

    /// Whether entry `id` is known to answer another intent than `intent` and not `intent`, or
    /// `intent` is known to be answered by other entries only.
    fn belongs_elsewhere(&self, id: &str, intent: &str) -> bool {
        let of_intent = self.by_intent.get(intent);
        if of_intent.is_some_and(|ids| ids.contains(id)) {
            return false;
        }
        of_intent.is_some_and(|ids| !ids.is_empty())
            || self
                .by_entry
                .get(id)
                .is_some_and(|intents| !intents.contains(intent))
    }
}

/// Whether a bot answer is wrong by the line's labels: a different FAQ entry or intent than
/// labelled, an FAQ entry that by the log's labels answers another intent than the line's, any
/// answer to an out-of-scope line, or an answer where a handoff or a risk was labelled.
pub fn answer_is_wrong(turn: &LabelledTurn, source: &Source, known: &EntryIntents) -> bool {
    if turn.expected == Some(Expected::Handoff) || turn.risk.is_some() {
        return true;
    }
    match (source, &turn.faq, turn.intent.as_deref()) {
        (_, None, Some("oos")) => true,
        (Source::Faq(id), Some(gold), _) => id != gold,
        (Source::Faq(id), None, Some(intent)) => known.belongs_elsewhere(id, intent),
        (Source::Intent(i), Some(_), Some(gold)) => i != gold,
        (Source::Intent(_), Some(_), None) => true,
        (Source::Intent(i), None, Some(gold)) => i != gold,
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaqMetrics {
    /// Lines labelled with an FAQ id.
    pub turns: usize,
    pub hit_at_1: f64,
    pub hit_at_3: f64,
    pub mrr: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionMetrics {
    pub turns: usize,
    /// Share of lines labelled `expected` whose decision matched.
    pub accuracy: Option<f64>,
    /// expected → decided → count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Share of all lines the bot answered itself (no handoff, no clarifying question).
    pub automation_rate: f64,
    /// Share of the bot's answers that were wrong by the labels.
    pub answer_error_rate: Option<f64>,
    /// Share of conversations not ending in a handoff, a complaint or an ask for a human.
    pub resolution_rate: f64,
    pub conversations: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindMetrics {
    pub labelled: usize,
    pub fired: usize,
    pub recall: Option<f64>,
    pub precision: Option<f64>,
    /// Share of lines not labelled with this kind on which it fired.
    pub false_alarm_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskMetrics {
    /// Lines labelled with a risk whose kind fired.
    pub recall: Option<f64>,
    /// Lines labelled with no risk on which any risk fired.
    pub false_alarm_rate: f64,
    /// Line numbers of labelled risks whose kind did not fire: the list that matters.
    pub missed: Vec<usize>,
    pub by_kind: BTreeMap<String, KindMetrics>,
}

/// Everything the replay measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayMetrics {
    pub faq: Option<FaqMetrics>,
    pub decision: DecisionMetrics,
    pub risk: RiskMetrics,
    pub turns: usize,
    pub mean_latency_us: f64,
}

impl ReplayMetrics {
    pub fn compute(turns: &[LabelledTurn], results: &[TurnResult]) -> ReplayMetrics {
        assert_eq!(turns.len(), results.len());
        let n = turns.len();
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        let known = EntryIntents::of(turns);

        // FAQ retrieval, over lines labelled with an FAQ id that the engine retrieved for.
        let (mut faq_n, mut h1, mut h3, mut rr) = (0usize, 0usize, 0usize, 0.0);
        for (t, r) in turns.iter().zip(results) {
            let Some(gold) = &t.faq else { continue };
            faq_n += 1;
            if let Some(pos) = r.decision.trace.faq.iter().position(|c| &c.id == gold) {
                h1 += usize::from(pos == 0);
                h3 += usize::from(pos < 3);
                rr += 1.0 / (pos + 1) as f64;
            }
        }
        let faq = (faq_n > 0).then(|| FaqMetrics {
            turns: faq_n,
            hit_at_1: h1 as f64 / faq_n as f64,
            hit_at_3: h3 as f64 / faq_n as f64,
            mrr: rr / faq_n as f64,
        });

        // Decisions.
        let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let (mut labelled, mut right, mut answered, mut wrong) = (0, 0, 0, 0);
        for (t, r) in turns.iter().zip(results) {
            let got = decided(&r.decision.action);
            if let Some(want) = t.expected {
                labelled += 1;
                right += usize::from(want == got);
                *confusion
                    .entry(format!("{want:?}").to_lowercase())
                    .or_default()
                    .entry(format!("{got:?}").to_lowercase())
                    .or_default() += 1;
            }
            if let Action::Answer { source, .. } = &r.decision.action {
                answered += 1;
                wrong += usize::from(answer_is_wrong(t, source, &known));
            }
        }
        // Resolution: the last line of each conversation decides.
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, t) in turns.iter().enumerate() {
            let key = t
                .conversation
                .clone()
                .unwrap_or_else(|| format!("line-{}", t.line));
            last.insert(key, i);
        }
        let mut ended_with_human: HashSet<String> = HashSet::new();
        for (i, t) in turns.iter().enumerate() {
            let key = t
                .conversation
                .clone()
                .unwrap_or_else(|| format!("line-{}", t.line));
            let d = &results[i].decision;
            let human = matches!(d.action, Action::Handoff { .. } | Action::Closed { .. })
                || d.trace.intents.first().is_some_and(|(l, _)| {
                    d.trace.intent_in_scope && (l == "complaint" || l == "human_agent")
                });
            if human {
                ended_with_human.insert(key);
            }
        }
        let conversations = last.len();
        let resolved = conversations - ended_with_human.len();

        // Risk.
        let fired_kinds = |r: &TurnResult| -> HashSet<RiskKind> {
            r.decision.trace.risk.iter().map(|h| h.kind).collect()
        };
        let (mut risk_lines, mut risk_hit, mut clean, mut clean_fired) = (0, 0, 0, 0);
        let mut missed = Vec::new();
        for (t, r) in turns.iter().zip(results) {
            let fired = fired_kinds(r);
            match t.risk {
                Some(k) => {
                    risk_lines += 1;
                    if fired.contains(&k) {
                        risk_hit += 1;
                    } else {
                        missed.push(t.line);
                    }
                }
                None => {
                    clean += 1;
                    clean_fired += usize::from(!fired.is_empty());
                }
            }
        }
        let mut by_kind = BTreeMap::new();
        for &k in RiskKind::ALL {
            let (mut lab, mut fired_n, mut tp, mut others, mut fa) = (0, 0, 0, 0, 0);
            for (t, r) in turns.iter().zip(results) {
                let f = fired_kinds(r).contains(&k);
                fired_n += usize::from(f);
                if t.risk == Some(k) {
                    lab += 1;
                    tp += usize::from(f);
                } else {
                    others += 1;
                    fa += usize::from(f);
                }
            }
            by_kind.insert(
                k.as_str().to_string(),
                KindMetrics {
                    labelled: lab,
                    fired: fired_n,
                    recall: ratio(tp, lab),
                    precision: ratio(tp, fired_n),
                    false_alarm_rate: ratio(fa, others).unwrap_or(0.0),
                },
            );
        }

        ReplayMetrics {
            faq,
            decision: DecisionMetrics {
                turns: n,
                accuracy: ratio(right, labelled),
                confusion,
                automation_rate: ratio(answered, n).unwrap_or(0.0),
                answer_error_rate: ratio(wrong, answered),
                resolution_rate: ratio(resolved, conversations).unwrap_or(0.0),
                conversations,
            },
            risk: RiskMetrics {
                recall: ratio(risk_hit, risk_lines),
                false_alarm_rate: ratio(clean_fired, clean).unwrap_or(0.0),
                missed,
                by_kind,
            },
            turns: n,
            mean_latency_us: results.iter().map(|r| r.latency_us).sum::<f64>() / n.max(1) as f64,
        }
    }
}

/// One point of a threshold sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    pub intent_threshold: f32,
    pub faq_threshold: f32,
    pub ambiguity_gap: f32,
    pub automation_rate: f64,
    pub answer_error_rate: f64,
    /// Not beaten on both automation and error by another point.
    pub pareto: bool,
}

/// Re-run the engine's confidence rule ([`choose`]) on the recorded scores for a grid of
/// thresholds. Lines the engine decided before the confidence step (risk, feedback, reception,
/// a pending value) keep their recorded decision; the unhelpful-turn counter is not re-simulated.
pub fn sweep(turns: &[LabelledTurn], results: &[TurnResult], base: &Policy) -> Vec<SweepPoint> {
    let grid: Vec<f32> = (1..=19).map(|i| i as f32 * 0.05).collect();
    let gaps = [0.0f32, 0.05, 0.1, 0.15, 0.2];
    let known = EntryIntents::of(turns);
    let mut points = Vec::new();
    for &it in &grid {
        for &ft in &grid {
            for &gap in &gaps {
                let policy = Policy {
                    intent_threshold: it,
                    faq_threshold: ft,
                    ambiguity_gap: gap,
                    ..base.clone()
                };
                let (mut answered, mut wrong) = (0usize, 0usize);
                for (t, r) in turns.iter().zip(results) {
                    let trace = &r.decision.trace;
                    let confidence_step = trace.rule.starts_with("faq.")
                        || trace.rule.starts_with("intent.confident")
                        || trace.rule.starts_with("intent.ambiguous")
                        || trace.rule == "fallback"
                        || trace.rule == "low_confidence.limit";
                    if !confidence_step {
                        if let Action::Answer { source, .. } = &r.decision.action {
                            answered += 1;
                            wrong += usize::from(answer_is_wrong(t, source, &known));
                        }
                        continue;
                    }
                    let scores: Vec<f32> = trace.faq.iter().map(|c| c.score).collect();
                    let source = match choose(
                        &policy,
                        &scores,
                        trace.faq.first().and_then(|c| c.intent.as_deref()),
                        &trace.intents,
                        trace.intent_in_scope,
                    ) {
                        Choose::Faq(i) => Some(Source::Faq(trace.faq[i].id.clone())),
                        Choose::Intent(i) => Some(Source::Intent(trace.intents[i].0.clone())),
                        _ => None,
                    };
                    if let Some(source) = source {
                        answered += 1;
                        wrong += usize::from(answer_is_wrong(t, &source, &known));
                    }
                }
                points.push(SweepPoint {
                    intent_threshold: it,
                    faq_threshold: ft,
                    ambiguity_gap: gap,
                    automation_rate: answered as f64 / turns.len().max(1) as f64,
                    answer_error_rate: if answered == 0 {
                        0.0
                    } else {
                        wrong as f64 / answered as f64
                    },
                    pareto: false,
                });
            }
        }
    }
    for i in 0..points.len() {
        let p = &points[i];
        let beaten = points.iter().any(|q| {
            q.automation_rate >= p.automation_rate
                && q.answer_error_rate <= p.answer_error_rate
                && (q.automation_rate > p.automation_rate
                    || q.answer_error_rate < p.answer_error_rate)
        });
        points[i].pareto = !beaten;
    }
    points
}

/// The setting with the highest automation whose answer error rate is at most `target`.
pub fn best_for(points: &[SweepPoint], target: f64) -> Option<&SweepPoint> {
    points
        .iter()
        .filter(|p| p.answer_error_rate <= target)
        .max_by(|a, b| {
            a.automation_rate
                .total_cmp(&b.automation_rate)
                .then(b.answer_error_rate.total_cmp(&a.answer_error_rate))
        })
}
