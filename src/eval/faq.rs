//! FAQ retrieval evaluation: hit@k, MRR and MAP over queries with known relevant entries.
//!
//! Two benchmarks share one protocol. Each FAQ entry has paraphrases; a fixed-seed split keeps
//! some as the entry's similar questions (indexed) and holds the rest out as queries, whose
//! relevant entries are known. With `indexed = 0.0` no paraphrase is indexed and every one is a
//! query: the setting of the published StackFAQ baselines, which index only the FAQ's own
//! question and answer.
//! - [`stackfaq`]: StackFAQ (Karan & Šnajder 2018), 125 StackExchange threads, 719 question/answer
//!   pairs, 1,249 crowd paraphrases. A query is relevant to every pair of its thread.
//! - [`paraphrase_split`]: any shop's FAQ, its similar questions split the same way (used on the
//!   demo shop to compare Chinese segmenters).

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::Value;

use crate::knowledge::{Analyzer, FaqEntry, Hit, KnowledgeError, RankWeights, ShopIndex};
use crate::nlu::rng::SplitMix64;

/// A retrieval benchmark: entries to index and queries with their relevant entry ids.
#[derive(Debug, Clone)]
pub struct FaqBench {
    pub entries: Vec<FaqEntry>,
    pub queries: Vec<(String, HashSet<String>)>,
}

/// Ranking quality over a query set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetrievalMetrics {
    pub queries: usize,
    /// Share of queries whose first result is relevant.
    pub hit_at_1: f64,
    /// Share of queries with a relevant entry in the first three.
    pub hit_at_3: f64,
    /// Mean reciprocal rank of the first relevant entry (0 when none is retrieved).
    pub mrr: f64,
    /// Mean average precision over all relevant entries (unretrieved ones count as misses).
    pub map: f64,
}

impl RetrievalMetrics {
    /// Score ranked id lists against relevance sets.
    pub fn compute(ranked: &[Vec<String>], relevant: &[&HashSet<String>]) -> RetrievalMetrics {
        assert_eq!(ranked.len(), relevant.len());
        let n = ranked.len().max(1) as f64;
        let (mut hit1, mut hit3, mut mrr, mut map) = (0.0, 0.0, 0.0, 0.0);
        for (list, rel) in ranked.iter().zip(relevant) {
            let mut found = 0usize;
            let mut precision_sum = 0.0;
            let mut first = None;
            for (i, id) in list.iter().enumerate() {
                if rel.contains(id) {
                    found += 1;
                    precision_sum += found as f64 / (i + 1) as f64;
                    first.get_or_insert(i);
                }
            }
            if let Some(i) = first {
                hit1 += f64::from(i == 0);
                hit3 += f64::from(i < 3);
                mrr += 1.0 / (i + 1) as f64;
            }
            if !rel.is_empty() {
                map += precision_sum / rel.len() as f64;
            }
        }
        RetrievalMetrics {
            queries: ranked.len(),
            hit_at_1: hit1 / n,
            hit_at_3: hit3 / n,
            mrr: mrr / n,
            map: map / n,
        }
    }
}

/// How deep each query's ranking goes for MAP.
pub const DEPTH: usize = 100;

/// Index the benchmark's entries and run every query.
pub fn run(
    bench: &FaqBench,
    analyzer: Analyzer,
    weights: RankWeights,
    now: DateTime<FixedOffset>,
) -> Result<RetrievalMetrics, KnowledgeError> {
    let index = ShopIndex::build(bench.entries.clone(), analyzer, weights, 1)?;
    let mut ranked = Vec::with_capacity(bench.queries.len());
    for (query, _) in &bench.queries {
        let hits = index.search(query, DEPTH, now)?;
        ranked.push(hits.into_iter().map(|h| h.entry.id.clone()).collect());
    }
    let relevant: Vec<&HashSet<String>> = bench.queries.iter().map(|(_, r)| r).collect();
    Ok(RetrievalMetrics::compute(&ranked, &relevant))
}

/// Hybrid retrieval on a benchmark: the mixing weight of cosine against the lexical score chosen
/// on one half of the queries (a fixed-seed split: the held-out paraphrases the weight is tuned
/// on) and measured on the other half.
#[derive(Debug, Clone, Serialize)]
pub struct HybridReport {
    /// `(weight, MAP on the tuning half)` for every weight tried.
    pub tuning: Vec<(f32, f64)>,
    pub weight: f32,
    /// On the other half: the lexical ranker alone, cosine alone, and the hybrid at `weight`.
    pub lexical: RetrievalMetrics,
    pub cosine: RetrievalMetrics,
    pub hybrid: RetrievalMetrics,
    /// The hybrid at `weight` on every query (tuning half included).
    pub hybrid_all: RetrievalMetrics,
    /// What the server does ([`HybridPolicy::wants`]): the words alone unless the encoder is
    /// wanted, with the weight tuned for that on the tuning half; measured on the other half.
    pub gated_tuning: Vec<(f32, f64)>,
    pub gated_weight: f32,
    pub gated: RetrievalMetrics,
    /// Share of the measured half's queries that went to the encoder.
    pub gated_share: f64,
}

