//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use honeydesk::nlu::{self, data, IntentModel, TrainConfig};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

/// A shared data set's path, or `None` (with a message saying why the test skips) when absent.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = nlu::datasets::shared_data_dir().join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIP: {} is absent (set HONEYDESK_SHARED_DATA to the shared data folder)",
            path.display()
        );
        None
    }
}

/// A model trained on the bundled intents with the bundled validation split, trained once per test
/// binary run and shared by the tests that only read it.
pub fn bundled_trained() -> &'static IntentModel {
    static MODEL: OnceLock<IntentModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let train = data::load(&root().join("intents/train.jsonl")).unwrap();
        let val = data::load(&root().join("intents/val.jsonl")).unwrap();
        nlu::train(&train, Some(&val), &TrainConfig::default(), &mut |_| {})
            .unwrap()
            .model
    })
}
