//! Training the intent model with candle: AdamW on the dense layers, a lazy ("sparse") Adam on the
//! embedding rows, then temperature scaling and an out-of-scope threshold chosen on validation data.
//!
//! Why a hand-written sparse update: candle computes a dense gradient for an embedding table, and
//! AdamW then touches every row on every step; with a few hundred thousand n-gram rows that is most
//! of the training time. Here each batch gathers only the rows its messages use into a small `Var`,
//! candle back-propagates into that, and the update is applied to those rows alone (as PyTorch's
//! `SparseAdam` does). A CLINC150-sized set trains in well under a minute on two cores.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use sha2::{Digest, Sha256};

use super::data::Example;
use super::features::Featurizer;
use super::model::{tfidf, IntentModel, ModelMeta, Net, SparseBatch, FORMAT};
use super::rng::SplitMix64;
use super::tokenizer::{self, VocabConfig};
use super::Result;
use crate::nlu::calibrate::{choose_threshold, fit_temperature, IntentMetrics, Scored};
use crate::text::normalize;

/// Everything `honeydesk train` can set. The defaults are what the numbers in README were measured with.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub seed: u64,
    pub epochs: usize,
    /// At least this many optimizer steps, whatever `epochs` says: on a few-shot set (5 examples
    /// per intent, 140 in all) 15 epochs are 75 steps and leave the model far from trained
    /// (SMP2019 5-shot: 62.5% at 15 epochs, 71.1% at 60, docs/models.md).
    pub min_steps: usize,
    /// Embedding width.
    pub dim: usize,
    /// Width of the hidden layer; `None` for a linear read-out (classic fastText).
    pub hidden: Option<usize>,
    pub batch_size: usize,
    pub lr: f64,
    /// Chance of dropping each feature occurrence while training (regularises towards robustness
    /// to missing words).
    pub feature_dropout: f32,
    pub vocab: VocabConfig,
    /// Fixed threshold instead of the one chosen on validation data.
    pub threshold: Option<f32>,
    /// Largest in-scope accuracy loss (absolute) the chosen threshold may cost on validation data.
    pub max_accuracy_drop: f32,
    pub device: Device,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 42,
            epochs: 15,
            min_steps: 600,
            dim: 128,
            hidden: None,
            batch_size: 32,
            lr: 0.004,
            feature_dropout: 0.6,
            vocab: VocabConfig::default(),
            threshold: None,
            max_accuracy_drop: 0.01,
            device: Device::Cpu,
        }
    }
}

/// One epoch, for progress display.
#[derive(Debug, Clone)]
pub struct EpochReport {
    pub epoch: usize,
    pub epochs: usize,
    pub loss: f32,
    pub val_accuracy: Option<f32>,
    pub seconds: f64,
}

pub struct TrainReport {
    pub model: IntentModel,
    pub history: Vec<EpochReport>,
    /// Validation metrics at the chosen threshold.
    pub val: Option<IntentMetrics>,
}

/// Hash of the training examples, recorded in the model's metadata.
pub fn data_hash(examples: &[Example]) -> String {
    let mut h = Sha256::new();
    for e in examples {
        h.update(e.label().as_bytes());
        h.update([b'\t']);
        h.update(e.text.as_bytes());
        h.update([b'\n']);
    }
    format!("{:x}", h.finalize())
}

