//! Merchant knowledge: FAQ entries, their import and export, per-shop storage and retrieval.
//!
//! Data flows one way: a file is parsed and validated as a whole ([`import`]), written as the
//! shop's entry file under the data directory, indexed ([`index`]) and swapped in. Searches read
//! whatever index is current, without locks on the search path.
//!
//! On disk, each shop is `DATA_DIR/shops/<shop>/faq.jsonl`: one entry per line, written to a
//! temporary file and renamed over the old one, so a crash mid-write leaves the previous FAQ.

pub mod analyze;
pub mod entry;
pub mod import;
pub mod index;
pub mod semantic;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use chrono::{DateTime, FixedOffset};
use dashmap::DashMap;

pub use analyze::{Analyzer, Segmenter};
pub use entry::{Answer, FaqEntry};
pub use import::{Format, Location, RowError};
pub use index::{Hit, RankWeights, ShopIndex};
pub use semantic::HybridPolicy;

use crate::nlu::encoder::Encoder;

/// What can go wrong in the knowledge layer.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}: {} bad row(s), nothing was imported:\n{}", errors.len(), list(errors))]
    Import { file: String, errors: Vec<RowError> },
    #[error("{0}: unknown file type; use .csv, .tsv, .xlsx, .json or .jsonl, or pass --format")]
    UnknownFormat(String),
    #[error("unknown shop '{0}'")]
    UnknownShop(String),
    #[error("invalid shop id '{0}': use 1-64 ASCII letters, digits, '-' or '_'")]
    InvalidShop(String),
    #[error("shop '{shop}' has no entry '{id}'")]
    UnknownEntry { shop: String, id: String },
    #[error("the stored FAQ of shop '{shop}' is damaged: {reason}")]
    Damaged { shop: String, reason: String },
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
}

fn list(errors: &[RowError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Shop ids become directory names, so they are restricted to a safe alphabet.
pub fn check_shop(shop: &str) -> Result<(), KnowledgeError> {
    let ok = !shop.is_empty()
        && shop.len() <= 64
        && shop
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(KnowledgeError::InvalidShop(shop.chars().take(80).collect()))
    }
}

/// Whether an import replaces the shop's FAQ or adds to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// The file becomes the shop's whole FAQ.
    #[default]
    Replace,
    /// Entries in the file replace stored entries with the same id; others are added.
    Merge,
}

struct Shop {
    current: ArcSwap<ShopIndex>,
    /// Serialises writers of one shop; readers never take it. Holds the stamp of the entry file
    /// the current index was built from.
    write: Mutex<Option<Stamp>>,
    /// When the entry file was last compared with `write`'s stamp (ms since the store opened).
    checked_ms: AtomicU64,
}

/// An entry file's modification time and size: how another process's import is noticed.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Every shop's FAQ: storage under the data directory plus the live indexes.
pub struct Knowledge {
    dir: PathBuf,
    analyzer: Analyzer,
    weights: RankWeights,
    /// The sentence encoder for hybrid retrieval, when there is one.
    semantic: Option<(Arc<Encoder>, HybridPolicy)>,
    shops: DashMap<String, Arc<Shop>>,
    opened: Instant,
    reload_every: Duration,
}

/// How often a loaded shop's entry file is checked for changes made by another process (a
/// `honeydesk faq import` while `serve` runs).
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

impl Knowledge {
    /// Open the knowledge store under `data_dir` (created on first write). Shops load lazily.
    pub fn open(data_dir: &Path, analyzer: Analyzer, weights: RankWeights) -> Knowledge {
        Knowledge {
            dir: data_dir.join("shops"),
            analyzer,
            weights,
            semantic: None,
            shops: DashMap::new(),
            opened: Instant::now(),
            reload_every: RELOAD_CHECK,
        }
    }

    /// Check entry files for outside changes this often instead of every [`RELOAD_CHECK`].
    pub fn with_reload_check(mut self, every: Duration) -> Self {
        self.reload_every = every;
        self
    }

    /// Whether retrieval may ask the sentence encoder ([`Self::with_semantic`]).
    pub fn is_semantic(&self) -> bool {
        self.semantic.is_some()
    }

    /// Retrieve with `encoder` beside the words, as `policy` says. Every shop's question vectors
    /// are built when its index is (kept in `vectors.safetensors` beside its entries, so only
    /// new or edited questions are embedded again).
    pub fn with_semantic(mut self, encoder: Arc<Encoder>, policy: HybridPolicy) -> Self {
        self.semantic = Some((encoder, policy));
        self
    }

