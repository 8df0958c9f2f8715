//! The accurate tier from the command line: `train --encoder`, `classify` and `eval` of an encoder
//! head, encoder cross-validation, and `honeydesk encoder bench` (sentences per second).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use honeydesk::nlu::calibrate::{curve, IntentMetrics, Scored};
use honeydesk::nlu::cascade::{self, Cascade, Tier};
use honeydesk::nlu::data::{self, Example};
use honeydesk::nlu::e5::Precision;
use honeydesk::nlu::encoder::Encoder;
use honeydesk::nlu::head::{self, EncoderIntentModel, HeadConfig, Words};
use honeydesk::nlu::IntentModel;

pub fn load_encoder(dir: &Path, device: &str) -> Result<Arc<Encoder>> {
    load_encoder_with(dir, device, "f32")
}

/// [`load_encoder`] at a precision (`q4` or `f32`; an e5 folder's matrices only).
pub fn load_encoder_with(dir: &Path, device: &str, precision: &str) -> Result<Arc<Encoder>> {
    let device = honeydesk::nlu::device(device)?;
    let precision: Precision = precision.parse()?;
    Ok(Arc::new(
        Encoder::load_with(dir, &device, precision)
            .with_context(|| format!("loading the sentence encoder in {}", dir.display()))?,
    ))
}

/// `honeydesk encoder embed`: each text's vector as a JSON array on a line of its own.
pub fn embed(dir: &Path, precision: &str, passage: bool, texts: &[String]) -> Result<()> {
    let encoder = load_encoder_with(dir, "cpu", precision)?;
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = if passage {
        encoder.embed_passages(&texts)?
    } else {
        encoder.embed(&texts)?
    };
    for v in vectors {
        println!("{}", serde_json::to_string(&v)?);
    }
    Ok(())
}

/// A head, its encoder (`encoder` if given, else the folder the head was trained with) and the
/// fast model of its cascade, if any.
pub fn load_head(
    dir: &Path,
    encoder: Option<&Path>,
    device: &str,
) -> Result<(Arc<EncoderIntentModel>, Option<Arc<IntentModel>>)> {
    let meta = head::read_meta(dir)?;
    let enc_dir = encoder.map_or_else(|| PathBuf::from(&meta.encoder_dir), Path::to_path_buf);
    let encoder = load_encoder(&enc_dir, device)?;
    let fast = match &meta.cascade {
        Some(c) => Some(Arc::new(load_fast(Path::new(&c.fast_model_dir), device)?)),
        None => None,
    };
    let head = Arc::new(EncoderIntentModel::load(dir, encoder)?);
    Ok((head, fast))
}

