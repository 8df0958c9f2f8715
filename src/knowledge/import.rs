//! Reading and writing FAQ files in the formats merchants keep: CSV/TSV (UTF-8, GBK or UTF-16,
//! detected), Excel `.xlsx`, JSON and JSONL.
//!
//! Every format is first turned into [`RawRow`]s carrying their location in the file, and one
//! function ([`build_entries`]) validates them all. That is what makes import all-or-nothing with
//! the same rules everywhere: it returns either every entry or every bad row, never a mix.

use std::collections::HashMap;
use std::fmt;
use std::io::Cursor;
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde_json::Value;

use super::entry::*;
use super::KnowledgeError;

/// Where a bad row is. Lines for text formats, rows for spreadsheets, entries for JSON arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line in a CSV, TSV or JSONL file (the header is line 1).
    Line(usize),
    /// 1-based spreadsheet row, as Excel numbers it.
    Row(usize),
    /// 1-based position in a JSON array.
    Entry(usize),
    /// The file as a whole (empty, unreadable, wrong header).
    File,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Row(n) => write!(f, "row {n}"),
            Location::Entry(n) => write!(f, "entry {n}"),
            Location::File => write!(f, "file"),
        }
    }
}

/// One bad row and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub at: Location,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

/// File formats the importer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Tsv,
    Xlsx,
    Json,
    Jsonl,
}

impl Format {
    /// The format a file name implies.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => Format::Csv,
            "tsv" | "tab" | "txt" => Format::Tsv,
            "xlsx" | "xlsm" => Format::Xlsx,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::Jsonl,
            _ => return None,
        })
    }
}

/// The columns a header may name. `id`, `question` and `answer` are required; `buttons` and `link`
/// carry the optional parts of an answer.
pub const COLUMNS: &[&str] = &[
    "id",
    "question",
    "similar",
    "answer",
    "buttons",
    "link",
    "category",
    "tags",
    "valid_from",
    "valid_to",
    "sku",
    "notify_human",
    "enabled",
];
const REQUIRED: &[&str] = &["id", "question", "answer"];

/// Largest file the importer reads; larger is almost surely the wrong file.
pub const MAX_FILE_BYTES: usize = 64 << 20;

/// A row as read, before validation. List fields are already split.
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    pub at: Option<Location>,
    pub fields: HashMap<&'static str, String>,
    pub similar: Vec<String>,
    pub tags: Vec<String>,
    pub buttons: Vec<String>,
}

impl RawRow {
    fn get(&self, column: &str) -> &str {
        self.fields.get(column).map(|s| s.trim()).unwrap_or("")
    }
}

/// Parse a file into entries, detecting the format from its extension unless `format` is given.
pub fn read_file(path: &Path, format: Option<Format>) -> Result<Vec<FaqEntry>, KnowledgeError> {
    let format = format
        .or_else(|| Format::from_path(path))
        .ok_or_else(|| KnowledgeError::UnknownFormat(path.display().to_string()))?;
    let bytes = std::fs::read(path).map_err(|source| KnowledgeError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes, format).map_err(|errors| KnowledgeError::Import {
        file: path.display().to_string(),
        errors,
    })
}

/// Parse file contents into entries, or every problem found.
pub fn parse(bytes: &[u8], format: Format) -> Result<Vec<FaqEntry>, Vec<RowError>> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(vec![file_error(format!(
            "the file is {} bytes, the limit is {MAX_FILE_BYTES}",
            bytes.len()
        ))]);
    }
    let rows = match format {
        Format::Csv | Format::Tsv => {
            let text = decode(bytes).map_err(|e| vec![e])?;
            let delimiter = match format {
                Format::Tsv => b'\t',
                _ => sniff_delimiter(&text),
            };
            read_delimited(&text, delimiter)?
        }
        Format::Xlsx => read_xlsx(bytes)?,
        Format::Json => read_json(&decode(bytes).map_err(|e| vec![e])?)?,
        Format::Jsonl => read_jsonl(&decode(bytes).map_err(|e| vec![e])?)?,
    };
    build_entries(rows)
}

fn file_error(reason: String) -> RowError {
    RowError {
        at: Location::File,
        reason,
    }
}

