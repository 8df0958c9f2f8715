//! Intent metrics and the threshold machinery: training chooses its out-of-scope threshold and
//! temperature with them, and `eval` reports the same formulas.

use std::collections::BTreeMap;

use serde::Serialize;

use super::data::{Example, OOS};
use super::model::best_in_scope;
use super::{IntentModel, Result};

/// One evaluated message: what was true, what the model preferred, how sure it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub gold: String,
    /// Best in-scope class.
    pub best: String,
    /// Calibrated probability of `best`.
    pub confidence: f32,
    /// What the out-of-scope threshold is compared with: `confidence`, unless the classifier
    /// has other evidence (the encoder head's novelty score).
    pub score: f32,
    /// The model's own `oos` class beat every in-scope class.
    pub oos_wins: bool,
}

impl Scored {
    /// The reported label at a threshold.
    pub fn label_at(&self, threshold: f32) -> &str {
        if self.oos_wins || self.score < threshold {
            OOS
        } else {
            &self.best
        }
    }

    pub fn from_model(model: &IntentModel, examples: &[Example]) -> Result<Vec<Scored>> {
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        let probs = model.probabilities_batched(&texts)?;
        Ok(Self::from_probabilities(
            &probs,
            &model.labels,
            model.oos,
            examples,
        ))
    }

    /// Scored examples from any classifier's calibrated probabilities over `labels`.
    pub fn from_probabilities(
        probs: &[Vec<f32>],
        labels: &[String],
        oos: Option<usize>,
        examples: &[Example],
    ) -> Vec<Scored> {
        probs
            .iter()
            .zip(examples)
            .map(|(p, e)| {
                let (best, confidence) = best_in_scope(p, oos);
                Scored {
                    gold: e.label().to_string(),
                    best: labels[best].clone(),
                    confidence,
                    score: confidence,
                    oos_wins: oos.is_some_and(|o| p[o] > confidence),
                }
            })
            .collect()
    }
}

/// The `intent` section of `honeydesk eval --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentMetrics {
    pub examples: usize,
    pub threshold: f32,
    /// Share of all messages (out-of-scope ones included) whose label is right.
    pub accuracy: f64,
    /// Share of in-scope messages given their right intent (a rejection counts as wrong).
    pub in_scope_accuracy: f64,
    /// Mean F1 over the in-scope intents present in the gold labels.
    pub macro_f1: f64,
    /// Share of out-of-scope messages reported as `oos`; `null` when the data has none.
    pub oos_recall: Option<f64>,
    /// Share of `oos` reports that were out of scope; `null` when nothing was reported `oos`.
    pub oos_precision: Option<f64>,
    /// Area under the ROC curve of confidence separating in-scope from out-of-scope messages.
    pub auroc: Option<f64>,
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl IntentMetrics {
    pub fn compute(scored: &[Scored], threshold: f32) -> Self {
        let n = scored.len();
        let mut correct = 0;
        let (mut in_scope, mut in_scope_correct) = (0, 0);
        let (mut oos_gold, mut oos_pred, mut oos_hit) = (0, 0, 0);
        // Per-class true positives, predicted counts and gold counts, for macro-F1.
        let mut tp: BTreeMap<&str, usize> = BTreeMap::new();
        let mut pred_n: BTreeMap<&str, usize> = BTreeMap::new();
        let mut gold_n: BTreeMap<&str, usize> = BTreeMap::new();
        for s in scored {
            let pred = s.label_at(threshold);
            let gold = s.gold.as_str();
            if pred == gold {
                correct += 1;
            }
            if gold == OOS {
                oos_gold += 1;
                if pred == OOS {
                    oos_hit += 1;
                }
            } else {
                in_scope += 1;
                *gold_n.entry(gold).or_default() += 1;
                if pred == gold {
                    in_scope_correct += 1;
                    *tp.entry(gold).or_default() += 1;
                }
            }
            if pred == OOS {
                oos_pred += 1;
            } else {
                *pred_n.entry(pred).or_default() += 1;
            }
        }
        let f1s: Vec<f64> = gold_n
            .iter()
            .map(|(class, &g)| {
                let t = tp.get(class).copied().unwrap_or(0) as f64;
                let p = pred_n.get(class).copied().unwrap_or(0) as f64;
                if t == 0.0 {
                    0.0
                } else {
                    2.0 * t / (p + g as f64)
                }
            })
            .collect();
        IntentMetrics {
            examples: n,
            threshold,
            accuracy: ratio(correct, n).unwrap_or(0.0),
            in_scope_accuracy: ratio(in_scope_correct, in_scope).unwrap_or(0.0),
            macro_f1: if f1s.is_empty() {
                0.0
            } else {
                f1s.iter().sum::<f64>() / f1s.len() as f64
            },
            oos_recall: ratio(oos_hit, oos_gold),
            oos_precision: ratio(oos_hit, oos_pred),
            auroc: auroc(scored),
        }
    }
}

