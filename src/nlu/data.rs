//! Labelled intent data: one `{"text": "...", "intent": "..."}` object per line (JSONL), or CSV with
//! a `text,intent` header. `oos`, `null` or a missing intent mark an out-of-scope example.
//!
//! Loading is strict on purpose: a line that does not parse is an error that names the file and the
//! line, never a silently smaller training set.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The bundled intent data the bundled model is trained on, and its held-out validation set.
pub const BUNDLED_TRAIN: &str = "intents/train.jsonl";
pub const BUNDLED_VAL: &str = "intents/val.jsonl";

/// The label of an out-of-scope example, as written in data files and reported by the model.
pub const OOS: &str = "oos";

/// One labelled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    /// `None` for out of scope.
    pub intent: Option<String>,
}

impl Example {
    pub fn new(text: impl Into<String>, intent: Option<&str>) -> Self {
        let intent = intent.filter(|i| *i != OOS).map(str::to_string);
        Example {
            text: text.into(),
            intent,
        }
    }

    /// The label as written in files and metrics: the intent or `oos`.
    pub fn label(&self) -> &str {
        self.intent.as_deref().unwrap_or(OOS)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: no examples found (expected JSONL lines {{\"text\": ..., \"intent\": ...}} or CSV with a text,intent header)")]
    Empty { path: PathBuf },
}

pub type Result<T> = std::result::Result<T, DataError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    text: Option<String>,
    #[serde(default)]
    intent: Option<String>,
}

/// Read a one-message-per-line file (the life-care examples and measurement sets), skipping
/// blank lines and `#` comments.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

/// Load a labelled file, choosing the format by extension (`.csv` is CSV, anything else JSONL).
pub fn load(path: &Path) -> Result<Vec<Example>> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let examples = if is_csv {
        parse_csv(path, &bytes)?
    } else {
        parse_jsonl(path, &bytes)?
    };
    if examples.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(examples)
}

fn bad(path: &Path, line: usize, reason: impl Into<String>) -> DataError {
    DataError::BadLine {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Parse JSONL. Blank lines are allowed; everything else must be an object with a non-empty `text`.
pub fn parse_jsonl(path: &Path, bytes: &[u8]) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = std::str::from_utf8(raw)
            .map_err(|e| bad(path, line_no, format!("not valid UTF-8 ({e})")))?;
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        let parsed: JsonLine = serde_json::from_str(line).map_err(|e| {
            bad(
                path,
                line_no,
                format!("not a JSON object with text and intent: {e}"),
            )
        })?;
        out.push(checked(path, line_no, parsed.text, parsed.intent)?);
    }
    Ok(out)
}

fn checked(
    path: &Path,
    line: usize,
    text: Option<String>,
    intent: Option<String>,
) -> Result<Example> {
    let text = text.ok_or_else(|| bad(path, line, "missing \"text\""))?;
    if text.trim().is_empty() {
        return Err(bad(path, line, "\"text\" is empty"));
    }
    let intent = intent.map(|i| i.trim().to_string());
    if intent.as_deref() == Some("") {
        return Err(bad(
            path,
            line,
            "\"intent\" is empty (use \"oos\" or null for out of scope)",
        ));
    }
    Ok(Example::new(text, intent.as_deref()))
}

/// Parse CSV with a header naming at least `text` (and usually `intent`).
pub fn parse_csv(path: &Path, bytes: &[u8]) -> Result<Vec<Example>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| bad(path, 1, format!("unreadable CSV header: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
    };
    let text_col = col("text").ok_or_else(|| bad(path, 1, "CSV header has no \"text\" column"))?;
    let intent_col = col("intent");
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            bad(path, line, format!("malformed CSV row: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let text = record.get(text_col).map(str::to_string);
        let intent = intent_col
            .and_then(|c| record.get(c))
            .filter(|s| !s.trim().is_empty() && *s != "null")
            .map(str::to_string);
        out.push(checked(path, line, text, intent)?);
    }
    Ok(out)
}

/// Write examples as JSONL (the canonical format).
pub fn write_jsonl(path: &Path, examples: &[Example]) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in examples {
        let line = serde_json::json!({"text": e.text, "intent": e.label()});
        writeln!(w, "{line}")?;
    }
    w.flush()
}

/// Split into `k` folds by a seeded shuffle; returns (train, test) for fold `fold`.
pub fn fold_split(
    examples: &[Example],
    k: usize,
    fold: usize,
    seed: u64,
) -> (Vec<Example>, Vec<Example>) {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    crate::nlu::rng::SplitMix64::new(seed).shuffle(&mut order);
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if pos % k == fold {
            test.push(examples[i].clone());
        } else {
            train.push(examples[i].clone());
        }
    }
    (train, test)
}
