//! The intent classifier: a fastText-style bag of n-gram embeddings, TF-IDF weighted and pooled,
//! followed by a small MLP; run by candle.
//!
//! Why this shape: shop questions are short and their meaning sits in a few characters or words
//! (`退款`, `where is`, `不想要了`). A bag of n-grams captures that with no segmenter, trains in
//! seconds on two cores, and answers in microseconds, which is what a runtime that sees every
//! message before anything else needs. The hidden layer lets features interact (`not` + `received`)
//! where a linear model cannot.
//!
//! Files in a model directory:
//! - `model.safetensors`: `feature_keys` (i64, the FNV keys of known features), `idf` (f32),
//!   `embedding` (f32, one row per key), `hidden.weight`/`hidden.bias` (optional), `out.weight`/`out.bias`;
//! - `tokenizer.json`: the `tokenizers` tokenizer;
//! - `labels.json`: the class names, in output order (`oos` among them when trained with it);
//! - `meta.json`: [`ModelMeta`], how it was trained and its calibration.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::data::OOS;
use super::features::{Bag, Featurizer};
use super::{tokenizer, NluError, Result};
use crate::text::normalize;

/// Bumped when the files change meaning; a model of another format is refused with a clear error.
pub const FORMAT: u32 = 1;

/// How a model was made, and the calibration it answers with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    pub format: u32,
    pub dim: usize,
    pub hidden: Option<usize>,
    pub seed: u64,
    pub epochs: usize,
    /// SHA-256 of the training file's examples, so a model can be traced to its data.
    pub data_sha256: String,
    pub train_examples: usize,
    pub val_examples: usize,
    pub features: usize,
    /// Softmax temperature fitted on validation data (1.0 when there was none).
    pub temperature: f32,
    /// Below this calibrated confidence a prediction is reported as `oos`.
    pub threshold: f32,
    /// How `threshold` was chosen, in words.
    pub threshold_rule: String,
    /// Metrics on the validation data at the chosen threshold, if any.
    pub val_metrics: Option<serde_json::Value>,
    pub train_seconds: f64,
}

/// Network weights. `table` rows are looked up by feature row id.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    pub hidden: Option<(Tensor, Tensor)>,
    pub out: (Tensor, Tensor),
}

/// Messages as sparse rows: for each (message, feature) pair its row in the table, its weight and
/// the message it belongs to.
#[derive(Debug, Default, Clone)]
pub(crate) struct SparseBatch {
    pub rows: Vec<u32>,
    pub weights: Vec<f32>,
    pub segment: Vec<u32>,
    pub len: usize,
}

impl SparseBatch {
    /// Append one message as `(row, weight)` pairs; weights are L2-normalized so a long message does
    /// not shout louder than a short one.
    pub fn push_weighted(&mut self, feats: impl IntoIterator<Item = (u32, f32)>) {
        let start = self.rows.len();
        for (row, weight) in feats {
            self.rows.push(row);
            self.weights.push(weight);
            self.segment.push(self.len as u32);
        }
        let norm = self.weights[start..]
            .iter()
            .map(|w| w * w)
            .sum::<f32>()
            .sqrt();
        if norm > 0.0 {
            self.weights[start..].iter_mut().for_each(|w| *w /= norm);
        }
        self.len += 1;
    }
}

/// Sublinear TF-IDF weight of a feature seen `tf` times.
pub(crate) fn tfidf(tf: f32, idf: f32) -> f32 {
    (1.0 + tf.ln()) * idf
}

impl Net {
    /// Logits for a batch; `table` holds the embedding rows that `batch.rows` index.
    pub fn logits(&self, table: &Tensor, batch: &SparseBatch) -> Result<Tensor> {
        let device = table.device();
        let dim = table.dim(1)?;
        let pooled = if batch.rows.is_empty() {
            Tensor::zeros((batch.len, dim), DType::F32, device)?
        } else {
            let n = batch.rows.len();
            let rows = Tensor::from_slice(&batch.rows, n, device)?;
            let weights = Tensor::from_slice(&batch.weights, (n, 1), device)?;
            let segment = Tensor::from_slice(&batch.segment, n, device)?;
            let scaled = table.index_select(&rows, 0)?.broadcast_mul(&weights)?;
            Tensor::zeros((batch.len, dim), DType::F32, device)?.index_add(&segment, &scaled, 0)?
        };
        let mut x = pooled;
        if let Some((w, b)) = &self.hidden {
            x = x.matmul(&w.t()?)?.broadcast_add(b)?.relu()?;
        }
        let (w, b) = &self.out;
        Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
    }
}