/// The weights [`hybrid`] tries.
pub const HYBRID_WEIGHTS: [f32; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Run [`HybridReport`]: index the entries, embed every question and query with `encoder`
/// (through the vector cache when one is set), rank at each weight.
pub fn hybrid(
    bench: &FaqBench,
    analyzer: Analyzer,
    weights: RankWeights,
    encoder: &crate::nlu::encoder::Encoder,
    seed: u64,
    now: DateTime<FixedOffset>,
) -> Result<HybridReport, KnowledgeError> {
    use crate::knowledge::semantic::{HybridPolicy, QuestionVectors, VectorStore};
    let index = ShopIndex::build(bench.entries.clone(), analyzer, weights, 1)?;
    let mut store = VectorStore::new(encoder);
    // Questions through the cache as one list, so repeated runs embed them once.
    let texts: Vec<&str> = index.question_texts().into_iter().map(|(_, t)| t).collect();
    let embedded =
        crate::nlu::head::embed_cached(encoder, &texts).map_err(crate::knowledge::semantic::nlu)?;
    for (t, v) in texts.iter().zip(embedded) {
        store.insert(t, v);
    }
    let (vectors, _) = QuestionVectors::build(&index, encoder, &mut store)?;
    let queries: Vec<&str> = bench.queries.iter().map(|(q, _)| q.as_str()).collect();
    let query_vectors = crate::nlu::head::embed_cached(encoder, &queries)
        .map_err(crate::knowledge::semantic::nlu)?;
    let mut order: Vec<usize> = (0..queries.len()).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let (tune, test) = order.split_at(order.len() / 2);
    let policy = HybridPolicy::for_encoder(encoder);
    // (metrics, share of queries that used the encoder)
    let ranked_with =
        |w: f32, which: &[usize], gated: bool| -> Result<(RetrievalMetrics, f64), KnowledgeError> {
            let mut ranked = Vec::with_capacity(which.len());
            let mut asked = 0usize;
            for &i in which {
                let lexical = index.lexical(queries[i], now)?;
                let top = gated.then(|| lexical.top(DEPTH));
                let hits = match top {
                    Some(top) if !policy.wants(queries[i], &top) => top,
                    _ => {
                        asked += 1;
                        index.search_hybrid(lexical, &query_vectors[i], &vectors, w, DEPTH, now)?
                    }
                };
                ranked.push(hits.into_iter().map(|h| h.entry.id.clone()).collect());
            }
            let relevant: Vec<&HashSet<String>> =
                which.iter().map(|&i| &bench.queries[i].1).collect();
            let share = asked as f64 / which.len().max(1) as f64;
            Ok((RetrievalMetrics::compute(&ranked, &relevant), share))
        };
    let ranked_at = |w: f32, which: &[usize]| ranked_with(w, which, false).map(|r| r.0);
    // Best MAP on the tuning half; ties go to the lower weight (less reliance on the encoder).
    let tune_weight = |gated: bool| -> Result<(Vec<(f32, f64)>, f32), KnowledgeError> {
        let mut tuning = Vec::new();
        for w in HYBRID_WEIGHTS {
            tuning.push((w, ranked_with(w, tune, gated)?.0.map));
        }
        let weight = tuning
            .iter()
            .fold(
                (0.0f32, f64::MIN),
                |best, &(w, m)| if m > best.1 { (w, m) } else { best },
            )
            .0;
        Ok((tuning, weight))
    };
    let (tuning, weight) = tune_weight(false)?;
    let (gated_tuning, gated_weight) = tune_weight(true)?;
    let (gated, gated_share) = ranked_with(gated_weight, test, true)?;
    Ok(HybridReport {
        lexical: ranked_at(0.0, test)?,
        cosine: ranked_at(1.0, test)?,
        hybrid: ranked_at(weight, test)?,
        hybrid_all: ranked_at(weight, &order)?,
        tuning,
        weight,
        gated_tuning,
        gated_weight,
        gated,
        gated_share,
    })
}

/// Split a group's paraphrases: `round(indexed × n)` kept for indexing, the rest queries. At
/// least one is held out whenever `indexed < 1`, so every group contributes queries.
fn split<T: Clone>(items: &[T], indexed: f64, rng: &mut SplitMix64) -> (Vec<T>, Vec<T>) {
    let mut items = items.to_vec();
    rng.shuffle(&mut items);
    let mut keep = (indexed * items.len() as f64).round() as usize;
    if indexed < 1.0 && keep == items.len() {
        keep = keep.saturating_sub(1);
    }
    let queries = items.split_off(keep);
    (items, queries)
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// Load StackFAQ (`stackExchange-FAQ.json`). `indexed` is the share of each thread's paraphrases
/// indexed as similar questions of every pair in the thread.
pub fn stackfaq(path: &Path, indexed: f64, seed: u64) -> Result<FaqBench, KnowledgeError> {
    let bad = |reason: String| KnowledgeError::Damaged {
        shop: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| KnowledgeError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let root: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let threads = root["root"]["qapair"]
        .as_array()
        .ok_or_else(|| bad("no root.qapair array".into()))?;
    let mut rng = SplitMix64::new(seed);
    let mut bench = FaqBench {
        entries: Vec::new(),
        queries: Vec::new(),
    };
    for (t, thread) in threads.iter().enumerate() {
        let question = thread["question"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let paraphrases: Vec<String> = strings(&thread["rephr"])
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "*")
            .collect();
        let (similar, queries) = split(&paraphrases, indexed, &mut rng);
        let mut ids = HashSet::new();
        for (a, answer) in strings(&thread["answer"]).into_iter().enumerate() {
            let id = format!("t{t:03}-a{a:02}");
            ids.insert(id.clone());
            bench.entries.push(FaqEntry::plain(
                id,
                question.clone(),
                similar.clone(),
                answer,
            ));
        }
        bench
            .queries
            .extend(queries.into_iter().map(|q| (q, ids.clone())));
    }
    Ok(bench)
}

/// A shop FAQ as a benchmark: in each entry with at least two similar questions, a share
/// `1 - indexed` of them is held out as queries for that entry. Inactive entries are left out.
pub fn paraphrase_split(
    entries: &[FaqEntry],
    indexed: f64,
    seed: u64,
    now: DateTime<FixedOffset>,
) -> FaqBench {
    let mut rng = SplitMix64::new(seed);
    let mut bench = FaqBench {
        entries: Vec::new(),
        queries: Vec::new(),
    };
    for entry in entries.iter().filter(|e| e.is_active(now)) {
        let mut entry = entry.clone();
        if entry.similar.len() >= 2 {
            let (similar, queries) = split(&entry.similar, indexed, &mut rng);
            entry.similar = similar;
            let relevant = HashSet::from([entry.id.clone()]);
            bench
                .queries
                .extend(queries.into_iter().map(|q| (q, relevant.clone())));
        }
        bench.entries.push(entry);
    }
    bench
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_by_hand() {
        let ranked = vec![
            vec!["a".to_string(), "x".into(), "b".into()],
            vec!["x".to_string(), "y".into(), "c".into()],
            vec!["x".to_string()],
        ];
        let (r1, r2, r3) = (set(&["a", "b"]), set(&["c"]), set(&["d"]));
        let m = RetrievalMetrics::compute(&ranked, &[&r1, &r2, &r3]);
        assert!((m.hit_at_1 - 1.0 / 3.0).abs() < 1e-9);
        assert!((m.hit_at_3 - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.mrr - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-9);
        // AP: query 1 (1/1 + 2/3) / 2, query 2 (1/3) / 1, query 3 nothing.
        let ap = ((1.0 + 2.0 / 3.0) / 2.0 + 1.0 / 3.0) / 3.0;
        assert!((m.map - ap).abs() < 1e-9, "{}", m.map);
    }

    #[test]
    fn split_holds_out_at_least_one() {
        let mut rng = SplitMix64::new(1);
        let (kept, held) = split(&[1, 2, 3], 0.9, &mut rng);
        assert_eq!((kept.len(), held.len()), (2, 1));
        let (kept, held) = split(&[1, 2, 3, 4], 0.0, &mut rng);
        assert_eq!((kept.len(), held.len()), (0, 4));
    }
}

/// A shop's FAQ measured on questions written apart from it: every entry indexed with all its
/// questions, and each query labelled with the entry that answers it, or with none when the FAQ
/// does not cover it. Nothing is tuned here: the hybrid runs at the policy's weight.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOutReport {
    /// Covered queries: the lexical ranker, cosine alone, the hybrid on every query, and the
    /// server's gated hybrid.
    pub lexical: RetrievalMetrics,
    pub cosine: Option<RetrievalMetrics>,
    pub hybrid: Option<RetrievalMetrics>,
    pub gated: Option<RetrievalMetrics>,
    pub weight: f32,
    /// Uncovered queries whose best score stays below the FAQ threshold (the bot would not answer
    /// from the FAQ), for the words alone and the gated hybrid; and covered queries whose right
    /// entry is first and clears it (the bot would answer right).
    pub threshold: f32,
    pub uncovered: usize,
    pub lexical_declined: f64,
    pub gated_declined: Option<f64>,
    pub lexical_answered_right: f64,
    pub gated_answered_right: Option<f64>,
}

/// Read held-out queries: JSONL of `{"text": ..., "faq": "ID" | null}`.
pub fn held_out_queries(path: &Path) -> Result<Vec<(String, Option<String>)>, KnowledgeError> {
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
        faq: Option<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| KnowledgeError::Io {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let line: Line = serde_json::from_str(l).map_err(|e| KnowledgeError::Damaged {
                shop: path.display().to_string(),
                reason: format!("line {}: {e}", i + 1),
            })?;
            Ok((line.text, line.faq))
        })
        .collect()
}

/// Run [`HeldOutReport`] (`encoder`: also the cosine, hybrid and gated rankings).
pub fn held_out(
    entries: Vec<FaqEntry>,
    queries: &[(String, Option<String>)],
    encoder: Option<&crate::nlu::encoder::Encoder>,
    threshold: f32,
    now: DateTime<FixedOffset>,
) -> Result<HeldOutReport, KnowledgeError> {
    use crate::knowledge::semantic::{HybridPolicy, QuestionVectors, VectorStore};
    let index = ShopIndex::build(entries, Analyzer::default(), RankWeights::default(), 1)?;
    let covered: Vec<usize> = (0..queries.len())
        .filter(|&i| queries[i].1.is_some())
        .collect();
    let uncovered: Vec<usize> = (0..queries.len())
        .filter(|&i| queries[i].1.is_none())
        .collect();
    let relevant: Vec<HashSet<String>> = queries
        .iter()
        .map(|(_, f)| f.iter().cloned().collect())
        .collect();
    let metrics = |ranked: &[Vec<Hit>]| {
        let ids: Vec<Vec<String>> = covered
            .iter()
            .map(|&i| ranked[i].iter().map(|h| h.entry.id.clone()).collect())
            .collect();
        let rel: Vec<&HashSet<String>> = covered.iter().map(|&i| &relevant[i]).collect();
        RetrievalMetrics::compute(&ids, &rel)
    };
    let declined = |ranked: &[Vec<Hit>]| {
        uncovered
            .iter()
            .filter(|&&i| ranked[i].first().is_none_or(|h| h.score < threshold))
            .count() as f64
            / uncovered.len().max(1) as f64
    };
    let answered_right = |ranked: &[Vec<Hit>]| {
        covered
            .iter()
            .filter(|&&i| {
                ranked[i]
                    .first()
                    .is_some_and(|h| h.score >= threshold && relevant[i].contains(&h.entry.id))
            })
            .count() as f64
            / covered.len().max(1) as f64
    };
    let lexical: Vec<Vec<Hit>> = queries
        .iter()
        .map(|(q, _)| index.search(q, DEPTH, now))
        .collect::<Result<_, _>>()?;
    let mut report = HeldOutReport {
        lexical: metrics(&lexical),
        cosine: None,
        hybrid: None,
        gated: None,
        weight: 0.0,
        threshold,
        uncovered: uncovered.len(),
        lexical_declined: declined(&lexical),
        gated_declined: None,
        lexical_answered_right: answered_right(&lexical),
        gated_answered_right: None,
    };
    let Some(encoder) = encoder else {
        return Ok(report);
    };
    let mut store = VectorStore::new(encoder);
    let (vectors, _) = QuestionVectors::build(&index, encoder, &mut store)?;
    let texts: Vec<&str> = queries.iter().map(|(q, _)| q.as_str()).collect();
    let query_vectors =
        crate::nlu::head::embed_cached(encoder, &texts).map_err(crate::knowledge::semantic::nlu)?;
    let policy = HybridPolicy::for_encoder(encoder);
    let rank = |w: f32, gated: bool| -> Result<Vec<Vec<Hit>>, KnowledgeError> {
        texts
            .iter()
            .zip(&query_vectors)
            .map(|(q, v)| {
                let lexical = index.lexical(q, now)?;
                if gated {
                    let top = lexical.top(DEPTH);
                    if !policy.wants(q, &top) {
                        return Ok(top);
                    }
                }
                index.search_hybrid(lexical, v, &vectors, w, DEPTH, now)
            })
            .collect()
    };
    let gated = rank(policy.weight, true)?;
    report.cosine = Some(metrics(&rank(1.0, false)?));
    report.hybrid = Some(metrics(&rank(policy.weight, false)?));
    report.gated = Some(metrics(&gated));
    report.weight = policy.weight;
    report.gated_declined = Some(declined(&gated));
    report.gated_answered_right = Some(answered_right(&gated));
    Ok(report)
}
