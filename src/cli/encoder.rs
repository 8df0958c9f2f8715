//! The accurate tier from the command line: `train --encoder`, `classify` and `eval` of an encoder
//! head, encoder cross-validation, and `honeydesk encoder bench` (sentences per second).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use honeydesk::eval::intent::{curve, IntentMetrics};
use honeydesk::nlu::data::{self, Example};
use honeydesk::nlu::encoder::Encoder;
use honeydesk::nlu::head::{self, EncoderIntentModel, HeadConfig, LexicalMeta};
use honeydesk::nlu::{IntentModel, TrainConfig};

pub fn load_encoder(dir: &Path, device: &str) -> Result<Arc<Encoder>> {
    let device = honeydesk::nlu::device(device)?;
    Ok(Arc::new(Encoder::load(dir, &device).with_context(
        || format!("loading the sentence encoder in {}", dir.display()),
    )?))
}

/// A head and its encoder: `encoder` if given, else the folder the head was trained with.
pub fn load_head(dir: &Path, encoder: Option<&Path>, device: &str) -> Result<EncoderIntentModel> {
    let meta = head::read_meta(dir)?;
    let enc_dir = encoder.map_or_else(|| PathBuf::from(&meta.encoder_dir), Path::to_path_buf);
    let encoder = load_encoder(&enc_dir, device)?;
    let fast = match &meta.lexical {
        Some(l) => Some(Arc::new(load_fast(Path::new(&l.fast_model_dir), device)?)),
        None => None,
    };
    Ok(EncoderIntentModel::load(dir, encoder, fast)?)
}

fn load_fast(dir: &Path, device: &str) -> Result<IntentModel> {
    IntentModel::load(dir, &honeydesk::nlu::device(device)?)
        .with_context(|| format!("loading the fast intent model in {}", dir.display()))
}

#[allow(clippy::too_many_arguments)]
pub fn train(
    data: &Path,
    val: Option<&Path>,
    out: &Path,
    encoder: &Path,
    fast: Option<&Path>,
    device: &str,
    cfg: &HeadConfig,
) -> Result<()> {
    let train = data::load(data)?;
    let val = val.map(data::load).transpose()?;
    let encoder = load_encoder(encoder, device)?;
    let lexical = match fast {
        Some(dir) => Some((Arc::new(load_fast(dir, device)?), dir.display().to_string())),
        None => None,
    };
    eprintln!(
        "embedding {} training{} examples with {} ({} wide)",
        train.len(),
        val.as_ref()
            .map_or(String::new(), |v| format!(" and {} validation", v.len())),
        encoder.id.name,
        encoder.dim()
    );
    let model = head::train(encoder, lexical, &train, val.as_deref(), cfg)?;
    model.save(out)?;
    let m = &model.meta;
    eprintln!(
        "saved {} (temperature {:.3}, threshold {:.3}); embedding {:.1}s, head {:.1}s",
        out.display(),
        m.temperature,
        m.threshold,
        m.embed_seconds,
        m.train_seconds
    );
    eprintln!("threshold: {}", m.threshold_rule);
    if let Some(v) = &m.val_metrics {
        eprintln!("{}", serde_json::to_string_pretty(v)?);
    }
    Ok(())
}

pub fn classify(model: &EncoderIntentModel, texts: &[String], json: bool) -> Result<()> {
    for t in texts {
        let p = model.classify(t)?;
        if json {
            let top: Vec<_> = p.ranked.iter().take(5).collect();
            let line = serde_json::json!({"text": t, "intent": p.label(), "confidence": p.confidence, "tier": "encoder", "top": top});
            println!("{line}");
        } else {
            println!(
                "{t}\n  => {} (confidence {:.3}, threshold {:.3}, tier encoder)",
                p.label(),
                p.confidence,
                model.meta.threshold
            );
            for (label, prob) in p.ranked.iter().take(5) {
                println!("     {prob:.3}  {label}");
            }
        }
    }
    Ok(())
}

/// Intent metrics of an encoder head on labelled data (the `intent` section `eval` reports).
pub fn eval(model: &EncoderIntentModel, data_path: &Path, json: bool) -> Result<()> {
    let examples = data::load(data_path)?;
    let started = Instant::now();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let vectors = model.features(&texts)?;
    let seconds = started.elapsed().as_secs_f64();
    let scored = model.scored(&vectors, &examples)?;
    let metrics = IntentMetrics::compute(&scored, model.meta.threshold);
    let thresholds: Vec<f32> = (0..=19).map(|i| i as f32 * 0.05).collect();
    if json {
        let out = serde_json::json!({
            "tier": "encoder",
            "encoder": model.encoder.id,
            "intent": metrics,
            "curve": curve(&scored, &thresholds),
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} examples, encoder {}: in-scope accuracy {:.2}%, oos recall {}, accuracy {:.2}% at threshold {:.3} ({:.1}s)",
            metrics.examples,
            model.encoder.id.name,
            metrics.in_scope_accuracy * 100.0,
            metrics
                .oos_recall
                .map_or("-".into(), |r| format!("{:.2}%", r * 100.0)),
            metrics.accuracy * 100.0,
            metrics.threshold,
            seconds
        );
    }
    Ok(())
}

