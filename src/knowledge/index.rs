//! One shop's FAQ as a tantivy index, and retrieval over it.
//!
//! # Design: one in-memory index per shop
//! Each shop gets its own tantivy index, built from its stored entries. Isolation is then a
//! matter of construction: a search holds one shop's [`ShopIndex`] and cannot reach another's
//! documents, where a shared index with a shop field relies on every query remembering its
//! filter, and shares BM25 statistics across shops (one apparel shop's word frequencies would skew
//! another's scores). Shop FAQs are small (tens to thousands of entries; 10,000 entries index in
//! well under a second, see `benches/faq.rs`), so the index lives in RAM and is rebuilt from the
//! entry file (the source of truth) when a shop is first used after start. A shop's update builds
//! a new `ShopIndex` aside and swaps it in ([`super::Knowledge`]), so searches never see a
//! half-built or missing index.
//!
//! # Ranking
//! Every standard and similar question is a document; the answer text is a second field on the
//! standard question's document. tantivy's BM25 over the questions (top
//! [`CANDIDATE_DOCS`]) and over the answers proposes candidates; each entry is scored by its best
//! question, combining three signals ([`RankWeights`]):
//! - `bm25`: the best question's BM25, divided by the query's total idf so it is comparable
//!   across queries (about 1 when every query term matches a question of average length);
//! - `overlap`: the idf-weighted F1 of query terms and question terms. BM25 rewards the query
//!   terms a question contains; overlap also penalises what the question has that the query does
//!   not, which is what separates 退货 from 退货运费谁出;
//! - `answer`: BM25 of the query against the answer, normalised the same way.
//!
//! The combined score is in 0..=1 and is what the dialogue engine compares with a shop's FAQ
//! threshold.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::TermInfo;
use tantivy::query::Bm25Weight;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED,
};
use tantivy::tokenizer::{TextAnalyzer, WhitespaceTokenizer};
use tantivy::{Index, InvertedIndexReader, ReloadPolicy, Searcher, TantivyDocument};

use super::analyze::Analyzer;
use super::entry::FaqEntry;
use super::KnowledgeError;

/// Question documents BM25 proposes before re-ranking.
pub const CANDIDATE_DOCS: usize = 100;
/// Answer documents BM25 proposes.
const ANSWER_DOCS: usize = 30;
const TOKENIZER: &str = "honeydesk_terms";

/// How the re-ranker weighs its signals. They sum to 1, so scores stay in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct RankWeights {
    pub bm25: f32,
    pub overlap: f32,
    pub answer: f32,
}

impl Default for RankWeights {
    fn default() -> Self {
        RankWeights {
            bm25: 0.3,
            overlap: 0.55,
            answer: 0.15,
        }
    }
}

impl RankWeights {
    /// Plain BM25 over the questions: the baseline the re-ranker is measured against.
    pub const BM25_ONLY: RankWeights = RankWeights {
        bm25: 1.0,
        overlap: 0.0,
        answer: 0.0,
    };
}

/// One retrieved entry and why it ranked where it did.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub entry: Arc<FaqEntry>,
    /// The combined score, 0..=1.
    pub score: f32,
    pub bm25: f32,
    pub overlap: f32,
    pub answer: f32,
    /// Cosine similarity of the message's and the best question's sentence vectors (0 when the
    /// search was lexical only).
    #[serde(default)]
    pub cosine: f32,
    /// The standard or similar question that matched best.
    pub matched: String,
}

struct QuestionDoc {
    entry: u32,
    /// Distinct term ids, sorted (a set, for the overlap signal).
    terms: Vec<u32>,
    /// The sum of their idf, in the question's own word order.
    idf: f32,
}

