//! The cascade: the fast n-gram model answers the messages it is sure of, and only the rest pay
//! for the sentence encoder (about three hundred times its cost per message).
//!
//! Routing is decided on the fast model's own calibrated output, before the encoder runs: a
//! message goes to the encoder when the fast model's top probability (its `oos` class included)
//! is below `escalate_below`. Text with Chinese characters stays on the fast model when the
//! encoder did no better on the Chinese validation messages than the fast model did (an English
//! encoder does not know the language, so it must never make Chinese worse). Both choices are
//! made on validation data by [`fit`] and kept in the head's `meta.json`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::data::{Example, OOS};
use super::head::EncoderIntentModel;
use super::model::{IntentModel, Prediction};
use super::{NluError, Result};
use crate::nlu::calibrate::{IntentMetrics, Scored};

/// Which model answered a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    #[default]
    Fast,
    Encoder,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Encoder => "encoder",
        }
    }
}

/// Why a message went to its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// No encoder is configured.
    FastOnly,
    /// The fast model's top probability reached `escalate_below`.
    Confident,
    /// Chinese text, kept on the fast model.
    Language,
    /// The fast model was unsure.
    Escalated,
}

/// What [`fit`] chose, saved in the head's `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CascadeMeta {
    /// The fast tier's folder and training-data hash (another fast model is refused).
    pub fast_model_dir: String,
    pub fast_data_sha256: String,
    /// The fast model answers when its top probability is at least this.
    pub escalate_below: f32,
    /// Messages with Chinese characters stay on the fast model.
    pub han_to_fast: bool,
    pub rule: String,
    pub val: CascadeReport,
}

/// Accuracy (every message, out-of-scope ones included, each tier at its own threshold) of each
/// tier alone and of the cascade, on one labelled set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CascadeReport {
    pub examples: usize,
    pub fast_accuracy: f64,
    pub encoder_accuracy: f64,
    pub cascade_accuracy: f64,
    /// Share of messages the encoder answered.
    pub escalated: f64,
    pub han_examples: usize,
    pub han_fast_accuracy: Option<f64>,
    pub han_encoder_accuracy: Option<f64>,
}

/// A prediction with the tier that made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tiered {
    #[serde(flatten)]
    pub prediction: Prediction,
    pub tier: Tier,
    pub route: Route,
    /// The fast model's top probability, the number routing looked at.
    pub fast_top: f32,
}

/// Intents as the dialogue engine asks for them: the fast model, with the accurate tier behind it
/// when one is configured.
pub struct Cascade {
    fast: Arc<IntentModel>,
    accurate: Option<Accurate>,
}

struct Accurate {
    head: Arc<EncoderIntentModel>,
    meta: CascadeMeta,
    /// Encoder passes run here, so that at most this pool's threads are busy with them and the
    /// async server keeps its core. `None`: on the caller's thread.
    pool: Option<rayon::ThreadPool>,
}

impl From<Arc<IntentModel>> for Cascade {
    fn from(fast: Arc<IntentModel>) -> Self {
        Cascade::fast_only(fast)
    }
}

impl From<IntentModel> for Cascade {
    fn from(fast: IntentModel) -> Self {
        Cascade::fast_only(Arc::new(fast))
    }
}

/// Whether routing treats `text` as Chinese.
pub fn has_han(text: &str) -> bool {
    text.chars().any(crate::text::is_cjk)
}

fn top(probs: &[f32]) -> f32 {
    probs.iter().copied().fold(0.0, f32::max)
}

impl Cascade {
    pub fn fast_only(fast: Arc<IntentModel>) -> Self {
        Cascade {
            fast,
            accurate: None,
        }
    }

    /// The fast model with `head` behind it, routed as its `meta.json` says; refused when the head
    /// has no fitted cascade or was fitted with another fast model.
    pub fn new(fast: Arc<IntentModel>, head: Arc<EncoderIntentModel>) -> Result<Self> {
        let meta = head.meta.cascade.clone().ok_or_else(|| {
            NluError::Model(
                "this encoder head has no cascade: train it with --fast-model and --val".into(),
            )
        })?;
        if meta.fast_data_sha256 != fast.meta.data_sha256 {
            return Err(NluError::Model(format!(
                "the cascade was fitted with the fast model in {} (data {}), not this one (data {})",
                meta.fast_model_dir,
                &meta.fast_data_sha256[..12.min(meta.fast_data_sha256.len())],
                &fast.meta.data_sha256[..12.min(fast.meta.data_sha256.len())]
            )));
        }
        Ok(Cascade {
            fast,
            accurate: Some(Accurate {
                head,
                meta,
                pool: None,
            }),
        })
    }

