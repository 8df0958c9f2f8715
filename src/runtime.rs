//! One way to assemble the bot: the intent models, the merchant FAQ (with the encoder's hybrid
//! retrieval when there is one), the dialogue settings and the life-care model, built from one
//! [`Config`] into an [`Engine`]. `serve`, `chat` and `eval`, the integration tests and the
//! benchmarks all build through [`Assembly`], so a test measures what the server runs.
//!
//! Paths to the bundled files (models, the demo FAQ, `honeydesk.toml`) are read against a root
//! directory: the working directory for the binary, the crate for the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, DEMO_FAQ, DEMO_SHOP};
use crate::dialog::{DialogConfig, DialogError, Engine};
use crate::knowledge::{
    Analyzer, HybridPolicy, ImportMode, Knowledge, KnowledgeError, RankWeights,
};
use crate::nlu::cascade::{self, Cascade};
use crate::nlu::encoder::Encoder;
use crate::nlu::{self, NluError};
use crate::risk::model::LifeCareModel;

/// What stopped the bot from being assembled, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum AssemblyError {
    #[error("loading the intent model in {dir}: {source}")]
    Intents { dir: PathBuf, source: NluError },
    #[error("loading the life-care model: {0}")]
    LifeCare(NluError),
    #[error("the device `{device}`: {source}")]
    Device { device: String, source: NluError },
    #[error("importing the demo shop's FAQ from {file}: {source}")]
    DemoShop {
        file: PathBuf,
        source: KnowledgeError,
    },
    #[error(transparent)]
    Dialog(#[from] DialogError),
}

/// The parts of the bot, each settable before [`Assembly::build`]; from a [`Config`] they are what
/// `serve` runs.
pub struct Assembly {
    root: PathBuf,
    model_dir: PathBuf,
    device: String,
    data_dir: PathBuf,
    dialog: DialogSource,
    life_care: bool,
    encoder_threads: Option<usize>,
    faq_encoder: Option<Arc<Encoder>>,
    demo_shop: bool,
    intents: Option<Cascade>,
}

enum DialogSource {
    /// A file; the platform defaults when it does not exist.
    File(PathBuf),
    Given(Box<DialogConfig>),
}

/// The assembled bot, and what was loaded (for the command line to say).
pub struct Assembled {
    pub engine: Engine,
    /// The sentence encoder the intents and the FAQ use, when there is one.
    pub encoder: Option<Arc<Encoder>>,
    /// One line per choice made while loading ("FAQ: hybrid retrieval with …").
    pub notes: Vec<String>,
}

impl Assembly {
    /// As `serve` runs: everything from `config`, bundled files under the working directory.
    pub fn new(config: &Config) -> Assembly {
        Assembly {
            root: PathBuf::from("."),
            model_dir: config.model_dir.clone(),
            device: config.device.clone(),
            data_dir: config.data_dir.clone(),
            dialog: DialogSource::File(config.dialog_config.clone()),
            life_care: true,
            encoder_threads: None,
            faq_encoder: None,
            demo_shop: true,
            intents: None,
        }
    }

    /// Read the bundled files (models, the demo FAQ) under `root`; relative model and config
    /// paths are read against it too.
    pub fn root(mut self, root: &Path) -> Self {
        self.root = root.to_path_buf();
        self
    }