/// One shop's entries and their index. Immutable once built; updates build a new one.
pub struct ShopIndex {
    entries: Vec<Arc<FaqEntry>>,
    questions: Vec<QuestionDoc>,
    /// Term → (id, document frequency over questions).
    vocab: HashMap<String, (u32, u32)>,
    idf: Vec<f32>,
    /// What the postings were read from; queries read them through [`FieldPostings`], and the
    /// tests compare that with tantivy's own query.
    #[cfg(test)]
    searcher: Searcher,
    /// Question number of each document, by its number across segments (segment by segment, in
    /// document order): read once here instead of opening the fast field on every query.
    qids: Vec<u32>,
    /// The first document number of each segment in [`Self::qids`].
    bases: Vec<u32>,
    question_postings: FieldPostings,
    answer_postings: FieldPostings,
    analyzer: Analyzer,
    weights: RankWeights,
    /// Counts up with every swap, so callers can tell which version answered.
    pub generation: u64,
    /// Sentence vectors of the questions, when the store has an encoder
    /// ([`super::Knowledge::with_semantic`]).
    vectors: Option<super::semantic::QuestionVectors>,
}

impl std::fmt::Debug for ShopIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopIndex")
            .field("entries", &self.entries.len())
            .field("questions", &self.questions.len())
            .field("generation", &self.generation)
            .finish()
    }
}

/// Every active entry the words of a query matched, by position in [`ShopIndex::entries`]: what
/// [`ShopIndex::search`] ranks and [`ShopIndex::search_hybrid`] blends with the cosine, so a
/// caller that looks at the words first (the encoder's gate) does not search them again.
#[derive(Debug, Clone, Default)]
pub struct Lexical(HashMap<u32, Hit>);

impl Lexical {
    /// The `k` best, best first (copies).
    pub fn top(&self, k: usize) -> Vec<Hit> {
        Self::ranked(self.0.values().cloned().collect(), k)
    }

    /// [`Self::top`], taking the hits.
    pub fn into_top(self, k: usize) -> Vec<Hit> {
        Self::ranked(self.0.into_values().collect(), k)
    }

    fn ranked(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
        sort_hits(&mut hits, |h| h.bm25);
        hits.truncate(k);
        hits
    }
}

/// Best score first; ties by `tie` (higher first), then by entry id, so rankings are stable.
fn sort_hits(hits: &mut [Hit], tie: impl Fn(&Hit) -> f32) {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(tie(b).total_cmp(&tie(a)))
            .then_with(|| a.entry.id.cmp(&b.entry.id))
    });
}

/// The fast field holding each document's question number.
const QID: &str = "qid";

/// BM25's idf, as tantivy computes it.
fn idf(doc_freq: u32, docs: u32) -> f32 {
    let (n, d) = (doc_freq as f32, docs as f32);
    (1.0 + (d - n + 0.5) / (n + 0.5)).ln()
}