/// A trained intent classifier, ready to answer.
pub struct IntentModel {
    pub(crate) featurizer: Featurizer,
    pub(crate) index: HashMap<u64, u32>,
    pub(crate) keys: Vec<u64>,
    pub(crate) idf: Vec<f32>,
    pub(crate) table: Tensor,
    pub(crate) net: Net,
    pub(crate) labels: Vec<String>,
    pub(crate) oos: Option<usize>,
    pub meta: ModelMeta,
}

/// What the model says about one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The intent, or `None` when out of scope (the `oos` class won, or confidence < threshold).
    pub intent: Option<String>,
    /// The calibrated probability of the best in-scope intent.
    pub confidence: f32,
    /// Every class with its calibrated probability, best first.
    pub ranked: Vec<(String, f32)>,
}

impl Prediction {
    pub fn label(&self) -> &str {
        self.intent.as_deref().unwrap_or(OOS)
    }
}

impl IntentModel {
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn device(&self) -> &Device {
        self.table.device()
    }

    /// Map a normalized text's features to known rows.
    fn rows(&self, bag: &Bag) -> Vec<(u32, f32)> {
        bag.iter()
            .filter_map(|(k, tf)| self.index.get(k).map(|&r| (r, *tf)))
            .collect()
    }

    pub(crate) fn batch<'a>(
        &self,
        texts: impl IntoIterator<Item = &'a str>,
    ) -> Result<SparseBatch> {
        let mut batch = SparseBatch::default();
        for t in texts {
            let bag = self.featurizer.bag(&normalize(t))?;
            batch.push_weighted(
                self.rows(&bag)
                    .into_iter()
                    .map(|(r, tf)| (r, tfidf(tf, self.idf[r as usize]))),
            );
        }
        Ok(batch)
    }

    /// Raw (uncalibrated) logits for texts, one row each.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let batch = self.batch(texts.iter().copied())?;
        Ok(self.net.logits(&self.table, &batch)?.to_vec2::<f32>()?)
    }

    /// Calibrated class probabilities for texts, one row each (in [`Self::labels`] order).
    pub fn probabilities(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let batch = self.batch(texts.iter().copied())?;
        let logits = self.net.logits(&self.table, &batch)?;
        let probs = candle_nn::ops::softmax(&(logits / self.meta.temperature as f64)?, D::Minus1)?;
        Ok(probs.to_vec2::<f32>()?)
    }

    /// [`Self::probabilities`] of a data set, a bounded batch at a time.
    pub fn probabilities_batched(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(512) {
            out.extend(self.probabilities(chunk)?);
        }
        Ok(out)
    }

    /// Classify one message.
    pub fn classify(&self, text: &str) -> Result<Prediction> {
        let probs = self.probabilities(&[text])?.pop().expect("one row");
        Ok(self.decide(&probs, self.meta.threshold))
    }

    /// Classify many messages in one forward pass (what eval uses).
    pub fn classify_batch(&self, texts: &[&str]) -> Result<Vec<Prediction>> {
        Ok(self
            .probabilities_batched(texts)?
            .iter()
            .map(|p| self.decide(p, self.meta.threshold))
            .collect())
    }

    /// Turn calibrated probabilities into a prediction at `threshold`.
    pub fn decide(&self, probs: &[f32], threshold: f32) -> Prediction {
        decide(&self.labels, self.oos, probs, threshold)
    }

    /// Write the model directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(NluError::io(dir))?;
        let cpu = Device::Cpu;
        let keys: Vec<i64> = self.keys.iter().map(|&k| k as i64).collect();
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        tensors.insert(
            "feature_keys".into(),
            Tensor::from_vec(keys, self.keys.len(), &cpu)?,
        );
        tensors.insert(
            "idf".into(),
            Tensor::from_slice(&self.idf, self.idf.len(), &cpu)?,
        );
        tensors.insert("embedding".into(), self.table.to_device(&cpu)?);
        if let Some((w, b)) = &self.net.hidden {
            tensors.insert("hidden.weight".into(), w.to_device(&cpu)?);
            tensors.insert("hidden.bias".into(), b.to_device(&cpu)?);
        }
        tensors.insert("out.weight".into(), self.net.out.0.to_device(&cpu)?);
        tensors.insert("out.bias".into(), self.net.out.1.to_device(&cpu)?);
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
        tokenizer::save(self.featurizer.tokenizer(), &dir.join("tokenizer.json"))?;
        write_json(&dir.join("labels.json"), &self.labels)?;
        write_json(&dir.join("meta.json"), &self.meta)?;
        Ok(())
    }

    /// Load a model directory onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let meta: ModelMeta = read_json(&dir.join("meta.json"))?;
        if meta.format != FORMAT {
            return Err(NluError::Model(format!(
                "{} is model format {}, this honeydesk reads format {FORMAT}: retrain it with `honeydesk train`",
                dir.display(),
                meta.format
            )));
        }
        let labels: Vec<String> = read_json(&dir.join("labels.json"))?;
        let path = dir.join("model.safetensors");
        let mut t = candle_core::safetensors::load(&path, device)
            .map_err(|e| NluError::Model(format!("cannot load {}: {e}", path.display())))?;
        let mut take = |name: &str| {
            t.remove(name)
                .ok_or_else(|| NluError::Model(format!("{} has no tensor {name}", path.display())))
        };
        let keys: Vec<u64> = take("feature_keys")?
            .to_vec1::<i64>()?
            .into_iter()
            .map(|k| k as u64)
            .collect();
        let idf = take("idf")?.to_vec1::<f32>()?;
        let table = take("embedding")?;
        let hidden = match meta.hidden {
            Some(_) => Some((take("hidden.weight")?, take("hidden.bias")?)),
            None => None,
        };
        let out = (take("out.weight")?, take("out.bias")?);
        if out.0.dim(0)? != labels.len() || table.dim(0)? != keys.len() || idf.len() != keys.len() {
            return Err(NluError::Model(format!(
                "{}: tensor shapes do not match labels.json ({} labels)",
                dir.display(),
                labels.len()
            )));
        }
        let featurizer = Featurizer::new(tokenizer::load(&dir.join("tokenizer.json"))?);
        Ok(Self::assemble(
            featurizer,
            keys,
            idf,
            table,
            Net { hidden, out },
            labels,
            meta,
        ))
    }

    pub(crate) fn assemble(
        featurizer: Featurizer,
        keys: Vec<u64>,
        idf: Vec<f32>,
        table: Tensor,
        net: Net,
        labels: Vec<String>,
        meta: ModelMeta,
    ) -> Self {
        let index = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32))
            .collect();
        let oos = labels.iter().position(|l| l == OOS);
        IntentModel {
            featurizer,
            index,
            keys,
            idf,
            table,
            net,
            labels,
            oos,
            meta,
        }
    }
}