    /// Index `entries` of `shop`, with their sentence vectors when there is an encoder.
    fn build(
        &self,
        shop: &str,
        entries: Vec<FaqEntry>,
        generation: u64,
    ) -> Result<ShopIndex, KnowledgeError> {
        let mut index = ShopIndex::build(entries, self.analyzer.clone(), self.weights, generation)?;
        if let Some((encoder, _)) = &self.semantic {
            let dir = self.dir.join(shop);
            std::fs::create_dir_all(&dir).map_err(|source| KnowledgeError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let counts = semantic::attach(&mut index, encoder, &dir.join("vectors.safetensors"))?;
            if counts.embedded > 0 {
                tracing::info!(
                    shop,
                    embedded = counts.embedded,
                    reused = counts.reused,
                    "question vectors"
                );
            }
        }
        Ok(index)
    }

    fn faq_path(&self, shop: &str) -> PathBuf {
        self.dir.join(shop).join("faq.jsonl")
    }

    /// Shops with a stored FAQ, sorted.
    pub fn shops(&self) -> Vec<String> {
        let mut shops: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|d| d.path().join("faq.jsonl").is_file())
            .filter_map(|d| d.file_name().into_string().ok())
            .filter(|s| check_shop(s).is_ok())
            .collect();
        shops.sort();
        shops
    }

    /// Whether `shop` has a stored FAQ.
    pub fn has_shop(&self, shop: &str) -> bool {
        check_shop(shop).is_ok() && self.faq_path(shop).is_file()
    }

    /// The shop's current index, loading it from disk on first use.
    pub fn index(&self, shop: &str) -> Result<Arc<ShopIndex>, KnowledgeError> {
        Ok(self.shop(shop)?.current.load_full())
    }

    fn shop(&self, shop: &str) -> Result<Arc<Shop>, KnowledgeError> {
        check_shop(shop)?;
        if let Some(s) = self.shops.get(shop).map(|s| s.clone()) {
            self.reload_if_changed(shop, &s);
            return Ok(s);
        }
        let before = stamp(&self.faq_path(shop));
        let entries = self.read_stored(shop)?;
        let index = self.build(shop, entries, 1)?;
        // Two first users may both load; the first to insert wins and the other's copy is dropped.
        let loaded = self
            .shops
            .entry(shop.to_string())
            .or_insert_with(|| {
                Arc::new(Shop {
                    current: ArcSwap::from_pointee(index),
                    write: Mutex::new(before),
                    checked_ms: AtomicU64::new(self.elapsed_ms()),
                })
            })
            .clone();
        Ok(loaded)
    }

    fn elapsed_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// Rebuild a loaded shop whose entry file another process has replaced. At most one check per
    /// [`RELOAD_CHECK`] per shop; a search that finds a writer busy, or a damaged file, keeps the
    /// current index.
    fn reload_if_changed(&self, shop: &str, s: &Shop) {
        let now = self.elapsed_ms();
        let last = s.checked_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.reload_every.as_millis() as u64
            || s.checked_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Ok(mut loaded) = s.write.try_lock() else {
            return;
        };
        let path = self.faq_path(shop);
        let current = stamp(&path);
        if current.is_none() || current == *loaded {
            return;
        }
        let generation = s.current.load().generation + 1;
        let rebuilt = self
            .read_stored(shop)
            .and_then(|entries| self.build(shop, entries, generation));
        match rebuilt {
            Ok(index) => {
                s.current.store(Arc::new(index));
                *loaded = current;
                tracing::info!(shop, "reloaded the FAQ after an outside change");
            }
            Err(e) => tracing::warn!(shop, error = %e, "kept the current FAQ index"),
        }
    }

