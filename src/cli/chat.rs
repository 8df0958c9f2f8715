//! `honeydesk chat`: talk to the bot in a terminal.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use honeydesk::config::{DEMO_FAQ, DEMO_SHOP};
use honeydesk::knowledge::{Analyzer, ImportMode, Knowledge, RankWeights};

/// `honeydesk chat`: the dialogue engine on stdin, one message per line.
pub fn run(shop: &str, config: &Path, model: &Path, data_dir: &Path, json: bool) -> Result<()> {
    use honeydesk::dialog::{Action, Context, Conversation, DialogConfig, Engine};
    use honeydesk::risk::model::{LifeCareModel, BUNDLED_MODEL as LIFE_CARE_MODEL};
    use std::io::BufRead;
    let config = DialogConfig::load(config)?;
    let knowledge = Knowledge::open(data_dir, Analyzer::default(), RankWeights::default());
    if shop == DEMO_SHOP && !knowledge.has_shop(DEMO_SHOP) {
        knowledge.import_file(DEMO_SHOP, Path::new(DEMO_FAQ), None, ImportMode::Replace)?;
    }
    let intents = super::train::load_model(model, "cpu")?;
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
            now: honeydesk::domain::now(),
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