/// Decode text: a BOM decides; otherwise UTF-8 if it is valid, else GBK (GB18030, its superset).
///
/// A file that is valid UTF-8 up to a bad byte, with non-ASCII text before it, is a damaged UTF-8
/// file, not a GBK one: decoding it as GBK would succeed and import mojibake, so it is refused
/// with the line of the bad byte.
pub fn decode(bytes: &[u8]) -> Result<String, RowError> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding
            .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
            .map(|s| s.into_owned())
            .ok_or_else(|| {
                file_error(format!("unreadable encoding: invalid {}", encoding.name()))
            });
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            if !good.is_ascii() {
                return Err(RowError {
                    at: Location::Line(line),
                    reason: "unreadable encoding: invalid UTF-8 in a UTF-8 file".into(),
                });
            }
            encoding_rs::GB18030
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|s| s.into_owned())
                .ok_or_else(|| RowError {
                    at: Location::Line(line),
                    reason: "unreadable encoding: neither UTF-8 nor GBK".into(),
                })
        }
    }
}

fn sniff_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    if header.contains('\t') && !header.contains(',') {
        b'\t'
    } else {
        b','
    }
}

/// Map header cells to known columns; unknown or missing columns are errors, since a misspelt
/// `anwser` column would otherwise import every entry without its answer.
fn header_columns(
    header: &[String],
    at: Location,
) -> Result<Vec<Option<&'static str>>, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut columns = Vec::new();
    for (i, cell) in header.iter().enumerate() {
        let name = cell
            .trim()
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase();
        if name.is_empty() {
            columns.push(None);
            continue;
        }
        match COLUMNS.iter().find(|c| **c == name) {
            Some(c) if columns.contains(&Some(*c)) => errors.push(RowError {
                at,
                reason: format!("column '{c}' appears twice"),
            }),
            Some(c) => columns.push(Some(*c)),
            None => errors.push(RowError {
                at,
                reason: format!(
                    "unknown column '{}' (column {}); known columns: {}",
                    cell.trim(),
                    i + 1,
                    COLUMNS.join(", ")
                ),
            }),
        }
    }
    for required in REQUIRED {
        if !columns.contains(&Some(*required)) {
            errors.push(RowError {
                at,
                reason: format!("missing column '{required}'"),
            });
        }
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(errors)
    }
}

