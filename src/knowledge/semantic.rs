//! Sentence vectors of a shop's questions, for hybrid retrieval ([`ShopIndex::search_hybrid`]).
//!
//! Vectors are kept by the text they embed (its SHA-256), with the encoder's weights hash, in a
//! [`VectorStore`]. Rebuilding a shop's vectors after a re-import looks every question up there
//! first, so only new or edited questions are embedded again: the encoder costs milliseconds a
//! sentence, and a merchant who fixes one answer should not pay for the whole FAQ.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};

use super::{Hit, KnowledgeError, ShopIndex};
use crate::nlu::encoder::Encoder;
use crate::nlu::head;

/// Dot product of two vectors (cosine, for the encoder's unit-length vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// When a FAQ query pays for the encoder, and how its cosine is mixed in: the FAQ side of the
/// cascade. The words answer when they are clear; the encoder is asked when the lexical ranking
/// is weak (its top score below `weak`, or nothing matched) or undecided (the runner-up within
/// `close` × the top score), and for Chinese text only when the encoder knows Chinese (`han`:
/// multilingual-e5 does; all-MiniLM-L6-v2, whose cosine ranks the demo shop's Chinese worse than
/// the words, does not).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HybridPolicy {
    /// `w` of the hybrid score ([`ShopIndex::search_hybrid`]).
    pub weight: f32,
    pub close: f32,
    pub weak: f32,
    /// Whether Chinese text may go to the encoder.
    #[serde(default)]
    pub han: bool,
}

impl Default for HybridPolicy {
    fn default() -> Self {
        // weight: tuned with this gate on the demo shop's tuning half (`faq eval --file
        // knowledge/demo.csv --encoder`); StackFAQ's long English queries tune to 1.0.
        HybridPolicy {
            weight: 0.4,
            close: 0.85,
            weak: 0.5,
            han: false,
        }
    }
}

/// Share of an answer's cosine in an entry's cosine, for an encoder that embeds answers apart
/// from questions (e5: `passage: `): the answer says in the merchant's words what the questions
/// leave out (a fault's symptoms, the parts a spec names).
pub const ANSWER_SHARE: f32 = 0.3;

/// Whether `encoder` knows Chinese: most of a shop question's pieces are in its vocabulary.
pub fn knows_chinese(encoder: &Encoder) -> bool {
    encoder
        .unknown_share("亲，我的快递到哪了？能退货吗")
        .is_ok_and(|share| share < 0.2)
}

impl HybridPolicy {
    /// The policy for `encoder`: Chinese goes to it when it knows Chinese. The weight stays 0.4
    /// for e5 too: on the demo shop's tuning half its retrieval alone tunes to 0.7-0.8, but at 0.8
    /// the demo log's automation falls from 62.5% to 57.6% and the held-out appliance shop's
    /// uncovered questions declined at the FAQ threshold from 96% to 71% (docs/models.md).
    pub fn for_encoder(encoder: &Encoder) -> Self {
        HybridPolicy {
            han: knows_chinese(encoder),
            ..HybridPolicy::default()
        }
    }

    /// Whether `text`, ranked `lexical` (best first) by the words, goes to the encoder.
    pub fn wants(&self, text: &str, lexical: &[Hit]) -> bool {
        if !self.han && crate::nlu::cascade::has_han(text) {
            return false;
        }
        match lexical {
            [] => true,
            [top] => top.score < self.weak,
            [top, second, ..] => top.score < self.weak || second.score >= self.close * top.score,
        }
    }
}

/// The sentence vectors of a shop's questions, built at import (or first load) through the
/// shop's [`VectorStore`] in `path`, which is rewritten with just these questions when anything
/// was embedded or dropped.
pub fn attach(
    index: &mut ShopIndex,
    encoder: &Encoder,
    path: &Path,
) -> Result<EmbedCounts, KnowledgeError> {
    let mut store = match VectorStore::load(path, encoder) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "re-embedding every question");
            VectorStore::new(encoder)
        }
    };
    let before = store.len();
    let (vectors, counts) = QuestionVectors::build(index, encoder, &mut store)?;
    let keep: std::collections::HashSet<[u8; 32]> = index
        .question_texts()
        .into_iter()
        .map(|(_, t)| key(t))
        .chain(
            index
                .entries()
                .iter()
                .map(|e| key(&passage_key(&e.answer.text))),
        )
        .collect();
    store.by_text.retain(|k, _| keep.contains(k));
    if counts.embedded > 0 || store.len() != before {
        store.save(path)?;
    }
    index.set_vectors(vectors);
    Ok(counts)
}

pub(crate) fn nlu(e: crate::nlu::NluError) -> KnowledgeError {
    KnowledgeError::Damaged {
        shop: "sentence encoder".into(),
        reason: e.to_string(),
    }
}

