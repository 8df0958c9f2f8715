//! An intent classifier on a sentence encoder's vectors: a linear softmax head trained with candle,
//! calibrated and thresholded on validation data exactly like the fast model
//! ([`crate::nlu::calibrate::fit_temperature`], [`crate::nlu::calibrate::choose_threshold`]).
//!
//! The head is small (dim × labels); the encoder is not saved with it, only its [`EncoderId`], so
//! a head is refused by any other encoder. Training embeds every example once and then runs many
//! cheap epochs over the vectors.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use super::data::{Example, OOS};
use super::encoder::{Encoder, EncoderId};
use super::model::{best_in_scope, decide_on, Prediction};
use super::rng::SplitMix64;
use super::{NluError, Result};
use crate::nlu::calibrate::{choose_threshold, fit_temperature, IntentMetrics, Scored};
use crate::text::normalize;

/// Bumped when the files change meaning.
pub const FORMAT: u32 = 2;

/// What `meta.json` of a head says. `kind` tells it from the fast model's folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadMeta {
    pub format: u32,
    /// Always `encoder_head`.
    pub kind: String,
    pub encoder: EncoderId,
    /// Where the encoder was when the head was trained (used when no other folder is given).
    pub encoder_dir: String,
    pub seed: u64,
    pub epochs: usize,
    pub data_sha256: String,
    pub train_examples: usize,
    pub val_examples: usize,
    pub temperature: f32,
    pub threshold: f32,
    pub threshold_rule: String,
    pub val_metrics: Option<serde_json::Value>,
    /// The word features added to the sentence vectors, if any ([`Words`]).
    #[serde(default)]
    pub lexical: Option<LexicalMeta>,
    /// How the fast model and this head share the messages, when fitted on validation data.
    #[serde(default)]
    pub cascade: Option<super::cascade::CascadeMeta>,
    /// Out-of-scope rejection by nearness to the training examples, when chosen on validation;
    /// `threshold` then applies to [`NoveltyMeta`]'s score, not to the probability.
    #[serde(default)]
    pub novelty: Option<NoveltyMeta>,
    /// The nearest-example vote mixed into the probabilities, if any.
    #[serde(default)]
    pub knn: Option<KnnMeta>,
    /// In-scope training examples kept in `support.safetensors` (0: none).
    #[serde(default)]
    pub support: usize,
    /// Seconds spent embedding the training and validation texts, and training the head.
    pub embed_seconds: f64,
    pub train_seconds: f64,
}

pub const KIND: &str = "encoder_head";

/// Rejecting out-of-scope messages on the head's probability alone leaves many of them in: a
/// softmax is confident far from its training data too. The cosine between a message's sentence
/// vector and its nearest in-scope training example says how far away it is, so the head can
/// reject on `nearest + alpha · confidence` instead. `alpha` and the threshold are chosen on
/// validation data; the in-scope training vectors are kept beside the head
/// (`support.safetensors`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoveltyMeta {
    pub alpha: f32,
    pub rule: String,
}

/// A linear head on sentence vectors misses intents that live in small islands of the space; a
/// vote of the nearest training examples catches them. The head's probabilities are mixed with
/// the vote of the `k` nearest in-scope training examples (each weighted `exp(cosine /
/// temperature)`) as `(1 − lambda) · head + lambda · vote`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KnnMeta {
    pub k: usize,
    pub temperature: f32,
    pub lambda: f32,
    pub rule: String,
}

/// The neighbours and vote sharpness; `lambda` is chosen on validation among [`KNN_LAMBDAS`].
pub const KNN_K: usize = 10;
pub const KNN_TEMPERATURE: f32 = 0.05;
pub const KNN_LAMBDAS: [f32; 6] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5];
/// The mix used without validation data: what CLINC150's validation split chose (`train
/// --encoder --lexical --val`).
pub const KNN_DEFAULT_LAMBDA: f32 = 0.1;

/// The in-scope training examples' sentence vectors, (dim, n), and their label indices.
#[derive(Debug, Clone)]
struct Support {
    vectors: Tensor,
    labels: Vec<u32>,
}

/// The weights of the head's confidence tried beside the nearest-example cosine.
pub const NOVELTY_ALPHAS: [f32; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// Rows of support vectors compared at once (bounds the similarity matrix to ~16 MB).
const SUPPORT_BATCH: usize = 256;

/// Word n-gram features beside the sentence vector: unigrams and bigrams of the normalized text
/// (each Chinese character a word), hashed into `buckets`, sublinear term frequency times the
/// training texts' idf, scaled to unit length and then by `weight`. Words the encoder's
/// vocabulary splits badly (brand names, order jargon) still count this way. On CLINC150 these
/// gave the head 0.3 point more in-scope accuracy than the fast model's n-gram features did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LexicalMeta {
    pub buckets: usize,
    pub weight: f32,
    /// Training texts the idf was counted on.
    pub documents: usize,
}

