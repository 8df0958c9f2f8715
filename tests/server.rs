//! The HTTP front, started on a loopback port and spoken to over real TCP.

use std::sync::Arc;

use honeydesk::knowledge::{Analyzer, ImportMode, Knowledge, RankWeights};
use honeydesk::nlu::IntentModel;
use honeydesk::server::{self, AppState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::root;

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
    let state = Arc::new(AppState { model, knowledge });
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
