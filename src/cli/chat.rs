//! `honeydesk chat`: talk to the bot in a terminal.

use std::path::Path;

use anyhow::Result;
use honeydesk::config::Config;
use honeydesk::runtime::Assembly;

/// The dialogue engine on stdin, one message per line: `settings` as `serve` takes them, and
/// `dialog`, a settings file that must exist when given.
pub fn run(shop: &str, settings: &Config, dialog: Option<&Path>, json: bool) -> Result<()> {
    use honeydesk::dialog::{Action, Context, Conversation, DialogConfig};
    use std::io::BufRead;
    let mut assembly = Assembly::new(settings);
    if let Some(path) = dialog {
        assembly = assembly.dialog_config(DialogConfig::load(path)?);
    }
    let assembled = assembly.build()?;
    for note in &assembled.notes {
        eprintln!("{note}");
    }
    let engine = assembled.engine;
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
