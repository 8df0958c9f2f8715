//! An intent classifier on a sentence encoder's vectors: a linear softmax head trained with candle,
//! calibrated and thresholded on validation data exactly like the fast model
//! ([`crate::eval::intent::fit_temperature`], [`crate::eval::intent::choose_threshold`]).
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
use super::model::{best_in_scope, decide_on, IntentModel, Prediction};
use super::rng::SplitMix64;
use super::{NluError, Result};
use crate::eval::intent::{choose_threshold, fit_temperature, IntentMetrics, Scored};
use crate::text::normalize;

/// Bumped when the files change meaning.
pub const FORMAT: u32 = 1;

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
    /// The fast model whose n-gram features are added to the sentence vectors, if any.
    #[serde(default)]
    pub lexical: Option<LexicalMeta>,
    /// How the fast model and this head share the messages, when fitted on validation data.
    #[serde(default)]
    pub cascade: Option<super::cascade::CascadeMeta>,
    /// Out-of-scope rejection by nearness to the training examples, when chosen on validation;
    /// `threshold` then applies to [`NoveltyMeta`]'s score, not to the probability.
    #[serde(default)]
    pub novelty: Option<NoveltyMeta>,
    /// Seconds spent embedding the training and validation texts, and training the head.
    pub embed_seconds: f64,
    pub train_seconds: f64,
}

pub const KIND: &str = "encoder_head";

/// Lexical features beside the sentence vector: the fast model's TF-IDF n-grams, folded into
/// `buckets` dimensions and scaled by `weight`. Words the encoder's vocabulary splits badly (brand
/// names, order jargon) still count this way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LexicalMeta {
    pub fast_model_dir: String,
    /// The fast model's training-data hash, so another fast model is refused.
    pub fast_data_sha256: String,
    pub buckets: usize,
    pub weight: f32,
}

/// Rejecting out-of-scope messages on the head's probability alone leaves many of them in: a
/// softmax is confident far from its training data too. The cosine between a message's sentence
/// vector and its nearest in-scope training example says how far away it is, so the head can
/// reject on `nearest + alpha · confidence` instead. `alpha` and the threshold are chosen on
/// validation data; the in-scope training vectors are kept beside the head
/// (`support.safetensors`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoveltyMeta {
    pub alpha: f32,
    /// In-scope training examples kept.
    pub support: usize,
    pub rule: String,
}

