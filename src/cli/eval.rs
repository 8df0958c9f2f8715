//! `honeydesk eval --data LOGS`: replay labelled logs through the engine `serve` uses, and report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use honeydesk::config::Config;
use honeydesk::config::{DEMO_FAQ, DEMO_SHOP};
use honeydesk::dialog::DialogConfig;
use honeydesk::eval::faq as faq_eval;
use honeydesk::eval::replay::{self, ReplayMetrics, SweepPoint};
use honeydesk::knowledge::{import, ImportMode};
use honeydesk::nlu::calibrate::{curve, IntentMetrics, Scored};
use honeydesk::nlu::cascade::{self, Cascade};
use honeydesk::nlu::Example;
use honeydesk::runtime::{Assembled, Assembly};

pub struct EvalArgs {
    pub data: PathBuf,
    /// The fast model alone, or a cascade with its encoder (which then serves the FAQ too).
    pub model: Cascade,
    pub shop: Option<String>,
    pub faq: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub json: bool,
    pub skip_bad: bool,
    pub sweep: bool,
    pub target_error: f64,
    pub report: Option<PathBuf>,
    pub at: Option<String>,
    /// A sentence encoder for the FAQ's hybrid ranking, whatever `model` is; with it the report
    /// also ranks the log's FAQ-labelled lines lexically, by cosine and hybrid side by side.
    pub encoder: Option<PathBuf>,
}

const CURVE: [f32; 20] = [
    0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8,
    0.85, 0.9, 0.95,
];

/// Per-intent precision, recall and F1 at the model's threshold.
fn per_intent(scored: &[Scored], threshold: f32) -> BTreeMap<String, serde_json::Value> {
    let mut tp: BTreeMap<String, usize> = BTreeMap::new();
    let mut predicted: BTreeMap<String, usize> = BTreeMap::new();
    let mut gold: BTreeMap<String, usize> = BTreeMap::new();
    for s in scored {
        let p = s.label_at(threshold).to_string();
        *gold.entry(s.gold.clone()).or_default() += 1;
        *predicted.entry(p.clone()).or_default() += 1;
        if p == s.gold {
            *tp.entry(p).or_default() += 1;
        }
    }
    gold.iter()
        .map(|(label, &n)| {
            let t = tp.get(label).copied().unwrap_or(0) as f64;
            let pred = predicted.get(label).copied().unwrap_or(0) as f64;
            let precision = if pred > 0.0 { t / pred } else { 0.0 };
            let recall = t / n as f64;
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            (
                label.clone(),
                serde_json::json!({"support": n, "precision": precision, "recall": recall, "f1": f1}),
            )
        })
        .collect()
}

/// A log replayed through the engine, with what the reports need.
pub struct Replayed {
    pub turns: Vec<replay::LabelledTurn>,
    pub results: Vec<replay::TurnResult>,
    pub policy: honeydesk::dialog::Policy,
    pub shop: String,
    pub bad: usize,
    pub model: Arc<Cascade>,
    /// With `--encoder`: the log's FAQ-labelled lines ranked lexically, by cosine and hybrid.
    pub rankers: Option<faq_eval::HeldOutReport>,
}

/// Load the log, set up the shop and the engine exactly as `serve` would, and replay.
pub fn replayed(args: EvalArgs) -> Result<Replayed> {
    let (turns, bad) = replay::load(&args.data, args.skip_bad)?;
    let now = match &args.at {
        Some(at) => import::parse_time(at, false).with_context(|| format!("--at '{at}'"))?,
        None => honeydesk::domain::now(),
    };

    // The shop: a FAQ file or the demo shop go into a scratch data directory; --shop reads the
    // real one (the demo shop is imported there first if it is missing, as `serve` does).
    let scratch = tempfile::tempdir()?;
    let faq_file = args.faq.clone().unwrap_or_else(|| PathBuf::from(DEMO_FAQ));
    let stored = args.shop.is_some() && args.faq.is_none();
    let shop = args.shop.clone().unwrap_or_else(|| DEMO_SHOP.to_string());
    let config = Config {
        data_dir: if stored {
            args.data_dir.clone()
        } else {
            scratch.path().to_path_buf()
        },
        ..Config::default()
    };
    let mut assembly = Assembly::new(&config).intents(args.model);
    if let Some(dir) = &args.encoder {
        assembly = assembly.faq_encoder(crate::cli::encoder::load_encoder(dir, "cpu")?);
    }
    if let Some(path) = &args.config {
        assembly = assembly.dialog_config(DialogConfig::load(path)?);
    }
    if !(stored && shop == DEMO_SHOP) {
        assembly = assembly.without_demo_shop();
    }
    let Assembled {
        engine, encoder, ..
    } = assembly.build()?;
    if !stored {
        engine
            .knowledge()
            .import_file(&shop, &faq_file, None, ImportMode::Replace)?;
    }
    let policy = engine.config().policy(&shop);
    let model = engine.intents().clone();
    let quiet = args.json;
    let results = replay::replay(&engine, &turns, &shop, now, &mut |done, total| {
        if !quiet {
            eprintln!("replayed {done}/{total}");
        }
    })?;
    // The rankers side by side need the entries themselves: a stored shop's are not read back.
    let rankers = match &encoder {
        Some(encoder) if args.encoder.is_some() && args.shop.is_none() => {
            let entries = import::read_file(&faq_file, None)?;
            let queries: Vec<(String, Option<String>)> = turns
                .iter()
                .filter_map(|t| t.faq.as_ref().map(|f| (t.text.clone(), Some(f.clone()))))
                .collect();
            Some(faq_eval::held_out(
                entries,
                &queries,
                Some(encoder),
                policy.faq_threshold,
                now,
            )?)
        }
        _ => None,
    };
    Ok(Replayed {
        turns,
        results,
        policy,
        shop,
        bad,
        model,
        rankers,
    })
}