/// One point of the threshold curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub threshold: f32,
    pub in_scope_accuracy: f64,
    pub oos_recall: Option<f64>,
}

/// In-scope accuracy and out-of-scope recall at each threshold.
pub fn curve(scored: &[Scored], thresholds: &[f32]) -> Vec<CurvePoint> {
    thresholds
        .iter()
        .map(|&t| {
            let m = IntentMetrics::compute_counts(scored, t);
            CurvePoint {
                threshold: t,
                in_scope_accuracy: m.0,
                oos_recall: m.1,
            }
        })
        .collect()
}

impl IntentMetrics {
    /// Just (in-scope accuracy, oos recall) at `t`: the two numbers a threshold trades.
    pub fn compute_counts(scored: &[Scored], t: f32) -> (f64, Option<f64>) {
        let (mut ins, mut ins_ok, mut oos, mut oos_ok) = (0, 0, 0, 0);
        for s in scored {
            let pred = s.label_at(t);
            if s.gold == OOS {
                oos += 1;
                oos_ok += usize::from(pred == OOS);
            } else {
                ins += 1;
                ins_ok += usize::from(pred == s.gold);
            }
        }
        (ratio(ins_ok, ins).unwrap_or(0.0), ratio(oos_ok, oos))
    }
}

/// AUROC of confidence for in-scope (positive) against out-of-scope (negative) messages, by the
/// Mann-Whitney statistic with tied scores sharing their average rank. `None` without both kinds.
pub fn auroc(scored: &[Scored]) -> Option<f64> {
    let mut items: Vec<(f32, bool)> = scored
        .iter()
        .map(|s| (if s.oos_wins { f32::MIN } else { s.score }, s.gold != OOS))
        .collect();
    let pos = items.iter().filter(|(_, p)| *p).count();
    let neg = items.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j < items.len() && items[j].0 == items[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0; // ranks i+1..=j
        rank_sum += avg_rank * items[i..j].iter().filter(|(_, p)| *p).count() as f64;
        i = j;
    }
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos as f64 * neg as f64))
}

/// The threshold (and its rule in words) before any validation data is seen: `--threshold`, or
/// none.
pub fn initial_threshold(fixed: Option<f32>) -> (f32, String) {
    match fixed {
        Some(t) => (t, format!("fixed at {t} by --threshold")),
        None => (0.0, "none: no validation data, nothing is rejected".into()),
    }
}

/// Choose the out-of-scope threshold on validation data: the one with the highest out-of-scope
/// recall whose in-scope accuracy stays within `max_drop` of the best any threshold reaches (ties:
/// the lowest threshold). Without out-of-scope examples nothing can justify rejecting, so 0.
pub fn choose_threshold(scored: &[Scored], max_drop: f32) -> (f32, String) {
    if !scored.iter().any(|s| s.gold == OOS) {
        return (
            0.0,
            "0: the validation data has no out-of-scope examples".into(),
        );
    }
    let mut candidates: Vec<f32> = std::iter::once(0.0)
        .chain(scored.iter().map(|s| s.score))
        .collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let points: Vec<(f32, f64, f64)> = candidates
        .iter()
        .map(|&t| {
            let (acc, rec) = IntentMetrics::compute_counts(scored, t);
            (t, acc, rec.unwrap_or(0.0))
        })
        .collect();
    let best_acc = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let floor = best_acc - max_drop as f64 - 1e-9;
    let chosen = points
        .iter()
        .filter(|p| p.1 >= floor)
        .fold(None::<&(f32, f64, f64)>, |best, p| match best {
            Some(b) if b.2 >= p.2 => Some(b),
            _ => Some(p),
        })
        .expect("threshold 0 reaches the best accuracy or is within the drop");
    (
        chosen.0,
        format!(
            "highest out-of-scope recall on validation ({:.3}) keeping in-scope accuracy ({:.3}) within {:.1} points of its best ({:.3})",
            chosen.2,
            chosen.1,
            max_drop * 100.0,
            best_acc
        ),
    )
}