/// K-fold cross-validation of a head: every text is embedded once, then K heads are trained
/// (with `with_fast`, each on the sentence vectors plus the n-gram features of a fast model
/// trained on that fold's training part).
pub fn cross_validate(
    examples: &[Example],
    k: usize,
    seed: u64,
    encoder: &Path,
    with_fast: bool,
    device: &str,
    json: bool,
) -> Result<()> {
    if k < 2 {
        bail!("--folds needs at least 2 folds, got {k}");
    }
    let encoder = load_encoder(encoder, device)?;
    let started = Instant::now();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let vectors = head::embed(&encoder, &texts)?;
    eprintln!(
        "embedded {} texts in {:.1}s",
        texts.len(),
        started.elapsed().as_secs_f64()
    );
    // fold_split shuffles examples; carry each example's vector through it by index.
    let indexed: Vec<Example> = examples
        .iter()
        .enumerate()
        .map(|(i, e)| Example::new(i.to_string(), e.intent.as_deref()))
        .collect();
    let cfg = HeadConfig {
        seed,
        ..HeadConfig::default()
    };
    let mut accs = Vec::new();
    for fold in 0..k {
        let (train, test) = data::fold_split(&indexed, k, fold, seed);
        let pick = |part: &[Example]| -> (Vec<Example>, Vec<Vec<f32>>) {
            part.iter()
                .map(|e| {
                    let i: usize = e.text.parse().expect("an index");
                    (examples[i].clone(), vectors[i].clone())
                })
                .unzip()
        };
        let (train, mut train_v) = pick(&train);
        let (test, mut test_v) = pick(&test);
        let lexical = if with_fast {
            let fast_cfg = TrainConfig {
                seed,
                ..TrainConfig::default()
            };
            let fast = Arc::new(honeydesk::nlu::train(&train, None, &fast_cfg, &mut |_| {})?.model);
            let meta = LexicalMeta::of(&fast, String::new());
            for (part, vectors) in [(&train, &mut train_v), (&test, &mut test_v)] {
                let texts: Vec<&str> = part.iter().map(|e| e.text.as_str()).collect();
                head::add_lexical(vectors, &fast, &meta, &texts)?;
            }
            Some((fast, meta))
        } else {
            None
        };
        let model = head::train_on_vectors(encoder.clone(), lexical, &train, &train_v, None, &cfg)?;
        let m = IntentMetrics::compute(&model.scored(&test_v, &test)?, 0.0);
        eprintln!("fold {}/{k}: accuracy {:.2}%", fold + 1, m.accuracy * 100.0);
        accs.push(m.accuracy);
    }
    let mean = accs.iter().sum::<f64>() / k as f64;
    let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / k as f64).sqrt();
    if json {
        let out = serde_json::json!({"folds": k, "tier": "encoder", "encoder": encoder.id, "intent": {"accuracy": mean, "accuracy_std": std, "per_fold_accuracy": accs}});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{k}-fold accuracy {:.2}% ± {:.2} (encoder {})",
            mean * 100.0,
            std * 100.0,
            encoder.id.name
        );
    }
    Ok(())
}

/// Sentences per second at batch 1 and at batch 32, on the texts of `data`.
pub fn bench(encoder: &Path, device: &str, data_path: &Path, limit: usize) -> Result<()> {
    let encoder = load_encoder(encoder, device)?;
    let examples = data::load(data_path)?;
    let texts: Vec<&str> = examples
        .iter()
        .take(limit)
        .map(|e| e.text.as_str())
        .collect();
    if texts.is_empty() {
        bail!("{}: no texts", data_path.display());
    }
    // One warm-up pass, so the first allocation does not count.
    head::embed(&encoder, &texts[..1])?;
    let started = Instant::now();
    let mut singles = Vec::with_capacity(texts.len());
    for t in &texts {
        let one = Instant::now();
        head::embed(&encoder, &[t])?;
        singles.push(one.elapsed().as_secs_f64());
    }
    let batch1 = texts.len() as f64 / started.elapsed().as_secs_f64();
    singles.sort_by(f64::total_cmp);
    let median = singles[singles.len() / 2] * 1e3;
    let started = Instant::now();
    head::embed(&encoder, &texts)?;
    let batch32 = texts.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "{} sentences, encoder {}: batch 1 {:.0}/s (median {:.2} ms each), batch {} {:.0}/s",
        texts.len(),
        encoder.id.name,
        batch1,
        median,
        honeydesk::nlu::encoder::BATCH,
        batch32
    );
    Ok(())
}