/// Train a model. `val`, when given, is used for progress, temperature and threshold.
pub fn train(
    train: &[Example],
    val: Option<&[Example]>,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<TrainReport> {
    let started = Instant::now();
    if train.is_empty() {
        return Err(super::NluError::Model("no training examples".into()));
    }
    let mut rng = SplitMix64::new(cfg.seed);
    let normalized: Vec<String> = train.iter().map(|e| normalize(&e.text)).collect();
    let featurizer = Featurizer::new(tokenizer::build(
        normalized.iter().map(String::as_str),
        cfg.vocab,
    )?);

    let labels: Vec<String> = train
        .iter()
        .map(|e| e.label().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let label_id: HashMap<&str, u32> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as u32))
        .collect();
    let targets: Vec<u32> = train.iter().map(|e| label_id[e.label()]).collect();

    // Vocabulary of features: every key seen in training, in key order; idf from document frequency.
    let bags = normalized
        .iter()
        .map(|t| featurizer.bag(t))
        .collect::<Result<Vec<_>>>()?;
    let mut df: BTreeMap<u64, u32> = BTreeMap::new();
    for bag in &bags {
        for (k, _) in bag {
            *df.entry(*k).or_default() += 1;
        }
    }
    let keys: Vec<u64> = df.keys().copied().collect();
    let row_of: HashMap<u64, u32> = keys
        .iter()
        .enumerate()
        .map(|(i, &k)| (k, i as u32))
        .collect();
    let n_docs = bags.len() as f32;
    let idf: Vec<f32> = df
        .values()
        .map(|&d| ((1.0 + n_docs) / (1.0 + d as f32)).ln() + 1.0)
        .collect();
    let rows: Vec<Vec<(u32, f32)>> = bags
        .iter()
        .map(|b| b.iter().map(|(k, tf)| (row_of[k], *tf)).collect())
        .collect();

    let dim = cfg.dim;
    let n_rows = keys.len();
    let n_classes = labels.len();
    let device = &cfg.device;
    let mut table: Vec<f32> = (0..n_rows * dim).map(|_| rng.normal() * 0.1).collect();
    let mut sparse = SparseAdam::new(n_rows * dim);

    let init = |rng: &mut SplitMix64, rows: usize, cols: usize, std: f32| -> Result<Var> {
        let v: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * std).collect();
        Ok(Var::from_tensor(&Tensor::from_vec(
            v,
            (rows, cols),
            device,
        )?)?)
    };
    let zeros = |n: usize| -> Result<Var> { Ok(Var::zeros(n, DType::F32, device)?) };
    let hidden = match cfg.hidden {
        Some(h) => Some((
            init(&mut rng, h, dim, (2.0 / dim as f32).sqrt())?,
            zeros(h)?,
        )),
        None => None,
    };
    let in_out = cfg.hidden.unwrap_or(dim);
    let out = (
        init(&mut rng, n_classes, in_out, (1.0 / in_out as f32).sqrt())?,
        zeros(n_classes)?,
    );
    let mut dense_vars: Vec<Var> = vec![out.0.clone(), out.1.clone()];
    if let Some((w, b)) = &hidden {
        dense_vars.extend([w.clone(), b.clone()]);
    }
    let params = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(dense_vars, params)?;
    let net_of = |hidden: &Option<(Var, Var)>, out: &(Var, Var)| Net {
        hidden: hidden
            .as_ref()
            .map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone())),
        out: (out.0.as_tensor().clone(), out.1.as_tensor().clone()),
    };

    // The current weights as a plain model (for validation each epoch, and the final result).
    let snap = |table: &[f32]| {
        snapshot(
            &featurizer,
            &keys,
            &idf,
            table,
            dim,
            net_of(&hidden, &out),
            &labels,
            device,
        )
    };

    let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
    let epochs = cfg
        .epochs
        .max(cfg.min_steps.div_ceil(steps_per_epoch.max(1)));
    let total_steps = (steps_per_epoch * epochs).max(1);
    let mut step = 0usize;
    let mut history = Vec::new();
    let mut order: Vec<usize> = (0..train.len()).collect();
    let val_texts: Option<Vec<&str>> = val.map(|v| v.iter().map(|e| e.text.as_str()).collect());

    for epoch in 1..=epochs {
        let epoch_start = Instant::now();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0f32;
        for chunk in order.chunks(cfg.batch_size) {
            // Gather the rows this batch uses; positions into that small table.
            let mut used: Vec<u32> = Vec::new();
            let mut pos: HashMap<u32, u32> = HashMap::new();
            let mut batch = SparseBatch::default();
            for &i in chunk {
                let mut kept: Vec<(u32, f32)> = rows[i]
                    .iter()
                    .copied()
                    .filter(|_| rng.next_f32() >= cfg.feature_dropout)
                    .collect();
                if kept.is_empty() {
                    kept = rows[i].clone();
                }
                // Weights use the global row's idf; the batch then refers to rows by local position.
                batch.push_weighted(kept.into_iter().map(|(r, tf)| {
                    let p = *pos.entry(r).or_insert_with(|| {
                        used.push(r);
                        used.len() as u32 - 1
                    });
                    (p, tfidf(tf, idf[r as usize]))
                }));
            }
            let mut gathered = Vec::with_capacity(used.len() * dim);
            for &r in &used {
                gathered.extend_from_slice(&table[r as usize * dim..(r as usize + 1) * dim]);
            }
            let small = Var::from_tensor(&Tensor::from_vec(gathered, (used.len(), dim), device)?)?;
            let net = net_of(&hidden, &out);
            let logits = net.logits(small.as_tensor(), &batch)?;
            let y: Vec<u32> = chunk.iter().map(|&i| targets[i]).collect();
            let y = Tensor::from_vec(y, chunk.len(), device)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            loss_sum += loss.to_scalar::<f32>()? * chunk.len() as f32;

            let lr = cfg.lr * (1.0 - step as f64 / total_steps as f64).max(0.02);
            opt.set_learning_rate(lr);
            let grads = loss.backward()?;
            opt.step(&grads)?;
            if let Some(g) = grads.get(small.as_tensor()) {
                let g = g.flatten_all()?.to_vec1::<f32>()?;
                sparse.step(&mut table, &used, &g, dim, lr as f32);
            }
            step += 1;
        }
        let val_accuracy = match &val_texts {
            Some(texts) => {
                let model = snap(&table)?;
                let preds = argmax_labels(&model, texts)?;
                let gold = val.expect("val texts come from val");
                let right = preds
                    .iter()
                    .zip(gold)
                    .filter(|(p, e)| p.as_str() == e.label())
                    .count();
                Some(right as f32 / gold.len().max(1) as f32)
            }
            None => None,
        };
        let report = EpochReport {
            epoch,
            epochs,
            loss: loss_sum / train.len() as f32,
            val_accuracy,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        progress(&report);
        history.push(report);
    }

    let mut model = snap(&table)?;
    let initial = crate::nlu::calibrate::initial_threshold(cfg.threshold);
    let mut meta = ModelMeta {
        format: FORMAT,
        dim,
        hidden: cfg.hidden,
        seed: cfg.seed,
        epochs,
        data_sha256: data_hash(train),
        train_examples: train.len(),
        val_examples: val.map_or(0, <[Example]>::len),
        features: n_rows,
        temperature: 1.0,
        threshold: initial.0,
        threshold_rule: initial.1,
        val_metrics: None,
        train_seconds: 0.0,
    };
    let mut val_metrics = None;
    if let Some(val) = val {
        let texts: Vec<&str> = val.iter().map(|e| e.text.as_str()).collect();
        let logits = model.logits(&texts)?;
        let gold: Vec<Option<usize>> = val
            .iter()
            .map(|e| labels.iter().position(|l| l == e.label()))
            .collect();
        meta.temperature = fit_temperature(&logits, &gold);
        model.meta.temperature = meta.temperature;
        let scored = Scored::from_model(&model, val)?;
        if cfg.threshold.is_none() {
            let (t, rule) = choose_threshold(&scored, cfg.max_accuracy_drop);
            meta.threshold = t;
            meta.threshold_rule = rule;
        }
        let metrics = IntentMetrics::compute(&scored, meta.threshold);
        meta.val_metrics = Some(serde_json::to_value(&metrics).expect("metrics serialize"));
        val_metrics = Some(metrics);
    }
    meta.train_seconds = started.elapsed().as_secs_f64();
    model.meta = meta;
    Ok(TrainReport {
        model,
        history,
        val: val_metrics,
    })
}