impl ShopIndex {
    /// Index `entries`. Disabled entries are kept (for export) but not indexed.
    pub fn build(
        entries: Vec<FaqEntry>,
        analyzer: Analyzer,
        weights: RankWeights,
        generation: u64,
    ) -> Result<ShopIndex, KnowledgeError> {
        let mut schema = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let f_qid = schema.add_u64_field(QID, FAST | INDEXED);
        let f_question = schema.add_text_field("question", text.clone());
        let f_answer = schema.add_text_field("answer", text);
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(
            TOKENIZER,
            TextAnalyzer::builder(WhitespaceTokenizer::default()).build(),
        );
        let mut writer = index.writer_with_num_threads(1, 64 << 20)?;
        writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));

        let entries: Vec<Arc<FaqEntry>> = entries.into_iter().map(Arc::new).collect();
        let mut questions = Vec::new();
        let mut vocab: HashMap<String, (u32, u32)> = HashMap::new();
        for (e, entry) in entries.iter().enumerate() {
            if !entry.enabled {
                continue;
            }
            for (i, question) in entry.questions().enumerate() {
                let terms = analyzer.terms(question);
                let mut ids: Vec<u32> = Vec::with_capacity(terms.len());
                for t in &terms {
                    let next = vocab.len() as u32;
                    let slot = vocab.entry(t.clone()).or_insert((next, 0));
                    if !ids.contains(&slot.0) {
                        ids.push(slot.0);
                        slot.1 += 1;
                    }
                }
                let mut doc = TantivyDocument::default();
                doc.add_u64(f_qid, questions.len() as u64);
                doc.add_text(f_question, terms.join(" "));
                if i == 0 {
                    doc.add_text(f_answer, analyzer.terms(&entry.answer.text).join(" "));
                }
                writer.add_document(doc)?;
                questions.push(QuestionDoc {
                    entry: e as u32,
                    terms: ids,
                    idf: 0.0,
                });
            }
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        let reader: tantivy::IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = reader.searcher();
        let mut qids = Vec::new();
        let mut bases = Vec::new();
        for segment in searcher.segment_readers() {
            bases.push(qids.len() as u32);
            let column = segment.fast_fields().u64(QID)?;
            qids.extend(
                (0..segment.max_doc()).map(|doc| column.first(doc).unwrap_or(u64::MAX) as u32),
            );
        }
        let question_postings = FieldPostings::of(&searcher, f_question)?;
        let answer_postings = FieldPostings::of(&searcher, f_answer)?;
        let docs = questions.len().max(1) as u32;
        let mut idf_by_id = vec![0.0; vocab.len()];
        for (id, df) in vocab.values() {
            idf_by_id[*id as usize] = idf(*df, docs);
        }
        for q in &mut questions {
            q.idf = q.terms.iter().map(|id| idf_by_id[*id as usize]).sum();
            q.terms.sort_unstable();
        }
        Ok(ShopIndex {
            entries,
            questions,
            vocab,
            idf: idf_by_id,
            #[cfg(test)]
            searcher,
            qids,
            bases,
            question_postings,
            answer_postings,
            analyzer,
            weights,
            generation,
            vectors: None,
        })
    }

    /// Give the index its questions' sentence vectors (built by
    /// [`super::semantic::QuestionVectors::build`] on this index).
    pub fn set_vectors(&mut self, vectors: super::semantic::QuestionVectors) {
        self.vectors = Some(vectors);
    }

    pub fn vectors(&self) -> Option<&super::semantic::QuestionVectors> {
        self.vectors.as_ref()
    }

    /// Every entry, in import order, disabled ones included.
    pub fn entries(&self) -> &[Arc<FaqEntry>] {
        &self.entries
    }

    pub fn weights(&self) -> RankWeights {
        self.weights
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The `k` best active entries for `text` at `now`, best first.
    pub fn search(
        &self,
        text: &str,
        k: usize,
        now: DateTime<FixedOffset>,
    ) -> Result<Vec<Hit>, KnowledgeError> {
        Ok(self.lexical(text, now)?.into_top(k))
    }

    /// Every active entry matching `text` lexically.
    pub fn lexical(
        &self,
        text: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<Lexical, KnowledgeError> {
        self.lexical_map(text, now).map(Lexical)
    }

    fn lexical_map(
        &self,
        text: &str,
        now: DateTime<FixedOffset>,
    ) -> Result<HashMap<u32, Hit>, KnowledgeError> {
        let mut terms = self.analyzer.terms(text);
        dedup_in_order(&mut terms);
        if terms.is_empty() || self.questions.is_empty() {
            return Ok(HashMap::new());
        }
        let docs = self.questions.len() as u32;
        // Query terms unknown to this shop count at full idf: a message that is mostly about
        // something else should not score high on the one word it shares with an entry.
        let query: Vec<(Option<u32>, f32)> = terms
            .iter()
            .map(|t| match self.vocab.get(t) {
                Some(&(id, _)) => (Some(id), self.idf[id as usize]),
                None => (None, idf(0, docs)),
            })
            .collect();
        let query_idf: f32 = query.iter().map(|(_, w)| w).sum();

        let question_hits = self.run(&self.question_postings, &terms, CANDIDATE_DOCS)?;
        let answer_hits = if self.weights.answer > 0.0 {
            self.run(&self.answer_postings, &terms, ANSWER_DOCS)?
        } else {
            Vec::new()
        };

        struct Candidate {
            bm25: f32,
            overlap: f32,
            answer: f32,
            matched: u32,
        }
        let mut by_entry: HashMap<u32, Candidate> = HashMap::new();
        for (score, qid) in question_hits {
            let q = &self.questions[qid as usize];
            let overlap = overlap(&query, query_idf, q);
            let c = by_entry.entry(q.entry).or_insert(Candidate {
                bm25: 0.0,
                overlap: -1.0,
                answer: 0.0,
                matched: qid,
            });
            c.bm25 = c.bm25.max(score);
            if overlap > c.overlap {
                c.overlap = overlap;
                c.matched = qid;
            }
        }
        for (score, qid) in answer_hits {
            let q = &self.questions[qid as usize];
            let c = by_entry.entry(q.entry).or_insert(Candidate {
                bm25: 0.0,
                overlap: 0.0,
                answer: 0.0,
                matched: qid,
            });
            c.answer = c.answer.max(score);
        }

        let w = self.weights;
        let norm = |s: f32| (s / query_idf).clamp(0.0, 1.0);
        Ok(by_entry
            .into_iter()
            .filter(|(e, _)| self.entries[*e as usize].is_active(now))
            .map(|(e, c)| {
                let (bm25, overlap, answer) = (norm(c.bm25), c.overlap.max(0.0), norm(c.answer));
                let question = &self.questions[c.matched as usize];
                let entry = self.entries[e as usize].clone();
                let matched = entry
                    .questions()
                    .nth(self.question_position(c.matched, question.entry))
                    .unwrap_or(&entry.question)
                    .to_string();
                let hit = Hit {
                    score: w.bm25 * bm25 + w.overlap * overlap + w.answer * answer,
                    bm25,
                    overlap,
                    answer,
                    cosine: 0.0,
                    matched,
                    entry,
                };
                (e, hit)
            })
            .collect())
    }

    /// Every indexed question (standard and similar ones of enabled entries), in the order of
    /// the question documents, with its entry's position in [`Self::entries`]: what
    /// [`super::semantic::QuestionVectors`] embeds.
    /// The entry (its position in [`Self::entries`]) of each question document, in order.
    pub fn question_entries(&self) -> Vec<u32> {
        self.questions.iter().map(|q| q.entry).collect()
    }

    pub fn question_texts(&self) -> Vec<(usize, &str)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.enabled)
            .flat_map(|(i, e)| e.questions().map(move |q| (i, q)))
            .collect()
    }

    /// Hybrid retrieval: the lexical score of [`Self::search`] (`lexical`, from
    /// [`Self::lexical`] for the same text) and the cosine of the message's
    /// sentence vector `query` with each entry's best question, mixed as
    /// `(1 - weight) × lexical + weight × max(cosine, 0)`. Every active entry is a candidate, so
    /// a paraphrase sharing no word with its entry is still found; a shop FAQ is small enough
    /// (thousands of questions) for the exact dot products.
    pub fn search_hybrid(
        &self,
        lexical: Lexical,
        query: &[f32],
        vectors: &super::semantic::QuestionVectors,
        weight: f32,
        k: usize,
        now: DateTime<FixedOffset>,
    ) -> Result<Vec<Hit>, KnowledgeError> {
        if vectors.len() != self.questions.len() {
            return Err(KnowledgeError::Damaged {
                shop: format!("generation {}", self.generation),
                reason: format!(
                    "{} question vectors for {} questions",
                    vectors.len(),
                    self.questions.len()
                ),
            });
        }
        let mut by_entry = lexical.0;
        // Best cosine per entry, and which question gave it.
        let mut best: HashMap<u32, (f32, usize)> = HashMap::new();
        for (qid, q) in self.questions.iter().enumerate() {
            let c = super::semantic::dot(query, vectors.get(qid));
            let slot = best.entry(q.entry).or_insert((f32::MIN, qid));
            if c > slot.0 {
                *slot = (c, qid);
            }
        }
        let mut hits: Vec<Hit> = Vec::with_capacity(best.len());
        for (e, (mut cosine, qid)) in best {
            if let Some(answer) = vectors.answer(e as usize) {
                let a = super::semantic::dot(query, answer);
                cosine = (1.0 - super::semantic::ANSWER_SHARE) * cosine
                    + super::semantic::ANSWER_SHARE * a;
            }
            let entry = &self.entries[e as usize];
            if !entry.is_active(now) {
                continue;
            }
            let mut hit = by_entry.remove(&e).unwrap_or_else(|| Hit {
                entry: entry.clone(),
                score: 0.0,
                bm25: 0.0,
                overlap: 0.0,
                answer: 0.0,
                cosine: 0.0,
                matched: entry
                    .questions()
                    .nth(self.question_position(qid as u32, e))
                    .unwrap_or(&entry.question)
                    .to_string(),
            });
            hit.cosine = cosine;
            hit.score = (1.0 - weight) * hit.score + weight * vectors.above_background(cosine);
            hits.push(hit);
        }
        sort_hits(&mut hits, |h| h.cosine);
        hits.truncate(k);
        Ok(hits)
    }

    /// Which of its entry's questions (0 = the standard one) question document `qid` is.
    fn question_position(&self, qid: u32, entry: u32) -> usize {
        let mut first = qid as usize;
        while first > 0 && self.questions[first - 1].entry == entry {
            first -= 1;
        }
        qid as usize - first
    }

    /// BM25 top documents on one field, as (score, question number): what tantivy's `TopDocs`
    /// over a `BooleanQuery` of one `TermQuery` per term returns (best score first, ties by
    /// document), computed straight from the postings lists. A FAQ query has tens of terms (the
    /// analyzer adds Chinese bigrams) over a small index, where the query machinery (a weight, a
    /// boxed scorer with its decoding buffers and a union over them, per term and query) cost more
    /// than reading the postings: under load the two searches were a quarter of the server's CPU
    /// (perf). The postings, field norms and BM25 weights are still tantivy's.
    fn run(
        &self,
        postings: &FieldPostings,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<(f32, u32)>, KnowledgeError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut scores = vec![0.0f32; self.qids.len()];
        let mut matched: Vec<u32> = Vec::new();
        for term in terms {
            let Some(found) = postings.terms.get(term.as_str()) else {
                continue;
            };
            let weight = &postings.weights[&found.doc_freq];
            for (segment, info) in &found.infos {
                let (inverted, norms) = &postings.segments[*segment as usize];
                let base = self.bases[*segment as usize];
                let mut block = inverted
                    .read_block_postings_from_terminfo(info, IndexRecordOption::WithFreqs)
                    .map_err(tantivy::TantivyError::from)?;
                while block.block_len() > 0 {
                    for (&doc, &freq) in block.docs().iter().zip(block.freqs()) {
                        let slot = &mut scores[(base + doc) as usize];
                        // A term's BM25 is never 0 (its idf is positive), so 0 means unseen.
                        if *slot == 0.0 {
                            matched.push(base + doc);
                        }
                        *slot += weight.score(norms.fieldnorm_id(doc), freq);
                    }
                    block.advance();
                }
            }
        }
        // Best first, ties by document, as tantivy's `TopDocs` orders them.
        let order = |a: &u32, b: &u32| {
            scores[*b as usize]
                .total_cmp(&scores[*a as usize])
                .then(a.cmp(b))
        };
        if matched.len() > limit {
            matched.select_nth_unstable_by(limit - 1, order);
            matched.truncate(limit);
        }
        matched.sort_unstable_by(order);
        Ok(matched
            .into_iter()
            .filter_map(|doc| {
                let qid = self.qids[doc as usize];
                (qid != u32::MAX).then_some((scores[doc as usize], qid))
            })
            .collect())
    }
}