    /// Run encoder passes on a pool of `threads` threads of their own.
    pub fn with_encoder_threads(mut self, threads: usize) -> Result<Self> {
        if let Some(a) = &mut self.accurate {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads.max(1))
                .thread_name(|i| format!("encoder-{i}"))
                .build()
                .map_err(|e| NluError::Model(format!("encoder thread pool: {e}")))?;
            a.pool = Some(pool);
        }
        Ok(self)
    }

    pub fn fast(&self) -> &IntentModel {
        &self.fast
    }

    pub fn head(&self) -> Option<&EncoderIntentModel> {
        self.accurate.as_ref().map(|a| a.head.as_ref())
    }

    pub fn meta(&self) -> Option<&CascadeMeta> {
        self.accurate.as_ref().map(|a| &a.meta)
    }

    /// Where a message goes, from its text and the fast model's probabilities.
    pub fn route(&self, text: &str, fast_probs: &[f32]) -> Route {
        match &self.accurate {
            None => Route::FastOnly,
            Some(a) => route(&a.meta, has_han(text), top(fast_probs)),
        }
    }

    /// Classify one message.
    pub fn classify(&self, text: &str) -> Result<Tiered> {
        let probs = self.fast.probabilities(&[text])?.pop().expect("one row");
        let route = self.route(text, &probs);
        let fast_top = top(&probs);
        match (&self.accurate, route) {
            (Some(a), Route::Escalated) => {
                let head = &a.head;
                let run = || head.classify(text);
                let prediction = match &a.pool {
                    Some(pool) => pool.install(run)?,
                    None => run()?,
                };
                Ok(Tiered {
                    prediction,
                    tier: Tier::Encoder,
                    route,
                    fast_top,
                })
            }
            _ => Ok(Tiered {
                prediction: self.fast.decide(&probs, self.fast.meta.threshold),
                tier: Tier::Fast,
                route,
                fast_top,
            }),
        }
    }

    /// Classify a data set: the fast model on every text in batches, the encoder in batches on
    /// the escalated ones (through the vector cache when one is set). `head_features`: the head's
    /// features of every text when the caller has them already (an eval that also scores the
    /// encoder alone).
    pub fn classify_all(
        &self,
        texts: &[&str],
        head_features: Option<&[Vec<f32>]>,
    ) -> Result<Vec<Tiered>> {
        let probs = self.fast.probabilities_batched(texts)?;
        let mut out: Vec<Tiered> = texts
            .iter()
            .zip(&probs)
            .map(|(t, p)| Tiered {
                prediction: self.fast.decide(p, self.fast.meta.threshold),
                tier: Tier::Fast,
                route: self.route(t, p),
                fast_top: top(p),
            })
            .collect();
        if let Some(a) = &self.accurate {
            let up: Vec<usize> = (0..texts.len())
                .filter(|&i| out[i].route == Route::Escalated)
                .collect();
            let vectors = match head_features {
                Some(all) => up.iter().map(|&i| all[i].clone()).collect(),
                None => {
                    let up_texts: Vec<&str> = up.iter().map(|&i| texts[i]).collect();
                    a.head.features_cached(&up_texts)?
                }
            };
            for (&i, p) in up.iter().zip(a.head.predictions_of(&vectors)?) {
                out[i].prediction = p;
                out[i].tier = Tier::Encoder;
            }
        }
        Ok(out)
    }
}

fn route(meta: &CascadeMeta, han: bool, fast_top: f32) -> Route {
    route_by(meta.han_to_fast, meta.escalate_below, han, fast_top)
}

fn route_by(han_to_fast: bool, escalate_below: f32, han: bool, fast_top: f32) -> Route {
    if han && han_to_fast {
        Route::Language
    } else if fast_top >= escalate_below {
        Route::Confident
    } else {
        Route::Escalated
    }
}

/// Labels of each tier on a labelled set, for [`fit`] and [`report`].
struct Votes {
    gold: Vec<String>,
    han: Vec<bool>,
    fast_top: Vec<f32>,
    fast: Vec<String>,
    encoder: Vec<String>,
}

