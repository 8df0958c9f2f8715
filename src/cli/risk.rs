//! `honeydesk risk ...`: try the risk detectors on a message, and measure life-care.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;

use honeydesk::config::{BUNDLED_TRAIN, BUNDLED_VAL};
use honeydesk::eval::risk as risk_eval;
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
    },
    /// Run every detector on TEXT (earlier turns with --before) and print the hits.
    Check {
        /// Lexicon only: leave the learned classifier out.
        #[arg(long)]
        no_model: bool,
        /// An earlier shopper message, oldest first; repeat for more.
        #[arg(long)]
        before: Vec<String>,
        #[arg(required = true)]
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
    },
}

fn detector(no_model: bool) -> Result<RiskDetector> {
    let detector = RiskDetector::default();
    let dir = Path::new(model::BUNDLED_MODEL);
    if no_model || !dir.join("meta.json").exists() {
        return Ok(detector);
    }
    let m =
        model::LifeCareModel::load(dir).with_context(|| format!("loading {}", dir.display()))?;
    Ok(detector.with_model(Arc::new(m)))
}

pub fn run(command: RiskCommand) -> Result<()> {
    match command {
        RiskCommand::Train { out, seed } => {
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
            before,
            text,
        } => {
            let hits = detector(no_model)?.detect(&text.join(" "), &before);
            println!("{}", serde_json::to_string_pretty(&hits)?);
            Ok(())
        }
        RiskCommand::Eval {
            split,
            src,
            no_model,
        } => {
            let detector = detector(no_model)?;
            let shared = src.unwrap_or_else(datasets::shared_data_dir);
            let mut bundled = data::load(Path::new(BUNDLED_TRAIN))?;
            bundled.extend(data::load(Path::new(BUNDLED_VAL))?);
            let report = risk_eval::life_care(&detector, &shared, &bundled, &split)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}