/// The weights of the head's confidence tried beside the nearest-example cosine.
pub const NOVELTY_ALPHAS: [f32; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// Rows of support vectors compared at once (bounds the similarity matrix to ~16 MB).
const SUPPORT_BATCH: usize = 256;

/// Buckets and weight of the lexical features when they are asked for.
pub const LEXICAL_BUCKETS: usize = 4096;
pub const LEXICAL_WEIGHT: f32 = 1.0;

/// How the head is trained.
#[derive(Debug, Clone)]
pub struct HeadConfig {
    pub seed: u64,
    pub epochs: usize,
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
    /// The fast model giving the lexical features ([`HeadMeta::lexical`]).
    pub lexical: Option<Arc<IntentModel>>,
    /// (dim, labels)
    w: Tensor,
    b: Tensor,
    labels: Vec<String>,
    oos: Option<usize>,
    /// In-scope training sentence vectors, (dim, n), when [`HeadMeta::novelty`] is set.
    support: Option<Tensor>,
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

/// What the head reads for `texts`: the sentence vectors, and the lexical features after them
/// when `lexical` is given. `cached`: through [`embed_cached`] (data sets, not live messages).
pub fn features(
    encoder: &Encoder,
    lexical: Option<(&IntentModel, &LexicalMeta)>,
    texts: &[&str],
    cached: bool,
) -> Result<Vec<Vec<f32>>> {
    let mut vectors = if cached {
        embed_cached(encoder, texts)?
    } else {
        embed(encoder, texts)?
    };
    if let Some((fast, meta)) = lexical {
        add_lexical(&mut vectors, fast, meta, texts)?;
    }
    Ok(vectors)
}

/// Append `fast`'s lexical features for `texts` to their sentence vectors.
pub fn add_lexical(
    vectors: &mut [Vec<f32>],
    fast: &IntentModel,
    meta: &LexicalMeta,
    texts: &[&str],
) -> Result<()> {
    for (v, lex) in vectors.iter_mut().zip(fast.lexical(texts, meta.buckets)?) {
        v.extend(lex.into_iter().map(|x| x * meta.weight));
    }
    Ok(())
}

impl LexicalMeta {
    /// The default lexical features of `fast`, kept in `dir`.
    pub fn of(fast: &IntentModel, dir: String) -> LexicalMeta {
        LexicalMeta {
            fast_model_dir: dir,
            fast_data_sha256: fast.meta.data_sha256.clone(),
            buckets: LEXICAL_BUCKETS,
            weight: LEXICAL_WEIGHT,
        }
    }
}

impl EncoderIntentModel {
    /// Width of what the head reads.
    pub fn input_dim(&self) -> usize {
        self.encoder.dim() + self.meta.lexical.as_ref().map_or(0, |l| l.buckets)
    }

    /// [`features`] for this head, of live messages.
    pub fn features(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let lexical = self.lexical.as_deref().zip(self.meta.lexical.as_ref());
        features(&self.encoder, lexical, texts, false)
    }

    /// [`features`] of a data set, through the vector cache when one is set.
    pub fn features_cached(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let lexical = self.lexical.as_deref().zip(self.meta.lexical.as_ref());
        features(&self.encoder, lexical, texts, true)
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

    /// Calibrated probabilities for sentence vectors.
    pub fn probabilities_of(&self, vectors: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if vectors.is_empty() {
            return Ok(Vec::new());
        }
        let x = matrix(vectors, self.input_dim(), self.w.device())?;
        let logits = x.matmul(&self.w)?.broadcast_add(&self.b)?;
        let probs = candle_nn::ops::softmax(&(logits / self.meta.temperature as f64)?, D::Minus1)?;
        Ok(probs.to_vec2::<f32>()?)
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
        let probs = self.probabilities_of(vectors)?;
        let scores = self.rejection_scores(vectors, &probs)?;
        Ok(probs
            .iter()
            .zip(scores)
            .map(|(p, score)| decide_on(&self.labels, self.oos, p, score, self.meta.threshold))
            .collect())
    }

    /// Cosine of each row's sentence vector to its nearest in-scope training example, or `None`
    /// for a head without support vectors.
    pub fn nearest(&self, vectors: &[Vec<f32>]) -> Result<Option<Vec<f32>>> {
        let Some(support) = &self.support else {
            return Ok(None);
        };
        let dim = self.encoder.dim();
        let mut out = Vec::with_capacity(vectors.len());
        for chunk in vectors.chunks(SUPPORT_BATCH) {
            let sentence: Vec<Vec<f32>> = chunk.iter().map(|v| v[..dim].to_vec()).collect();
            let x = matrix(&sentence, dim, support.device())?;
            out.extend(x.matmul(support)?.max(D::Minus1)?.to_vec1::<f32>()?);
        }
        Ok(Some(out))
    }

    /// What the threshold is compared with: the best in-scope probability, or with novelty
    /// `nearest + alpha · probability`.
    fn rejection_scores(&self, vectors: &[Vec<f32>], probs: &[Vec<f32>]) -> Result<Vec<f32>> {
        let conf: Vec<f32> = probs.iter().map(|p| best_in_scope(p, self.oos).1).collect();
        Ok(match (self.nearest(vectors)?, &self.meta.novelty) {
            (Some(near), Some(n)) => near
                .iter()
                .zip(&conf)
                .map(|(d, c)| d + n.alpha * c)
                .collect(),
            _ => conf,
        })
    }

    /// Scored examples from their vectors (for metrics and threshold choice).
    pub fn scored(&self, vectors: &[Vec<f32>], examples: &[Example]) -> Result<Vec<Scored>> {
        let probs = self.probabilities_of(vectors)?;
        let scores = self.rejection_scores(vectors, &probs)?;
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
        let tensors = std::collections::HashMap::from([
            ("w".to_string(), self.w.to_device(&cpu)?),
            ("b".to_string(), self.b.to_device(&cpu)?),
        ]);
        candle_core::safetensors::save(&tensors, dir.join("head.safetensors"))?;
        let support = dir.join("support.safetensors");
        match &self.support {
            Some(t) => candle_core::safetensors::save(
                &std::collections::HashMap::from([("support".to_string(), t.to_device(&cpu)?)]),
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

    /// Load the head in `dir` for `encoder` (and the fast model it takes lexical features from,
    /// if any); refused when either is another than it was trained with.
    pub fn load(
        dir: &Path,
        encoder: Arc<Encoder>,
        lexical: Option<Arc<IntentModel>>,
    ) -> Result<Self> {
        let meta = read_meta(dir)?;
        match (&meta.lexical, &lexical) {
            (Some(l), Some(fast)) if fast.meta.data_sha256 != l.fast_data_sha256 => {
                return Err(NluError::Model(format!(
                    "{}: this head takes lexical features from a fast model trained on data {}, \
                     not {}",
                    dir.display(),
                    &l.fast_data_sha256[..12.min(l.fast_data_sha256.len())],
                    &fast.meta.data_sha256[..12.min(fast.meta.data_sha256.len())]
                )))
            }
            (Some(l), None) => {
                return Err(NluError::Model(format!(
                    "{}: this head needs the fast model in {} for its lexical features",
                    dir.display(),
                    l.fast_model_dir
                )))
            }
            _ => {}
        }
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
        let lexical = meta.lexical.as_ref().and(lexical);
        let support = match &meta.novelty {
            None => None,
            Some(n) => {
                let path = dir.join("support.safetensors");
                let t = candle_core::safetensors::load(&path, &device)?;
                let s = t.get("support").cloned().ok_or_else(|| {
                    NluError::Model(format!("{}: no support tensor", path.display()))
                })?;
                if s.dims() != [encoder.dim(), n.support] {
                    return Err(NluError::Model(format!(
                        "{}: support shape {:?}, meta.json says {} vectors of {}",
                        path.display(),
                        s.dims(),
                        n.support,
                        encoder.dim()
                    )));
                }
                Some(s)
            }
        };
        Ok(EncoderIntentModel {
            encoder,
            lexical,
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
/// must match `lexical`).
pub fn train_on_vectors(
    encoder: Arc<Encoder>,
    lexical: Option<(Arc<IntentModel>, LexicalMeta)>,
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
    let dim = encoder.dim() + lexical.as_ref().map_or(0, |l| l.1.buckets);
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
    for _ in 0..cfg.epochs {
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
    let initial = crate::eval::intent::initial_threshold(cfg.threshold);
    let mut model = EncoderIntentModel {
        meta: HeadMeta {
            format: FORMAT,
            kind: KIND.into(),
            encoder: encoder.id.clone(),
            encoder_dir: encoder.dir.display().to_string(),
            seed: cfg.seed,
            epochs: cfg.epochs,
            data_sha256: super::train::data_hash(train),
            train_examples: train.len(),
            val_examples: val.map_or(0, |v| v.0.len()),
            temperature: 1.0,
            threshold: initial.0,
            threshold_rule: initial.1,
            val_metrics: None,
            lexical: lexical.as_ref().map(|l| l.1.clone()),
            cascade: None,
            novelty: None,
            embed_seconds: 0.0,
            train_seconds: 0.0,
        },
        encoder,
        lexical: lexical.map(|l| l.0),
        w: w.as_tensor().clone(),
        b: b.as_tensor().clone(),
        labels,
        oos,
        support: None,
    };
    if let Some((val, vectors)) = val {
        let logits = model.logits_of(vectors)?;
        let gold: Vec<Option<usize>> = val
            .iter()
            .map(|e| model.labels.iter().position(|l| l == e.label()))
            .collect();
        model.meta.temperature = fit_temperature(&logits, &gold);
        if cfg.threshold.is_none() {
            let support = support_of(&model, train, train_vectors)?;
            choose_rejection(&mut model, support, val, vectors, cfg.max_accuracy_drop)?;
        }
        let scored = model.scored(vectors, val)?;
        let metrics = IntentMetrics::compute(&scored, model.meta.threshold);
        model.meta.val_metrics = Some(serde_json::to_value(&metrics).expect("metrics serialize"));
    }
    model.meta.train_seconds = started.elapsed().as_secs_f64();
    Ok(model)
}

/// The in-scope training sentence vectors as a (dim, n) matrix, or `None` when there are none.
fn support_of(
    model: &EncoderIntentModel,
    train: &[Example],
    vectors: &[Vec<f32>],
) -> Result<Option<Tensor>> {
    let dim = model.encoder.dim();
    let rows: Vec<Vec<f32>> = train
        .iter()
        .zip(vectors)
        .filter(|(e, _)| e.label() != OOS)
        .map(|(_, v)| v[..dim].to_vec())
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(matrix(&rows, dim, &Device::Cpu)?.t()?.contiguous()?))
}

/// Choose how the head rejects out-of-scope messages, on validation: the probability alone, or
/// the novelty score with each of [`NOVELTY_ALPHAS`], each at the threshold [`choose_threshold`]
/// picks for it; the one with the highest out-of-scope recall wins (then in-scope accuracy; ties
/// keep the simpler rule). Without out-of-scope validation examples the probability stays.
fn choose_rejection(
    model: &mut EncoderIntentModel,
    support: Option<Tensor>,
    val: &[Example],
    vectors: &[Vec<f32>],
    max_drop: f32,
) -> Result<()> {
    let plain = model.scored(vectors, val)?;
    let (t, rule) = choose_threshold(&plain, max_drop);
    let (acc, rec) = IntentMetrics::compute_counts(&plain, t);
    let (plain_acc, plain_rec) = (acc, rec.unwrap_or(0.0));
    let mut best: (Option<f32>, f32, String, f64, f64) = (None, t, rule, plain_acc, plain_rec);
    if let (Some(support), true) = (support, val.iter().any(|e| e.label() == OOS)) {
        let n = support.dims()[1];
        model.support = Some(support);
        let near = model.nearest(vectors)?.expect("support set");
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
            support: n,
            rule: format!(
                "nearest-example cosine + {alpha} x confidence: validation oos recall {:.3} at \
                 in-scope accuracy {:.3}, against {:.3} at {:.3} on the probability alone",
                best.4, best.3, plain_rec, plain_acc
            ),
        });
        if model.meta.novelty.is_none() {
            model.support = None;
        }
    }
    model.meta.threshold = best.1;
    model.meta.threshold_rule = best.2;
    Ok(())
}

/// Embed and train: what `honeydesk train --encoder` runs. With `lexical` (a fast model and
/// its folder), its n-gram features, folded into [`LEXICAL_BUCKETS`], are added to the sentence
/// vectors. Returns the validation features too, so the cascade can be fitted on them without
/// embedding the texts again.
pub fn train(
    encoder: Arc<Encoder>,
    lexical: Option<(Arc<IntentModel>, String)>,
    train: &[Example],
    val: Option<&[Example]>,
    cfg: &HeadConfig,
) -> Result<(EncoderIntentModel, Option<Vec<Vec<f32>>>)> {
    let started = std::time::Instant::now();
    let lexical = lexical.map(|(fast, dir)| {
        let meta = LexicalMeta::of(&fast, dir);
        (fast, meta)
    });
    let lex_ref = lexical.as_ref().map(|(f, m)| (f.as_ref(), m));
    let of = |ex: &[Example]| -> Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = ex.iter().map(|e| e.text.as_str()).collect();
        features(&encoder, lex_ref, &texts, true)
    };
    let train_vectors = of(train)?;
    let val_vectors = val.map(of).transpose()?;
    let embed_seconds = started.elapsed().as_secs_f64();
    let val_pair = val.zip(val_vectors.as_deref());
    let mut model = train_on_vectors(
        encoder.clone(),
        lexical.clone(),
        train,
        &train_vectors,
        val_pair,
        cfg,
    )?;
    model.meta.embed_seconds = embed_seconds;
    Ok((model, val_vectors))
}

fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("serializable") + "\n"
}