/// The best class other than `oos`, and its probability.
/// Calibrated probabilities over `labels` (with the `oos` class at `oos`, if any) to a prediction
/// at `threshold`; shared by the fast model and the encoder head.
pub fn decide(labels: &[String], oos: Option<usize>, probs: &[f32], threshold: f32) -> Prediction {
    let confidence = best_in_scope(probs, oos).1;
    decide_on(labels, oos, probs, confidence, threshold)
}

/// [`decide`] with the threshold compared to `score` rather than to the best probability (a
/// classifier with other out-of-scope evidence, like the encoder head's novelty).
pub fn decide_on(
    labels: &[String],
    oos: Option<usize>,
    probs: &[f32],
    score: f32,
    threshold: f32,
) -> Prediction {
    let (best, confidence) = best_in_scope(probs, oos);
    let oos_wins = oos.is_some_and(|o| probs[o] > confidence);
    let intent = (!oos_wins && score >= threshold).then(|| labels[best].clone());
    let mut ranked: Vec<(String, f32)> =
        labels.iter().cloned().zip(probs.iter().copied()).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Prediction {
        intent,
        confidence,
        ranked,
    }
}

pub(crate) fn best_in_scope(probs: &[f32], oos: Option<usize>) -> (usize, f32) {
    probs
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != oos)
        .fold((0, f32::NEG_INFINITY), |best, (i, &p)| {
            if p > best.1 {
                (i, p)
            } else {
                best
            }
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| NluError::Model(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(NluError::io(path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(NluError::io(path))?;
    serde_json::from_str(&text).map_err(|e| NluError::Model(format!("{}: {e}", path.display())))
}
