//! Readers for the public data sets in `../shared/data`, turned into [`Example`]s.
//!
//! These sets are never copied into the project; tests and evals read them where they lie and skip
//! when they are absent. `honeydesk datasets` writes them out as JSONL for the other commands.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::data::{DataError, Example, Result};

/// Where the shared data sets live relative to the checkout, overridable with `HONEYDESK_SHARED_DATA`.
pub fn shared_data_dir() -> PathBuf {
    std::env::var_os("HONEYDESK_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn json_err(path: &Path, e: serde_json::Error) -> DataError {
    DataError::BadLine {
        path: path.to_path_buf(),
        line: e.line(),
        reason: e.to_string(),
    }
}

/// CLINC150 splits, `oos` items included with the in-scope ones of the same split.
pub struct Clinc150 {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub test: Vec<Example>,
}

/// Read `clinc150/data_full.json` (or another variant): `train`+`oos_train`, `val`+`oos_val`,
/// `test`+`oos_test`.
pub fn clinc150(path: &Path) -> Result<Clinc150> {
    #[derive(Deserialize)]
    struct Raw {
        train: Vec<(String, String)>,
        val: Vec<(String, String)>,
        test: Vec<(String, String)>,
        oos_train: Vec<(String, String)>,
        oos_val: Vec<(String, String)>,
        oos_test: Vec<(String, String)>,
    }
    let raw: Raw = serde_json::from_slice(&read(path)?).map_err(|e| json_err(path, e))?;
    let join = |a: Vec<(String, String)>, b: Vec<(String, String)>| {
        a.into_iter()
            .chain(b)
            .map(|(t, i)| Example::new(t, Some(&i)))
            .collect::<Vec<_>>()
    };
    Ok(Clinc150 {
        train: join(raw.train, raw.oos_train),
        val: join(raw.val, raw.oos_val),
        test: join(raw.test, raw.oos_test),
    })
}

/// Read BANKING77's `train.csv` (`text,category`).
pub fn banking77(path: &Path) -> Result<Vec<Example>> {
    let bytes = read(path)?;
    let mut reader = csv::Reader::from_reader(&bytes[..]);
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| DataError::BadLine {
            path: path.to_path_buf(),
            line: i + 2,
            reason: e.to_string(),
        })?;
        out.push(Example::new(&rec[0], Some(&rec[1])));
    }
    Ok(out)
}

/// Read SMP2019-ECDT `train.json`; the label is `domain.intent`.
pub fn smp2019(path: &Path) -> Result<Vec<Example>> {
    #[derive(Deserialize)]
    struct Raw {
        text: String,
        domain: String,
        intent: Option<String>,
    }
    // The file was written by Python's json module, which emits a bare `NaN` for missing intents
    // (e.g. the joke domain); that is not JSON, so read it as null.
    let text = String::from_utf8_lossy(&read(path)?).replace(": NaN", ": null");
    let raw: Vec<Raw> = serde_json::from_str(&text).map_err(|e| json_err(path, e))?;
    Ok(raw
        .into_iter()
        .map(|r| {
            let label = format!("{}.{}", r.domain, r.intent.unwrap_or_else(|| "none".into()));
            Example::new(r.text, Some(&label))
        })
        .collect())
}

/// A few-shot split: `shots` training examples per label, up to as many validation examples,
/// and the rest to test on.
#[derive(Debug, Clone, PartialEq)]
pub struct FewShot {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub test: Vec<Example>,
    /// Labels left out for having fewer than `2 × shots` examples.
    pub dropped: Vec<String>,
}

/// Split `examples` for a `shots`-shot measurement, seeded. Each label with at least
/// `2 × shots` examples gives `shots` to training, `min(shots, (n − shots) / 2)` to validation
/// and the rest (at least half of what is left) to test; labels with fewer are dropped, since a
/// label seen fewer times than the shots cannot be trained on as the others are.
pub fn few_shot(examples: &[Example], shots: usize, seed: u64) -> FewShot {
    let mut by_label: std::collections::BTreeMap<&str, Vec<&Example>> = Default::default();
    for e in examples {
        by_label.entry(e.label()).or_default().push(e);
    }
    let mut rng = crate::nlu::rng::SplitMix64::new(seed);
    let mut out = FewShot {
        train: Vec::new(),
        val: Vec::new(),
        test: Vec::new(),
        dropped: Vec::new(),
    };
    for (label, mut items) in by_label {
        if shots == 0 || items.len() < 2 * shots {
            out.dropped.push(label.to_string());
            continue;
        }
        rng.shuffle(&mut items);
        let val = shots.min((items.len() - shots) / 2);
        out.train
            .extend(items[..shots].iter().map(|e| (*e).clone()));
        out.val
            .extend(items[shots..shots + val].iter().map(|e| (*e).clone()));
        out.test
            .extend(items[shots + val..].iter().map(|e| (*e).clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_shot_splits_are_disjoint_seeded_and_drop_rare_labels() {
        let mut examples = Vec::new();
        for i in 0..23 {
            examples.push(Example::new(format!("a{i}"), Some("a")));
        }
        for i in 0..7 {
            examples.push(Example::new(format!("b{i}"), Some("b")));
        }
        let s = few_shot(&examples, 5, 1);
        assert_eq!(s.dropped, ["b"]);
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (5, 5, 13));
        let mut all: Vec<&str> = s
            .train
            .iter()
            .chain(&s.val)
            .chain(&s.test)
            .map(|e| e.text.as_str())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 23, "every example once");
        assert_eq!(
            few_shot(&examples, 5, 1),
            s,
            "the same seed, the same split"
        );
        assert_ne!(few_shot(&examples, 5, 2).train, s.train);
    }
}
