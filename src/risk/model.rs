//! The learned half of life-care detection: a small candle text classifier trained on the
//! project's own examples (`risk/life_care.txt` against `risk/ordinary.txt` and the bundled
//! shop intents), for indirect talk the lexicon has no word for.
//!
//! It only adds hits: the lexicon fires first, and the model is consulted when it did not. A model
//! hit is explained by leaving words out one at a time and reporting those whose removal lowers
//! the probability most, so an agent sees *which words* made the bot worry.

use std::path::Path;
use std::sync::Arc;

use crate::nlu::encoder::Encoder;
use crate::nlu::head::{self, EncoderIntentModel, HeadConfig};
use crate::nlu::{self, data, Example, IntentModel, NluError, TrainConfig};
use crate::text;

/// The label of the positive class.
pub const LIFE_CARE: &str = "life_care";
/// The label of everything else.
pub const ORDINARY: &str = "ordinary";
/// Where the bundled model lives, and the files it is trained from.
pub const BUNDLED_MODEL: &str = "models/life_care";
pub const POSITIVES: &str = "risk/life_care.txt";
pub const NEGATIVES: &str = "risk/ordinary.txt";
/// Positives are few; each is repeated this many times so the classes weigh about the same.
const UPSAMPLE: usize = 6;
/// Probability at or above which the model reports life-care. Chosen on SOS-1K's five
/// development folds and the ordinary-query sets, never on the test posts (README).
pub const THRESHOLD: f32 = 0.5;

/// The training set: positives (upsampled), written negatives, and every bundled shop example.
pub fn training_set(root: &Path) -> Result<Vec<Example>, NluError> {
    let mut out = Vec::new();
    for line in data::read_lines(&root.join(POSITIVES))? {
        for _ in 0..UPSAMPLE {
            out.push(Example::new(line.clone(), Some(LIFE_CARE)));
        }
    }
    for line in data::read_lines(&root.join(NEGATIVES))? {
        out.push(Example::new(line, Some(ORDINARY)));
    }
    for e in data::load(&root.join(crate::nlu::data::BUNDLED_TRAIN)).map_err(NluError::Data)? {
        out.push(Example::new(e.text, Some(ORDINARY)));
    }
    Ok(out)
}

/// Embedding width: two classes need far less than the intent model's 128, and the model ships
/// in git.
pub const DIM: usize = 32;

/// Train the life-care model (no validation split: the threshold is fixed, see [`THRESHOLD`]).
/// `cfg.dim` is used as given; [`DIM`] is what the bundled model uses.
pub fn train(root: &Path, cfg: &TrainConfig) -> Result<IntentModel, NluError> {
    let examples = training_set(root)?;
    Ok(nlu::train(&examples, None, cfg, &mut |_| {})?.model)
}

/// Where the vector half lives: a two-class head on the sentence encoder's vectors, trained on
/// the same files by `honeydesk risk train --encoder`. It shares `serve`'s encoder and is used
/// only when that encoder has been fetched.
pub const BUNDLED_VECTORS: &str = "models/life_care_e5";

/// P(life-care) at or above which both the n-grams and the sentence vectors must be for a message
/// with no distress or method word to count as life-care. Either alone at this level fires on
/// general talk about life ("what is the point of life") in CLINC150 and BANKING77; the two
/// together rarely do (docs/models.md).
pub const AGREE_THRESHOLD: f32 = 0.9;

/// The trained classifier and how to read it.
pub struct LifeCareModel {
    model: IntentModel,
    positive: usize,
    /// The vector half, when the encoder is there ([`BUNDLED_VECTORS`]).
    vectors: Option<(EncoderIntentModel, usize)>,
}

/// Train the vector half on the encoder's sentence vectors of [`training_set`] (each distinct
/// text embedded once; the upsampled positives repeat their vector).
pub fn train_vectors(root: &Path, encoder: Arc<Encoder>) -> Result<EncoderIntentModel, NluError> {
    let examples = training_set(root)?;
    let mut distinct: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let vectors = head::embed_cached(&encoder, &distinct)?;
    let row = |t: &str| {
        let i = distinct.binary_search(&t).expect("every text was embedded");
        vectors[i].clone()
    };
    let rows: Vec<Vec<f32>> = examples.iter().map(|e| row(&e.text)).collect();
    let mut head = head::train_on_vectors(
        encoder,
        None,
        &examples,
        &rows,
        None,
        &HeadConfig::default(),
    )?;
    // A plain linear read of the vector: the nearest-example vote would lean on whichever
    // training line a message happens to sit near, where life-care needs a smooth boundary.
    head.meta.knn = None;
    head.drop_unused_support();
    Ok(head)
}