/// Buckets and weight of the lexical features when they are asked for.
pub const LEXICAL_BUCKETS: usize = 4096;
/// The word block's length beside the unit-length sentence vector. At 1.0 the words drowned the
/// vector: on SMP2019 5-shot validation (seeds 1-3) 0.15, 0.3 and 0.5 all beat 1.0 by about two
/// points, and on the bundled val set the e5 head rose from 88.2% to 89.6% (docs/models.md).
pub const LEXICAL_WEIGHT: f32 = 0.3;

/// The fitted word features: [`LexicalMeta`] and the idf of every bucket.
#[derive(Debug, Clone)]
pub struct Words {
    pub meta: LexicalMeta,
    idf: Vec<f32>,
}

/// The hashed unigram and bigram buckets of `text`, with repeats.
fn word_grams(text: &str, buckets: usize) -> Vec<usize> {
    let normalized = normalize(text);
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in normalized.chars() {
        if crate::text::is_cjk(c) {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            words.push(c.to_string());
        } else if c.is_alphanumeric() || c == '\'' {
            current.push(c);
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    let hash = |kind: u8, parts: &[&str]| -> usize {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in std::iter::once(kind).chain(
            parts
                .iter()
                .flat_map(|p| p.bytes().chain(std::iter::once(0u8))),
        ) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % buckets as u64) as usize
    };
    let mut grams: Vec<usize> = words.iter().map(|w| hash(b'w', &[w])).collect();
    grams.extend(words.windows(2).map(|p| hash(b'b', &[&p[0], &p[1]])));
    grams
}

impl Words {
    /// Count the idf of every bucket on `texts` (smoothed: `ln((1 + n) / (1 + df)) + 1`).
    pub fn fit(texts: &[&str], buckets: usize, weight: f32) -> Words {
        let mut df = vec![0u32; buckets];
        for t in texts {
            let mut grams = word_grams(t, buckets);
            grams.sort_unstable();
            grams.dedup();
            for g in grams {
                df[g] += 1;
            }
        }
        let n = texts.len() as f32;
        let idf = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        Words {
            meta: LexicalMeta {
                buckets,
                weight,
                documents: texts.len(),
            },
            idf,
        }
    }

    /// The features of one text, `buckets` wide.
    pub fn features(&self, text: &str) -> Vec<f32> {
        let mut counts = vec![0f32; self.meta.buckets];
        for g in word_grams(text, self.meta.buckets) {
            counts[g] += 1.0;
        }
        for (c, idf) in counts.iter_mut().zip(&self.idf) {
            if *c > 0.0 {
                *c = (1.0 + c.ln()) * idf;
            }
        }
        let norm = counts.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            let scale = self.meta.weight / norm;
            counts.iter_mut().for_each(|x| *x *= scale);
        }
        counts
    }
}

/// How the head is trained.
#[derive(Debug, Clone)]
pub struct HeadConfig {
    pub seed: u64,
    pub epochs: usize,
    /// At least this many optimizer steps, whatever `epochs` says: 20 epochs of a 5-shot set
    /// (140 examples, 3 batches) are 60 steps and leave the head far from trained (SMP2019
    /// 5-shot, docs/models.md). The bundled intents and CLINC150 take more than this anyway.
    pub min_steps: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub weight_decay: f64,
    /// Largest in-scope accuracy loss the chosen out-of-scope threshold may cost on validation.
    pub max_accuracy_drop: f32,
    pub threshold: Option<f32>,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            seed: 42,
            // Chosen on CLINC150's validation split (20, 60 and 150 epochs tried): more epochs
            // overfit the head.
            epochs: 20,
            min_steps: 600,
            lr: 0.01,
            batch_size: 64,
            weight_decay: 1e-4,
            max_accuracy_drop: 0.01,
            threshold: None,
        }
    }
}

/// A head with its encoder, ready to answer.
pub struct EncoderIntentModel {
    pub encoder: Arc<Encoder>,
    /// The word features ([`HeadMeta::lexical`]).
    pub words: Option<Words>,
    /// (dim, labels)
    w: Tensor,
    b: Tensor,
    labels: Vec<String>,
    oos: Option<usize>,
    /// In-scope training examples, for novelty and the nearest-example vote.
    support: Option<Support>,
    pub meta: HeadMeta,
}

