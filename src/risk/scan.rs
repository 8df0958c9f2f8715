//! One message read once for every detector: normalized, idioms blanked, the named rules matched
//! in one pass over all detectors' patterns, the recent turns prepared the same way, and the
//! distress words weighed. A detector only reads a [`Scan`].

use std::sync::LazyLock;

use super::lexicon::{
    Rule, CONTEXT, DISTRESS, DISTRESS_THRESHOLD, IDIOMS, NEGATIONS, SHOP, SHOP_DISTRESS_THRESHOLD,
};
use super::pattern::{self, PatternSet};
use super::{RiskKind, DETECTORS, HISTORY_TURNS};
use crate::text;

/// A message prepared for matching.
pub struct Prepared {
    /// Normalized text with idioms blanked (for the rules).
    pub text: String,
    /// Normalized text with idioms kept (for anger, where 气死我了 *is* the signal).
    pub raw: String,
    /// The named rules that fire on `text`, in rule order, with the words that matched.
    pub rules: Vec<(&'static Rule, Vec<String>)>,
}

impl Prepared {
    /// Whether a rule of `kind` fired.
    pub fn has_rule_of(&self, kind: RiskKind) -> bool {
        self.rules.iter().any(|(r, _)| r.kind == kind)
    }
}

/// The current message and its context, as every detector reads them.
pub struct Scan<'a> {
    /// The message as the shopper typed it (the life-care model reads this).
    pub message: &'a str,
    pub current: Prepared,
    /// The shopper's earlier messages, newest first, at most [`HISTORY_TURNS`].
    pub recent: Vec<Prepared>,
    /// Distress and context weight of the current message alone; context words count only
    /// beside a distress word.
    pub distress_now: f32,
    /// The same, plus half the weight of each of the two messages before.
    pub distress_total: f32,
    /// The distress and context words behind those weights (repeats side by side dropped).
    pub distress_words: Vec<String>,
    /// Distress plus context weight of the current message, a context word alone included: the
    /// gate of the life-care model.
    pub signal_now: f32,
    /// Whether the current message names the shop's business (an order, a parcel): 心累 about an
    /// order is about the order, so distress alone needs more there.
    pub about_the_shop: bool,
}

impl<'a> Scan<'a> {
    pub fn new(message: &'a str, history: &[String]) -> Scan<'a> {
        let current = prepare(message);
        let recent: Vec<Prepared> = history
            .iter()
            .rev()
            .take(HISTORY_TURNS)
            .map(|m| prepare(m))
            .collect();
        // The current message's two weights once: the distress rule and the model's gate read
        // them differently.
        let lex = &LEXICONS;
        let (core, mut distress_words) = weigh(&current.text, DISTRESS, &lex.distress);
        let (context, context_words) = weigh(&current.text, CONTEXT, &lex.context);
        let signal_now = core + context;
        let distress_now = if core == 0.0 { 0.0 } else { signal_now };
        if core > 0.0 {
            distress_words.extend(context_words);
        }
        let mut distress_total = distress_now;
        for p in recent.iter().take(2) {
            let (w, more) = distress(&p.text);
            distress_total += w * 0.5;
            distress_words.extend(more);
        }
        distress_words.dedup();
        let about_the_shop = any_of(&current.text, &lex.shop).is_some();
        Scan {
            message,
            current,
            recent,
            distress_now,
            distress_total,
            distress_words,
            signal_now,
            about_the_shop,
        }
    }

    /// The distress weight at which the current message and its context count as life-care talk.
    pub fn distress_threshold(&self) -> f32 {
        if self.about_the_shop {
            SHOP_DISTRESS_THRESHOLD
        } else {
            DISTRESS_THRESHOLD
        }
    }
}

/// Every lexicon as a [`PatternSet`], built once per process.
struct Lexicons {
    idioms: PatternSet,
    /// The patterns of every detector's rules, rule after rule, with `rule_of` naming each one's.
    rules: PatternSet,
    rule_of: Vec<&'static Rule>,
    distress: PatternSet,
    context: PatternSet,
    shop: PatternSet,
}

static LEXICONS: LazyLock<Lexicons> = LazyLock::new(|| {
    let weighted = |list: &'static [(&'static str, f32)]| PatternSet::new(list.iter().map(|w| w.0));
    let all: Vec<&'static Rule> = super::rules().collect();
    Lexicons {
        idioms: PatternSet::new(IDIOMS.iter().copied()),
        rules: PatternSet::new(all.iter().flat_map(|r| r.patterns.iter().copied())),
        rule_of: all
            .iter()
            .flat_map(|r| std::iter::repeat_n(*r, r.patterns.len()))
            .collect(),
        distress: weighted(DISTRESS),
        context: weighted(CONTEXT),
        shop: PatternSet::new(SHOP.iter().copied()),
    }
});

/// Build the lexicons' automata now rather than on the first message a detector sees. The first
/// message after `serve` started used to pay for them on a runtime worker (tens of milliseconds),
/// and every message queued behind it waited too.
pub fn warm_up() {
    LazyLock::force(&LEXICONS);
    for d in DETECTORS {
        d.warm_up();
    }
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
    let rules = rule_hits(&text);
    Prepared { text, raw, rules }
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

/// The first word of `set`, in list order, that matches in `text` (on word boundaries for
/// English). Detectors keep their own word lists as [`PatternSet`]s and ask with this.
pub fn any_of(text: &str, set: &PatternSet) -> Option<String> {
    set.candidates(text)
        .into_iter()
        .find_map(|i| matches(text, set.pattern(i), false))
}

/// Every rule that fires on `text`, with its matched words, in rule order.
fn rule_hits(text: &str) -> Vec<(&'static Rule, Vec<String>)> {
    let lex = &LEXICONS;
    let mut out: Vec<(&'static Rule, Vec<String>)> = Vec::new();
    for i in lex.rules.candidates(text) {
        let rule = lex.rule_of[i];
        let Some(words) = matches(text, lex.rules.pattern(i), rule.negatable) else {
            continue;
        };
        match out.last_mut() {
            Some((r, ws)) if std::ptr::eq(*r, rule) => ws.push(words),
            _ => out.push((rule, vec![words])),
        }
    }
    out
}