    fn read_stored(&self, shop: &str) -> Result<Vec<FaqEntry>, KnowledgeError> {
        let path = self.faq_path(shop);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KnowledgeError::UnknownShop(shop.to_string()))
            }
            Err(source) => {
                return Err(KnowledgeError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| KnowledgeError::Damaged {
                    shop: shop.to_string(),
                    reason: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }

    /// Search `shop` for the `k` best active entries: by the words, and with the encoder too
    /// when there is one and its [`HybridPolicy`] wants it for this message (a hit's `cosine`
    /// is then set).
    pub fn search(
        &self,
        shop: &str,
        text: &str,
        k: usize,
        now: DateTime<FixedOffset>,
    ) -> Result<Vec<Hit>, KnowledgeError> {
        let index = self.index(shop)?;
        let lexical = index.lexical(text, now)?;
        if let (Some((encoder, policy)), Some(vectors)) = (&self.semantic, index.vectors()) {
            // The gate reads the best two by the words; the hybrid blends all of them.
            if policy.wants(text, &lexical.top(k.max(2))) {
                let query = crate::nlu::head::embed(encoder, &[text])
                    .map_err(semantic::nlu)?
                    .pop()
                    .expect("one vector");
                return index.search_hybrid(lexical, &query, vectors, policy.weight, k, now);
            }
        }
        Ok(lexical.into_top(k))
    }

    /// The shop's entries as stored, in order.
    pub fn entries(&self, shop: &str) -> Result<Vec<FaqEntry>, KnowledgeError> {
        Ok(self
            .index(shop)?
            .entries()
            .iter()
            .map(|e| (**e).clone())
            .collect())
    }

    /// Import a file into `shop`. Nothing changes unless the whole file is valid.
    pub fn import_file(
        &self,
        shop: &str,
        path: &Path,
        format: Option<Format>,
        mode: ImportMode,
    ) -> Result<usize, KnowledgeError> {
        check_shop(shop)?;
        let entries = import::read_file(path, format)?;
        let n = entries.len();
        self.update(shop, |stored| match mode {
            ImportMode::Replace => Ok(entries),
            ImportMode::Merge => {
                let mut merged = stored;
                for e in entries {
                    match merged.iter_mut().find(|m| m.id == e.id) {
                        Some(slot) => *slot = e,
                        None => merged.push(e),
                    }
                }
                Ok(merged)
            }
        })?;
        Ok(n)
    }

    /// Replace the shop's whole FAQ.
    pub fn replace(&self, shop: &str, entries: Vec<FaqEntry>) -> Result<(), KnowledgeError> {
        self.update(shop, |_| Ok(entries))
    }

    /// Add an entry or replace the one with its id.
    pub fn upsert(&self, shop: &str, entry: FaqEntry) -> Result<(), KnowledgeError> {
        self.update(shop, |mut stored| {
            match stored.iter_mut().find(|m| m.id == entry.id) {
                Some(slot) => *slot = entry,
                None => stored.push(entry),
            }
            Ok(stored)
        })
    }

    /// Remove an entry.
    pub fn delete(&self, shop: &str, id: &str) -> Result<(), KnowledgeError> {
        self.update(shop, |mut stored| {
            let before = stored.len();
            stored.retain(|e| e.id != id);
            if stored.len() == before {
                return Err(KnowledgeError::UnknownEntry {
                    shop: shop.to_string(),
                    id: id.to_string(),
                });
            }
            Ok(stored)
        })
    }

    /// Build aside, persist, swap: the one path every write takes.
    fn update(
        &self,
        shop: &str,
        change: impl FnOnce(Vec<FaqEntry>) -> Result<Vec<FaqEntry>, KnowledgeError>,
    ) -> Result<(), KnowledgeError> {
        check_shop(shop)?;
        let existing = match self.shop(shop) {
            Ok(s) => Some(s),
            Err(KnowledgeError::UnknownShop(_)) => None,
            Err(e) => return Err(e),
        };
        let mut guard = existing
            .as_ref()
            .map(|s| s.write.lock().unwrap_or_else(|p| p.into_inner()));
        let (stored, generation) = match &existing {
            Some(s) => {
                let current = s.current.load();
                let entries = current.entries().iter().map(|e| (**e).clone()).collect();
                (entries, current.generation + 1)
            }
            None => (Vec::new(), 1),
        };
        let entries = change(stored)?;
        let index = self.build(shop, entries, generation)?;
        self.persist(shop, index.entries())?;
        let written = stamp(&self.faq_path(shop));
        match &existing {
            Some(s) => {
                s.current.store(Arc::new(index));
                if let Some(g) = guard.as_mut() {
                    **g = written;
                }
            }
            None => {
                let fresh = Arc::new(Shop {
                    current: ArcSwap::from_pointee(index),
                    write: Mutex::new(written),
                    checked_ms: AtomicU64::new(self.elapsed_ms()),
                });
                self.shops.insert(shop.to_string(), fresh);
            }
        }
        Ok(())
    }

    fn persist(&self, shop: &str, entries: &[Arc<FaqEntry>]) -> Result<(), KnowledgeError> {
        let path = self.faq_path(shop);
        let dir = path.parent().expect("faq path has a parent");
        let io = |source| KnowledgeError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let plain: Vec<FaqEntry> = entries.iter().map(|e| (**e).clone()).collect();
        let tmp = dir.join("faq.jsonl.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(import::write_jsonl(&plain).as_bytes())
                .map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    }
}
