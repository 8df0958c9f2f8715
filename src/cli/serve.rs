//! `honeydesk serve`, and `honeydesk keys` for the API keys it checks.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;

use honeydesk::config::{Config, BUNDLED_TRAIN, BUNDLED_VAL, DEMO_SHOP};
use honeydesk::domain::Role;
use honeydesk::handoff::{Agent, HandoffStore, MemoryHandoff};
use honeydesk::nlu::{self, TrainConfig};
use honeydesk::runtime::Assembly;
use honeydesk::server::auth::create_key;
use honeydesk::store::{ChatStore, SqliteStore};

/// Where `serve` keeps the demo keys it made on first start, readable by the owner only.
const DEMO_KEYS: &str = "demo-keys.txt";

pub fn run(config: Config) -> Result<()> {
    // The server's models read one message at a time, far too small for candle to gain from
    // splitting an op over threads: with its default (a thread per core) every forward pass
    // waits on its pool's other thread, and the server's throughput fell by a quarter. The
    // concurrency is across messages, on tokio's blocking threads. Set before candle's pool is
    // first built; an operator's own RAYON_NUM_THREADS wins.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let device = nlu::device(&config.device)?;
    if !config.model_dir.join("meta.json").exists() {
        eprintln!(
            "no intent model in {}: training it from {BUNDLED_TRAIN}",
            config.model_dir.display()
        );
        let cfg = TrainConfig {
            device: device.clone(),
            ..TrainConfig::default()
        };
        super::train::train_to(
            Path::new(BUNDLED_TRAIN),
            Some(Path::new(BUNDLED_VAL)),
            &config.model_dir,
            &cfg,
        )?;
    }
    // An encoder head in --model brings its cascade: encoder passes get a pool of their own, one
    // thread short of the cores, so the async server always keeps one.
    let encoder_threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1);
    let assembled = Assembly::new(&config)
        .encoder_threads(encoder_threads)
        .build()?;
    for note in &assembled.notes {
        eprintln!("{note}");
    }
    if assembled.engine.intents().head().is_some() {
        eprintln!("encoder passes: {encoder_threads} thread(s)");
    }
    let engine = assembled.engine;
    // Before the first shopper, not on the first shopper's message.
    honeydesk::risk::warm_up();
    let watch = honeydesk::dialog::ConfigWatch::new(&config.dialog_config);
    let store = Arc::new(
        SqliteStore::open(&config.data_dir)
            .with_context(|| format!("opening the database in {}", config.data_dir.display()))?,
    );
    let handoff = MemoryHandoff::durable(store.clone())
        .map_err(|e| anyhow::anyhow!("loading queues and agents: {e}"))?;
    let demo = demo_keys(&config.data_dir, store.as_ref(), &handoff)?;
    let writer = store.clone();
    let state = Arc::new(
        honeydesk::server::AppState::new(engine, Some(watch), store, handoff)
            .with_limits(config.per_ip)
            .with_echo(config.echo),
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        eprintln!("honeydesk listening on http://{addr}");
        eprintln!("  storefront with the chat widget: http://{addr}/");
        if let Some(keys) = demo {
            let token = |role: &str| {
                keys.lines()
                    .find(|l| l.starts_with(role))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("")
                    .to_string()
            };
            eprintln!(
                "  agent console:    http://{addr}/agent#token={}",
                token("agent")
            );
            eprintln!(
                "  merchant console: http://{addr}/merchant#key={}",
                token("merchant")
            );
            eprintln!("  operator key:     {}", token("operator"));
            eprintln!(
                "  (demo keys are kept in {})",
                config.data_dir.join(DEMO_KEYS).display()
            );
        }
        honeydesk::server::run(listener, state, async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("shutting down: draining connections");
        })
        .await?;
        // The last queue and agent changes (agents going away as their sockets close).
        writer.flush().context("writing the last changes")?;
        Ok(())
    })
}

/// On the first start (no keys at all), make an operator key, a merchant key for the demo shop and
/// a demo agent serving every queue, and keep their tokens in `DATA_DIR/demo-keys.txt` so a
/// newcomer can open the consoles. Returns that file's text.
fn demo_keys(
    data_dir: &Path,
    store: &dyn ChatStore,
    handoff: &MemoryHandoff,
) -> Result<Option<String>> {
    let path = data_dir.join(DEMO_KEYS);
    if store.key_count()? == 0 {
        let mut agent = Agent::new("amy", honeydesk::domain::QUEUES, 5);
        agent.name = "小美 Amy".into();
        agent.supervisor = true;
        handoff.add_agent(agent);
        let operator = create_key(store, &Role::Operator, "demo operator")?;
        let merchant = create_key(
            store,
            &Role::Merchant {
                shop: DEMO_SHOP.into(),
            },
            "demo merchant",
        )?;
        let agent = create_key(
            store,
            &Role::Agent {
                agent: "amy".into(),
            },
            "demo agent",
        )?;
        let text = format!(
            "operator  {operator}\nmerchant  {merchant}  (shop {DEMO_SHOP})\nagent     {agent}  (amy, every queue)\n"
        );
        write_private(&path, &text)?;
    }
    Ok(std::fs::read_to_string(&path).ok())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its token (shown only now; the store keeps its hash).
    Add {
        /// operator, merchant or agent.
        #[arg(long)]
        role: String,
        /// The merchant's shop; for an agent, the shop it works for (none: every shop).
        #[arg(long)]
        shop: Option<String>,
        /// The agent's id (created or updated with the options below).
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Queues the agent serves, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "general")]
        skills: Vec<String>,
        #[arg(long, default_value_t = 5)]
        capacity: usize,
        #[arg(long)]
        supervisor: bool,
        #[arg(long, default_value = "")]
        label: String,
    },
}

/// `keys` works on the database directly; a running server sees new keys at once and new agents
/// after a restart.
pub fn keys(command: KeysCommand, data_dir: &Path) -> Result<()> {
    let store = Arc::new(SqliteStore::open(data_dir)?);
    match command {
        KeysCommand::Add {
            role,
            shop,
            agent,
            name,
            skills,
            capacity,
            supervisor,
            label,
        } => {
            let role = match (role.as_str(), shop.clone(), agent) {
                ("operator", _, _) => Role::Operator,
                ("merchant", Some(shop), _) => {
                    honeydesk::knowledge::check_shop(&shop)?;
                    Role::Merchant { shop }
                }
                ("agent", _, Some(id)) => {
                    let handoff = MemoryHandoff::durable(store.clone())
                        .map_err(|e| anyhow::anyhow!("loading agents: {e}"))?;
                    let skills: Vec<&str> = skills.iter().map(String::as_str).collect();
                    for s in &skills {
                        anyhow::ensure!(
                            honeydesk::domain::QUEUES.contains(s),
                            "unknown queue '{s}'; queues: {}",
                            honeydesk::domain::QUEUES.join(", ")
                        );
                    }
                    let mut a = Agent::new(&id, &skills, capacity);
                    a.name = name.unwrap_or_else(|| id.clone());
                    a.supervisor = supervisor;
                    a.shop = shop;
                    a.status = honeydesk::handoff::AgentStatus::Away;
                    handoff.add_agent(a);
                    Role::Agent { agent: id }
                }
                ("merchant", None, _) => anyhow::bail!("a merchant key needs --shop"),
                ("agent", _, None) => anyhow::bail!("an agent key needs --agent ID"),
                (other, _, _) => {
                    anyhow::bail!("unknown role '{other}'; roles: operator, merchant, agent")
                }
            };
            let token = create_key(store.as_ref(), &role, &label)?;
            println!("{token}");
            Ok(())
        }
    }
}