/// The overlap signal: F1 of the idf-weighted terms the query and a question share.
fn overlap(query: &[(Option<u32>, f32)], query_idf: f32, question: &QuestionDoc) -> f32 {
    let shared: f32 = query
        .iter()
        .filter(|(id, _)| id.is_some_and(|id| question.terms.binary_search(&id).is_ok()))
        .map(|(_, w)| w)
        .sum();
    if shared <= 0.0 {
        return 0.0;
    }
    let recall = shared / query_idf;
    let precision = shared / question.idf;
    2.0 * precision * recall / (precision + recall)
}

/// One field's postings lists as a query reads them, looked up once when the index is built: each
/// term's place in every segment (no term dictionary lookup per query) and tantivy's BM25 weight
/// for each document frequency that occurs (a term's weight depends on it only through that, so
/// a shop has a few hundred weights, not one per term).
struct FieldPostings {
    terms: HashMap<String, TermPostings>,
    weights: HashMap<u32, Bm25Weight>,
    /// Each segment's inverted index and field norms for the field.
    segments: Vec<(Arc<InvertedIndexReader>, FieldNormReader)>,
}

struct TermPostings {
    /// Over all segments.
    doc_freq: u32,
    /// (segment, where its postings are) for each segment holding the term.
    infos: Vec<(u32, TermInfo)>,
}