/// The texts as the encoder sees them: the shared normalizer (width, case, script, emoji).
pub fn prepared(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| normalize(t)).collect()
}

/// Embed `texts` with `encoder`, after [`prepared`].
pub fn embed(encoder: &Encoder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let p = prepared(texts);
    let refs: Vec<&str> = p.iter().map(String::as_str).collect();
    encoder.embed(&refs)
}

/// [`embed`] for a whole data set (training, evaluation). With `HONEYDESK_VECTOR_CACHE` set to a
/// folder, the vectors of a list of texts are kept there (keyed by the encoder's weights and the
/// texts), so repeated training and evaluation on the same data embed it once; a miss computes.
/// Messages answered one at a time never go through the cache.
pub fn embed_cached(encoder: &Encoder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let p = prepared(texts);
    let refs: Vec<&str> = p.iter().map(String::as_str).collect();
    let Some(dir) = std::env::var_os("HONEYDESK_VECTOR_CACHE") else {
        return encoder.embed(&refs);
    };
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(encoder.id.weights_sha256.as_bytes());
    for t in &refs {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    let path = Path::new(&dir).join(format!("{:x}.safetensors", h.finalize()));
    if let Ok(t) = candle_core::safetensors::load(&path, &Device::Cpu) {
        if let Some(v) = t.get("vectors") {
            return Ok(v.to_vec2::<f32>()?);
        }
    }
    let vectors = encoder.embed(&refs)?;
    if !vectors.is_empty() {
        std::fs::create_dir_all(&dir).map_err(NluError::io(Path::new(&dir)))?;
        let m = matrix(&vectors, encoder.dim(), &Device::Cpu)?;
        candle_core::safetensors::save(
            &std::collections::HashMap::from([("vectors".to_string(), m)]),
            &path,
        )?;
    }
    Ok(vectors)
}

fn matrix(rows: &[Vec<f32>], dim: usize, device: &Device) -> Result<Tensor> {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Ok(Tensor::from_vec(flat, (rows.len(), dim), device)?)
}

/// What the head reads for `texts`: the sentence vectors, and the word features after them
/// when `words` is given. `cached`: through [`embed_cached`] (data sets, not live messages).
pub fn features(
    encoder: &Encoder,
    words: Option<&Words>,
    texts: &[&str],
    cached: bool,
) -> Result<Vec<Vec<f32>>> {
    let mut vectors = if cached {
        embed_cached(encoder, texts)?
    } else {
        embed(encoder, texts)?
    };
    if let Some(words) = words {
        add_words(&mut vectors, words, texts);
    }
    Ok(vectors)
}

/// Append the word features of `texts` to their sentence vectors.
pub fn add_words(vectors: &mut [Vec<f32>], words: &Words, texts: &[&str]) {
    for (v, t) in vectors.iter_mut().zip(texts) {
        v.extend(words.features(t));
    }
}

impl EncoderIntentModel {
    /// Width of what the head reads.
    pub fn input_dim(&self) -> usize {
        self.encoder.dim() + self.meta.lexical.as_ref().map_or(0, |l| l.buckets)
    }

    /// [`features`] for this head, of live messages.
    pub fn features(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        features(&self.encoder, self.words.as_ref(), texts, false)
    }

    /// [`features`] of a data set, through the vector cache when one is set.
    pub fn features_cached(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        features(&self.encoder, self.words.as_ref(), texts, true)
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn oos(&self) -> Option<usize> {
        self.oos
    }

    /// Raw logits for sentence vectors.
    pub fn logits_of(&self, vectors: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if vectors.is_empty() {
            return Ok(Vec::new());
        }
        let x = matrix(vectors, self.input_dim(), self.w.device())?;
        Ok(x.matmul(&self.w)?
            .broadcast_add(&self.b)?
            .to_vec2::<f32>()?)
    }

    /// The head's own calibrated probabilities, before any nearest-example vote.
    fn head_probabilities(&self, vectors: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if vectors.is_empty() {
            return Ok(Vec::new());
        }
        let x = matrix(vectors, self.input_dim(), self.w.device())?;
        let logits = x.matmul(&self.w)?.broadcast_add(&self.b)?;
        let probs = candle_nn::ops::softmax(&(logits / self.meta.temperature as f64)?, D::Minus1)?;
        Ok(probs.to_vec2::<f32>()?)
    }

    /// Calibrated probabilities for feature rows (mixed with the nearest-example vote when the
    /// head has one).
    pub fn probabilities_of(&self, vectors: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        Ok(self.judge(vectors)?.0)
    }

    /// Probabilities and what the threshold is compared with (the best in-scope probability,
    /// or with novelty `nearest + alpha · probability`), from one pass over the support vectors.
    fn judge(&self, vectors: &[Vec<f32>]) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
        let mut probs = self.head_probabilities(vectors)?;
        let knn = self.meta.knn.as_ref().filter(|k| k.lambda > 0.0);
        let novelty = self.meta.novelty.as_ref();
        let near = match (knn, novelty) {
            (None, None) => None,
            _ => Some(self.neighbours(vectors, knn.map_or(1, |k| k.k))?),
        };
        if let (Some(k), Some(near)) = (knn, &near) {
            probs = mix(&probs, &self.votes(near, k.temperature), k.lambda);
        }
        let scores = probs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let confidence = best_in_scope(p, self.oos).1;
                match (novelty, &near) {
                    (Some(n), Some(near)) => nearest_cosine(&near[i]) + n.alpha * confidence,
                    _ => confidence,
                }
            })
            .collect();
        Ok((probs, scores))
    }

    /// Calibrated probabilities for texts.
    pub fn probabilities(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.probabilities_of(&self.features(texts)?)
    }

    pub fn classify(&self, text: &str) -> Result<Prediction> {
        Ok(self
            .predictions_of(&self.features(&[text])?)?
            .pop()
            .expect("one row"))
    }

    /// The head's answers for feature rows, at its own threshold (on the novelty score when it
    /// has one).
    pub fn predictions_of(&self, vectors: &[Vec<f32>]) -> Result<Vec<Prediction>> {
        let (probs, scores) = self.judge(vectors)?;
        Ok(probs
            .iter()
            .zip(scores)
            .map(|(p, score)| decide_on(&self.labels, self.oos, p, score, self.meta.threshold))
            .collect())
    }

    /// The `k` nearest in-scope training examples of each row's sentence vector, as (cosine,
    /// label index), nearest first; empty rows for a head without support vectors.
    fn neighbours(&self, vectors: &[Vec<f32>], k: usize) -> Result<Vec<Vec<(f32, u32)>>> {
        let Some(support) = &self.support else {
            return Ok(vec![Vec::new(); vectors.len()]);
        };
        let dim = self.encoder.dim();
        let k = k.clamp(1, support.labels.len());
        let mut out = Vec::with_capacity(vectors.len());
        for chunk in vectors.chunks(SUPPORT_BATCH) {
            let sentence: Vec<Vec<f32>> = chunk.iter().map(|v| v[..dim].to_vec()).collect();
            let x = matrix(&sentence, dim, support.vectors.device())?;
            for row in x.matmul(&support.vectors)?.to_vec2::<f32>()? {
                let mut idx: Vec<u32> = (0..row.len() as u32).collect();
                let by_sim = |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]);
                if k < idx.len() {
                    idx.select_nth_unstable_by(k - 1, by_sim);
                    idx.truncate(k);
                }
                idx.sort_by(by_sim);
                out.push(
                    idx.into_iter()
                        .map(|j| (row[j as usize], support.labels[j as usize]))
                        .collect(),
                );
            }
        }
        Ok(out)
    }

    /// Each row's nearest-example vote over the labels (zeros without neighbours).
    fn votes(&self, neighbours: &[Vec<(f32, u32)>], temperature: f32) -> Vec<Vec<f32>> {
        neighbours
            .iter()
            .map(|near| {
                let mut v = vec![0f32; self.labels.len()];
                // Relative to the nearest, so exp never overflows.
                let top = near.first().map_or(0.0, |n| n.0);
                for &(c, l) in near {
                    v[l as usize] += ((c - top) / temperature).exp();
                }
                let z: f32 = v.iter().sum();
                if z > 0.0 {
                    v.iter_mut().for_each(|x| *x /= z);
                }
                v
            })
            .collect()
    }

    /// Cosine of each row's sentence vector to its nearest in-scope training example, or `None`
    /// for a head without support vectors.
    pub fn nearest(&self, vectors: &[Vec<f32>]) -> Result<Option<Vec<f32>>> {
        if self.support.is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.neighbours(vectors, 1)?
                .iter()
                .map(|n| nearest_cosine(n))
                .collect(),
        ))
    }

    /// Scored examples from their vectors (for metrics and threshold choice).
    pub fn scored(&self, vectors: &[Vec<f32>], examples: &[Example]) -> Result<Vec<Scored>> {
        let (probs, scores) = self.judge(vectors)?;
        let mut scored = Scored::from_probabilities(&probs, &self.labels, self.oos, examples);
        for (s, score) in scored.iter_mut().zip(scores) {
            s.score = score;
        }
        Ok(scored)
    }

    /// Write `head.safetensors`, `labels.json` and `meta.json` to `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(NluError::io(dir))?;
        let cpu = Device::Cpu;
        let mut tensors = std::collections::HashMap::from([
            ("w".to_string(), self.w.to_device(&cpu)?),
            ("b".to_string(), self.b.to_device(&cpu)?),
        ]);
        if let Some(words) = &self.words {
            tensors.insert(
                "idf".to_string(),
                Tensor::from_slice(&words.idf, words.idf.len(), &cpu)?,
            );
        }
        candle_core::safetensors::save(&tensors, dir.join("head.safetensors"))?;
        let support = dir.join("support.safetensors");
        match &self.support {
            Some(s) => candle_core::safetensors::save(
                &std::collections::HashMap::from([
                    ("support".to_string(), s.vectors.to_device(&cpu)?),
                    (
                        "labels".to_string(),
                        Tensor::from_slice(&s.labels, s.labels.len(), &cpu)?,
                    ),
                ]),
                &support,
            )?,
            None if support.exists() => {
                std::fs::remove_file(&support).map_err(NluError::io(&support))?
            }
            None => {}
        }
        let write = |name: &str, text: String| -> Result<()> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(NluError::io(&p))
        };
        write("labels.json", pretty(&self.labels))?;
        write("meta.json", pretty(&self.meta))?;
        Ok(())
    }

    /// Forget the support vectors when nothing reads them (no nearest-example vote, no novelty):
    /// a head that only classifies need not ship its training set's vectors.
    pub fn drop_unused_support(&mut self) {
        if self.meta.knn.is_none() && self.meta.novelty.is_none() {
            self.support = None;
            self.meta.support = 0;
        }
    }

    /// Load the head in `dir` for `encoder`; refused when it was trained with another.
    pub fn load(dir: &Path, encoder: Arc<Encoder>) -> Result<Self> {
        let meta = read_meta(dir)?;
        if meta.encoder.weights_sha256 != encoder.id.weights_sha256 {
            return Err(NluError::Model(format!(
                "{}: this head was trained on the encoder {:?} (weights sha256 {}), not on {:?} \
                 in {} (sha256 {}); retrain it with `honeydesk train --encoder`",
                dir.display(),
                meta.encoder.name,
                &meta.encoder.weights_sha256[..12.min(meta.encoder.weights_sha256.len())],
                encoder.id.name,
                encoder.dir.display(),
                &encoder.id.weights_sha256[..12],
            )));
        }
        let labels_path = dir.join("labels.json");
        let labels: Vec<String> = serde_json::from_str(
            &std::fs::read_to_string(&labels_path).map_err(NluError::io(&labels_path))?,
        )
        .map_err(|e| NluError::Model(format!("{}: {e}", labels_path.display())))?;
        // The head is a few hundred kilobytes: it always runs on the CPU, whatever the encoder uses.
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(dir.join("head.safetensors"), &device)?;
        let get = |name: &str| {
            tensors.get(name).cloned().ok_or_else(|| {
                NluError::Model(format!("{}: head.safetensors has no {name}", dir.display()))
            })
        };
        let (w, b) = (get("w")?, get("b")?);
        let input = encoder.dim() + meta.lexical.as_ref().map_or(0, |l| l.buckets);
        if w.dims() != [input, labels.len()] || b.dims() != [labels.len()] {
            return Err(NluError::Model(format!(
                "{}: head shape {:?} does not fit {} labels on {}-wide vectors",
                dir.display(),
                w.dims(),
                labels.len(),
                encoder.dim()
            )));
        }
        let oos = labels.iter().position(|l| l == OOS);
        let words = match &meta.lexical {
            None => None,
            Some(l) => {
                let idf = get("idf")?.to_vec1::<f32>()?;
                if idf.len() != l.buckets {
                    return Err(NluError::Model(format!(
                        "{}: {} idf values for {} buckets",
                        dir.display(),
                        idf.len(),
                        l.buckets
                    )));
                }
                Some(Words {
                    meta: l.clone(),
                    idf,
                })
            }
        };
        let support = match meta.support {
            0 => None,
            n => {
                let path = dir.join("support.safetensors");
                let t = candle_core::safetensors::load(&path, &device).map_err(|e| {
                    NluError::Model(format!(
                        "{}: the head's {n} training examples: {e}",
                        path.display()
                    ))
                })?;
                let (Some(vectors), Some(support_labels)) = (t.get("support"), t.get("labels"))
                else {
                    return Err(NluError::Model(format!(
                        "{}: no support vectors or labels",
                        path.display()
                    )));
                };
                let support_labels = support_labels.to_vec1::<u32>()?;
                if vectors.dims() != [encoder.dim(), n]
                    || support_labels.len() != n
                    || support_labels.iter().any(|&l| l as usize >= labels.len())
                {
                    return Err(NluError::Model(format!(
                        "{}: support shape {:?} with {} labels; meta.json says {n} vectors of {}",
                        path.display(),
                        vectors.dims(),
                        support_labels.len(),
                        encoder.dim()
                    )));
                }
                Some(Support {
                    vectors: vectors.clone(),
                    labels: support_labels,
                })
            }
        };
        Ok(EncoderIntentModel {
            encoder,
            words,
            w,
            b,
            labels,
            oos,
            support,
            meta,
        })
    }
}

