//! From normalized text to a bag of hashed n-gram features.
//!
//! What carries meaning in a shop question differs by script. In Chinese it is characters and
//! their neighbours (`退款`, `发货`, `到哪了`), so every ideograph is a token and adjacent tokens form
//! bigrams and trigrams. In English it is words, word pairs (`not received`) and word shapes, so
//! WordPiece tokens are joined back into words, paired, and broken into character 3-5-grams
//! (`<ref`, `refu`, `und>`) that survive typos and inflection. Digits become a shape (`<num6+>`): an
//! order number matters as "the shopper gave a number", not as its value.
//!
//! Features are keyed by a 64-bit FNV-1a hash, fixed here so that a saved model keeps meaning the
//! same thing across Rust releases (std's hasher is randomised and may change).

use std::collections::BTreeMap;

use tokenizers::Tokenizer;

use super::tokenizer::UNK;
use super::NluError;
use crate::text::is_cjk;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(kind: u8, parts: &[&str]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    };
    eat(kind);
    for p in parts {
        eat(0xff); // separator that never occurs in UTF-8
        for &b in p.as_bytes() {
            eat(b);
        }
    }
    h
}

/// Feature kinds, hashed in as the first byte so equal strings of different kinds never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Token = b'u',
    Word = b'w',
    Bigram = b'b',
    Trigram = b'3',
    CharGram = b'c',
}

/// A featurized message: (feature key, term count), sorted by key.
pub type Bag = Vec<(u64, f32)>;

/// Turns normalized text into a [`Bag`]. Owns the tokenizer saved with the model.
#[derive(Clone)]
pub struct Featurizer {
    tokenizer: Tokenizer,
}

impl Featurizer {
    pub fn new(tokenizer: Tokenizer) -> Self {
        Featurizer { tokenizer }
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Words as the model sees them: WordPiece pieces joined back, digits as a shape.
    pub fn words(&self, normalized: &str) -> Result<(Vec<String>, Vec<String>), NluError> {
        let tokens = super::tokenizer::tokens(&self.tokenizer, normalized)?;
        let mut words: Vec<String> = Vec::with_capacity(tokens.len());
        for t in &tokens {
            match t.strip_prefix("##") {
                Some(rest) if !words.is_empty() => {
                    words.last_mut().expect("non-empty").push_str(rest)
                }
                _ => words.push(t.clone()),
            }
        }
        for w in &mut words {
            if w.bytes().all(|b| b.is_ascii_digit()) {
                *w = number_shape(w.len()).to_string();
            }
        }
        Ok((tokens, words))
    }

    pub fn bag(&self, normalized: &str) -> Result<Bag, NluError> {
        let (tokens, words) = self.words(normalized)?;
        let mut counts: BTreeMap<u64, f32> = BTreeMap::new();
        let mut add = |k: u64| *counts.entry(k).or_default() += 1.0;
        for t in &tokens {
            if t != UNK && !t.bytes().all(|b| b.is_ascii_digit() || b == b'#') {
                add(fnv(Kind::Token as u8, &[t]));
            }
        }
        for w in words.iter().filter(|w| *w != UNK) {
            add(fnv(Kind::Word as u8, &[w]));
            let chars: Vec<char> = w.chars().collect();
            if chars.len() >= 2 && !chars.iter().any(|c| is_cjk(*c)) && !w.starts_with('<') {
                let padded: Vec<char> = std::iter::once('<')
                    .chain(chars)
                    .chain(std::iter::once('>'))
                    .collect();
                for n in 3..=5 {
                    for g in padded.windows(n) {
                        let gram: String = g.iter().collect();
                        add(fnv(Kind::CharGram as u8, &[&gram]));
                    }
                }
            }
        }
        let bounded: Vec<&str> = std::iter::once("<s>")
            .chain(words.iter().map(String::as_str))
            .chain(std::iter::once("</s>"))
            .collect();
        for pair in bounded.windows(2) {
            add(fnv(Kind::Bigram as u8, pair));
        }
        for tri in words.windows(3) {
            let parts: Vec<&str> = tri.iter().map(String::as_str).collect();
            add(fnv(Kind::Trigram as u8, &parts));
        }
        Ok(counts.into_iter().collect())
    }
}

fn number_shape(len: usize) -> &'static str {
    match len {
        0..=3 => "<num1-3>",
        4..=5 => "<num4-5>",
        _ => "<num6+>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlu::tokenizer::{build, VocabConfig};

    fn featurizer() -> Featurizer {
        let texts = [
            "where is my refund",
            "refund please",
            "refunded already?",
            "我的退款到哪了",
        ];
        Featurizer::new(
            build(
                texts,
                VocabConfig {
                    min_word_count: 1,
                    ..Default::default()
                },
            )
            .unwrap(),
        )
    }

    #[test]
    fn chinese_is_split_into_characters_and_paired() {
        let f = featurizer();
        let (tokens, _) = f.words("退款到哪了").unwrap();
        assert_eq!(tokens, ["退", "款", "到", "哪", "了"]);
        let bag = f.bag("退款到哪了").unwrap();
        assert!(bag
            .iter()
            .any(|(k, _)| *k == fnv(Kind::Bigram as u8, &["退", "款"])));
    }

    #[test]
    fn unseen_english_word_shares_char_grams() {
        let f = featurizer();
        let a = f.bag("refund").unwrap();
        let b = f.bag("refunds").unwrap();
        let shared = a
            .iter()
            .filter(|(k, _)| b.iter().any(|(j, _)| j == k))
            .count();
        assert!(
            shared >= 3,
            "refund and refunds share only {shared} features"
        );
    }

    #[test]
    fn order_numbers_become_a_shape() {
        let f = featurizer();
        assert_eq!(
            f.bag("order 123456").unwrap(),
            f.bag("order 987654321").unwrap()
        );
        assert_ne!(
            f.bag("order 12").unwrap(),
            f.bag("order 987654321").unwrap()
        );
    }
}
