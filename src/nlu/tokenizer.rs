//! The tokenizer saved beside every intent model as `tokenizer.json` (Hugging Face `tokenizers`).
//!
//! Chinese needs no word segmenter here: the BERT normalizer puts every CJK ideograph in a token of
//! its own and the featurizer builds character bigrams and trigrams from them. English words are
//! WordPiece tokens: a word seen often enough stays whole, a rarer one splits into pieces the
//! vocabulary knows (`refunded` -> `refund ##ed`), so inflections and typos still share features.
//!
//! The vocabulary is built here rather than by `tokenizers`' own trainers, whose tie-breaking follows
//! hash-map order: `honeydesk train` must give the same model for the same data and seed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{
    NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    Tokenizer,
};

use super::NluError;

pub const UNK: &str = "[UNK]";
const PIECE: &str = "##";

/// How the vocabulary is chosen.
#[derive(Debug, Clone, Copy)]
pub struct VocabConfig {
    /// A word seen this often becomes a whole-word token.
    pub min_word_count: usize,
    /// A prefix or `##suffix` seen this often (across distinct words) becomes a piece.
    pub min_piece_count: usize,
    pub max_vocab: usize,
}

impl Default for VocabConfig {
    fn default() -> Self {
        VocabConfig {
            min_word_count: 2,
            min_piece_count: 4,
            max_vocab: 30_000,
        }
    }
}

fn normalizer() -> BertNormalizer {
    // Text arrives normalized by `crate::text`; this only isolates CJK ideographs.
    BertNormalizer::new(false, true, Some(false), false)
}

/// Split normalized text into the words the WordPiece model sees.
fn pre_tokenize(text: &str) -> Result<Vec<String>, NluError> {
    let mut normalized = NormalizedString::from(text);
    normalizer()
        .normalize(&mut normalized)
        .map_err(NluError::tokenizer)?;
    let mut pre = PreTokenizedString::from(normalized);
    BertPreTokenizer
        .pre_tokenize(&mut pre)
        .map_err(NluError::tokenizer)?;
    Ok(pre
        .get_splits(OffsetReferential::Normalized, OffsetType::Char)
        .into_iter()
        .map(|(s, _, _)| s.to_string())
        .collect())
}

/// Build a tokenizer whose vocabulary fits the given (normalized) training texts.
pub fn build<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    cfg: VocabConfig,
) -> Result<Tokenizer, NluError> {
    let mut words: BTreeMap<String, usize> = BTreeMap::new();
    for text in texts {
        for w in pre_tokenize(text)? {
            *words.entry(w).or_default() += 1;
        }
    }
    // Score every candidate token; BTreeMap keeps the order independent of hashing.
    let mut score: BTreeMap<String, usize> = BTreeMap::new();
    // Digits and Latin letters are always known, so an order number or a new English word is split
    // into pieces instead of vanishing into [UNK].
    let mut must: Vec<String> = vec![UNK.to_string()];
    for c in ('0'..='9').chain('a'..='z') {
        must.push(c.to_string());
        must.push(format!("{PIECE}{c}"));
    }
    for (word, &count) in &words {
        let chars: Vec<char> = word.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            must.push(if i == 0 {
                c.to_string()
            } else {
                format!("{PIECE}{c}")
            });
        }
        if count >= cfg.min_word_count || chars.len() == 1 {
            *score.entry(word.clone()).or_default() += count * 4;
        }
        if chars.len() >= 4 && chars.iter().all(|c| c.is_alphabetic()) {
            for n in 2..=chars.len().saturating_sub(2).min(6) {
                let prefix: String = chars[..n].iter().collect();
                *score.entry(prefix).or_default() += 1;
            }
            for n in 1..=chars.len().saturating_sub(3).min(4) {
                let suffix: String = chars[chars.len() - n..].iter().collect();
                *score.entry(format!("{PIECE}{suffix}")).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<(String, usize)> = score
        .into_iter()
        .filter(|(tok, s)| {
            *s >= cfg.min_piece_count || words.get(tok).is_some_and(|c| *c >= cfg.min_word_count)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for tok in must.into_iter().chain(ranked.into_iter().map(|(t, _)| t)) {
        if vocab.len() >= cfg.max_vocab {
            break;
        }
        let next = vocab.len() as u32;
        vocab.entry(tok).or_insert(next);
    }
    from_vocab(vocab)
}

fn from_vocab(vocab: HashMap<String, u32>) -> Result<Tokenizer, NluError> {
    let model = WordPiece::builder()
        .vocab(vocab.into_iter().collect::<ahash::AHashMap<String, u32>>())
        .unk_token(UNK.to_string())
        .continuing_subword_prefix(PIECE.to_string())
        .max_input_chars_per_word(64)
        .build()
        .map_err(NluError::tokenizer)?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(normalizer()))
        .map_err(NluError::tokenizer)?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    Ok(tokenizer)
}

pub fn save(tokenizer: &Tokenizer, path: &Path) -> Result<(), NluError> {
    tokenizer.save(path, false).map_err(NluError::tokenizer)
}

pub fn load(path: &Path) -> Result<Tokenizer, NluError> {
    Tokenizer::from_file(path)
        .map_err(|e| NluError::Model(format!("cannot load {}: {e}", path.display())))
}

/// The tokens of a normalized text.
pub fn tokens(tokenizer: &Tokenizer, text: &str) -> Result<Vec<String>, NluError> {
    // `encode_fast` skips offset tracking, and with it the token strings: map the ids back.
    let enc = tokenizer
        .encode_fast(text, false)
        .map_err(NluError::tokenizer)?;
    Ok(enc
        .get_ids()
        .iter()
        .map(|&id| tokenizer.id_to_token(id).unwrap_or_else(|| UNK.to_string()))
        .collect())
}
