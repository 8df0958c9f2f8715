//! The HTTP front, started on a loopback port and spoken to over real TCP.

use std::sync::Arc;

use honeydesk::dialog::{ConfigWatch, DialogConfig, Engine};
use honeydesk::knowledge::{Analyzer, ImportMode, Knowledge, RankWeights};
use honeydesk::nlu::IntentModel;
use honeydesk::risk::model::{LifeCareModel, BUNDLED_MODEL};
use honeydesk::server::{self, AppState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::root;

fn store(dir: &std::path::Path) -> Arc<honeydesk::store::SqliteStore> {
    Arc::new(honeydesk::store::SqliteStore::open(dir).unwrap())
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test]
async fn health_and_classify_answer_over_http() {
    let model =
        IntentModel::load(&root().join("models/intent"), &candle_core::Device::Cpu).unwrap();
    let data = tempfile::tempdir().unwrap();
    let knowledge = Knowledge::open(data.path(), Analyzer::default(), RankWeights::default());
    knowledge
        .import_file(
            "demo",
            &root().join("knowledge/demo.csv"),
            None,
            ImportMode::Replace,
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let life_care = LifeCareModel::load(&root().join(BUNDLED_MODEL)).unwrap();
    let engine = Engine::new(
        Arc::new(model),
        Arc::new(knowledge),
        Some(Arc::new(life_care)),
        DialogConfig::default(),
    );
    let state = Arc::new(AppState::new(engine, None, store(data.path())));
    let server = tokio::spawn(server::run(listener, state, async {
        let _ = stopped.await;
    }));

    let (status, body) = get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    // 亲，我要退货 percent-encoded.
    let (status, body) = get(
        addr,
        "/v1/classify?text=%E4%BA%B2%EF%BC%8C%E6%88%91%E8%A6%81%E9%80%80%E8%B4%A7",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["intent"], "return_refund", "{v}");
    assert_eq!(v["ranked"].as_array().unwrap().len(), 5);

    // A request without the parameter is refused with a client error, and the server stays up.
    let (status, _) = get(addr, "/v1/classify").await;
    assert_eq!(status, 400);
    assert_eq!(get(addr, "/healthz").await.0, 200);

    // 包邮吗 against the demo shop's FAQ; an unknown shop is a 404 with a message.
    let (status, body) = get(
        addr,
        "/v1/faq/search?shop=demo&text=%E5%8C%85%E9%82%AE%E5%90%97",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let hits: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(hits[0]["entry"]["id"], "ship-003", "{hits}");
    let (status, body) = get(addr, "/v1/faq/search?shop=nobody&text=hi").await;
    assert_eq!((status, body.trim()), (404, "unknown shop 'nobody'"));
    let (status, _) = get(addr, "/v1/faq/search?shop=..%2Fetc&text=hi").await;
    assert_eq!(status, 400);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// `serve` follows its config file: `honeydesk tune --apply` (here, the file rewritten the way it
/// writes it) changes the thresholds the next decision uses, without a restart.
#[tokio::test]
async fn messages_go_through_the_engine_and_follow_the_config_file() {
    let data = tempfile::tempdir().unwrap();
    let knowledge = Knowledge::open(data.path(), Analyzer::default(), RankWeights::default());
    knowledge
        .import_file(
            "demo",
            &root().join("knowledge/demo.csv"),
            None,
            ImportMode::Replace,
        )
        .unwrap();
    let config_path = data.path().join("honeydesk.toml");
    std::fs::copy(root().join("honeydesk.toml"), &config_path).unwrap();
    let model =
        IntentModel::load(&root().join("models/intent"), &candle_core::Device::Cpu).unwrap();
    let engine = Engine::new(
        Arc::new(model),
        Arc::new(knowledge),
        None,
        DialogConfig::load(&config_path).unwrap(),
    );
    let state = Arc::new(AppState::new(
        engine,
        Some(ConfigWatch::new(&config_path)),
        store(data.path()),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(listener, state, async {
        let _ = stopped.await;
    }));

    let ask = |conv: Option<&str>, text: &str| {
        let mut body = serde_json::json!({"shop": "demo", "text": text});
        if let Some(c) = conv {
            body["conversation"] = c.into();
        }
        body.to_string()
    };
    let (status, body) = post(addr, "/v1/message", &ask(None, "满多少包邮")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(v["decision"]["action"]["type"], "answer", "{v}");
    let faq_threshold = |v: &serde_json::Value| {
        v["decision"]["trace"]["policy"]["faq_threshold"]
            .as_f64()
            .unwrap()
    };
    assert!((faq_threshold(&v) - 0.45).abs() < 1e-6);
    let conv = v["conversation"].as_str().unwrap().to_string();

    // The conversation continues by id; an unknown id, shop or an empty text is refused.
    let (status, body) = post(addr, "/v1/message", &ask(Some(&conv), "转人工")).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"handoff\""), "{body}");
    assert_eq!(
        post(addr, "/v1/message", &ask(Some("c-nope"), "hi"))
            .await
            .0,
        404
    );
    let (status, body) = post(addr, "/v1/message", r#"{"shop": "nobody", "text": "hi"}"#).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        post(addr, "/v1/message", r#"{"shop": "demo", "text": ""}"#)
            .await
            .0,
        400
    );
    assert!(post(addr, "/v1/message", "{not json").await.0 >= 400);

    // What `tune --apply` writes: the shop's thresholds in its section of the file.
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        format!("{text}\n[shops.demo]\nfaq_threshold = 0.95\nintent_threshold = 0.9\n"),
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, body) = post(addr, "/v1/message", &ask(None, "满多少包邮")).await;
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert!((faq_threshold(&v) - 0.95).abs() < 1e-6, "{v}");
    assert_ne!(v["decision"]["trace"]["rule"], "faq.confident", "{v}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