/// The cascade of a head that has one.
fn cascade_of(
    head: &Arc<EncoderIntentModel>,
    fast: &Option<Arc<IntentModel>>,
) -> Result<Option<Cascade>> {
    match (&head.meta.cascade, fast) {
        (Some(_), Some(fast)) => Ok(Some(Cascade::new(fast.clone(), head.clone())?)),
        _ => Ok(None),
    }
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
    lexical: bool,
    cascade_max_drop: f64,
    device: &str,
    cfg: &HeadConfig,
) -> Result<()> {
    let train = data::load(data)?;
    let val = val.map(data::load).transpose()?;
    let encoder = load_encoder(encoder, device)?;
    let fast = match fast {
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
    let (mut model, val_features) = head::train(encoder, lexical, &train, val.as_deref(), cfg)?;
    if let (Some((fast, dir)), Some(val), Some(features)) = (&fast, &val, &val_features) {
        let meta = cascade::fit(fast, dir.clone(), &model, val, features, cascade_max_drop)?;
        eprintln!(
            "cascade: the encoder answers below fast-model confidence {:.3} ({:.1}% of validation \
             messages); validation accuracy fast {:.2}%, encoder {:.2}%, cascade {:.2}%",
            meta.escalate_below,
            meta.val.escalated * 100.0,
            meta.val.fast_accuracy * 100.0,
            meta.val.encoder_accuracy * 100.0,
            meta.val.cascade_accuracy * 100.0
        );
        eprintln!("cascade: {}", meta.rule);
        model.meta.cascade = Some(meta);
    } else if fast.is_some() {
        eprintln!("no --val: the head is saved without a cascade");
    }
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

/// How much in-scope accuracy or out-of-scope recall the cascade may lose on validation data
/// against the encoder alone. One point: since the head rejects by novelty, its out-of-scope
/// recall is far above the fast model's, and allowing no loss sent 60% of CLINC150 (54% of
/// validation) to the encoder, so the median message paid for it; one point on validation sends
/// 29% and cost 0.49 point of accuracy on test, two points 25% and 0.8.
pub const CASCADE_MAX_DROP: f64 = 0.01;

pub fn classify(dir: &Path, device: &str, texts: &[String], json: bool) -> Result<()> {
    let (head, fast) = load_head(dir, None, device)?;
    let cascade = cascade_of(&head, &fast)?;
    for t in texts {
        let (p, tier, route, threshold) = match &cascade {
            Some(c) => {
                let r = c.classify(t)?;
                let threshold = match r.tier {
                    Tier::Fast => c.fast().meta.threshold,
                    Tier::Encoder => head.meta.threshold,
                };
                (r.prediction, r.tier, Some(r.route), threshold)
            }
            None => (head.classify(t)?, Tier::Encoder, None, head.meta.threshold),
        };
        if json {
            let top: Vec<_> = p.ranked.iter().take(5).collect();
            let line = serde_json::json!({"text": t, "intent": p.label(), "confidence": p.confidence, "tier": tier, "route": route, "top": top});
            println!("{line}");
        } else {
            println!(
                "{t}\n  => {} (confidence {:.3}, threshold {:.3}, tier {}{})",
                p.label(),
                p.confidence,
                threshold,
                tier.as_str(),
                route.map_or(String::new(), |r| format!(
                    ", {}",
                    serde_json::to_value(r)
                        .expect("route")
                        .as_str()
                        .unwrap_or("")
                ))
            );
            for (label, prob) in p.ranked.iter().take(5) {
                println!("     {prob:.3}  {label}");
            }
        }
    }
    Ok(())
}

/// Intent metrics of an encoder head on labelled data (the `intent` section `eval` reports), and
/// with a cascade, the fast model's and the cascade's beside it.
pub fn eval(
    dir: &Path,
    encoder: Option<&Path>,
    device: &str,
    data_path: &Path,
    json: bool,
) -> Result<()> {
    let (model, fast) = load_head(dir, encoder, device)?;
    let cascade = cascade_of(&model, &fast)?;
    let examples = data::load(data_path)?;
    let started = Instant::now();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let vectors = model.features_cached(&texts)?;
    let seconds = started.elapsed().as_secs_f64();
    let scored = model.scored(&vectors, &examples)?;
    let metrics = IntentMetrics::compute(&scored, model.meta.threshold);
    // A novelty score runs to 1 + alpha, a probability to 1.
    let top = 1.0 + model.meta.novelty.as_ref().map_or(0.0, |n| n.alpha);
    let thresholds: Vec<f32> = (0..=19).map(|i| i as f32 * top / 20.0).collect();
    let tiers = match &cascade {
        Some(c) => {
            let tiered = c.classify_all(&texts, Some(&vectors))?;
            let fast = c.fast();
            let fast_metrics =
                IntentMetrics::compute(&Scored::from_model(fast, &examples)?, fast.meta.threshold);
            let report = cascade::report(c, &examples, &vectors)?;
            Some((cascade::metrics(&tiered, &examples), fast_metrics, report))
        }
        None => None,
    };
    if json {
        let mut out = serde_json::json!({
            "tier": "encoder",
            "encoder": model.encoder.id,
            "intent": metrics,
            "curve": curve(&scored, &thresholds),
            "seconds": seconds,
        });
        if let Some((cascade, fast, report)) = &tiers {
            out["cascade"] =
                serde_json::json!({"intent": cascade, "fast_intent": fast, "report": report});
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let line = |what: &str, m: &IntentMetrics| {
            println!(
                "{} examples, {what}: in-scope accuracy {:.2}%, oos recall {}, accuracy {:.2}%",
                m.examples,
                m.in_scope_accuracy * 100.0,
                m.oos_recall
                    .map_or("-".into(), |r| format!("{:.2}%", r * 100.0)),
                m.accuracy * 100.0,
            )
        };
        line(
            &format!(
                "encoder {} at threshold {:.3} ({seconds:.1}s)",
                model.encoder.id.name, metrics.threshold
            ),
            &metrics,
        );
        if let Some((cascade, fast, report)) = &tiers {
            line("fast model alone", fast);
            line(
                &format!("cascade ({:.1}% to the encoder)", report.escalated * 100.0),
                cascade,
            );
        }
    }
    Ok(())
}

/// K-fold cross-validation of a head: every text is embedded once; in each fold a head trained on
/// nine tenths of the training part chooses the temperature and nearest-example mix on the other
/// tenth, and the head measured is trained on the whole part with those
/// (with `lexical`, each on the sentence vectors plus word features fitted on that fold's
/// training part).
pub fn cross_validate(
    examples: &[Example],
    k: usize,
    seed: u64,
    encoder: &Path,
    lexical: bool,
    device: &str,
    json: bool,
) -> Result<()> {
    if k < 2 {
        bail!("--folds needs at least 2 folds, got {k}");
    }
    let encoder = load_encoder(encoder, device)?;
    let started = Instant::now();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let vectors = head::embed_cached(&encoder, &texts)?;
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
        // A tenth of the training part is held out as this fold's validation data (calibration
        // and the nearest-example mix), so the test part is never looked at.
        let (inner, held) = data::fold_split(&train, 10, 0, seed);
        let (all, mut all_v) = pick(&train);
        let (train, mut train_v) = pick(&inner);
        let (held, mut held_v) = pick(&held);
        let (test, mut test_v) = pick(&test);
        let words = if lexical {
            let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
            let words = Words::fit(&texts, head::LEXICAL_BUCKETS, head::LEXICAL_WEIGHT);
            for (part, vectors) in [
                (&all, &mut all_v),
                (&train, &mut train_v),
                (&held, &mut held_v),
                (&test, &mut test_v),
            ] {
                let texts: Vec<&str> = part.iter().map(|e| e.text.as_str()).collect();
                head::add_words(vectors, &words, &texts);
            }
            Some(words)
        } else {
            None
        };
        let chosen = head::train_on_vectors(
            encoder.clone(),
            words.clone(),
            &train,
            &train_v,
            Some((&held, &held_v)),
            &cfg,
        )?;
        // Then the head on the whole training part, with the temperature and mix chosen above.
        let mut model = head::train_on_vectors(encoder.clone(), words, &all, &all_v, None, &cfg)?;
        model.meta.temperature = chosen.meta.temperature;
        model.meta.knn = chosen.meta.knn.clone();
        let m = IntentMetrics::compute(&model.scored(&test_v, &test)?, 0.0);
        let lambda = model.meta.knn.as_ref().map_or(0.0, |k| k.lambda);
        eprintln!(
            "fold {}/{k}: accuracy {:.2}% (nearest-example mix {lambda})",
            fold + 1,
            m.accuracy * 100.0
        );
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
pub fn bench(
    encoder: &Path,
    device: &str,
    precision: &str,
    data_path: &Path,
    limit: usize,
) -> Result<()> {
    let started = Instant::now();
    let encoder = load_encoder_with(encoder, device, precision)?;
    let loaded = started.elapsed();
    let texts = bench_texts(data_path, limit)?;
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
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
        "{} sentences, encoder {} ({precision}, loaded in {:.2} s): batch 1 {:.0}/s (median {:.2} \
         ms each), batch {} {:.0}/s",
        texts.len(),
        encoder.id.name,
        loaded.as_secs_f64(),
        batch1,
        median,
        honeydesk::nlu::encoder::BATCH,
        batch32
    );
    Ok(())
}

/// Per-message latency, one message at a time as the server sees them: the fast model alone and
/// the cascade of the head in `dir`, on the texts of `data`. Prints the medians, their ratio and
/// the share the encoder answered.
pub fn latency(dir: &Path, device: &str, data_path: &Path, limit: usize) -> Result<()> {
    let (head, fast) = load_head(dir, None, device)?;
    let Some(cascade) = cascade_of(&head, &fast)? else {
        bail!(
            "{}: no cascade (train the head with --fast-model and --val)",
            dir.display()
        );
    };
    let texts = bench_texts(data_path, limit)?;
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Warm both tiers, so first allocations do not count.
    cascade.fast().classify(texts[0])?;
    head.classify(texts[0])?;
    let mut fast_times = Vec::with_capacity(texts.len());
    for t in &texts {
        let one = Instant::now();
        cascade.fast().classify(t)?;
        fast_times.push(one.elapsed().as_secs_f64());
    }
    let (mut cascade_times, mut escalated) = (Vec::with_capacity(texts.len()), 0usize);
    for t in &texts {
        let one = Instant::now();
        let r = cascade.classify(t)?;
        cascade_times.push(one.elapsed().as_secs_f64());
        escalated += usize::from(r.tier == Tier::Encoder);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (fast_mean, cascade_mean) = (mean(&fast_times), mean(&cascade_times));
    let (fast_median, cascade_median) = (median(fast_times), median(cascade_times));
    println!(
        "{} messages one at a time: fast model median {:.1} µs (mean {:.1} µs); cascade median \
         {:.1} µs (mean {:.1} µs), {:.2}× the fast model's median; {:.1}% went to the encoder",
        texts.len(),
        fast_median * 1e6,
        fast_mean * 1e6,
        cascade_median * 1e6,
        cascade_mean * 1e6,
        cascade_median / fast_median,
        escalated as f64 * 100.0 / texts.len() as f64
    );
    Ok(())
}

/// At most `limit` texts of a labelled file, for the benchmarks; an error when there are none.
fn bench_texts(data_path: &Path, limit: usize) -> Result<Vec<String>> {
    let texts: Vec<String> = data::load(data_path)?
        .into_iter()
        .take(limit)
        .map(|e| e.text)
        .collect();
    if texts.is_empty() {
        bail!("{}: no texts", data_path.display());
    }
    Ok(texts)
}