impl FieldPostings {
    fn of(searcher: &Searcher, field: Field) -> Result<FieldPostings, KnowledgeError> {
        let mut terms: HashMap<String, TermPostings> = HashMap::new();
        let mut segments = Vec::new();
        let mut tokens = 0u64;
        let mut docs = 0u64;
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let inverted = segment.inverted_index(field)?;
            tokens += inverted.total_num_tokens();
            docs += u64::from(segment.max_doc());
            let mut stream = inverted
                .terms()
                .stream()
                .map_err(tantivy::TantivyError::from)?;
            while stream.advance() {
                // Text fields hold UTF-8 terms, as the analyzer made them.
                let Ok(text) = std::str::from_utf8(stream.key()) else {
                    continue;
                };
                let info = stream.value().clone();
                let slot = terms.entry(text.to_string()).or_insert(TermPostings {
                    doc_freq: 0,
                    infos: Vec::new(),
                });
                slot.doc_freq += info.doc_freq;
                slot.infos.push((ord as u32, info));
            }
            let norms = segment.get_fieldnorms_reader(field)?;
            segments.push((inverted, norms));
        }
        // As tantivy's own statistics give it (`Bm25Weight::for_terms` with one term).
        let average_fieldnorm = tokens as f32 / docs.max(1) as f32;
        let weights = terms
            .values()
            .map(|t| {
                let w = Bm25Weight::for_one_term_without_explain(
                    u64::from(t.doc_freq),
                    docs,
                    average_fieldnorm,
                );
                (t.doc_freq, w)
            })
            .collect();
        Ok(FieldPostings {
            terms,
            weights,
            segments,
        })
    }
}