/// One vector per question document of a [`ShopIndex`], in its order, and, for an encoder that
/// embeds answers apart (e5), one per entry's answer.
#[derive(Debug, Clone)]
pub struct QuestionVectors {
    vectors: Vec<Vec<f32>>,
    answers: Vec<Vec<f32>>,
    /// The mean cosine of two questions of different entries: what "unrelated" scores with
    /// this encoder on this shop (all-MiniLM-L6-v2 about 0.1 to 0.2, multilingual-e5 about 0.8,
    /// since e5's vectors share a large common direction). Cosines are read above it, so that the
    /// hybrid score and the FAQ threshold mean the same with either encoder.
    background: f32,
}

/// The mean cosine between questions of different entries, over at most 4,000 pairs picked
/// evenly (0 when the shop has one entry).
fn background(index: &ShopIndex, vectors: &[Vec<f32>]) -> f32 {
    let entry_of: Vec<u32> = index.question_entries();
    let n = vectors.len();
    if n < 2 {
        return 0.0;
    }
    let (mut sum, mut count) = (0.0f64, 0usize);
    let step = (n * n / 4000).max(1);
    let mut k = 0usize;
    while k < n * n && count < 4000 {
        let (i, j) = (k / n, k % n);
        if i < j && entry_of[i] != entry_of[j] {
            sum += dot(&vectors[i], &vectors[j]) as f64;
            count += 1;
        }
        k += step;
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

/// How many questions a build embedded and how many it found already embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbedCounts {
    pub embedded: usize,
    pub reused: usize,
}

impl QuestionVectors {
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    pub fn get(&self, question: usize) -> &[f32] {
        &self.vectors[question]
    }

    /// A cosine as read above the shop's background (see [`QuestionVectors`]), in 0..=1.
    pub fn above_background(&self, cosine: f32) -> f32 {
        ((cosine - self.background) / (1.0 - self.background).max(1e-6)).clamp(0.0, 1.0)
    }

    /// The answer vector of entry `entry`, when answers were embedded.
    pub fn answer(&self, entry: usize) -> Option<&[f32]> {
        self.answers.get(entry).map(Vec::as_slice)
    }

    /// Vectors for every question of `index`: from `store` where it has the text, from `encoder`
    /// otherwise (and then added to `store`).
    pub fn build(
        index: &ShopIndex,
        encoder: &Encoder,
        store: &mut VectorStore,
    ) -> Result<(QuestionVectors, EmbedCounts), KnowledgeError> {
        store.check_encoder(encoder);
        let questions: Vec<(String, &str)> = index
            .question_texts()
            .into_iter()
            .map(|(_, t)| (t.to_string(), t))
            .collect();
        let (vectors, mut counts) =
            through_store(store, &questions, |missing| head::embed(encoder, missing))?;
        // Answers as passages, kept in the store under their own key.
        let mut answers = Vec::new();
        if encoder.is_asymmetric() {
            let passages: Vec<(String, &str)> = index
                .entries()
                .iter()
                .map(|e| (passage_key(&e.answer.text), e.answer.text.as_str()))
                .collect();
            let (vectors, more) =
                through_store(store, &passages, |missing| encoder.embed_passages(missing))?;
            counts.embedded += more.embedded;
            counts.reused += more.reused;
            answers = vectors;
        }
        let background = background(index, &vectors);
        Ok((
            QuestionVectors {
                vectors,
                answers,
                background,
            },
            counts,
        ))
    }
}

/// The vectors of `items` (each its key in `store` and the text to embed), in order: from `store`
/// by key, and the missing ones embedded by `embed`, once each, and added to it.
fn through_store(
    store: &mut VectorStore,
    items: &[(String, &str)],
    embed: impl FnOnce(&[&str]) -> crate::nlu::Result<Vec<Vec<f32>>>,
) -> Result<(Vec<Vec<f32>>, EmbedCounts), KnowledgeError> {
    let mut seen = std::collections::HashSet::new();
    let missing: Vec<(&str, &str)> = items
        .iter()
        .filter(|(k, _)| store.get(k).is_none() && seen.insert(k.as_str()))
        .map(|(k, t)| (k.as_str(), *t))
        .collect();
    if !missing.is_empty() {
        let texts: Vec<&str> = missing.iter().map(|(_, t)| *t).collect();
        for ((key, _), v) in missing.iter().zip(embed(&texts).map_err(nlu)?) {
            store.insert(key, v);
        }
    }
    let vectors = items
        .iter()
        .map(|(k, _)| store.get(k).expect("just embedded").to_vec())
        .collect();
    let counts = EmbedCounts {
        embedded: missing.len(),
        reused: items.len() - missing.len(),
    };
    Ok((vectors, counts))
}

/// Sentence vectors by text, for one encoder; saved as one safetensors file.
#[derive(Debug, Clone, Default)]
pub struct VectorStore {
    encoder_sha256: String,
    by_text: HashMap<[u8; 32], Vec<f32>>,
}

fn key(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The store's key text for an answer embedded as a passage: never equal to a question's text,
/// since a question's text has no NUL.
fn passage_key(answer: &str) -> String {
    format!("passage\0{answer}")
}

impl VectorStore {
    pub fn new(encoder: &Encoder) -> Self {
        VectorStore {
            encoder_sha256: encoder.id.weights_sha256.clone(),
            by_text: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_text.is_empty()
    }

    pub fn get(&self, text: &str) -> Option<&[f32]> {
        self.by_text.get(&key(text)).map(Vec::as_slice)
    }

    pub fn insert(&mut self, text: &str, vector: Vec<f32>) {
        self.by_text.insert(key(text), vector);
    }

    /// Vectors of another encoder are useless to this one: start over.
    fn check_encoder(&mut self, encoder: &Encoder) {
        if self.encoder_sha256 != encoder.id.weights_sha256 {
            *self = VectorStore::new(encoder);
        }
    }

    /// Read the store at `path` for `encoder`; a missing file, or one written for another
    /// encoder, gives an empty store.
    pub fn load(path: &Path, encoder: &Encoder) -> Result<VectorStore, KnowledgeError> {
        if !path.exists() {
            return Ok(VectorStore::new(encoder));
        }
        let damaged = |reason: String| KnowledgeError::Damaged {
            shop: path.display().to_string(),
            reason,
        };
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| damaged(e.to_string()))?;
        let written_for = tensors
            .get("encoder_sha256")
            .and_then(|t| t.to_vec1::<u8>().ok())
            .and_then(|b| String::from_utf8(b).ok());
        if written_for.as_deref() != Some(encoder.id.weights_sha256.as_str()) {
            return Ok(VectorStore::new(encoder));
        }
        let (Some(keys), Some(vectors)) = (tensors.get("keys"), tensors.get("vectors")) else {
            return Err(damaged("no keys or vectors".into()));
        };
        let keys = keys.to_vec2::<u8>().map_err(|e| damaged(e.to_string()))?;
        let vectors = vectors
            .to_vec2::<f32>()
            .map_err(|e| damaged(e.to_string()))?;
        if keys.len() != vectors.len() || keys.iter().any(|k| k.len() != 32) {
            return Err(damaged("keys and vectors disagree".into()));
        }
        let by_text = keys
            .into_iter()
            .map(|k| <[u8; 32]>::try_from(k).expect("checked length"))
            .zip(vectors)
            .collect();
        Ok(VectorStore {
            encoder_sha256: encoder.id.weights_sha256.clone(),
            by_text,
        })
    }

    /// Write the store to `path` (through a temporary file, so a crash leaves the old one).
    pub fn save(&self, path: &Path) -> Result<(), KnowledgeError> {
        let damaged = |reason: String| KnowledgeError::Damaged {
            shop: path.display().to_string(),
            reason,
        };
        let mut rows: Vec<(&[u8; 32], &Vec<f32>)> = self.by_text.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let dim = rows.first().map_or(0, |r| r.1.len());
        let keys: Vec<u8> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
        let t = |e: candle_core::Error| damaged(e.to_string());
        let keys = Tensor::from_vec(keys, (rows.len(), 32), &Device::Cpu).map_err(t)?;
        let vectors = Tensor::from_vec(flat, (rows.len(), dim), &Device::Cpu).map_err(t)?;
        let sha = self.encoder_sha256.as_bytes();
        let sha = Tensor::from_slice(sha, sha.len(), &Device::Cpu).map_err(t)?;
        // candle names the format by the extension: keep `.safetensors` on the temporary file,
        // named by process and time so that two writers never share one.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = path.with_extension(format!("{}-{nanos}.tmp.safetensors", std::process::id()));
        candle_core::safetensors::save(
            &HashMap::from([
                ("keys".to_string(), keys),
                ("vectors".to_string(), vectors),
                ("encoder_sha256".to_string(), sha),
            ]),
            &tmp,
        )
        .map_err(|e| damaged(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|source| KnowledgeError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosines_are_read_above_the_shops_background() {
        let v = QuestionVectors {
            vectors: Vec::new(),
            answers: Vec::new(),
            background: 0.8,
        };
        assert_eq!(v.above_background(0.8), 0.0);
        assert_eq!(
            v.above_background(0.5),
            0.0,
            "below the background is nothing"
        );
        assert!((v.above_background(0.9) - 0.5).abs() < 1e-6);
        assert_eq!(v.above_background(1.0), 1.0);
    }
}
