//! The `honeydesk` command: parse the command line, call the library, turn errors into exit codes.

/// mimalloc instead of glibc's malloc: under load glibc returned freed memory to the system and
/// took it back (malloc_consolidate, unlink_chunk and page faults in perf), a cost paid on the
/// ack path; mimalloc keeps per-thread free lists and frees to the system lazily.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

use honeydesk::config::{Config, BUNDLED_MODEL, DEMO_SHOP};
use honeydesk::nlu::{self, data, TrainConfig};

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
        name: cli::train::DatasetName,
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
        /// Dialogue settings (default: honeydesk.toml when it exists, else the platform's).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The intents (default: as `serve`, the bundled cascade when multilingual-e5-small is
        /// fetched, else the bundled fast model).
        #[arg(long)]
        model: Option<PathBuf>,
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
            cli::train::train_to(&data, val.as_deref(), &out, &cfg)
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
            let model = cli::train::load_model(&model, &device)?;
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
                        None => cli::train::cross_validate(&examples, k, seed, &device, json),
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
                    model: cli::train::load_intents(&model, &device)?,
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
        } => cli::train::write_dataset(name, &out, src, shots.map(|k| (k, seed))),
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
                model: cli::train::load_intents(
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
        } => {
            let settings = Config {
                data_dir,
                model_dir: model.unwrap_or_else(honeydesk::config::default_model_dir),
                ..Config::default()
            };
            cli::chat::run(&shop, &settings, config.as_deref(), json)
        }
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