#[allow(clippy::too_many_arguments)]
fn snapshot(
    featurizer: &Featurizer,
    keys: &[u64],
    idf: &[f32],
    table: &[f32],
    dim: usize,
    net: Net,
    labels: &[String],
    device: &Device,
) -> Result<IntentModel> {
    let meta = ModelMeta {
        format: FORMAT,
        dim,
        hidden: net.hidden.as_ref().map(|(w, _)| w.dims()[0]),
        seed: 0,
        epochs: 0,
        data_sha256: String::new(),
        train_examples: 0,
        val_examples: 0,
        features: keys.len(),
        temperature: 1.0,
        threshold: 0.0,
        threshold_rule: String::new(),
        val_metrics: None,
        train_seconds: 0.0,
    };
    let table = Tensor::from_slice(table, (keys.len(), dim), device)?;
    // Detach from the training graph: a snapshot is a plain model.
    let net = Net {
        hidden: net.hidden.map(|(w, b)| (w.detach(), b.detach())),
        out: (net.out.0.detach(), net.out.1.detach()),
    };
    Ok(IntentModel::assemble(
        featurizer.clone(),
        keys.to_vec(),
        idf.to_vec(),
        table,
        net,
        labels.to_vec(),
        meta,
    ))
}

fn argmax_labels(model: &IntentModel, texts: &[&str]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(512) {
        let batch = model.batch(chunk.iter().copied())?;
        let idx = model
            .net
            .logits(&model.table, &batch)?
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?;
        out.extend(idx.into_iter().map(|i| model.labels[i as usize].clone()));
    }
    Ok(out)
}

/// Adam whose moments and updates touch only the rows a batch used.
struct SparseAdam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl SparseAdam {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    fn new(len: usize) -> Self {
        SparseAdam {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
        }
    }

    fn step(&mut self, table: &mut [f32], rows: &[u32], grad: &[f32], dim: usize, lr: f32) {
        self.t += 1;
        let c1 = 1.0 - Self::B1.powi(self.t);
        let c2 = 1.0 - Self::B2.powi(self.t);
        for (i, &r) in rows.iter().enumerate() {
            let g = &grad[i * dim..(i + 1) * dim];
            let base = r as usize * dim;
            for (j, &gj) in g.iter().enumerate() {
                let k = base + j;
                self.m[k] = Self::B1 * self.m[k] + (1.0 - Self::B1) * gj;
                self.v[k] = Self::B2 * self.v[k] + (1.0 - Self::B2) * gj * gj;
                let mh = self.m[k] / c1;
                let vh = self.v[k] / c2;
                table[k] -= lr * mh / (vh.sqrt() + Self::EPS);
            }
        }
    }
}
