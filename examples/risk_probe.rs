//! Life-care development probe: on SOS-1K's development folds (or one split), how many high-risk
//! posts fire, how many more an ungated model would catch at each threshold, and what that costs
//! in false alarms on ordinary queries; and the lengths of the posts still missed. Counts only:
//! no post text is ever printed.
//!
//! `cargo run --release --example risk_probe -- [dev|testdata|foldN] [MODEL_DIR]`
use std::path::Path;
use std::sync::Arc;

use honeydesk::config::{BUNDLED_TRAIN, BUNDLED_VAL};
use honeydesk::eval::risk::sos1k;
use honeydesk::nlu::{data, datasets};
use honeydesk::risk::{model, RiskDetector};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let split = args.get(1).cloned().unwrap_or("dev".into());
    let mdir = args.get(2).cloned().unwrap_or(model::BUNDLED_MODEL.into());
    let shared = datasets::shared_data_dir();
    if !shared.join("sos1k_zh_suicide_risk").exists() {
        eprintln!("no SOS-1K under {}: nothing to probe", shared.display());
        std::process::exit(2);
    }
    let m = Arc::new(model::LifeCareModel::load(Path::new(&mdir)).unwrap());
    let det = RiskDetector::default().with_model(m.clone());
    let splits: Vec<String> = if split == "dev" {
        (1..=5).map(|i| format!("fold{i}")).collect()
    } else {
        vec![split]
    };
    let mut high = Vec::new();
    for s in &splits {
        let p = shared.join(format!("sos1k_zh_suicide_risk/binary/{s}_twoClass.tsv"));
        for (t, h) in sos1k(&p).unwrap() {
            if h {
                high.push(t);
            }
        }
    }
    let smp: Vec<String> = datasets::smp2019(&shared.join("smp2019_ecdt_nlu/train.json"))
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    let mut bundled: Vec<String> = data::load(Path::new(BUNDLED_TRAIN))
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    bundled.extend(
        data::load(Path::new(BUNDLED_VAL))
            .unwrap()
            .into_iter()
            .map(|e| e.text),
    );
    let clinc: Vec<String> = datasets::clinc150(&shared.join("clinc150/data_full.json"))
        .unwrap()
        .test
        .into_iter()
        .filter(|e| e.intent.is_some())
        .map(|e| e.text)
        .collect();
    let bank: Vec<String> = datasets::banking77(&shared.join("banking77/train.csv"))
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    let sets: Vec<(&str, &Vec<String>)> = vec![
        ("high", &high),
        ("smp", &smp),
        ("bundled", &bundled),
        ("clinc", &clinc),
        ("bank", &bank),
    ];
    let thresholds = [0.5f32, 0.7, 0.8, 0.9, 0.95, 0.98];
    for (name, set) in sets {
        let fired: Vec<bool> = set.iter().map(|t| det.is_life_care(t)).collect();
        let refs: Vec<&str> = set.iter().map(String::as_str).collect();
        let p = m.probabilities(&refs).unwrap();
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
}
