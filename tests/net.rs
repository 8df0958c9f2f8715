//! A real server on a loopback port, and the websocket and HTTP clients the server tests speak
//! with. One place builds the engine over the bundled model and the demo shop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use honeydesk::config::Config;
use honeydesk::dialog::{ConfigWatch, DialogConfig, Engine};
use honeydesk::handoff::MemoryHandoff;
use honeydesk::runtime::Assembly;
use honeydesk::server::{self, AppState};
use honeydesk::store::SqliteStore;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::root;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Default)]
pub struct Options {
    /// Load the life-care model (else the lexicon alone).
    pub life_care: bool,
    /// Follow this dialogue config file (else the platform defaults).
    pub config: Option<PathBuf>,
}

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub state: Arc<AppState>,
    pub store: Arc<SqliteStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Kept so the data directory lives as long as the server.
    _data: tempfile::TempDir,
}

/// The demo shop's engine over `data`, assembled as `serve` does, on the bundled fast model.
pub fn engine(data: &Path, options: &Options) -> Engine {
    let mut assembly = Assembly::new(&Config::default())
        .root(root())
        .data_dir(data)
        .model_dir(Path::new("models/intent"));
    assembly = match &options.config {
        Some(path) => assembly.dialog_file(path),
        None => assembly.dialog_config(DialogConfig::default()),
    };
    if !options.life_care {
        assembly = assembly.without_life_care();
    }
    assembly.build().unwrap().engine
}

pub async fn start(options: Options) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let engine = engine(data.path(), &options);
    let store = Arc::new(SqliteStore::open(data.path()).unwrap());
    let handoff = MemoryHandoff::durable(store.clone()).unwrap();
    let state = Arc::new(AppState::new(
        engine,
        options.config.as_deref().map(ConfigWatch::new),
        store.clone(),
        handoff,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        state,
        store,
        stop: Some(stop),
        server: Some(server),
        _data: data,
    }
}

impl TestServer {
    /// Stop gracefully and check the server returned cleanly.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let server = self.server.take().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("graceful shutdown within 10 s")
            .unwrap()
            .unwrap();
    }
}

pub async fn connect(addr: std::net::SocketAddr, path: &str) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .unwrap();
    socket
}

pub async fn send(s: &mut Socket, v: Value) {
    s.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next text frame as JSON, within 5 s.
pub async fn next(s: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
            .await
            .expect("a frame within 5 s")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Frames until one satisfies `want`, which is returned (others are dropped).
pub async fn until(s: &mut Socket, want: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = next(s).await;
        if want(&v) {
            return v;
        }
    }
}

/// One HTTP request over a fresh connection: (status, body).
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, &[], b"").await
}

pub async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, String) {
    http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// An API call with a bearer key and a JSON body: (status, JSON, or the text as a JSON string).
pub async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let (status, body) = http(
        addr,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    let v = serde_json::from_str(body.trim()).unwrap_or(Value::String(body));
    (status, v)
}