pub fn run(args: EvalArgs) -> Result<()> {
    let (json, sweep_on, target_error, report) = (
        args.json,
        args.sweep,
        args.target_error,
        args.report.clone(),
    );
    let Replayed {
        turns,
        results,
        policy,
        shop,
        bad,
        model,
        rankers,
    } = replayed(args)?;
    let metrics = ReplayMetrics::compute(&turns, &results);

    // Intent metrics on the lines labelled with an intent, from the engine's own model.
    let examples: Vec<Example> = turns
        .iter()
        .filter_map(|t| {
            t.intent
                .as_deref()
                .map(|i| Example::new(t.text.clone(), Some(i)))
        })
        .collect();
    let scored = if examples.is_empty() {
        Vec::new()
    } else {
        match model.head() {
            Some(_) => {
                let tiered = examples
                    .iter()
                    .map(|e| model.classify(&e.text))
                    .collect::<Result<Vec<_>, _>>()?;
                cascade::scored(&tiered, &examples)
            }
            None => Scored::from_model(model.fast(), &examples)?,
        }
    };
    // The cascade's tiers have each applied their own threshold already (a rejected message
    // scores as out of scope), so its metrics read the scores at 0; the fast model alone's at
    // its own threshold.
    let threshold = if model.head().is_some() {
        0.0
    } else {
        model.fast().meta.threshold
    };
    let intent = (!scored.is_empty()).then(|| IntentMetrics::compute(&scored, threshold));
    let sweep: Option<Vec<SweepPoint>> = sweep_on.then(|| replay::sweep(&turns, &results, &policy));
    let best = sweep
        .as_ref()
        .and_then(|s| replay::best_for(s, target_error).cloned());

    let out = serde_json::json!({
        "intent": intent,
        "per_intent": per_intent(&scored, threshold),
        "curve": (!scored.is_empty()).then(|| curve(&scored, &CURVE)),
        "faq": metrics.faq,
        "decision": metrics.decision,
        "risk": metrics.risk,
        "turns": metrics.turns,
        "bad_lines": bad,
        "mean_latency_us": metrics.mean_latency_us,
        "shop": shop,
        "policy": policy,
        "sweep": sweep.as_ref().map(|s| s.iter().filter(|p| p.pareto).collect::<Vec<_>>()),
        "best_for_target_error": best.as_ref().map(|b| serde_json::json!({"target": target_error, "setting": b})),
        "faq_rankers": rankers,
    });
    if let Some(dir) = &report {
        super::report::write(
            dir,
            &out,
            &turns,
            &results,
            sweep.as_deref(),
            &scored,
            threshold,
        )?;
        if !json {
            eprintln!("report written to {}", dir.join("report.html").display());
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print_text(&out, &metrics);
    if let Some(r) = &rankers {
        println!(
            "faq rankers on the {} FAQ-labelled lines:",
            r.lexical.queries
        );
        super::faq::print_held_out(r, r.lexical.queries);
    }
    Ok(())
}

/// `honeydesk tune`: sweep, recommend, and with `apply` write the shop's thresholds into the
/// config file (comments and other settings kept).
pub fn tune(args: EvalArgs, config_path: &Path, apply: bool) -> Result<()> {
    let target = args.target_error;
    let json = args.json;
    let r = replayed(args)?;
    let now = ReplayMetrics::compute(&r.turns, &r.results);
    let points = replay::sweep(&r.turns, &r.results, &r.policy);
    let Some(best) = replay::best_for(&points, target) else {
        anyhow::bail!("no setting keeps the answer error rate at or under {target}");
    };
    let summary = serde_json::json!({
        "shop": r.shop,
        "target_error": target,
        "current": {
            "intent_threshold": r.policy.intent_threshold,
            "faq_threshold": r.policy.faq_threshold,
            "ambiguity_gap": r.policy.ambiguity_gap,
            "automation_rate": now.decision.automation_rate,
            "answer_error_rate": now.decision.answer_error_rate,
        },
        "recommended": best,
        "applied": apply,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "shop {}: now intent {:.2} / faq {:.2} / gap {:.2}: automation {:.1}%, answer error {}",
            r.shop,
            r.policy.intent_threshold,
            r.policy.faq_threshold,
            r.policy.ambiguity_gap,
            now.decision.automation_rate * 100.0,
            now.decision
                .answer_error_rate
                .map_or("n/a".into(), |e| format!("{:.1}%", e * 100.0))
        );
        println!(
            "recommended for answer error <= {:.1}%: intent {:.2} / faq {:.2} / gap {:.2}: automation {:.1}%, answer error {:.1}%",
            target * 100.0,
            best.intent_threshold,
            best.faq_threshold,
            best.ambiguity_gap,
            best.automation_rate * 100.0,
            best.answer_error_rate * 100.0
        );
    }
    if apply {
        apply_thresholds(config_path, &r.shop, best)?;
        if !json {
            println!("written to [shops.{}] in {}", r.shop, config_path.display());
        }
    }
    Ok(())
}

/// Set the shop's thresholds in the TOML file, keeping everything else as written.
pub fn apply_thresholds(path: &Path, shop: &str, p: &SweepPoint) -> Result<()> {
    let change = honeydesk::dialog::PolicyOverride {
        intent_threshold: Some(p.intent_threshold),
        faq_threshold: Some(p.faq_threshold),
        ambiguity_gap: Some(p.ambiguity_gap),
        ..Default::default()
    };
    DialogConfig::write_override(path, shop, &change)?;
    Ok(())
}

fn print_text(out: &serde_json::Value, m: &ReplayMetrics) {
    let pct = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{:.2}%", x * 100.0));
    println!(
        "turns {}  conversations {}  shop {}",
        m.turns, m.decision.conversations, out["shop"]
    );
    if let Some(i) = out.get("intent").filter(|v| !v.is_null()) {
        println!(
            "intent      accuracy {}  in-scope {}  macro-F1 {:.4}  oos recall {}  oos precision {}",
            pct(i["accuracy"].as_f64()),
            pct(i["in_scope_accuracy"].as_f64()),
            i["macro_f1"].as_f64().unwrap_or(0.0),
            pct(i["oos_recall"].as_f64()),
            pct(i["oos_precision"].as_f64()),
        );
    }
    if let Some(f) = &m.faq {
        println!(
            "faq         hit@1 {}  hit@3 {}  MRR {:.4}  ({} labelled)",
            pct(Some(f.hit_at_1)),
            pct(Some(f.hit_at_3)),
            f.mrr,
            f.turns
        );
    }
    let d = &m.decision;
    println!(
        "decision    accuracy {}  automation {}  answer error {}  resolution {}",
        pct(d.accuracy),
        pct(Some(d.automation_rate)),
        pct(d.answer_error_rate),
        pct(Some(d.resolution_rate))
    );
    for (want, row) in &d.confusion {
        println!("            expected {want:<8} -> {row:?}");
    }
    println!(
        "risk        recall {}  false alarms {}  missed lines {:?}",
        pct(m.risk.recall),
        pct(Some(m.risk.false_alarm_rate)),
        m.risk.missed
    );
    for (kind, k) in &m.risk.by_kind {
        println!(
            "            {kind:<18} labelled {:>3}  recall {}  precision {}  false alarms {}",
            k.labelled,
            pct(k.recall),
            pct(k.precision),
            pct(Some(k.false_alarm_rate))
        );
    }
    println!("latency     {:.0} µs per turn", m.mean_latency_us);
    if let Some(best) = out.get("best_for_target_error").filter(|v| !v.is_null()) {
        println!("sweep       best for target error: {}", best["setting"]);
    }
}
