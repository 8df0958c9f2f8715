//! Latency of classifying one message (normalize, tokenize, featurize, candle forward, softmax).
//!
//! Run on one core, as the README states the target:
//!   taskset -c 0 cargo bench --bench classify
//! The bundled model is always measured; a CLINC150 model (150 intents, ~110k features) is trained
//! and measured too when ../shared/data is present.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use honeydesk::nlu::{self, datasets, IntentModel, TrainConfig};

const MESSAGES: [&str; 4] = [
    "亲，在吗？我买的衣服到哪了😭",
    "請問什麼時候發貨",
    "I want to return these jeans, they don't fit",
    "can you tell me how to say 'thank you' in japanese",
];

fn bench_model(c: &mut Criterion, name: &str, model: &IntentModel) {
    let mut group = c.benchmark_group(format!("classify/{name}"));
    for (i, text) in MESSAGES.iter().enumerate() {
        group.bench_function(format!("msg{i}"), |b| {
            b.iter(|| model.classify(std::hint::black_box(text)).unwrap())
        });
    }
    group.finish();
}

fn classify(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundled =
        IntentModel::load(&root.join("models/intent"), &candle_core::Device::Cpu).unwrap();
    bench_model(c, "bundled", &bundled);

    let clinc = datasets::shared_data_dir().join("clinc150/data_full.json");
    if clinc.exists() {
        let d = datasets::clinc150(&clinc).unwrap();
        let model = nlu::train(&d.train, Some(&d.val), &TrainConfig::default(), &mut |_| {})
            .unwrap()
            .model;
        bench_model(c, "clinc150", &model);
    } else {
        eprintln!("SKIP clinc150 bench: {} is absent", clinc.display());
    }
}

criterion_group!(benches, classify);
criterion_main!(benches);
