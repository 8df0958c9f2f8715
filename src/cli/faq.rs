//! `honeydesk faq ...`: import, export, search and evaluate merchant FAQs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};

use honeydesk::eval::faq::{self as faq_eval, FaqBench, RetrievalMetrics};
use honeydesk::knowledge::{
    self, import, Analyzer, Format, ImportMode, Knowledge, RankWeights, Segmenter,
};
use honeydesk::nlu::datasets;

#[derive(Subcommand)]
pub enum FaqCommand {
    /// Import a CSV, TSV, XLSX, JSON or JSONL file as the shop's FAQ (all or nothing).
    Import {
        #[arg(long)]
        shop: String,
        /// Add to the stored FAQ (same id replaces) instead of replacing it.
        #[arg(long)]
        merge: bool,
        /// The file's format, when its extension does not say.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Also embed the questions with this sentence encoder (kept beside the shop's entries;
        /// only new or edited questions are embedded again), for hybrid retrieval.
        #[arg(long)]
        encoder: Option<PathBuf>,
        file: PathBuf,
    },
    /// Write the shop's FAQ in an importable format.
    Export {
        #[arg(long)]
        shop: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The shop's best entries for TEXT, with scores.
    Search {
        #[arg(long)]
        shop: String,
        #[arg(long)]
        json: bool,
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        /// Search as of this time instead of now (2026-11-11 20:00, RFC 3339), for validity windows.
        #[arg(long)]
        at: Option<String>,
        /// Retrieve as `serve` does with an encoder: hybrid when the words are weak or undecided.
        #[arg(long)]
        encoder: Option<PathBuf>,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// List the shops with a stored FAQ.
    Shops,
    /// Measure retrieval (hit@1, hit@3, MRR, MAP) for plain BM25 and honeydesk's ranking.
    Eval {
        /// StackFAQ's stackExchange-FAQ.json (default: ../shared/data/stackfaq).
        #[arg(long, conflicts_with = "file")]
        stackfaq: Option<Option<PathBuf>>,
        /// A FAQ file; its similar questions are split into indexed ones and queries.
        #[arg(long)]
        file: Option<PathBuf>,
        /// With --file: index the whole FAQ and ask these questions instead (JSONL of
        /// {"text", "faq": ID or null for one the FAQ does not cover}); nothing is tuned.
        #[arg(long, requires = "file")]
        queries: Option<PathBuf>,
        /// Share of each entry's paraphrases indexed as similar questions; the rest are queries.
        #[arg(long, default_value_t = 0.5)]
        indexed: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// How CJK text is cut into terms; `all` compares every segmenter.
        #[arg(long, value_enum, default_value = "bigram")]
        segmenter: SegmenterChoice,
        /// The re-ranker's weights for BM25, overlap and answer match (default 0.3,0.55,0.15).
        #[arg(long, value_parser = parse_weights)]
        weights: Option<RankWeights>,
        /// Also measure hybrid retrieval with this sentence encoder: the cosine weight tuned on
        /// half the queries, measured on the other half.
        #[arg(long)]
        encoder: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn parse_weights(s: &str) -> Result<RankWeights, String> {
    let parts: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>().map_err(|e| format!("'{p}': {e}")))
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [bm25, overlap, answer] if parts.iter().all(|w| *w >= 0.0) => Ok(RankWeights {
            bm25,
            overlap,
            answer,
        }),
        _ => Err("expected three non-negative weights: BM25,OVERLAP,ANSWER".into()),
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum SegmenterChoice {
    Bigram,
    Jieba,
    All,
}

pub fn run(command: FaqCommand, data_dir: &Path) -> Result<()> {
    let store = || Knowledge::open(data_dir, Analyzer::default(), RankWeights::default());
    let with = |encoder: &Option<PathBuf>| -> Result<Knowledge> {
        Ok(match encoder {
            None => store(),
            Some(dir) => {
                let encoder = super::encoder::load_encoder(dir, "cpu")?;
                let policy = knowledge::HybridPolicy::for_encoder(&encoder);
                store().with_semantic(encoder, policy)
            }
        })
    };
    match command {
        FaqCommand::Import {
            shop,
            merge,
            format,
            encoder,
            file,
        } => {
            let mode = if merge {
                ImportMode::Merge
            } else {
                ImportMode::Replace
            };
            let n = with(&encoder)?.import_file(&shop, &file, format, mode)?;
            eprintln!(
                "imported {n} entries into shop '{shop}' ({})",
                data_dir.display()
            );
            Ok(())
        }
        FaqCommand::Export { shop, format, out } => {
            let entries = store().entries(&shop)?;
            let text = match format {
                ExportFormat::Csv => import::write_csv(&entries),
                ExportFormat::Jsonl => import::write_jsonl(&entries),
            };
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
        FaqCommand::Search {
            shop,
            json,
            k,
            at,
            encoder,
            text,
        } => {
            let now = match at {
                Some(at) => import::parse_time(&at, false)
                    .with_context(|| format!("--at '{at}' is not a date or time"))?,
                None => honeydesk::domain::now(),
            };
            let text = text.join(" ");
            let hits = with(&encoder)?.search(&shop, &text, k, now)?;
            if json {
                let rows: Vec<_> = hits
                    .iter()
                    .map(|h| {
                        serde_json::json!({
                            "id": h.entry.id, "score": h.score, "bm25": h.bm25,
                            "overlap": h.overlap, "answer_match": h.answer,
                            "cosine": h.cosine, "matched": h.matched, "question": h.entry.question,
                            "answer": h.entry.answer,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if hits.is_empty() {
                println!("no active entry matches");
            } else {
                for h in &hits {
                    println!(
                        "{:.3}  {:<10} {}  (matched: {}; bm25 {:.2}, overlap {:.2}, answer {:.2})",
                        h.score,
                        h.entry.id,
                        h.entry.question,
                        h.matched,
                        h.bm25,
                        h.overlap,
                        h.answer
                    );
                }
            }
            Ok(())
        }
        FaqCommand::Shops => {
            for shop in store().shops() {
                println!("{shop}");
            }
            Ok(())
        }
        FaqCommand::Eval {
            stackfaq,
            file,
            queries,
            indexed,
            seed,
            segmenter,
            weights,
            encoder,
            json,
        } => {
            if !(0.0..=1.0).contains(&indexed) {
                bail!("--indexed must be between 0 and 1");
            }
            let now = honeydesk::domain::now();
            if let (Some(file), Some(queries)) = (&file, &queries) {
                let entries = import::read_file(file, None)?;
                let queries = faq_eval::held_out_queries(queries)?;
                let encoder = encoder
                    .map(|dir| crate::cli::encoder::load_encoder(&dir, "cpu"))
                    .transpose()?;
                let threshold = honeydesk::dialog::Policy::default().faq_threshold;
                let r = faq_eval::held_out(entries, &queries, encoder.as_deref(), threshold, now)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    print_held_out(&r, queries.len());
                }
                return Ok(());
            }
            let bench = match (stackfaq, file) {
                (_, Some(file)) => {
                    let entries = import::read_file(&file, None)?;
                    faq_eval::paraphrase_split(&entries, indexed, seed, now)
                }
                (Some(path), None) => {
                    let path = path.unwrap_or_else(|| {
                        datasets::shared_data_dir().join("stackfaq/stackExchange-FAQ.json")
                    });
                    faq_eval::stackfaq(&path, indexed, seed)?
                }
                (None, None) => bail!("pass --stackfaq [PATH] or --file FILE"),
            };
            if let Some(dir) = encoder {
                let encoder = crate::cli::encoder::load_encoder(&dir, "cpu")?;
                let seg = match segmenter {
                    SegmenterChoice::Jieba => Segmenter::Jieba,
                    _ => Segmenter::Bigram,
                };
                let r = faq_eval::hybrid(
                    &bench,
                    Analyzer::new(seg),
                    weights.unwrap_or_default(),
                    &encoder,
                    seed,
                    now,
                )?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!(
                        "{} entries, {} queries; cosine weight tuned on {} of them",
                        bench.entries.len(),
                        bench.queries.len(),
                        bench.queries.len() / 2
                    );
                    for (w, map) in &r.tuning {
                        println!("  weight {w:.1}: MAP {map:.4} (tuning half)");
                    }
                    println!("ranker (other half)       hit@1   hit@3   MRR     MAP");
                    for (name, m) in [
                        ("honeydesk lexical", r.lexical),
                        ("cosine", r.cosine),
                        (&*format!("hybrid {:.1}", r.weight), r.hybrid),
                        (
                            &*format!("hybrid {:.1}, all queries", r.weight),
                            r.hybrid_all,
                        ),
                        (
                            &*format!(
                                "gated {:.1} ({:.0}% asked)",
                                r.gated_weight,
                                r.gated_share * 100.0
                            ),
                            r.gated,
                        ),
                    ] {
                        println!(
                            "{name:<25} {:.4}  {:.4}  {:.4}  {:.4}",
                            m.hit_at_1, m.hit_at_3, m.mrr, m.map
                        );
                    }
                }
                return Ok(());
            }
            evaluate(&bench, segmenter, weights.unwrap_or_default(), json)
        }
    }
}

pub(crate) fn print_held_out(r: &faq_eval::HeldOutReport, total: usize) {
    println!(
        "{} questions, {} the FAQ covers, {} it does not",
        total,
        total - r.uncovered,
        r.uncovered
    );
    println!("ranker (covered)          hit@1   hit@3   MRR");
    let rows = [
        ("honeydesk lexical".to_string(), Some(r.lexical)),
        ("cosine".to_string(), r.cosine),
        (format!("hybrid {:.1}", r.weight), r.hybrid),
        (format!("gated hybrid {:.1}", r.weight), r.gated),
    ];
    for (name, m) in rows {
        if let Some(m) = m {
            println!(
                "{name:<25} {:.4}  {:.4}  {:.4}",
                m.hit_at_1, m.hit_at_3, m.mrr
            );
        }
    }
    // With no uncovered question there is nothing to decline: say nothing rather than 0%.
    let declines = |share: f64| {
        if r.uncovered == 0 {
            String::new()
        } else {
            format!(", declines {:.1}% of uncovered ones", share * 100.0)
        }
    };
    println!(
        "at the FAQ threshold {:.2}: lexical answers {:.1}% of covered questions right{}",
        r.threshold,
        r.lexical_answered_right * 100.0,
        declines(r.lexical_declined)
    );
    if let (Some(right), Some(declined)) = (r.gated_answered_right, r.gated_declined) {
        println!(
            "                          gated hybrid answers {:.1}% right{}",
            right * 100.0,
            declines(declined)
        );
    }
}

fn evaluate(
    bench: &FaqBench,
    segmenter: SegmenterChoice,
    weights: RankWeights,
    json: bool,
) -> Result<()> {
    let segmenters: &[Segmenter] = match segmenter {
        SegmenterChoice::Bigram => &[Segmenter::Bigram],
        SegmenterChoice::Jieba => &[Segmenter::Jieba],
        SegmenterChoice::All => &[Segmenter::Bigram, Segmenter::Jieba],
    };
    let rankers = [("bm25", RankWeights::BM25_ONLY), ("honeydesk", weights)];
    let indexed_similar: usize = bench.entries.iter().map(|e| e.similar.len()).sum();
    if !json {
        println!(
            "{} entries, {} indexed similar questions, {} queries",
            bench.entries.len(),
            indexed_similar,
            bench.queries.len()
        );
        println!("segmenter  ranker      hit@1   hit@3   MRR     MAP");
    }
    let mut rows = Vec::new();
    for &seg in segmenters {
        for (name, weights) in rankers {
            let m: RetrievalMetrics =
                faq_eval::run(bench, Analyzer::new(seg), weights, honeydesk::domain::now())?;
            if json {
                rows.push(serde_json::json!({"segmenter": seg, "ranker": name, "weights": weights, "metrics": m}));
            } else {
                println!(
                    "{:<10} {:<10} {:.4}  {:.4}  {:.4}  {:.4}",
                    format!("{seg:?}").to_lowercase(),
                    name,
                    m.hit_at_1,
                    m.hit_at_3,
                    m.mrr,
                    m.map
                );
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
