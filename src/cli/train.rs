//! `honeydesk train`, `cv` and `datasets`: train the fast model, cross-validate it, and cut the
//! public data sets into files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use honeydesk::nlu::calibrate::{IntentMetrics, Scored};
use honeydesk::nlu::{self, data, datasets, train::EpochReport, IntentModel, TrainConfig};

#[derive(Clone, Copy, ValueEnum)]
pub enum DatasetName {
    Clinc150,
    Banking77,
    Smp2019,
}

/// The fast model in `dir`, or the cascade of the encoder head there.
pub fn load_intents(dir: &Path, device: &str) -> Result<nlu::cascade::Cascade> {
    nlu::cascade::load(dir, &nlu::device(device)?)
        .with_context(|| format!("loading the intent model in {}", dir.display()))
}

pub fn load_model(dir: &Path, device: &str) -> Result<IntentModel> {
    IntentModel::load(dir, &nlu::device(device)?)
        .with_context(|| format!("loading the intent model in {}", dir.display()))
}

pub fn print_epoch(r: &EpochReport) {
    let val = r.val_accuracy.map_or(String::new(), |a| {
        format!("  val accuracy {:.2}%", a * 100.0)
    });
    eprintln!(
        "epoch {:>2}/{}  loss {:.4}{val}  ({:.1}s)",
        r.epoch, r.epochs, r.loss, r.seconds
    );
}

pub fn train_to(data: &Path, val: Option<&Path>, out: &Path, cfg: &TrainConfig) -> Result<()> {
    let train = data::load(data)?;
    let val = val.map(data::load).transpose()?;
    eprintln!(
        "training on {} examples ({} labels){}",
        train.len(),
        train
            .iter()
            .map(|e| e.label())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        val.as_ref()
            .map_or(String::new(), |v| format!(", validating on {}", v.len()))
    );
    let report = nlu::train(&train, val.as_deref(), cfg, &mut print_epoch)?;
    report.model.save(out)?;
    let meta = &report.model.meta;
    eprintln!(
        "saved {} ({} features, temperature {:.3}, threshold {:.3}) in {:.1}s",
        out.display(),
        meta.features,
        meta.temperature,
        meta.threshold,
        meta.train_seconds
    );
    eprintln!("threshold: {}", meta.threshold_rule);
    if let Some(m) = &report.val {
        eprintln!("{}", serde_json::to_string_pretty(m)?);
    }
    Ok(())
}

pub fn cross_validate(
    examples: &[data::Example],
    k: usize,
    seed: u64,
    device: &str,
    json: bool,
) -> Result<()> {
    if k < 2 {
        bail!("--folds needs at least 2 folds, got {k}");
    }
    let cfg = TrainConfig {
        seed,
        device: nlu::device(device)?,
        ..TrainConfig::default()
    };
    let mut accs = Vec::new();
    let mut f1s = Vec::new();
    for fold in 0..k {
        let (train, test) = data::fold_split(examples, k, fold, seed);
        let report = nlu::train(&train, None, &cfg, &mut |_| {})?;
        let m = IntentMetrics::compute(&Scored::from_model(&report.model, &test)?, 0.0);
        eprintln!(
            "fold {}/{k}: accuracy {:.2}%  macro F1 {:.4}",
            fold + 1,
            m.accuracy * 100.0,
            m.macro_f1
        );
        accs.push(m.accuracy);
        f1s.push(m.macro_f1);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let std = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    if json {
        let out = serde_json::json!({"folds": k, "intent": {"accuracy": mean(&accs), "accuracy_std": std(&accs), "macro_f1": mean(&f1s), "macro_f1_std": std(&f1s), "per_fold_accuracy": accs}});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{k}-fold accuracy {:.2}% ± {:.2}  macro F1 {:.4} ± {:.4}",
            mean(&accs) * 100.0,
            std(&accs) * 100.0,
            mean(&f1s),
            std(&f1s)
        );
    }
    Ok(())
}

pub fn write_dataset(
    name: DatasetName,
    out: &Path,
    src: Option<PathBuf>,
    shots: Option<(usize, u64)>,
) -> Result<()> {
    let src = src.unwrap_or_else(datasets::shared_data_dir);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |file: &str, ex: &[data::Example]| -> Result<()> {
        let path = out.join(file);
        data::write_jsonl(&path, ex).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {} ({} examples)", path.display(), ex.len());
        Ok(())
    };
    if let Some((k, seed)) = shots {
        let all = match name {
            DatasetName::Clinc150 => {
                let d = datasets::clinc150(&src.join("clinc150/data_full.json"))?;
                d.train.into_iter().chain(d.val).chain(d.test).collect()
            }
            DatasetName::Banking77 => datasets::banking77(&src.join("banking77/train.csv"))?,
            DatasetName::Smp2019 => datasets::smp2019(&src.join("smp2019_ecdt_nlu/train.json"))?,
        };
        let split = datasets::few_shot(&all, k, seed);
        write("train.jsonl", &split.train)?;
        write("val.jsonl", &split.val)?;
        write("test.jsonl", &split.test)?;
        if !split.dropped.is_empty() {
            eprintln!(
                "left out {} labels with fewer than {} examples: {}",
                split.dropped.len(),
                2 * k,
                split.dropped.join(", ")
            );
        }
        return Ok(());
    }
    match name {
        DatasetName::Clinc150 => {
            let d = datasets::clinc150(&src.join("clinc150/data_full.json"))?;
            write("train.jsonl", &d.train)?;
            write("val.jsonl", &d.val)?;
            write("test.jsonl", &d.test)?;
        }
        DatasetName::Banking77 => write(
            "all.jsonl",
            &datasets::banking77(&src.join("banking77/train.csv"))?,
        )?,
        DatasetName::Smp2019 => write(
            "all.jsonl",
            &datasets::smp2019(&src.join("smp2019_ecdt_nlu/train.json"))?,
        )?,
    }
    Ok(())
}