/// Split a list cell: `|` or `||` between items, blanks dropped.
fn split_list(cell: &str) -> Vec<String> {
    cell.split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Tags also accept commas, full-width or not, as merchants type them.
fn split_tags(cell: &str) -> Vec<String> {
    cell.split(['|', ',', '，', '、'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn row_from_cells(columns: &[Option<&'static str>], cells: &[String], at: Location) -> RawRow {
    let mut row = RawRow {
        at: Some(at),
        ..RawRow::default()
    };
    for (column, cell) in columns.iter().zip(cells) {
        let Some(column) = column else { continue };
        match *column {
            "similar" => row.similar = split_list(cell),
            "buttons" => row.buttons = split_list(cell),
            "tags" => row.tags = split_tags(cell),
            _ => {
                row.fields.insert(column, cell.clone());
            }
        }
    }
    row
}

fn read_delimited(text: &str, delimiter: u8) -> Result<Vec<RawRow>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h.iter().map(String::from).collect::<Vec<_>>(),
        Some(Err(e)) => return Err(vec![csv_error(&e)]),
        None => return Err(vec![file_error("the file is empty".into())]),
    };
    let columns = header_columns(&header, Location::Line(1))?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in records {
        match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line() as usize);
                let cells: Vec<String> = record.iter().map(String::from).collect();
                if cells.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                if cells.len() > columns.len()
                    && cells[columns.len()..].iter().any(|c| !c.trim().is_empty())
                {
                    errors.push(RowError {
                        at: Location::Line(line),
                        reason: format!(
                            "{} cells but the header has {} columns (an unquoted separator in a cell?)",
                            cells.len(),
                            columns.len()
                        ),
                    });
                    continue;
                }
                rows.push(row_from_cells(&columns, &cells, Location::Line(line)));
            }
            Err(e) => errors.push(csv_error(&e)),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn csv_error(e: &csv::Error) -> RowError {
    let at = e
        .position()
        .map_or(Location::File, |p| Location::Line(p.line() as usize));
    RowError {
        at,
        reason: format!("unreadable CSV: {e}"),
    }
}

fn read_xlsx(bytes: &[u8]) -> Result<Vec<RawRow>, Vec<RowError>> {
    use calamine::{Data, DataType, Reader, Xlsx};
    let mut book = Xlsx::new(Cursor::new(bytes))
        .map_err(|e| vec![file_error(format!("unreadable xlsx: {e}"))])?;
    let range = match book.worksheet_range_at(0) {
        Some(Ok(range)) => range,
        Some(Err(e)) => return Err(vec![file_error(format!("unreadable xlsx sheet: {e}"))]),
        None => return Err(vec![file_error("the workbook has no sheets".into())]),
    };
    let first_row = range.start().map_or(0, |(r, _)| r as usize);
    let leading_blank = range.start().map_or(0, |(_, c)| c as usize);
    let cell_text = |d: &Data| -> String {
        match d {
            Data::Empty | Data::Error(_) => String::new(),
            Data::String(s) => s.clone(),
            Data::Int(i) => i.to_string(),
            Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            Data::Float(f) => f.to_string(),
            Data::Bool(b) => b.to_string(),
            Data::DateTime(_) => d
                .as_datetime()
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        }
    };
    let mut rows_iter = range.rows().enumerate();
    let Some((_, header)) = rows_iter.next() else {
        return Err(vec![file_error("the sheet is empty".into())]);
    };
    let mut header: Vec<String> = header.iter().map(cell_text).collect();
    // A sheet starting at column C reads as if A and B were blank.
    header.splice(0..0, std::iter::repeat_n(String::new(), leading_blank));
    let columns = header_columns(&header, Location::Row(first_row + 1))?;
    let mut rows = Vec::new();
    for (i, cells) in rows_iter {
        let mut cells: Vec<String> = cells.iter().map(cell_text).collect();
        cells.splice(0..0, std::iter::repeat_n(String::new(), leading_blank));
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        rows.push(row_from_cells(
            &columns,
            &cells,
            Location::Row(first_row + i + 1),
        ));
    }
    Ok(rows)
}

fn read_json(text: &str) -> Result<Vec<RawRow>, Vec<RowError>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![RowError {
            at: Location::Line(e.line()),
            reason: format!("unreadable JSON: {e}"),
        }]
    })?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("entries") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(vec![file_error(
                    "expected an array of entries or an object with an \"entries\" array".into(),
                )])
            }
        },
        _ => return Err(vec![file_error("expected an array of entries".into())]),
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match json_row(item, Location::Entry(i + 1)) {
            Ok(row) => rows.push(row),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn read_jsonl(text: &str) -> Result<Vec<RawRow>, Vec<RowError>> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = Location::Line(i + 1);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(item) => match json_row(&item, at) {
                Ok(row) => rows.push(row),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(RowError {
                at,
                reason: format!("unreadable JSON: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// One JSON object as a row. Lists may be arrays or `|`-separated strings; the answer may be a
/// string or `{"text", "buttons", "link"}`; booleans may be JSON booleans or strings.
fn json_row(item: &Value, at: Location) -> Result<RawRow, RowError> {
    let bad = |reason: String| RowError { at, reason };
    let Value::Object(map) = item else {
        return Err(bad("expected an object".into()));
    };
    let mut row = RawRow {
        at: Some(at),
        ..RawRow::default()
    };
    let scalar = |key: &str, v: &Value| -> Result<String, RowError> {
        match v {
            Value::Null => Ok(String::new()),
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(bad(format!("'{key}' must be a string"))),
        }
    };
    let list =
        |key: &str, v: &Value, split: fn(&str) -> Vec<String>| -> Result<Vec<String>, RowError> {
            match v {
                Value::Null => Ok(Vec::new()),
                Value::String(s) => Ok(split(s)),
                Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s.trim().to_string()),
                        _ => Err(bad(format!("'{key}' must be a list of strings"))),
                    })
                    .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
                    .collect(),
                _ => Err(bad(format!("'{key}' must be a list of strings"))),
            }
        };
    for (key, v) in map {
        let Some(column) = COLUMNS.iter().find(|c| **c == key.as_str()) else {
            return Err(bad(format!(
                "unknown key '{key}'; known keys: {}",
                COLUMNS.join(", ")
            )));
        };
        match *column {
            "similar" => row.similar = list(column, v, split_list)?,
            "tags" => row.tags = list(column, v, split_tags)?,
            "buttons" => row.buttons = list(column, v, split_list)?,
            "answer" => match v {
                Value::Object(answer) => {
                    for key in answer.keys() {
                        if !["text", "buttons", "link"].contains(&key.as_str()) {
                            return Err(bad(format!("unknown answer key '{key}'")));
                        }
                    }
                    let null = Value::Null;
                    row.fields.insert(
                        "answer",
                        scalar("answer.text", answer.get("text").unwrap_or(&null))?,
                    );
                    row.fields.insert(
                        "link",
                        scalar("answer.link", answer.get("link").unwrap_or(&null))?,
                    );
                    row.buttons = list(
                        "answer.buttons",
                        answer.get("buttons").unwrap_or(&null),
                        split_list,
                    )?;
                }
                _ => {
                    row.fields.insert("answer", scalar(column, v)?);
                }
            },
            _ => {
                row.fields.insert(column, scalar(column, v)?);
            }
        }
    }
    Ok(row)
}

/// The offset naive dates and times are read in: China Standard Time, the demo shop's. A CSV cell
/// `2026-11-12` as `valid_to` means the end of that day there.
pub const NAIVE_OFFSET_SECONDS: i32 = crate::domain::SHOP_OFFSET_SECONDS;

/// Parse a validity bound. `end` makes a bare date mean the last second of that day.
pub fn parse_time(s: &str, end: bool) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    let tz = FixedOffset::east_opt(NAIVE_OFFSET_SECONDS).expect("valid offset");
    let s = s.replace('/', "-").replace('T', " ");
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&s, fmt) {
            return tz.from_local_datetime(&t).single();
        }
    }
    let date = NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok()?;
    let time = if end {
        date.and_hms_opt(23, 59, 59)?
    } else {
        date.and_hms_opt(0, 0, 0)?
    };
    tz.from_local_datetime(&time).single()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "是" | "对" => Some(true),
        "false" | "no" | "n" | "0" | "否" | "不" => Some(false),
        _ => None,
    }
}

