//! `honeydesk risk ...`: try the risk detectors on a message, and measure life-care.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;

use honeydesk::config::{BUNDLED_TRAIN, BUNDLED_VAL, E5_DIR};
use honeydesk::eval::risk as risk_eval;
use honeydesk::nlu::e5::WEIGHTS_FILE;
use honeydesk::nlu::TrainConfig;
use honeydesk::nlu::{data, datasets};
use honeydesk::risk::{model, RiskDetector};

#[derive(Subcommand)]
pub enum RiskCommand {
    /// Train the life-care classifier from risk/life_care.txt, risk/ordinary.txt and intents/.
    Train {
        #[arg(long, default_value = model::BUNDLED_MODEL)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Train the vector half on this sentence encoder instead (into --vectors-out).
        #[arg(long)]
        encoder: Option<PathBuf>,
        #[arg(long, default_value = model::BUNDLED_VECTORS)]
        vectors_out: PathBuf,
    },
    /// Run every detector on TEXT (earlier turns with --before) and print the hits.
    Check {
        /// Lexicon only: leave the learned classifier out.
        #[arg(long)]
        no_model: bool,
        /// Leave the vector half out even when the encoder is fetched.
        #[arg(long)]
        no_vectors: bool,
        /// An earlier shopper message, oldest first; repeat for more.
        #[arg(long)]
        before: Vec<String>,
        /// Check every line of this file instead (one JSON line each: the text, its hits, and the
        /// life-care model's probability and its vector half's, whether or not they fired).
        #[arg(long, conflicts_with = "text")]
        file: Option<PathBuf>,
        #[arg(required_unless_present = "file")]
        text: Vec<String>,
    },
    /// Life-care recall on SOS-1K high-risk posts and false alarms on ordinary queries (counts only).
    Eval {
        /// The SOS-1K binary split: `testdata` (reported) or `fold1`..`fold5` (development).
        #[arg(long, default_value = "testdata")]
        split: String,
        /// The shared data directory (default ../shared/data, or HONEYDESK_SHARED_DATA).
        #[arg(long)]
        src: Option<PathBuf>,
        /// Lexicon only: leave the learned classifier out.
        #[arg(long)]
        no_model: bool,
        /// Leave the vector half out even when the encoder is fetched.
        #[arg(long)]
        no_vectors: bool,
    },
}

/// The detectors as `serve` has them: the bundled life-care model, with its vector half when the
/// e5 encoder has been fetched.
fn detector(no_model: bool, no_vectors: bool) -> Result<RiskDetector> {
    let detector = RiskDetector::default();
    let dir = Path::new(model::BUNDLED_MODEL);
    if no_model || !dir.join("meta.json").exists() {
        return Ok(detector);
    }
    let e5 = Path::new(E5_DIR);
    let encoder = if no_vectors || !e5.join(WEIGHTS_FILE).is_file() {
        None
    } else {
        Some(crate::cli::encoder::load_encoder(e5, "cpu")?)
    };
    let m = model::LifeCareModel::load_bundled(Path::new("."), encoder)
        .with_context(|| format!("loading {}", dir.display()))?;
    Ok(detector.with_model(Arc::new(m)))
}

pub fn run(command: RiskCommand) -> Result<()> {
    match command {
        RiskCommand::Train {
            encoder: Some(dir),
            vectors_out,
            ..
        } => {
            let encoder = crate::cli::encoder::load_encoder(&dir, "cpu")?;
            let head = model::train_vectors(Path::new("."), encoder)?;
            head.save(&vectors_out)?;
            eprintln!("saved {}", vectors_out.display());
            Ok(())
        }
        RiskCommand::Train { out, seed, .. } => {
            let cfg = TrainConfig {
                seed,
                dim: model::DIM,
                ..TrainConfig::default()
            };
            let m = model::train(Path::new("."), &cfg)?;
            m.save(&out)?;
            eprintln!("saved {}", out.display());
            Ok(())
        }
        RiskCommand::Check {
            no_model,
            no_vectors,
            before,
            file,
            text,
        } => {
            let detector = detector(no_model, no_vectors)?;
            let Some(file) = file else {
                let hits = detector.detect(&text.join(" "), &before);
                println!("{}", serde_json::to_string_pretty(&hits)?);
                return Ok(());
            };
            for line in data::read_lines(&file)? {
                let hits = detector.detect(&line, &before);
                let (p, v) = match &detector.model {
                    Some(m) => (
                        Some(m.probabilities(&[line.as_str()])?[0]),
                        m.vector_probability(&line)?,
                    ),
                    None => (None, None),
                };
                println!(
                    "{}",
                    serde_json::json!({"text": line, "hits": hits, "model": p, "vectors": v})
                );
            }
            Ok(())
        }
        RiskCommand::Eval {
            split,
            src,
            no_model,
            no_vectors,
        } => {
            let detector = detector(no_model, no_vectors)?;
            let shared = src.unwrap_or_else(datasets::shared_data_dir);
            let mut bundled = data::load(Path::new(BUNDLED_TRAIN))?;
            bundled.extend(data::load(Path::new(BUNDLED_VAL))?);
            let report = risk_eval::life_care(&detector, &shared, &bundled, &split)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}
