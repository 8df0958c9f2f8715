//! Life-care development probe: on SOS-1K's development folds (or one split), how many high-risk
//! posts fire, how many more an ungated model would catch at each threshold, and what that costs
//! in false alarms on ordinary queries; and the lengths of the posts still missed. Counts only:
//! no post text is ever printed.
//!
//! ```sh
//! cargo run --release --example risk_probe -- [dev|testdata|foldN] [MODEL_DIR]
//! # how many missed high-risk posts, and how many ordinary queries, contain each word
//! cargo run --release --example risk_probe -- words [dev|foldN] WORD...
//! ```
use std::path::Path;
use std::sync::Arc;

use honeydesk::config::{BUNDLED_TRAIN, BUNDLED_VAL};
use honeydesk::eval::risk::MeasuredSets;
use honeydesk::nlu::{data, datasets};
use honeydesk::risk::{model, RiskDetector};

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let words_mode = args.first().is_some_and(|a| a == "words");
    if words_mode {
        args.remove(0);
    }
    let split = args.first().cloned().unwrap_or("dev".into());
    let shared = datasets::shared_data_dir();
    if !shared.join("sos1k_zh_suicide_risk").exists() {
        eprintln!("no SOS-1K under {}: nothing to probe", shared.display());
        std::process::exit(2);
    }
    let splits: Vec<String> = if split == "dev" {
        (1..=5).map(|i| format!("fold{i}")).collect()
    } else {
        vec![split]
    };
    let splits: Vec<&str> = splits.iter().map(String::as_str).collect();
    let mut bundled = data::load(Path::new(BUNDLED_TRAIN))?;
    bundled.extend(data::load(Path::new(BUNDLED_VAL))?);
    let sets = MeasuredSets::load(&shared, &bundled, &splits)?;
    let high = sets.sos1k_posts(true).unwrap_or_default();

    let mdir = if words_mode {
        model::BUNDLED_MODEL.to_string()
    } else {
        args.get(1).cloned().unwrap_or(model::BUNDLED_MODEL.into())
    };
    let m = Arc::new(model::LifeCareModel::load(Path::new(&mdir))?);
    let det = RiskDetector::default().with_model(m.clone());

    if words_mode {
        let missed: Vec<&str> = high
            .iter()
            .copied()
            .filter(|t| !det.is_life_care(t))
            .collect();
        println!("missed high-risk posts: {} of {}", missed.len(), high.len());
        for word in &args[1..] {
            let mut line = format!(
                "{word}: missed={}",
                missed.iter().filter(|t| t.contains(word.as_str())).count()
            );
            for (name, set) in sets.ordinary() {
                let n = set.iter().filter(|t| t.contains(word.as_str())).count();
                line += &format!("  {name}={n}");
            }
            println!("{line}");
        }
        return Ok(());
    }

    let mut named: Vec<(&str, Vec<&str>)> = vec![("high", high)];
    for (name, set) in sets.ordinary() {
        named.push((name, set.iter().map(String::as_str).collect()));
    }
    let thresholds = [0.5f32, 0.7, 0.8, 0.9, 0.95, 0.98];
    for (name, set) in named {
        let fired: Vec<bool> = set.iter().map(|t| det.is_life_care(t)).collect();
        let p = m.probabilities(&set)?;
        let base = fired.iter().filter(|f| **f).count();
        let mut line = format!("{name}: n={} fired={base}", set.len());
        for t in thresholds {
            let u = fired
                .iter()
                .zip(&p)
                .filter(|(f, p)| **f || **p >= t)
                .count();
            line += &format!("  u@{t}={u}");
        }
        if name == "high" {
            let mut lens = [0usize; 5];
            for (t, f) in set.iter().zip(&fired) {
                if !f {
                    let n = t.chars().count();
                    lens[match n {
                        0..=10 => 0,
                        11..=20 => 1,
                        21..=40 => 2,
                        41..=80 => 3,
                        _ => 4,
                    }] += 1;
                }
            }
            line += &format!("  miss-lens(<=10,<=20,<=40,<=80,>80)={lens:?}");
        }
        println!("{line}");
    }
    Ok(())
}