/// The `meta.json` of a head, or an error saying why `dir` is not one.
pub fn read_meta(dir: &Path) -> Result<HeadMeta> {
    let path = dir.join("meta.json");
    let text = std::fs::read_to_string(&path).map_err(NluError::io(&path))?;
    let meta: HeadMeta = serde_json::from_str(&text)
        .map_err(|e| NluError::Model(format!("{}: not an encoder head: {e}", path.display())))?;
    if meta.kind != KIND || meta.format != FORMAT {
        return Err(NluError::Model(format!(
            "{}: kind {:?} format {}, expected {KIND:?} format {FORMAT}",
            path.display(),
            meta.kind,
            meta.format
        )));
    }
    Ok(meta)
}

/// Whether `dir` holds an encoder head (rather than a fast model).
pub fn is_head(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("meta.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["kind"] == KIND)
}

/// Train a head on `train` (and calibrate on `val`) with precomputed [`features`] (their width
/// must match `words`).
pub fn train_on_vectors(
    encoder: Arc<Encoder>,
    words: Option<Words>,
    train: &[Example],
    train_vectors: &[Vec<f32>],
    val: Option<(&[Example], &[Vec<f32>])>,
    cfg: &HeadConfig,
) -> Result<EncoderIntentModel> {
    let started = std::time::Instant::now();
    if train.is_empty() {
        return Err(NluError::Model("no training examples".into()));
    }
    let mut labels: Vec<String> = train.iter().map(|e| e.label().to_string()).collect();
    labels.sort();
    labels.dedup();
    let index = |l: &str| labels.iter().position(|x| x == l);
    let dim = encoder.dim() + words.as_ref().map_or(0, |w| w.meta.buckets);
    let device = Device::Cpu;
    let x = matrix(train_vectors, dim, &device)?;
    let y: Vec<u32> = train
        .iter()
        .map(|e| index(e.label()).expect("label listed") as u32)
        .collect();
    let y = Tensor::from_vec(y, train.len(), &device)?;

    let w = Var::zeros((dim, labels.len()), DType::F32, &device)?;
    let b = Var::zeros(labels.len(), DType::F32, &device)?;
    let mut opt = AdamW::new(
        vec![w.clone(), b.clone()],
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = SplitMix64::new(cfg.seed);
    let mut order: Vec<u32> = (0..train.len() as u32).collect();
    let batches = train.len().div_ceil(cfg.batch_size.max(1)).max(1);
    let epochs = cfg.epochs.max(cfg.min_steps.div_ceil(batches));
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(cfg.batch_size.max(1)) {
            let ids = Tensor::from_slice(chunk, chunk.len(), &device)?;
            let xb = x.index_select(&ids, 0)?;
            let yb = y.index_select(&ids, 0)?;
            let logits = xb.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            let loss = candle_nn::loss::cross_entropy(&logits, &yb)?;
            opt.backward_step(&loss)?;
        }
    }
    let oos = labels.iter().position(|l| l == OOS);
    let initial = crate::nlu::calibrate::initial_threshold(cfg.threshold);
    let mut model = EncoderIntentModel {
        meta: HeadMeta {
            format: FORMAT,
            kind: KIND.into(),
            encoder: encoder.id.clone(),
            encoder_dir: encoder.dir.display().to_string(),
            seed: cfg.seed,
            epochs,
            data_sha256: super::train::data_hash(train),
            train_examples: train.len(),
            val_examples: val.map_or(0, |v| v.0.len()),
            temperature: 1.0,
            threshold: initial.0,
            threshold_rule: initial.1,
            val_metrics: None,
            lexical: words.as_ref().map(|w| w.meta.clone()),
            cascade: None,
            novelty: None,
            knn: None,
            support: 0,
            embed_seconds: 0.0,
            train_seconds: 0.0,
        },
        encoder,
        words,
        w: w.as_tensor().clone(),
        b: b.as_tensor().clone(),
        labels,
        oos,
        support: None,
    };
    model.support = support_of(&model, train, train_vectors)?;
    model.meta.support = model.support.as_ref().map_or(0, |s| s.labels.len());
    if model.support.is_some() {
        model.meta.knn = Some(KnnMeta {
            k: KNN_K,
            temperature: KNN_TEMPERATURE,
            lambda: KNN_DEFAULT_LAMBDA,
            rule: format!("{KNN_DEFAULT_LAMBDA}: no validation data (CLINC150's choice)"),
        });
    }
    if let Some((val, vectors)) = val {
        let logits = model.logits_of(vectors)?;
        let gold: Vec<Option<usize>> = val
            .iter()
            .map(|e| model.labels.iter().position(|l| l == e.label()))
            .collect();
        model.meta.temperature = fit_temperature(&logits, &gold);
        choose_knn(&mut model, val, vectors)?;
        if cfg.threshold.is_none() {
            choose_rejection(&mut model, val, vectors, cfg.max_accuracy_drop)?;
        }
        let scored = model.scored(vectors, val)?;
        let metrics = IntentMetrics::compute(&scored, model.meta.threshold);
        model.meta.val_metrics = Some(serde_json::to_value(&metrics).expect("metrics serialize"));
    }
    model.meta.train_seconds = started.elapsed().as_secs_f64();
    Ok(model)
}

/// The in-scope training examples' sentence vectors as a (dim, n) matrix with their labels, or
/// `None` when there are none.
fn support_of(
    model: &EncoderIntentModel,
    train: &[Example],
    vectors: &[Vec<f32>],
) -> Result<Option<Support>> {
    let dim = model.encoder.dim();
    let (rows, labels): (Vec<Vec<f32>>, Vec<u32>) = train
        .iter()
        .zip(vectors)
        .filter(|(e, _)| e.label() != OOS)
        .map(|(e, v)| {
            let l = model.labels.iter().position(|l| l == e.label());
            (v[..dim].to_vec(), l.expect("label listed") as u32)
        })
        .unzip();
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(Support {
        vectors: matrix(&rows, dim, &Device::Cpu)?.t()?.contiguous()?,
        labels,
    }))
}

