//! The HTTP front, started on a loopback port and spoken to over real TCP.

use crate::net::{get, post, start, Options};

#[tokio::test]
async fn health_and_classify_answer_over_http() {
    let server = start(Options {
        life_care: true,
        ..Options::default()
    })
    .await;
    let addr = server.addr;

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
    let error: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(
        (status, &error["error"]),
        (404, &serde_json::json!("unknown shop 'nobody'"))
    );
    let (status, _) = get(addr, "/v1/faq/search?shop=..%2Fetc&text=hi").await;
    assert_eq!(status, 400);

    server.stop().await;
}

/// `serve` follows its config file: `honeydesk tune --apply` (here, the file rewritten the way it
/// writes it) changes the thresholds the next decision uses, without a restart.
#[tokio::test]
async fn messages_go_through_the_engine_and_follow_the_config_file() {
    let config_dir = tempfile::tempdir().unwrap();
    let config_path = config_dir.path().join("honeydesk.toml");
    crate::common::bundled_config_open_now(&config_path);
    let server = start(Options {
        config: Some(config_path.clone()),
        ..Options::default()
    })
    .await;
    let addr = server.addr;

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

    server.stop().await;
}