impl std::fmt::Debug for LifeCareModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifeCareModel")
            .field("features", &self.model.meta.features)
            .finish()
    }
}

impl LifeCareModel {
    pub fn new(model: IntentModel) -> Result<Self, NluError> {
        let positive = model
            .labels()
            .iter()
            .position(|l| l == LIFE_CARE)
            .ok_or_else(|| NluError::Model(format!("the model has no '{LIFE_CARE}' label")))?;
        Ok(LifeCareModel {
            model,
            positive,
            vectors: None,
        })
    }

    pub fn load(dir: &Path) -> Result<Self, NluError> {
        Self::new(IntentModel::load(dir, &candle_core::Device::Cpu)?)
    }

    /// Add the vector half (a head with the labels [`LIFE_CARE`] and [`ORDINARY`]).
    pub fn with_vectors(mut self, head: EncoderIntentModel) -> Result<Self, NluError> {
        let positive = head
            .labels()
            .iter()
            .position(|l| l == LIFE_CARE)
            .ok_or_else(|| {
                NluError::Model(format!("the vector head has no '{LIFE_CARE}' label"))
            })?;
        self.vectors = Some((head, positive));
        Ok(self)
    }

    /// The bundled model in `root`, with its vector half when `encoder` is the encoder that half
    /// was trained on (another encoder, such as MiniLM, leaves the n-grams alone).
    pub fn load_bundled(root: &Path, encoder: Option<Arc<Encoder>>) -> Result<Self, NluError> {
        let model = Self::load(&root.join(BUNDLED_MODEL))?;
        let dir = root.join(BUNDLED_VECTORS);
        let Some(encoder) = encoder.filter(|_| dir.join("meta.json").is_file()) else {
            return Ok(model);
        };
        if head::read_meta(&dir)?.encoder.weights_sha256 != encoder.id.weights_sha256 {
            return Ok(model);
        }
        model.with_vectors(EncoderIntentModel::load(&dir, encoder)?)
    }

    /// Whether the vector half is loaded.
    pub fn has_vectors(&self) -> bool {
        self.vectors.is_some()
    }

    /// P(life-care) of `text` on its sentence vector; `None` without the vector half.
    pub fn vector_probability(&self, text: &str) -> Result<Option<f32>, NluError> {
        let Some((head, positive)) = &self.vectors else {
            return Ok(None);
        };
        let p = head.probabilities(&[text])?;
        Ok(Some(p[0][*positive]))
    }

    /// P(life-care) for each text.
    pub fn probabilities(&self, texts: &[&str]) -> Result<Vec<f32>, NluError> {
        Ok(self
            .model
            .probabilities_batched(texts)?
            .into_iter()
            .map(|p| p[self.positive])
            .collect())
    }

    /// The words whose removal lowers P(life-care) the most, best first (at most three).
    pub fn explain(&self, message: &str) -> Result<Vec<String>, NluError> {
        let normalized = text::normalize(message);
        let words: Vec<&str> = jieba_words(&normalized);
        if words.len() < 2 {
            return Ok(words.into_iter().map(String::from).collect());
        }
        let mut variants: Vec<String> = vec![normalized.clone()];
        for i in 0..words.len() {
            variants.push(
                words
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, w)| *w)
                    .collect(),
            );
        }
        let refs: Vec<&str> = variants.iter().map(String::as_str).collect();
        let p = self.probabilities(&refs)?;
        let mut drops: Vec<(f32, &str)> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (p[0] - p[i + 1], *w))
            .filter(|(d, w)| *d > 0.0 && !w.trim().is_empty())
            .collect();
        drops.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(drops
            .into_iter()
            .take(3)
            .map(|(_, w)| w.to_string())
            .collect())
    }
}

fn jieba_words(text: &str) -> Vec<&str> {
    crate::text::jieba()
        .cut(text, true)
        .into_iter()
        .map(|t| t.word)
        .collect()
}
