//! Intent understanding: normalized text in, ranked intents with calibrated confidences out.
//!
//! - [`data`]: the labelled-data format (JSONL / CSV) and its strict loader.
//! - [`datasets`]: readers for the public sets in `../shared/data` (CLINC150, BANKING77, SMP2019).
//! - [`tokenizer`], [`features`]: text to tokens (a saved `tokenizer.json`) to a bag of n-grams.
//! - [`model`]: the candle classifier, its files, and prediction with the out-of-scope threshold.
//! - [`train`]: training, temperature calibration and threshold choice.
//! - [`encoder`], [`head`]: the accurate tier, a pretrained sentence encoder (BERT family, from a
//!   local folder) with a trained softmax head on its vectors.

pub mod calibrate;
pub mod cascade;
pub mod data;
pub mod datasets;
pub mod e5;
pub mod encoder;
pub mod features;
pub mod head;
pub mod model;
pub mod rng;
pub mod tokenizer;
pub mod train;

pub use data::{Example, OOS};
pub use model::{IntentModel, Prediction};
pub use train::{train, TrainConfig, TrainReport};

/// Errors of the intent layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NluError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Model(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("device {0:?} is not available: {1}")]
    Device(String, String),
}

impl NluError {
    pub(crate) fn tokenizer(e: impl std::fmt::Display) -> Self {
        NluError::Tokenizer(e.to_string())
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| NluError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, NluError>;

/// Pick a candle device by name: `cpu`, or `cuda` (needs the `cuda` feature and a GPU).
pub fn device(name: &str) -> Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => {
            #[cfg(feature = "cuda")]
            {
                candle_core::Device::new_cuda(0)
                    .map_err(|e| NluError::Device(name.into(), e.to_string()))
            }
            #[cfg(not(feature = "cuda"))]
            {
                Err(NluError::Device(
                    name.into(),
                    "this build has no CUDA support; rebuild with `--features cuda`".into(),
                ))
            }
        }
        other => Err(NluError::Device(
            other.into(),
            "expected cpu or cuda".into(),
        )),
    }
}