/// The cosine of the nearest of `neighbours` (nearest first), -1 when there is none.
fn nearest_cosine(neighbours: &[(f32, u32)]) -> f32 {
    neighbours.first().map_or(-1.0, |x| x.0)
}

/// `(1 − lambda) · a + lambda · b`, row by row.
fn mix(a: &[Vec<f32>], b: &[Vec<f32>], lambda: f32) -> Vec<Vec<f32>> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (1.0 - lambda) * p + lambda * q)
                .collect()
        })
        .collect()
}

/// Choose the nearest-example mix on validation: the `lambda` of [`KNN_LAMBDAS`] with the best
/// in-scope accuracy (nothing rejected; ties keep the smaller).
fn choose_knn(model: &mut EncoderIntentModel, val: &[Example], vectors: &[Vec<f32>]) -> Result<()> {
    if model.support.is_none() || !val.iter().any(|e| e.label() != OOS) {
        return Ok(());
    }
    let probs = model.head_probabilities(vectors)?;
    let votes = model.votes(&model.neighbours(vectors, KNN_K)?, KNN_TEMPERATURE);
    let accuracy = |lambda: f32| {
        let mixed = mix(&probs, &votes, lambda);
        let scored = Scored::from_probabilities(&mixed, &model.labels, model.oos, val);
        IntentMetrics::compute_counts(&scored, 0.0).0
    };
    let tried: Vec<(f32, f64)> = KNN_LAMBDAS.iter().map(|&l| (l, accuracy(l))).collect();
    let best = tried.iter().fold(
        (0.0f32, f64::MIN),
        |b, &(l, a)| if a > b.1 + 1e-9 { (l, a) } else { b },
    );
    model.meta.knn = Some(KnnMeta {
        k: KNN_K,
        temperature: KNN_TEMPERATURE,
        lambda: best.0,
        rule: format!(
            "best validation in-scope accuracy ({:.4}) among {}",
            best.1,
            tried
                .iter()
                .map(|(l, a)| format!("{l}: {a:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    Ok(())
}

/// Choose how the head rejects out-of-scope messages, on validation: the probability alone, or
/// the novelty score with each of [`NOVELTY_ALPHAS`], each at the threshold [`choose_threshold`]
/// picks for it; the one with the highest out-of-scope recall wins (then in-scope accuracy; ties
/// keep the simpler rule). Without out-of-scope validation examples the probability stays.
fn choose_rejection(
    model: &mut EncoderIntentModel,
    val: &[Example],
    vectors: &[Vec<f32>],
    max_drop: f32,
) -> Result<()> {
    let plain = model.scored(vectors, val)?;
    let (t, rule) = choose_threshold(&plain, max_drop);
    let (acc, rec) = IntentMetrics::compute_counts(&plain, t);
    let (plain_acc, plain_rec) = (acc, rec.unwrap_or(0.0));
    let mut best: (Option<f32>, f32, String, f64, f64) = (None, t, rule, plain_acc, plain_rec);
    if let (Some(near), true) = (
        model.nearest(vectors)?,
        val.iter().any(|e| e.label() == OOS),
    ) {
        for alpha in NOVELTY_ALPHAS {
            let scored: Vec<Scored> = plain
                .iter()
                .zip(&near)
                .map(|(s, d)| Scored {
                    score: d + alpha * s.confidence,
                    ..s.clone()
                })
                .collect();
            let (t, rule) = choose_threshold(&scored, max_drop);
            let (acc, rec) = IntentMetrics::compute_counts(&scored, t);
            let rec = rec.unwrap_or(0.0);
            if rec > best.4 + 1e-9 || (rec > best.4 - 1e-9 && acc > best.3 + 1e-9) {
                best = (Some(alpha), t, rule, acc, rec);
            }
        }
        model.meta.novelty = best.0.map(|alpha| NoveltyMeta {
            alpha,
            rule: format!(
                "nearest-example cosine + {alpha} x confidence: validation oos recall {:.3} at \
                 in-scope accuracy {:.3}, against {:.3} at {:.3} on the probability alone",
                best.4, best.3, plain_rec, plain_acc
            ),
        });
    }
    model.meta.threshold = best.1;
    model.meta.threshold_rule = best.2;
    Ok(())
}

/// Embed and train: what `honeydesk train --encoder` runs. With `lexical`, word features
/// ([`Words`], fitted on the training texts) are added to the sentence vectors. Returns the
/// validation features too, so the cascade can be fitted on them without embedding the texts
/// again.
pub fn train(
    encoder: Arc<Encoder>,
    lexical: bool,
    train: &[Example],
    val: Option<&[Example]>,
    cfg: &HeadConfig,
) -> Result<(EncoderIntentModel, Option<Vec<Vec<f32>>>)> {
    let started = std::time::Instant::now();
    let words = lexical.then(|| {
        let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
        Words::fit(&texts, LEXICAL_BUCKETS, LEXICAL_WEIGHT)
    });
    let of = |ex: &[Example]| -> Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = ex.iter().map(|e| e.text.as_str()).collect();
        features(&encoder, words.as_ref(), &texts, true)
    };
    let train_vectors = of(train)?;
    let val_vectors = val.map(of).transpose()?;
    let embed_seconds = started.elapsed().as_secs_f64();
    let val_pair = val.zip(val_vectors.as_deref());
    let mut model = train_on_vectors(encoder.clone(), words, train, &train_vectors, val_pair, cfg)?;
    model.meta.embed_seconds = embed_seconds;
    Ok((model, val_vectors))
}

fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("serializable") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_grams_split_chinese_into_characters_and_pair_neighbours() {
        // 亲 在吗 -> 亲, 在, 吗, and the bigrams 亲在, 在吗; "ok!" -> ok.
        assert_eq!(word_grams("亲，在吗", 1 << 20).len(), 3 + 2);
        assert_eq!(word_grams("Where's my ORDER?", 1 << 20).len(), 3 + 2);
        // Width and case are normalized before the words are cut.
        assert_eq!(
            word_grams("ＯＲＤＥＲ status", 1 << 20),
            word_grams("order status", 1 << 20)
        );
        assert!(word_grams("!!! ", 64).is_empty());
    }

    #[test]
    fn word_features_are_unit_length_and_weigh_rare_words_more() {
        let texts = [
            "track my order",
            "cancel my order",
            "my refund",
            "my invoice",
        ];
        let words = Words::fit(&texts, 1 << 16, 1.0);
        let f = words.features("my invoice");
        let norm: f32 = f.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        let bucket = |w: &str| word_grams(w, 1 << 16)[0];
        // "my" is in every text, "invoice" in one: the rarer word carries more of the vector.
        assert!(f[bucket("invoice")] > f[bucket("my")]);
        assert!(words.features("").iter().all(|&x| x == 0.0));
    }
}