impl Votes {
    fn of(
        fast: &IntentModel,
        head: &EncoderIntentModel,
        examples: &[Example],
        head_features: &[Vec<f32>],
    ) -> Result<Votes> {
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        let fast_probs = fast.probabilities_batched(&texts)?;
        let head_predictions = head.predictions_of(head_features)?;
        Ok(Votes {
            gold: examples.iter().map(|e| e.label().to_string()).collect(),
            han: texts.iter().map(|t| has_han(t)).collect(),
            fast_top: fast_probs.iter().map(|p| top(p)).collect(),
            fast: fast_probs
                .iter()
                .map(|p| fast.decide(p, fast.meta.threshold).label().to_string())
                .collect(),
            encoder: head_predictions
                .iter()
                .map(|p| p.label().to_string())
                .collect(),
        })
    }

    fn accuracy(
        &self,
        tier_of: impl Fn(usize) -> Tier,
        only: impl Fn(usize) -> bool,
    ) -> Option<f64> {
        let (mut n, mut right) = (0usize, 0usize);
        for i in 0..self.gold.len() {
            if !only(i) {
                continue;
            }
            n += 1;
            let label = match tier_of(i) {
                Tier::Fast => &self.fast[i],
                Tier::Encoder => &self.encoder[i],
            };
            right += usize::from(*label == self.gold[i]);
        }
        (n > 0).then(|| right as f64 / n as f64)
    }

    fn report(&self, meta_route: impl Fn(usize) -> Route) -> CascadeReport {
        let tier = |i: usize| match meta_route(i) {
            Route::Escalated => Tier::Encoder,
            _ => Tier::Fast,
        };
        let n = self.gold.len();
        let escalated = (0..n).filter(|&i| tier(i) == Tier::Encoder).count();
        CascadeReport {
            examples: n,
            fast_accuracy: self.accuracy(|_| Tier::Fast, |_| true).unwrap_or(0.0),
            encoder_accuracy: self.accuracy(|_| Tier::Encoder, |_| true).unwrap_or(0.0),
            cascade_accuracy: self.accuracy(tier, |_| true).unwrap_or(0.0),
            escalated: if n == 0 {
                0.0
            } else {
                escalated as f64 / n as f64
            },
            han_examples: self.han.iter().filter(|&&h| h).count(),
            han_fast_accuracy: self.accuracy(|_| Tier::Fast, |i| self.han[i]),
            han_encoder_accuracy: self.accuracy(|_| Tier::Encoder, |i| self.han[i]),
        }
    }
}

/// Choose the cascade's routing on validation data (`head_features`: the head's features of
/// `val`, in order).
///
/// Chinese text stays on the fast model unless the encoder beat it on the Chinese validation
/// messages (with none, it stays: nothing shows the encoder knows the language). The encoder
/// alone (after that language routing) is the reference; `escalate_below` is the lowest value
/// at which the cascade, and the cascade at every higher value, is within `max_drop` of the
/// reference in both in-scope accuracy and out-of-scope recall. Lowest, because each step up sends more messages to the encoder;
/// "every higher value", so a lucky dip on a small validation set is not chosen.
pub fn fit(
    fast: &IntentModel,
    fast_dir: String,
    head: &EncoderIntentModel,
    val: &[Example],
    head_features: &[Vec<f32>],
    max_drop: f64,
) -> Result<CascadeMeta> {
    if val.is_empty() {
        return Err(NluError::Model("the cascade needs validation data".into()));
    }
    let votes = Votes::of(fast, head, val, head_features)?;
    let han_to_fast = match (
        votes.accuracy(|_| Tier::Fast, |i| votes.han[i]),
        votes.accuracy(|_| Tier::Encoder, |i| votes.han[i]),
    ) {
        (Some(f), Some(e)) => e <= f,
        _ => true,
    };
    let reference_tier = |i: usize| {
        if votes.han[i] && han_to_fast {
            Tier::Fast
        } else {
            Tier::Encoder
        }
    };
    // Out-of-scope messages are few in validation data and many in real traffic (CLINC150: 3%
    // of val, 18% of test), so in-scope accuracy and out-of-scope recall are each held within
    // `max_drop`, rather than their mix at validation's proportions.
    let in_scope = |i: usize| votes.gold[i] != OOS;
    let out_scope = |i: usize| votes.gold[i] == OOS;
    let reference = (
        votes.accuracy(reference_tier, in_scope),
        votes.accuracy(reference_tier, out_scope),
    );
    // Candidate values: just above each distinct top probability, and above all of them.
    let above = |t: f32| f32::from_bits(t.max(0.0).to_bits() + 1);
    let mut candidates: Vec<f32> = votes.fast_top.iter().map(|&t| above(t)).collect();
    candidates.push(0.0);
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let holds = |t: f32| {
        let tier = |i: usize| match route_by(han_to_fast, t, votes.han[i], votes.fast_top[i]) {
            Route::Escalated => Tier::Encoder,
            _ => Tier::Fast,
        };
        let within = |got: Option<f64>, want: Option<f64>| match (got, want) {
            (Some(g), Some(w)) => g + 1e-12 >= w - max_drop,
            _ => true,
        };
        within(votes.accuracy(tier, in_scope), reference.0)
            && within(votes.accuracy(tier, out_scope), reference.1)
    };
    let mut chosen = *candidates.last().expect("at least one candidate");
    for &t in candidates.iter().rev() {
        if !holds(t) {
            break;
        }
        chosen = t;
    }
    let val_report =
        votes.report(|i| route_by(han_to_fast, chosen, votes.han[i], votes.fast_top[i]));
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.2}%", x * 100.0));
    let rule = format!(
        "lowest fast-model confidence from which the cascade stays within {:.1} points of the \
         encoder alone in in-scope accuracy ({}) and out-of-scope recall ({}) on {} validation \
         messages; Chinese text {}",
        max_drop * 100.0,
        pct(reference.0),
        pct(reference.1),
        val.len(),
        if han_to_fast {
            "stays on the fast model"
        } else {
            "is routed like the rest (the encoder beat the fast model on it)"
        }
    );
    Ok(CascadeMeta {
        fast_model_dir: fast_dir,
        fast_data_sha256: fast.meta.data_sha256.clone(),
        escalate_below: chosen,
        han_to_fast,
        rule,
        val: val_report,
    })
}

