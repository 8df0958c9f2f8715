//! Turning questions into index terms, the same way for indexing and for queries.
//!
//! Text goes through the shared normalizer first (width, case, Traditional → Simplified, emoji,
//! shop-talk filler such as 亲 and 在吗), so `親，運費多少？` and `运费多少` meet. Then:
//! - Latin-script words are stemmed (Snowball English), so "returns" meets "return";
//! - runs of CJK characters become character unigrams plus bigrams ([`Segmenter::Bigram`]) or jieba
//!   words plus unigrams ([`Segmenter::Jieba`]). `honeydesk faq eval` measures both; bigrams won on
//!   the demo shop's held-out questions (see README), and need no dictionary, which matters for shop
//!   vocabulary (brand and product names) that no general dictionary has.

use std::sync::Arc;

use rust_stemmers::{Algorithm, Stemmer};

use crate::text;

/// How runs of CJK characters are cut into terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
pub enum Segmenter {
    /// Every character and every pair of adjacent characters.
    #[default]
    Bigram,
    /// jieba's words (search mode, which also emits the shorter words inside long ones) plus
    /// single characters.
    Jieba,
}

/// Text to terms. Cheap to clone; the jieba dictionary is loaded once per process.
#[derive(Clone)]
pub struct Analyzer {
    segmenter: Segmenter,
    stemmer: Arc<Stemmer>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("segmenter", &self.segmenter)
            .finish()
    }
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new(Segmenter::default())
    }
}

impl Analyzer {
    pub fn new(segmenter: Segmenter) -> Self {
        Analyzer {
            segmenter,
            stemmer: Arc::new(Stemmer::create(Algorithm::English)),
        }
    }

    pub fn segmenter(&self) -> Segmenter {
        self.segmenter
    }

    /// The terms of `input`, in order, with repeats.
    pub fn terms(&self, input: &str) -> Vec<String> {
        let normalized = text::normalize(input);
        let mut terms = Vec::new();
        let mut run = String::new();
        let mut run_is_cjk = false;
        for c in normalized.chars().chain(std::iter::once(' ')) {
            let cjk = text::is_cjk(c);
            let word = cjk || c.is_alphanumeric();
            if !run.is_empty() && (!word || cjk != run_is_cjk) {
                self.flush(&run, run_is_cjk, &mut terms);
                run.clear();
            }
            if word {
                run.push(c);
                run_is_cjk = cjk;
            }
        }
        terms
    }

    fn flush(&self, run: &str, cjk: bool, terms: &mut Vec<String>) {
        if !cjk {
            terms.push(self.stemmer.stem(run).into_owned());
            return;
        }
        let chars: Vec<char> = run.chars().collect();
        terms.extend(chars.iter().map(|c| c.to_string()));
        match self.segmenter {
            Segmenter::Bigram => {
                terms.extend(chars.windows(2).map(|w| w.iter().collect::<String>()));
            }
            Segmenter::Jieba => {
                for token in crate::text::jieba().cut_for_search(run, true) {
                    if token.word.chars().count() > 1 {
                        terms.push(token.word.to_string());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_runs_become_unigrams_and_bigrams() {
        let a = Analyzer::new(Segmenter::Bigram);
        assert_eq!(
            a.terms("运费多少"),
            ["运", "费", "多", "少", "运费", "费多", "多少"]
        );
    }

    #[test]
    fn traditional_full_width_and_filler_meet_the_plain_form() {
        let a = Analyzer::default();
        assert_eq!(a.terms("親，運費多少？"), a.terms("运费多少"));
    }

    #[test]
    fn english_is_stemmed_and_mixed_script_splits() {
        let a = Analyzer::default();
        assert_eq!(a.terms("Returns accepted?"), ["return", "accept"]);
        assert_eq!(a.terms("XL码"), ["xl", "码"]);
    }

    #[test]
    fn jieba_emits_words() {
        let a = Analyzer::new(Segmenter::Jieba);
        let terms = a.terms("我想退货");
        assert!(terms.contains(&"退货".to_string()), "{terms:?}");
    }
}