/// Validate rows and assemble entries.
///
/// A later row with an id seen before is a *continuation*: its question and similar questions are
/// added to the first row's similar questions, which is how spreadsheets list paraphrases one per
/// row. It may repeat the first row's other fields or leave them blank; anything else (a different
/// answer, say) is a duplicate id.
pub fn build_entries(rows: Vec<RawRow>) -> Result<Vec<FaqEntry>, Vec<RowError>> {
    let mut entries: Vec<FaqEntry> = Vec::new();
    let mut first_at: HashMap<String, (usize, Location)> = HashMap::new();
    let mut errors = Vec::new();
    if rows.is_empty() {
        return Err(vec![file_error("no entries".into())]);
    }
    for row in rows {
        let at = row.at.unwrap_or(Location::File);
        let mut bad = |reason: String| errors.push(RowError { at, reason });
        let id = row.get("id");
        if id.is_empty() {
            bad("missing id".into());
            continue;
        }
        if id.chars().count() > MAX_ID_CHARS {
            bad(format!(
                "id is {} characters, the limit is {MAX_ID_CHARS}",
                id.chars().count()
            ));
            continue;
        }
        match entry_from_row(&row) {
            Err(reasons) => reasons.into_iter().for_each(bad),
            Ok(entry) => match first_at.get(id) {
                None if entry.answer.text.is_empty() => bad("missing answer".into()),
                None => {
                    first_at.insert(id.to_string(), (entries.len(), at));
                    entries.push(entry);
                }
                Some(&(index, first)) => {
                    let base = &mut entries[index];
                    match continuation_conflict(base, &entry) {
                        Some(field) => bad(format!(
                            "duplicate id '{id}' (first at {first}) with a different {field}"
                        )),
                        None => {
                            for q in entry.questions() {
                                if q != base.question && !base.similar.iter().any(|s| s == q) {
                                    base.similar.push(q.to_string());
                                }
                            }
                            if base.similar.len() > MAX_SIMILAR {
                                bad(format!(
                                    "entry '{id}' has more than {MAX_SIMILAR} similar questions"
                                ));
                            }
                        }
                    }
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

/// Which field of a continuation row contradicts the first row, if any. Blank means "same".
fn continuation_conflict(base: &FaqEntry, next: &FaqEntry) -> Option<&'static str> {
    if !next.answer.text.is_empty() && next.answer.text != base.answer.text {
        return Some("answer");
    }
    if !next.category.is_empty() && next.category != base.category {
        return Some("category");
    }
    if next.sku.is_some() && next.sku != base.sku {
        return Some("sku");
    }
    if next.valid_from.is_some() && next.valid_from != base.valid_from
        || next.valid_to.is_some() && next.valid_to != base.valid_to
    {
        return Some("validity window");
    }
    None
}

/// Validate one row into an entry (an empty answer is allowed here; a first row needs one).
fn entry_from_row(row: &RawRow) -> Result<FaqEntry, Vec<String>> {
    let mut reasons = Vec::new();
    let limit = |reasons: &mut Vec<String>, name: &str, value: &str, max: usize| {
        let n = value.chars().count();
        if n > max {
            reasons.push(format!("{name} is {n} characters, the limit is {max}"));
        }
    };
    let question = row.get("question").to_string();
    if question.is_empty() {
        reasons.push("missing question".into());
    }
    limit(&mut reasons, "question", &question, MAX_QUESTION_CHARS);
    for s in &row.similar {
        limit(&mut reasons, "a similar question", s, MAX_QUESTION_CHARS);
    }
    if row.similar.len() > MAX_SIMILAR {
        reasons.push(format!(
            "{} similar questions, the limit is {MAX_SIMILAR}",
            row.similar.len()
        ));
    }
    let answer = row.get("answer").to_string();
    limit(&mut reasons, "answer", &answer, MAX_ANSWER_CHARS);
    for (name, value) in [("category", "category"), ("sku", "sku"), ("link", "link")] {
        limit(&mut reasons, name, row.get(value), MAX_FIELD_CHARS);
    }
    for b in row.buttons.iter().chain(&row.tags) {
        limit(&mut reasons, "a button or tag", b, MAX_FIELD_CHARS);
    }
    let time = |reasons: &mut Vec<String>, column: &str, end: bool| {
        let cell = row.get(column);
        if cell.is_empty() {
            return None;
        }
        let t = parse_time(cell, end);
        if t.is_none() {
            reasons.push(format!(
                "{column} '{cell}' is not a date (use 2026-11-11, 2026-11-11 20:00 or RFC 3339)"
            ));
        }
        t
    };
    let valid_from = time(&mut reasons, "valid_from", false);
    let valid_to = time(&mut reasons, "valid_to", true);
    if let (Some(from), Some(to)) = (valid_from, valid_to) {
        if from > to {
            reasons.push(format!("valid_from {from} is after valid_to {to}"));
        }
    }
    let flag = |reasons: &mut Vec<String>, column: &str, default: bool| {
        let cell = row.get(column);
        if cell.is_empty() {
            return default;
        }
        parse_bool(cell).unwrap_or_else(|| {
            reasons.push(format!("{column} '{cell}' is not true or false"));
            default
        })
    };
    let notify_human = flag(&mut reasons, "notify_human", false);
    let enabled = flag(&mut reasons, "enabled", true);
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut similar: Vec<String> = Vec::new();
    for s in &row.similar {
        if *s != question && !similar.contains(s) {
            similar.push(s.clone());
        }
    }
    if reasons.is_empty() {
        Ok(FaqEntry {
            id: row.get("id").to_string(),
            question,
            similar,
            answer: Answer {
                text: answer,
                buttons: row.buttons.clone(),
                link: non_empty(row.get("link")),
            },
            category: row.get("category").to_string(),
            tags: row.tags.clone(),
            valid_from,
            valid_to,
            sku: non_empty(row.get("sku")),
            notify_human,
            enabled,
        })
    } else {
        Err(reasons)
    }
}

/// Write entries as CSV with the import header, so that importing the output gives the same
/// entries back. A similar question containing `|` cannot share the `similar` cell, so it goes on
/// a continuation row of its own.
pub fn write_csv(entries: &[FaqEntry]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(COLUMNS).expect("writing to memory");
    let time = |t: &Option<DateTime<FixedOffset>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for e in entries {
        let (plain, piped): (Vec<&String>, Vec<&String>) =
            e.similar.iter().partition(|s| !s.contains('|'));
        let join = |items: &[&String]| {
            items
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("|")
        };
        let record = [
            e.id.clone(),
            e.question.clone(),
            join(&plain),
            e.answer.text.clone(),
            e.answer.buttons.join("|"),
            e.answer.link.clone().unwrap_or_default(),
            e.category.clone(),
            e.tags.join("|"),
            time(&e.valid_from),
            time(&e.valid_to),
            e.sku.clone().unwrap_or_default(),
            e.notify_human.to_string(),
            e.enabled.to_string(),
        ];
        out.write_record(&record).expect("writing to memory");
        for q in piped {
            let mut row = vec![String::new(); COLUMNS.len()];
            row[0] = e.id.clone();
            row[1] = q.clone();
            out.write_record(&row).expect("writing to memory");
        }
    }
    String::from_utf8(out.into_inner().expect("writing to memory")).expect("CSV of UTF-8 strings")
}

/// Write entries as JSONL, one entry per line, in the import key names.
pub fn write_jsonl(entries: &[FaqEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&serde_json::to_string(e).expect("entries serialize"));
        out.push('\n');
    }
    out
}