    pub fn model_dir(mut self, dir: &Path) -> Self {
        self.model_dir = dir.to_path_buf();
        self
    }

    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = dir.to_path_buf();
        self
    }

    /// These dialogue settings instead of the file.
    pub fn dialog_config(mut self, config: DialogConfig) -> Self {
        self.dialog = DialogSource::Given(Box::new(config));
        self
    }

    /// The dialogue settings from this file (the platform defaults when it does not exist).
    pub fn dialog_file(mut self, path: &Path) -> Self {
        self.dialog = DialogSource::File(path.to_path_buf());
        self
    }

    /// Leave the learned life-care model out (the lexicon still runs).
    pub fn without_life_care(mut self) -> Self {
        self.life_care = false;
        self
    }

    /// Give encoder passes a thread pool of this size (the server keeps a core for itself).
    pub fn encoder_threads(mut self, threads: usize) -> Self {
        self.encoder_threads = Some(threads);
        self
    }

    /// Rank the FAQ with this encoder instead of the cascade's (`eval --encoder`).
    pub fn faq_encoder(mut self, encoder: Arc<Encoder>) -> Self {
        self.faq_encoder = Some(encoder);
        self
    }

    /// These intent models, already loaded, instead of the model directory's.
    pub fn intents(mut self, intents: Cascade) -> Self {
        self.intents = Some(intents);
        self
    }

    /// Do not import the demo shop into an empty data directory.
    pub fn without_demo_shop(mut self) -> Self {
        self.demo_shop = false;
        self
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    pub fn build(mut self) -> Result<Assembled, AssemblyError> {
        let mut notes = Vec::new();
        let device = nlu::device(&self.device).map_err(|source| AssemblyError::Device {
            device: self.device.clone(),
            source,
        })?;
        let model_dir = self.path(&self.model_dir);
        let intents_error = |source| AssemblyError::Intents {
            dir: model_dir.clone(),
            source,
        };
        let mut intents: Cascade = match self.intents.take() {
            Some(intents) => intents,
            None => cascade::load(&model_dir, &device).map_err(intents_error)?,
        };
        if let Some(threads) = self.encoder_threads {
            intents = intents
                .with_encoder_threads(threads)
                .map_err(intents_error)?;
        }
        if let (Some(head), Some(meta)) = (intents.head(), intents.meta()) {
            notes.push(format!(
                "intents: the fast model, with the encoder {} below confidence {:.3}",
                head.encoder.id.name, meta.escalate_below
            ));
        }
        let encoder = self
            .faq_encoder
            .clone()
            .or_else(|| intents.head().map(|h| h.encoder.clone()));

        let mut knowledge =
            Knowledge::open(&self.data_dir, Analyzer::default(), RankWeights::default());
        // The encoder serves FAQ retrieval too, for the messages the words leave undecided.
        if let Some(encoder) = &encoder {
            let policy = HybridPolicy::for_encoder(encoder);
            notes.push(format!(
                "FAQ: hybrid retrieval with {} (weight {}) when the words are weak or undecided",
                encoder.id.name, policy.weight
            ));
            knowledge = knowledge.with_semantic(encoder.clone(), policy);
        }
        if self.demo_shop && !knowledge.has_shop(DEMO_SHOP) {
            let file = self.path(Path::new(DEMO_FAQ));
            let n = knowledge
                .import_file(DEMO_SHOP, &file, None, ImportMode::Replace)
                .map_err(|source| AssemblyError::DemoShop {
                    file: file.clone(),
                    source,
                })?;
            notes.push(format!(
                "imported the demo shop's FAQ ({n} entries from {DEMO_FAQ}) into {}",
                self.data_dir.display()
            ));
        }

        let dialog = match &self.dialog {
            DialogSource::Given(config) => (**config).clone(),
            DialogSource::File(path) => {
                let path = self.path(path);
                if path.exists() {
                    DialogConfig::load(&path)?
                } else {
                    notes.push(format!(
                        "no {}: using the platform defaults",
                        path.display()
                    ));
                    DialogConfig::default()
                }
            }
        };

        // With e5, the life-care model's vector half shares the encoder.
        let life_care = if self.life_care {
            let m = LifeCareModel::load_bundled(&self.root, encoder.clone())
                .map_err(AssemblyError::LifeCare)?;
            if m.has_vectors() {
                notes.push(
                    "life-care: lexicon, n-grams, and the e5 vector half when they agree".into(),
                );
            }
            Some(Arc::new(m))
        } else {
            None
        };
        let engine = Engine::new(intents, Arc::new(knowledge), life_care, dialog);
        Ok(Assembled {
            engine,
            encoder,
            notes,
        })
    }
}