/// Fit a softmax temperature to validation logits by minimising negative log-likelihood
/// (Guo et al. 2017). `gold[i]` is the class index of example `i`, `None` to leave it out.
/// NLL is unimodal in log T, so a golden-section search over log T in [-3, 3] finds it.
pub fn fit_temperature(logits: &[Vec<f32>], gold: &[Option<usize>]) -> f32 {
    let nll = |log_t: f64| -> f64 {
        let t = log_t.exp();
        let mut total = 0.0;
        let mut n = 0usize;
        for (row, g) in logits.iter().zip(gold) {
            let Some(g) = *g else { continue };
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = row
                .iter()
                .map(|&z| ((z as f64 - max) / t).exp())
                .sum::<f64>()
                .ln();
            total += lse - (row[g] as f64 - max) / t;
            n += 1;
        }
        if n == 0 {
            0.0
        } else {
            total / n as f64
        }
    };
    if !gold.iter().any(Option::is_some) {
        return 1.0;
    }
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (-3.0f64, 3.0f64);
    let mut c = b - phi * (b - a);
    let mut d = a + phi * (b - a);
    let (mut fc, mut fd) = (nll(c), nll(d));
    for _ in 0..60 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = nll(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = nll(d);
        }
    }
    (((a + b) / 2.0).exp()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(gold: &str, best: &str, confidence: f32) -> Scored {
        Scored {
            gold: gold.into(),
            best: best.into(),
            confidence,
            score: confidence,
            oos_wins: false,
        }
    }

    /// Hand-computed: 4 in-scope (a, a, b, b) and 2 oos.
    fn sample() -> Vec<Scored> {
        vec![
            s("a", "a", 0.9),
            s("a", "b", 0.6),
            s("b", "b", 0.8),
            s("b", "b", 0.3),
            s(OOS, "a", 0.2),
            s(OOS, "b", 0.7),
        ]
    }

    #[test]
    fn metrics_match_hand_computation() {
        // At 0.5: preds a, b, b, oos, oos, b.
        let m = IntentMetrics::compute(&sample(), 0.5);
        assert!((m.accuracy - 3.0 / 6.0).abs() < 1e-12);
        assert!((m.in_scope_accuracy - 2.0 / 4.0).abs() < 1e-12);
        assert_eq!(m.oos_recall, Some(0.5));
        assert_eq!(m.oos_precision, Some(0.5));
        // F1(a): tp 1, pred 1, gold 2 -> 2/3. F1(b): tp 1, pred 3, gold 2 -> 2/5.
        assert!((m.macro_f1 - (2.0 / 3.0 + 0.4) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn auroc_counts_pairs_and_ties() {
        // Positives 0.9, 0.6, 0.8, 0.3; negatives 0.2, 0.7. Pairs won: 0.9:2 0.6:1 0.8:2 0.3:1 = 6 of 8.
        assert_eq!(auroc(&sample()), Some(0.75));
        let tied = vec![s("a", "a", 0.5), s(OOS, "a", 0.5)];
        assert_eq!(auroc(&tied), Some(0.5));
    }

    #[test]
    fn threshold_keeps_accuracy_within_the_allowed_drop() {
        // In-scope accuracy is 0.75 up to t = 0.3 (which already rejects the oos at 0.2), 0.5 from
        // 0.6 to 0.8 (0.8 also rejects the oos at 0.7), 0.25 at 0.9.
        let (t, _) = choose_threshold(&sample(), 0.3);
        assert_eq!(t, 0.8);
        assert_eq!(IntentMetrics::compute(&sample(), t).oos_recall, Some(1.0));
        let (t, _) = choose_threshold(&sample(), 0.1);
        assert_eq!(t, 0.3);
        let strict = IntentMetrics::compute(&sample(), t);
        assert_eq!(
            (strict.in_scope_accuracy, strict.oos_recall),
            (0.75, Some(0.5))
        );
    }

    #[test]
    fn temperature_softens_overconfident_logits() {
        // Logits say 10:0 but the right answer is the first class only 3 times in 4.
        let logits = vec![vec![10.0, 0.0]; 4];
        let gold = vec![Some(0), Some(0), Some(0), Some(1)];
        let t = fit_temperature(&logits, &gold);
        // Optimum: softmax(10/T) = 0.75, so T = 10 / ln 3.
        assert!((t - 10.0 / 3f32.ln()).abs() < 0.05, "t = {t}");
    }
}