fn dedup_in_order(terms: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
    use tantivy::Term;

    /// Documents with any of `terms` in `field`, scored by BM25: the query [`ShopIndex::run`]
    /// stands in for.
    fn any_of(field: Field, terms: &[String]) -> BooleanQuery {
        BooleanQuery::new(
            terms
                .iter()
                .map(|t| {
                    let q: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_text(field, t),
                        IndexRecordOption::WithFreqs,
                    ));
                    (Occur::Should, q)
                })
                .collect(),
        )
    }

    /// [`ShopIndex::run`] scores the postings itself, and must rank as tantivy's own query does,
    /// with the same scores: a stale weight, a wrong field norm or a lost segment would shift
    /// every FAQ score with nothing failing but the eval (an earlier version keyed its statistics
    /// as bytes, every lookup missed, and StackFAQ hit@1 fell from 0.72 to 0.63). The sums may
    /// differ in the last bit, since tantivy adds a document's term scores in another order.
    #[test]
    fn ranks_and_scores_as_tantivys_own_query() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let entries = super::super::import::read_file(&root.join("knowledge/demo.csv"), None)
            .expect("the demo FAQ");
        let index = ShopIndex::build(entries, Analyzer::default(), RankWeights::default(), 1)
            .expect("index");
        let f_question = index.searcher.schema().get_field("question").unwrap();
        let f_answer = index.searcher.schema().get_field("answer").unwrap();
        let mut compared = 0;
        for query in [
            "亲，满多少包邮呀",
            "退貨運費誰出？",
            "How long does shipping take?",
            "发票怎么开",
            "在吗 在吗 快递到哪了",
            "量子纠缠 spaceship",
        ] {
            let terms = index.analyzer.terms(query);
            for (field, postings, limit) in [
                (f_question, &index.question_postings, CANDIDATE_DOCS),
                (f_answer, &index.answer_postings, 5),
            ] {
                let theirs = index
                    .searcher
                    .search(&any_of(field, &terms), &TopDocs::with_limit(limit))
                    .unwrap();
                let ours = index.run(postings, &terms, limit).unwrap();
                assert_eq!(ours.len(), theirs.len(), "{query}");
                for ((score, qid), (their_score, addr)) in ours.iter().zip(&theirs) {
                    let doc = index.bases[addr.segment_ord as usize] + addr.doc_id;
                    assert_eq!(
                        *qid, index.qids[doc as usize],
                        "{query}: {ours:?} {theirs:?}"
                    );
                    assert!(
                        (score - their_score).abs() <= 1e-5 * their_score,
                        "{query}: {score} vs {their_score}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 50, "only {compared} documents compared");
    }
}