/// [`CascadeReport`] of a cascade on a labelled set (`head_features`: the head's features of
/// every example).
pub fn report(
    cascade: &Cascade,
    examples: &[Example],
    head_features: &[Vec<f32>],
) -> Result<CascadeReport> {
    let a = cascade
        .accurate
        .as_ref()
        .ok_or_else(|| NluError::Model("a cascade report needs an encoder tier".into()))?;
    let votes = Votes::of(&cascade.fast, &a.head, examples, head_features)?;
    Ok(votes.report(|i| route(&a.meta, votes.han[i], votes.fast_top[i])))
}

/// Scored examples of tiered predictions, for [`IntentMetrics`] at threshold 0 (each tier's own
/// threshold has already decided which messages are out of scope).
pub fn scored(tiered: &[Tiered], examples: &[Example]) -> Vec<Scored> {
    tiered
        .iter()
        .zip(examples)
        .map(|(t, e)| {
            let p = &t.prediction;
            let (best, confidence) = p
                .ranked
                .iter()
                .find(|(l, _)| l != OOS)
                .cloned()
                .unwrap_or_else(|| (OOS.to_string(), 0.0));
            Scored {
                gold: e.label().to_string(),
                best,
                confidence,
                score: confidence,
                oos_wins: p.intent.is_none(),
            }
        })
        .collect()
}

/// Intent metrics of tiered predictions.
pub fn metrics(tiered: &[Tiered], examples: &[Example]) -> IntentMetrics {
    IntentMetrics::compute(&scored(tiered, examples), 0.0)
}

/// The intents in `dir`: a fast model folder alone, or an encoder head with a fitted cascade
/// (loading its encoder and fast model from the folders its `meta.json` names).
pub fn load(dir: &std::path::Path, device: &candle_core::Device) -> Result<Cascade> {
    if !super::head::is_head(dir) {
        return Ok(Cascade::fast_only(Arc::new(IntentModel::load(
            dir, device,
        )?)));
    }
    let meta = super::head::read_meta(dir)?;
    let Some(cascade) = &meta.cascade else {
        return Err(NluError::Model(format!(
            "{}: an encoder head without a cascade cannot answer alone; train it with \
             --fast-model and --val",
            dir.display()
        )));
    };
    let fast = Arc::new(IntentModel::load(
        std::path::Path::new(&cascade.fast_model_dir),
        device,
    )?);
    let encoder = Arc::new(super::encoder::Encoder::load(
        std::path::Path::new(&meta.encoder_dir),
        device,
    )?);
    let head = EncoderIntentModel::load(dir, encoder)?;
    Cascade::new(fast, Arc::new(head))
}
