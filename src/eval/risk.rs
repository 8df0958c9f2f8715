//! Measuring the life-care detector: recall on real high-risk posts, false alarms on ordinary
//! shopping and service queries.
//!
//! The SOS-1K posts are real people's words. They are read here to count, and nothing about an
//! individual post (text, index, which rule fired) is ever printed or stored: reports carry counts.

use std::path::Path;

use serde::Serialize;

use crate::nlu::data::{self, Example};
use crate::nlu::datasets;
use crate::risk::RiskDetector;

/// How often the detector fired on a set of messages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub fired: usize,
    pub total: usize,
    pub rate: f64,
}

impl Rate {
    pub fn of<'a>(detector: &RiskDetector, texts: impl IntoIterator<Item = &'a str>) -> Rate {
        let (mut fired, mut total) = (0, 0);
        for t in texts {
            total += 1;
            fired += usize::from(detector.is_life_care(t));
        }
        Rate {
            fired,
            total,
            rate: fired as f64 / total.max(1) as f64,
        }
    }
}

/// SOS-1K binary TSV (`comment`, `twoClass`): (post, high risk?). The header row is skipped.
pub fn sos1k(path: &Path) -> Result<Vec<(String, bool)>, data::DataError> {
    let bytes = std::fs::read(path).map_err(|e| data::DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .quoting(false)
        .flexible(true)
        .from_reader(&bytes[..]);
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| data::DataError::BadLine {
            path: path.to_path_buf(),
            line: i + 2,
            reason: e.to_string(),
        })?;
        let (Some(text), Some(label)) = (record.get(0), record.get(record.len() - 1)) else {
            continue;
        };
        out.push((text.to_string(), label.trim() == "1"));
    }
    Ok(out)
}

/// The life-care measurement the README reports.
#[derive(Debug, Clone, Serialize)]
pub struct LifeCareReport {
    /// SOS-1K high-risk posts (label 1) that fire life-care: the recall.
    pub sos1k_high_risk: Option<Rate>,
    /// SOS-1K low-risk posts (label 0) that fire. These are still distress posts from a suicide
    /// forum, so firing on them is expected and is not a false alarm in a shop.
    pub sos1k_low_risk: Option<Rate>,
    /// CLINC150 in-scope test queries that fire: false alarms.
    pub clinc150_in_scope_test: Option<Rate>,
    /// BANKING77 training queries that fire: false alarms.
    pub banking77_train: Option<Rate>,
    /// SMP2019-ECDT queries (Chinese, to a general assistant) that fire: false alarms.
    pub smp2019: Option<Rate>,
    /// The bundled intent examples (all intents, oos included) that fire: false alarms.
    pub bundled_intents: Rate,
}

/// Run the measurement. `split` names the SOS-1K file: `testdata` for the report, `fold1`..`fold5`
/// for development.
pub fn life_care(
    detector: &RiskDetector,
    shared: &Path,
    bundled: &[Example],
    split: &str,
) -> Result<LifeCareReport, data::DataError> {
    let sos = shared.join(format!("sos1k_zh_suicide_risk/binary/{split}_twoClass.tsv"));
    let (high, low) = if sos.exists() {
        let posts = sos1k(&sos)?;
        let high = Rate::of(detector, posts.iter().filter(|p| p.1).map(|p| p.0.as_str()));
        let low = Rate::of(
            detector,
            posts.iter().filter(|p| !p.1).map(|p| p.0.as_str()),
        );
        (Some(high), Some(low))
    } else {
        (None, None)
    };
    let clinc_path = shared.join("clinc150/data_full.json");
    let clinc = if clinc_path.exists() {
        let test = datasets::clinc150(&clinc_path)?.test;
        Some(Rate::of(
            detector,
            test.iter()
                .filter(|e| e.intent.is_some())
                .map(|e| e.text.as_str()),
        ))
    } else {
        None
    };
    let banking_path = shared.join("banking77/train.csv");
    let banking = if banking_path.exists() {
        let train = datasets::banking77(&banking_path)?;
        Some(Rate::of(detector, train.iter().map(|e| e.text.as_str())))
    } else {
        None
    };
    let smp_path = shared.join("smp2019_ecdt_nlu/train.json");
    let smp = if smp_path.exists() {
        let all = datasets::smp2019(&smp_path)?;
        Some(Rate::of(detector, all.iter().map(|e| e.text.as_str())))
    } else {
        None
    };
    Ok(LifeCareReport {
        smp2019: smp,
        sos1k_high_risk: high,
        sos1k_low_risk: low,
        clinc150_in_scope_test: clinc,
        banking77_train: banking,
        bundled_intents: Rate::of(detector, bundled.iter().map(|e| e.text.as_str())),
    })
}
