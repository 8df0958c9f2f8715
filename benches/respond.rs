//! What one shopper message costs the engine in the demo shop, stage by stage: the risk check,
//! the intent cascade, the FAQ search, and the whole `Engine::respond` they make up.
//!
//! The load benchmark (README, "Chat server") measures the server around this; this bench says
//! where inside the engine its time goes. Run on one core, as the server's budget is per core:
//!   taskset -c 0 cargo bench --bench respond
//! The messages are the load client's ten questions, so the two measure the same mix.

use std::path::Path;
use std::sync::Arc;

use chrono::{FixedOffset, TimeZone};
use criterion::{criterion_group, criterion_main, Criterion};
use honeydesk::config::{Config, BUNDLED_MODEL, DEMO_SHOP};
use honeydesk::dialog::{Context, Conversation, DialogConfig};
use honeydesk::risk::{model::LifeCareModel, RiskDetector, RiskSwitches};
use honeydesk::runtime::Assembly;

#[path = "../examples/common/questions.rs"]
mod questions;
use questions::QUESTIONS;

fn respond(c: &mut Criterion) {
    // As `serve` sets it: one message is too small for candle to split over threads, and without
    // it candle works out its thread count from /sys on every matmul.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // Assembled as `serve` does, on the bundled fast model and the platform's default settings.
    let engine = Assembly::new(&Config::default())
        .root(root)
        .data_dir(dir.path())
        .model_dir(Path::new(BUNDLED_MODEL))
        .dialog_config(DialogConfig::default())
        .build()
        .unwrap()
        .engine;
    let knowledge = engine.knowledge();
    let life_care =
        Arc::new(LifeCareModel::load(&root.join(honeydesk::risk::model::BUNDLED_MODEL)).unwrap());
    let now = FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 12, 2, 20, 0, 0)
        .unwrap();
    let ctx = Context {
        now,
        agents_available: 1,
    };

    let mut group = c.benchmark_group("respond");
    let detector = RiskDetector::new(RiskSwitches::default()).with_model(life_care.clone());
    let mut i = 0;
    group.bench_function("risk", |b| {
        b.iter(|| {
            i += 1;
            detector.detect(QUESTIONS[i % QUESTIONS.len()], &[])
        })
    });
    let intents = engine.intents().clone();
    group.bench_function("classify", |b| {
        b.iter(|| {
            i += 1;
            intents.classify(QUESTIONS[i % QUESTIONS.len()]).unwrap()
        })
    });
    group.bench_function("faq_search", |b| {
        b.iter(|| {
            i += 1;
            knowledge
                .search(DEMO_SHOP, QUESTIONS[i % QUESTIONS.len()], 3, now)
                .unwrap()
        })
    });
    // A conversation as the load client keeps it: one shopper asking question after question.
    // It starts over every 30 messages, as a load run's conversations are that long.
    let mut conv = Conversation::new("bench", DEMO_SHOP);
    group.bench_function("engine", |b| {
        b.iter(|| {
            i += 1;
            if i % 30 == 0 {
                conv = Conversation::new(format!("bench{i}"), DEMO_SHOP);
            }
            engine
                .respond(&mut conv, QUESTIONS[i % QUESTIONS.len()], &ctx)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, respond);
criterion_main!(benches);
