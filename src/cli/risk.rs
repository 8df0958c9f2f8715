//! `honeydesk risk ...`: try the risk detectors on a message, and measure life-care.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;

use honeydesk::config::{BUNDLED_TRAIN, BUNDLED_VAL};
use honeydesk::eval::risk as risk_eval;
use honeydesk::nlu::{data, datasets};
use honeydesk::risk::RiskDetector;

#[derive(Subcommand)]
pub enum RiskCommand {
    /// Run every detector on TEXT (earlier turns with --before) and print the hits.
    Check {
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
    },
}

pub fn run(command: RiskCommand) -> Result<()> {
    let detector = RiskDetector::default();
    match command {
        RiskCommand::Check { before, text } => {
            let hits = detector.detect(&text.join(" "), &before);
            println!("{}", serde_json::to_string_pretty(&hits)?);
            Ok(())
        }
        RiskCommand::Eval { split, src } => {
            let shared = src.unwrap_or_else(datasets::shared_data_dir);
            let mut bundled = data::load(Path::new(BUNDLED_TRAIN))?;
            bundled.extend(data::load(Path::new(BUNDLED_VAL))?);
            let report = risk_eval::life_care(&detector, &shared, &bundled, &split)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}
