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

/// The messages the life-care detector is measured on, read once so the report and the
/// development probe (`examples/risk_probe.rs`) count over the same sets. A set whose file is
/// absent from the shared data directory is `None`.
#[derive(Debug, Clone, Default)]
pub struct MeasuredSets {
    /// SOS-1K posts of one split, (post, high risk?).
    pub sos1k: Option<Vec<(String, bool)>>,
    /// CLINC150 in-scope test queries.
    pub clinc150_in_scope_test: Option<Vec<String>>,
    /// BANKING77 training queries.
    pub banking77_train: Option<Vec<String>>,
    /// SMP2019-ECDT queries (Chinese, to a general assistant).
    pub smp2019: Option<Vec<String>>,
    /// The bundled intent examples.
    pub bundled_intents: Vec<String>,
}

impl MeasuredSets {
    /// Read the sets under `shared`; `splits` name the SOS-1K files (`testdata`, `fold1`..`fold5`)
    /// whose posts are pooled.
    pub fn load(
        shared: &Path,
        bundled: &[Example],
        splits: &[&str],
    ) -> Result<MeasuredSets, data::DataError> {
        let mut sos: Option<Vec<(String, bool)>> = None;
        for split in splits {
            let path = shared.join(format!("sos1k_zh_suicide_risk/binary/{split}_twoClass.tsv"));
            if path.exists() {
                sos.get_or_insert_with(Vec::new).extend(sos1k(&path)?);
            }
        }
        let clinc = shared.join("clinc150/data_full.json");
        let banking = shared.join("banking77/train.csv");
        let smp = shared.join("smp2019_ecdt_nlu/train.json");
        let texts = |v: Vec<Example>| v.into_iter().map(|e| e.text).collect::<Vec<_>>();
        Ok(MeasuredSets {
            sos1k: sos,
            clinc150_in_scope_test: if clinc.exists() {
                let test = datasets::clinc150(&clinc)?.test;
                Some(texts(
                    test.into_iter().filter(|e| e.intent.is_some()).collect(),
                ))
            } else {
                None
            },
            banking77_train: if banking.exists() {
                Some(texts(datasets::banking77(&banking)?))
            } else {
                None
            },
            smp2019: if smp.exists() {
                Some(texts(datasets::smp2019(&smp)?))
            } else {
                None
            },
            bundled_intents: bundled.iter().map(|e| e.text.clone()).collect(),
        })
    }

    /// The SOS-1K posts of one class.
    pub fn sos1k_posts(&self, high: bool) -> Option<Vec<&str>> {
        self.sos1k.as_ref().map(|posts| {
            posts
                .iter()
                .filter(|p| p.1 == high)
                .map(|p| p.0.as_str())
                .collect()
        })
    }

    /// The ordinary sets by name, the absent ones left out: where a life-care hit is a false
    /// alarm.
    pub fn ordinary(&self) -> Vec<(&'static str, &[String])> {
        [
            (
                "clinc150_in_scope_test",
                self.clinc150_in_scope_test.as_deref(),
            ),
            ("banking77_train", self.banking77_train.as_deref()),
            ("smp2019", self.smp2019.as_deref()),
            ("bundled_intents", Some(self.bundled_intents.as_slice())),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.map(|s| (name, s)))
        .collect()
    }
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
    /// The sets written for honeydesk to measure with (`eval/life_care/*.txt`, never trained
    /// on), by file name: `crisis_en` and `crisis_zh` (recall), `ordinary_en` and
    /// `ordinary_zh` (false alarms on shop talk that looks like risk).
    pub written: std::collections::BTreeMap<String, Rate>,
}

/// Folder of the written measurement sets, from the crate root.
pub const WRITTEN_SETS: &str = "eval/life_care";

/// Every written set in `dir` (`*.txt`), by file stem.
pub fn written_sets(
    dir: &Path,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, data::DataError> {
    let mut out = std::collections::BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| data::DataError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "txt") {
            if let Some(stem) = path.file_stem() {
                out.insert(
                    stem.to_string_lossy().into_owned(),
                    data::read_lines(&path)?,
                );
            }
        }
    }
    Ok(out)
}

/// Run the measurement. `split` names the SOS-1K file: `testdata` for the report, `fold1`..`fold5`
/// for development.
pub fn life_care(
    detector: &RiskDetector,
    shared: &Path,
    bundled: &[Example],
    split: &str,
) -> Result<LifeCareReport, data::DataError> {
    let sets = MeasuredSets::load(shared, bundled, &[split])?;
    let rate =
        |set: Option<&[String]>| set.map(|s| Rate::of(detector, s.iter().map(String::as_str)));
    Ok(LifeCareReport {
        sos1k_high_risk: sets.sos1k_posts(true).map(|p| Rate::of(detector, p)),
        sos1k_low_risk: sets.sos1k_posts(false).map(|p| Rate::of(detector, p)),
        clinc150_in_scope_test: rate(sets.clinc150_in_scope_test.as_deref()),
        banking77_train: rate(sets.banking77_train.as_deref()),
        smp2019: rate(sets.smp2019.as_deref()),
        bundled_intents: Rate::of(detector, sets.bundled_intents.iter().map(String::as_str)),
        written: written_sets(Path::new(WRITTEN_SETS))?
            .into_iter()
            .map(|(name, set)| (name, Rate::of(detector, set.iter().map(String::as_str))))
            .collect(),
    })
}
