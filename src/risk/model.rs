//! The learned half of life-care detection: a small candle text classifier trained on the
//! project's own examples (`risk/life_care.txt` against `risk/ordinary.txt` and the bundled
//! shop intents), for indirect talk the lexicon has no word for.
//!
//! It only adds hits: the lexicon fires first, and the model is consulted when it did not. A model
//! hit is explained by leaving words out one at a time and reporting those whose removal lowers
//! the probability most, so an agent sees *which words* made the bot worry.

use std::path::Path;

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
    for e in data::load(&root.join(crate::config::BUNDLED_TRAIN)).map_err(NluError::Data)? {
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

/// The trained classifier and how to read it.
pub struct LifeCareModel {
    model: IntentModel,
    positive: usize,
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
        Ok(LifeCareModel { model, positive })
    }

    pub fn load(dir: &Path) -> Result<Self, NluError> {
        Self::new(IntentModel::load(dir, &candle_core::Device::Cpu)?)
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
    crate::knowledge::analyze::jieba()
        .cut(text, true)
        .into_iter()
        .map(|t| t.word)
        .collect()
}
