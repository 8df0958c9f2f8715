//! The `honeydesk` command: parse the command line, call the library, turn errors into exit codes.

/// mimalloc instead of glibc's malloc: under load glibc returned freed memory to the system and
/// took it back (malloc_consolidate, unlink_chunk and page faults in perf), a cost paid on the
/// ack path; mimalloc keeps per-thread free lists and frees to the system lazily.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

mod cli;

use honeydesk::config::{Config, BUNDLED_MODEL, DEMO_FAQ, DEMO_SHOP};
use honeydesk::eval::intent::{IntentMetrics, Scored};
use honeydesk::knowledge::{Analyzer, ImportMode, Knowledge, RankWeights};
use honeydesk::nlu::{self, data, datasets, train::EpochReport, IntentModel, TrainConfig};

#[derive(Parser)]
#[command(
    name = "honeydesk",
    version,
    about = "A customer-service chatbot runtime for online shops"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum EncoderCommand {
    /// Encoder throughput: sentences per second at batch 1 and batch 32 on the texts of --data.
    Bench {
        #[arg(long)]
        encoder: PathBuf,
        #[arg(long)]
        data: PathBuf,
        /// At most this many texts.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// An e5 folder's matrices: 4-bit (q4) or expanded to f32 at load.
        #[arg(long, default_value = "f32")]
        precision: String,
    },
    /// Sentence vectors of TEXT, one JSON array per line (as a shopper's message, or with
    /// --passage as an FAQ answer).
    Embed {
        #[arg(long)]
        encoder: PathBuf,
        #[arg(long, default_value = "f32")]
        precision: String,
        #[arg(long)]
        passage: bool,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Per-message latency of the fast model alone and of the cascade in --model (an encoder
    /// head with a fitted cascade), one message at a time, on the texts of --data.
    Latency {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Train an intent model from labelled JSONL/CSV.
    Train {
        #[arg(long)]
        data: PathBuf,
        /// Validation data: progress, temperature calibration and the out-of-scope threshold.
        #[arg(long)]
        val: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Passes over the data (default 15; 20 for an encoder head).
        #[arg(long)]
        epochs: Option<usize>,
        /// Use this out-of-scope threshold instead of choosing one on --val.
        #[arg(long)]
        threshold: Option<f32>,
        #[arg(long, default_value_t = TrainConfig::default().dim)]
        dim: usize,
        /// Hidden layer width; 0 for a linear read-out.
        #[arg(long, default_value_t = TrainConfig::default().hidden.unwrap_or(0))]
        hidden: usize,
        /// Learning rate (default: the fast model's or the encoder head's own).
        #[arg(long)]
        lr: Option<f64>,
        #[arg(long)]
        batch_size: Option<usize>,
        /// Largest in-scope accuracy loss (absolute, on --val) the chosen threshold may cost.
        #[arg(long, default_value_t = TrainConfig::default().max_accuracy_drop)]
        max_accuracy_drop: f32,
        /// Chance of dropping each feature occurrence in training.
        #[arg(long, default_value_t = TrainConfig::default().feature_dropout)]
        feature_dropout: f32,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Train a softmax head on this sentence encoder's vectors (a local Hugging Face BERT
        /// folder, e.g. models/encoders/minilm from scripts/fetch-encoder.sh) instead of the
        /// fast model; --epochs, --lr, --batch-size and the threshold options apply to the head.
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// With --encoder: the fast model (trained on the same data) the head sits behind. With
        /// --val, the cascade's routing is fitted and saved with the head.
        #[arg(long, requires = "encoder")]
        fast_model: Option<PathBuf>,
        /// With --encoder: add word unigram and bigram features (hashed TF-IDF, fitted on
        /// --data) to the sentence vectors.
        #[arg(long, requires = "encoder")]
        lexical: bool,
        /// With --fast-model and --val: the most in-scope accuracy or out-of-scope recall
        /// (absolute, on --val) the cascade may lose against the encoder alone.
        #[arg(long, default_value_t = cli::encoder::CASCADE_MAX_DROP)]
        cascade_max_drop: f64,
    },
    /// Sentence encoder tools.
    Encoder {
        #[command(subcommand)]
        command: EncoderCommand,
    },
    /// Print the top intents of each TEXT.
    Classify {
        #[arg(long, default_value = BUNDLED_MODEL)]
        model: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Replay labelled logs through the engine and measure (or cross-validate intent training).
    Eval {
        /// The intents (default: what `serve` uses, the bundled cascade when e5 is fetched).
        #[arg(long)]
        model: Option<PathBuf>,
        /// The sentence encoder: for --folds, cross-validate an encoder head instead of the fast
        /// model; for an encoder-head --model, the encoder to load it with; when a log is
        /// replayed (--faq, --at, ...), the encoder of the FAQ's hybrid ranking, with lexical,
        /// cosine and hybrid reported side by side on the log's FAQ-labelled lines.
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// With --folds and --encoder: add word features (fitted on each fold's training part)
        /// to the sentence vectors.
        #[arg(long, requires = "encoder")]
        lexical: bool,
        /// Labelled log: JSONL (or .csv) with text and any of conversation, shop, intent, faq,
        /// expected, risk.
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
        /// Train and test K times on K folds of --data instead of evaluating --model.
        #[arg(long)]
        folds: Option<usize>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// A shop in the data directory (default: the demo shop from knowledge/demo.csv).
        #[arg(long, conflicts_with = "faq")]
        shop: Option<String>,
        /// A FAQ file to answer from instead of a stored shop.
        #[arg(long)]
        faq: Option<PathBuf>,
        /// Dialogue settings (default: ./honeydesk.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, env = "HONEYDESK_DATA", default_value = "data")]
        data_dir: PathBuf,
        /// Count and skip bad lines instead of stopping at the first.
        #[arg(long)]
        skip_bad: bool,
        /// Vary the thresholds and gap over a grid: automation against answer error.
        #[arg(long)]
        sweep: bool,
        /// The answer error rate the sweep's recommendation may not exceed.
        #[arg(long, default_value_t = 0.05)]
        target_error: f64,
        /// Write a self-contained HTML report into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Evaluate as of this time (FAQ validity windows), default now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Sweep the thresholds on labelled logs and recommend (with --apply, write) the shop's setting
    /// with the most automation at or under the target answer error rate.
    Tune {
        #[arg(long, default_value = DEMO_SHOP)]
        shop: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 0.05)]
        target_error: f64,
        #[arg(long, default_value = "honeydesk.toml")]
        config: PathBuf,
        /// Write the recommended thresholds into the shop's section of --config.
        #[arg(long)]
        apply: bool,
        /// The intents (default: what `serve` uses).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Answer from this FAQ file instead of the stored shop.
        #[arg(long)]
        faq: Option<PathBuf>,
        #[arg(long, env = "HONEYDESK_DATA", default_value = "data")]
        data_dir: PathBuf,
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write a public data set from ../shared/data as JSONL files (train/val/test).
    Datasets {
        #[arg(value_enum)]
        name: DatasetName,
        #[arg(long)]
        out: PathBuf,
        /// The shared data directory (default ../shared/data, or HONEYDESK_SHARED_DATA).
        #[arg(long)]
        src: Option<PathBuf>,
        /// Write a few-shot split instead (train.jsonl with this many examples per label,
        /// val.jsonl, test.jsonl; labels with fewer than twice as many are left out).
        #[arg(long)]
        shots: Option<usize>,
        /// The few-shot split's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Merchant FAQs: import, export, search, evaluate.
    Faq {
        /// Where shops' FAQs are stored.
        #[arg(long, env = "HONEYDESK_DATA", default_value = "data", global = true)]
        data_dir: PathBuf,
        #[command(subcommand)]
        command: cli::faq::FaqCommand,
    },
    /// Risk signals: check a message, measure life-care.
    Risk {
        #[command(subcommand)]
        command: cli::risk::RiskCommand,
    },
    /// Talk to the bot from the terminal: one shopper message per line, the decision and its
    /// evidence printed for each (no human queue; handoffs are shown, not routed).
    Chat {
        #[arg(long, default_value = DEMO_SHOP)]
        shop: String,
        #[arg(long, default_value = "honeydesk.toml")]
        config: PathBuf,
        #[arg(long, default_value = BUNDLED_MODEL)]
        model: PathBuf,
        #[arg(long, env = "HONEYDESK_DATA", default_value = "data")]
        data_dir: PathBuf,
        /// Print each decision as one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// API keys for operators, merchants and agents.
    Keys {
        #[arg(long, env = "HONEYDESK_DATA", default_value = "data")]
        data_dir: PathBuf,
        #[command(subcommand)]
        command: cli::serve::KeysCommand,
    },
    /// Serve the bundled demo shop (trains the bundled intent model first if it is missing).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The intents: a fast model folder, or an encoder head with its cascade (default: the
        /// bundled cascade when multilingual-e5-small is fetched, else the bundled fast model).
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, env = "HONEYDESK_DATA", default_value = "data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Dialogue settings; followed while serving (an edit applies to the next message).
        #[arg(long, default_value = "honeydesk.toml")]
        config: PathBuf,
        /// Open websockets allowed per client address (0: no limit).
        #[arg(long, default_value_t = 256)]
        per_ip_connections: usize,
        /// Messages per second allowed per client address, burst twice that (0: no limit).
        #[arg(long, default_value_t = 50.0)]
        per_ip_rate: f64,
        /// Messages per second allowed on one websocket, burst four times that (0: no limit).
        #[arg(long, default_value_t = 5.0)]
        per_connection_rate: f64,
        /// Also serve `/v1/echo`, a bare websocket echo: the load benchmark's ceiling.
        #[arg(long)]
        echo: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DatasetName {
    Clinc150,
    Banking77,
    Smp2019,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tantivy=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            data,
            val,
            out,
            seed,
            epochs,
            threshold,
            dim,
            hidden,
            lr,
            batch_size,
            feature_dropout,
            max_accuracy_drop,
            device,
            encoder,
            fast_model,
            lexical,
            cascade_max_drop,
        } => {
            if let Some(encoder) = encoder {
                let defaults = honeydesk::nlu::head::HeadConfig::default();
                let cfg = honeydesk::nlu::head::HeadConfig {
                    seed,
                    epochs: epochs.unwrap_or(defaults.epochs),
                    // --epochs given: exactly that many passes.
                    min_steps: if epochs.is_some() {
                        0
                    } else {
                        defaults.min_steps
                    },
                    lr: lr.unwrap_or(defaults.lr),
                    batch_size: batch_size.unwrap_or(defaults.batch_size),
                    max_accuracy_drop,
                    threshold,
                    ..defaults
                };
                return cli::encoder::train(
                    &data,
                    val.as_deref(),
                    &out,
                    &encoder,
                    fast_model.as_deref(),
                    lexical,
                    cascade_max_drop,
                    &device,
                    &cfg,
                );
            }
            let cfg = TrainConfig {
                seed,
                epochs: epochs.unwrap_or(TrainConfig::default().epochs),
                // --epochs given: exactly that many passes.
                min_steps: if epochs.is_some() {
                    0
                } else {
                    TrainConfig::default().min_steps
                },
                lr: lr.unwrap_or(TrainConfig::default().lr),
                batch_size: batch_size.unwrap_or(TrainConfig::default().batch_size),
                feature_dropout,
                max_accuracy_drop,
                threshold,
                dim,
                hidden: (hidden > 0).then_some(hidden),
                device: nlu::device(&device)?,
                ..TrainConfig::default()
            };
            train_to(&data, val.as_deref(), &out, &cfg)
        }
        Command::Classify {
            model,
            json,
            device,
            text,
        } => {
            if honeydesk::nlu::head::is_head(&model) {
                return cli::encoder::classify(&model, &device, &text, json);
            }
            let model = load_model(&model, &device)?;
            for t in &text {
                let p = model.classify(t)?;
                if json {
                    let top: Vec<_> = p.ranked.iter().take(5).collect();
                    let line = serde_json::json!({"text": t, "intent": p.label(), "confidence": p.confidence, "top": top});
                    println!("{line}");
                } else {
                    println!(
                        "{t}\n  => {} (confidence {:.3}, threshold {:.3})",
                        p.label(),
                        p.confidence,
                        model.meta.threshold
                    );
                    for (label, prob) in p.ranked.iter().take(5) {
                        println!("     {prob:.3}  {label}");
                    }
                }
            }
            Ok(())
        }
        Command::Eval {
            model,
            encoder,
            lexical,
            data,
            json,
            folds,
            seed,
            device,
            shop,
            faq,
            config,
            data_dir,
            skip_bad,
            sweep,
            target_error,
            report,
            at,
        } => {
            // A head named with --model on plain labelled examples compares the tiers; the
            // default (what `serve` uses) replays the log like any other model.
            let named_head = model.as_deref().is_some_and(honeydesk::nlu::head::is_head);
            let model = model.unwrap_or_else(honeydesk::config::default_model_dir);
            match folds {
                Some(k) => {
                    let (turns, _) = honeydesk::eval::replay::load(&data, skip_bad)?;
                    let examples: Vec<data::Example> = turns
                        .into_iter()
                        .map(|t| data::Example::new(t.text, t.intent.as_deref()))
                        .collect();
                    match &encoder {
                        Some(enc) => cli::encoder::cross_validate(
                            &examples, k, seed, enc, lexical, &device, json,
                        ),
                        None => cross_validate(&examples, k, seed, &device, json),
                    }
                }
                // An encoder head on plain labelled examples: each tier and the cascade side by side.
                // With a shop, a FAQ, a time, a sweep or a report, the log is replayed through the
                // engine with the cascade, as for the fast model.
                None if named_head
                    && shop.is_none()
                    && faq.is_none()
                    && at.is_none()
                    && !sweep
                    && report.is_none() =>
                {
                    cli::encoder::eval(&model, encoder.as_deref(), &device, &data, json)
                }
                None => cli::eval::run(cli::eval::EvalArgs {
                    data,
                    model: load_intents(&model, &device)?,
                    shop,
                    faq,
                    config,
                    data_dir,
                    json,
                    skip_bad,
                    sweep,
                    target_error,
                    report,
                    at,
                    encoder,
                }),
            }
        }
        Command::Datasets {
            name,
            out,
            src,
            shots,
            seed,
        } => write_dataset(name, &out, src, shots.map(|k| (k, seed))),
        Command::Tune {
            shop,
            data,
            target_error,
            config,
            apply,
            model,
            faq,
            data_dir,
            at,
            json,
        } => cli::eval::tune(
            cli::eval::EvalArgs {
                data,
                model: load_intents(
                    &model.unwrap_or_else(honeydesk::config::default_model_dir),
                    "cpu",
                )?,
                shop: Some(shop),
                faq,
                config: Some(config.clone()),
                data_dir,
                json,
                skip_bad: false,
                sweep: true,
                target_error,
                report: None,
                at,
                encoder: None,
            },
            &config,
            apply,
        ),
        Command::Faq { data_dir, command } => cli::faq::run(command, &data_dir),
        Command::Risk { command } => cli::risk::run(command),
        Command::Encoder {
            command:
                EncoderCommand::Bench {
                    encoder,
                    data,
                    limit,
                    device,
                    precision,
                },
        } => cli::encoder::bench(&encoder, &device, &precision, &data, limit),
        Command::Encoder {
            command:
                EncoderCommand::Embed {
                    encoder,
                    precision,
                    passage,
                    text,
                },
        } => cli::encoder::embed(&encoder, &precision, passage, &text),
        Command::Encoder {
            command:
                EncoderCommand::Latency {
                    model,
                    data,
                    limit,
                    device,
                },
        } => cli::encoder::latency(&model, &device, &data, limit),
        Command::Keys { data_dir, command } => cli::serve::keys(command, &data_dir),
        Command::Chat {
            shop,
            config,
            model,
            data_dir,
            json,
        } => chat(&shop, &config, &model, &data_dir, json),
        Command::Serve {
            listen,
            model,
            data_dir,
            device,
            config,
            per_ip_connections,
            per_ip_rate,
            per_connection_rate,
            echo,
        } => {
            let config = Config {
                data_dir,
                model_dir: model.unwrap_or_else(honeydesk::config::default_model_dir),
                listen,
                device,
                dialog_config: config,
                per_ip: honeydesk::server::limits::Limits {
                    connections: per_ip_connections,
                    rate: per_ip_rate,
                    connection_rate: per_connection_rate,
                },
                echo,
            };
            cli::serve::run(config)
        }
    }
}

fn chat(shop: &str, config: &Path, model: &Path, data_dir: &Path, json: bool) -> Result<()> {
    use honeydesk::dialog::{Action, Context, Conversation, DialogConfig, Engine};
    use honeydesk::risk::model::{LifeCareModel, BUNDLED_MODEL as LIFE_CARE_MODEL};
    use std::io::BufRead;
    let config = DialogConfig::load(config)?;
    let knowledge = Knowledge::open(data_dir, Analyzer::default(), RankWeights::default());
    if shop == DEMO_SHOP && !knowledge.has_shop(DEMO_SHOP) {
        knowledge.import_file(DEMO_SHOP, Path::new(DEMO_FAQ), None, ImportMode::Replace)?;
    }
    let intents = load_model(model, "cpu")?;
    let life_care = LifeCareModel::load(Path::new(LIFE_CARE_MODEL))
        .with_context(|| format!("loading {LIFE_CARE_MODEL}"))?;
    let engine = Engine::new(
        Arc::new(intents),
        Arc::new(knowledge),
        Some(Arc::new(life_care)),
        config,
    );
    let mut conv = Conversation::new("terminal", shop);
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let ctx = Context {
            now: honeydesk::knowledge::now(),
            agents_available: 1,
        };
        let d = engine.respond(&mut conv, &line, &ctx)?;
        if json {
            println!("{}", serde_json::to_string(&d)?);
            continue;
        }
        match &d.action {
            Action::Answer { text, buttons, .. } => {
                println!("bot: {text}");
                if !buttons.is_empty() {
                    println!("     [{}]", buttons.join("] ["));
                }
            }
            Action::AskFor { text, .. } | Action::Closed { text } => println!("bot: {text}"),
            Action::Clarify { text, choices } => {
                let labels: Vec<&str> = choices.iter().map(|c| c.label.as_str()).collect();
                println!("bot: {text}\n     [{}]", labels.join("] ["));
            }
            Action::Handoff {
                reason,
                queue,
                reply,
                ..
            } => println!("bot: {reply}\n     (handed off: {reason:?} -> queue {queue})"),
            Action::Silent => println!("     (a human owns this chat; the bot stays silent)"),
        }
        println!("     rule {}", d.trace.rule);
    }
    Ok(())
}

/// The fast model in `dir`, or the cascade of the encoder head there.
fn load_intents(dir: &Path, device: &str) -> Result<nlu::cascade::Cascade> {
    nlu::cascade::load(dir, &nlu::device(device)?)
        .with_context(|| format!("loading the intent model in {}", dir.display()))
}

fn load_model(dir: &Path, device: &str) -> Result<IntentModel> {
    IntentModel::load(dir, &nlu::device(device)?)
        .with_context(|| format!("loading the intent model in {}", dir.display()))
}

fn print_epoch(r: &EpochReport) {
    let val = r.val_accuracy.map_or(String::new(), |a| {
        format!("  val accuracy {:.2}%", a * 100.0)
    });
    eprintln!(
        "epoch {:>2}/{}  loss {:.4}{val}  ({:.1}s)",
        r.epoch, r.epochs, r.loss, r.seconds
    );
}

fn train_to(data: &Path, val: Option<&Path>, out: &Path, cfg: &TrainConfig) -> Result<()> {
    let train = data::load(data)?;
    let val = val.map(data::load).transpose()?;
    eprintln!(
        "training on {} examples ({} labels){}",
        train.len(),
        train
            .iter()
            .map(|e| e.label())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        val.as_ref()
            .map_or(String::new(), |v| format!(", validating on {}", v.len()))
    );
    let report = nlu::train(&train, val.as_deref(), cfg, &mut print_epoch)?;
    report.model.save(out)?;
    let meta = &report.model.meta;
    eprintln!(
        "saved {} ({} features, temperature {:.3}, threshold {:.3}) in {:.1}s",
        out.display(),
        meta.features,
        meta.temperature,
        meta.threshold,
        meta.train_seconds
    );
    eprintln!("threshold: {}", meta.threshold_rule);
    if let Some(m) = &report.val {
        eprintln!("{}", serde_json::to_string_pretty(m)?);
    }
    Ok(())
}

fn cross_validate(
    examples: &[data::Example],
    k: usize,
    seed: u64,
    device: &str,
    json: bool,
) -> Result<()> {
    if k < 2 {
        bail!("--folds needs at least 2 folds, got {k}");
    }
    let cfg = TrainConfig {
        seed,
        device: nlu::device(device)?,
        ..TrainConfig::default()
    };
    let mut accs = Vec::new();
    let mut f1s = Vec::new();
    for fold in 0..k {
        let (train, test) = data::fold_split(examples, k, fold, seed);
        let report = nlu::train(&train, None, &cfg, &mut |_| {})?;
        let m = IntentMetrics::compute(&Scored::from_model(&report.model, &test)?, 0.0);
        eprintln!(
            "fold {}/{k}: accuracy {:.2}%  macro F1 {:.4}",
            fold + 1,
            m.accuracy * 100.0,
            m.macro_f1
        );
        accs.push(m.accuracy);
        f1s.push(m.macro_f1);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let std = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    if json {
        let out = serde_json::json!({"folds": k, "intent": {"accuracy": mean(&accs), "accuracy_std": std(&accs), "macro_f1": mean(&f1s), "macro_f1_std": std(&f1s), "per_fold_accuracy": accs}});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{k}-fold accuracy {:.2}% ± {:.2}  macro F1 {:.4} ± {:.4}",
            mean(&accs) * 100.0,
            std(&accs) * 100.0,
            mean(&f1s),
            std(&f1s)
        );
    }
    Ok(())
}

fn write_dataset(
    name: DatasetName,
    out: &Path,
    src: Option<PathBuf>,
    shots: Option<(usize, u64)>,
) -> Result<()> {
    let src = src.unwrap_or_else(datasets::shared_data_dir);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |file: &str, ex: &[data::Example]| -> Result<()> {
        let path = out.join(file);
        data::write_jsonl(&path, ex).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {} ({} examples)", path.display(), ex.len());
        Ok(())
    };
    if let Some((k, seed)) = shots {
        let all = match name {
            DatasetName::Clinc150 => {
                let d = datasets::clinc150(&src.join("clinc150/data_full.json"))?;
                d.train.into_iter().chain(d.val).chain(d.test).collect()
            }
            DatasetName::Banking77 => datasets::banking77(&src.join("banking77/train.csv"))?,
            DatasetName::Smp2019 => datasets::smp2019(&src.join("smp2019_ecdt_nlu/train.json"))?,
        };
        let split = datasets::few_shot(&all, k, seed);
        write("train.jsonl", &split.train)?;
        write("val.jsonl", &split.val)?;
        write("test.jsonl", &split.test)?;
        if !split.dropped.is_empty() {
            eprintln!(
                "left out {} labels with fewer than {} examples: {}",
                split.dropped.len(),
                2 * k,
                split.dropped.join(", ")
            );
        }
        return Ok(());
    }
    match name {
        DatasetName::Clinc150 => {
            let d = datasets::clinc150(&src.join("clinc150/data_full.json"))?;
            write("train.jsonl", &d.train)?;
            write("val.jsonl", &d.val)?;
            write("test.jsonl", &d.test)?;
        }
        DatasetName::Banking77 => write(
            "all.jsonl",
            &datasets::banking77(&src.join("banking77/train.csv"))?,
        )?,
        DatasetName::Smp2019 => write(
            "all.jsonl",
            &datasets::smp2019(&src.join("smp2019_ecdt_nlu/train.json"))?,
        )?,
    }
    Ok(())
}
