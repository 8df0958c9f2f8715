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

/// Copy the bundled `honeydesk.toml` to `dest` with the demo shop's opening hours moved to a
/// window around the present, so a test that asks for a human gets one whatever the hour CI runs
/// at (the bundled 9:00-23:00 would turn 转人工 into the closed-hours message at night). The rest
/// of the file is kept as it is.
pub fn bundled_config_open_now(dest: &Path) {
    use chrono::Timelike;
    let text = std::fs::read_to_string(root().join("honeydesk.toml")).unwrap();
    let hour = honeydesk::domain::now().hour();
    let open = format!("open = \"{:02}:00\"", (hour + 22) % 24);
    let close = format!("close = \"{:02}:00\"", (hour + 2) % 24);
    assert!(text.contains("open = \"09:00\"") && text.contains("close = \"23:00\""));
    let text = text
        .replace("open = \"09:00\"", &open)
        .replace("close = \"23:00\"", &close);
    std::fs::write(dest, text).unwrap();
}

/// A shared data set's path, or `None` (with a message saying why the test skips) when absent.
/// Under CI (`CI=true`) an absent data set fails the test instead: CI has `../shared/data`, and a
/// silent skip there would report numbers nobody measured.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = nlu::datasets::shared_data_dir().join(rel);
    if path.exists() {
        Some(path)
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is absent under CI=true (set HONEYDESK_SHARED_DATA to the shared data folder)",
            path.display()
        );
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
