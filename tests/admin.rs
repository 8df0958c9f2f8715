//! The merchant and operator API over real HTTP: keys reach only their shops, FAQ import with
//! row-level errors that change nothing, entry edits, settings previewed on the shop's own
//! decisions and then applied, and the shop's numbers.

use honeydesk::domain::Role;
use honeydesk::server::auth::create_key;
use serde_json::{json, Value};

use crate::net::{self, call, http, next, send, until, Options};

#[tokio::test]
async fn merchants_manage_their_own_shop_and_preview_before_applying() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("honeydesk.toml");
    crate::common::bundled_config_open_now(&config);
    let server = net::start(Options {
        config: Some(config.clone()),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let store = server.store.as_ref();
    let demo = create_key(
        store,
        &Role::Merchant {
            shop: "demo".into(),
        },
        "",
    )
    .unwrap();
    let other = create_key(
        store,
        &Role::Merchant {
            shop: "other".into(),
        },
        "",
    )
    .unwrap();
    let operator = create_key(store, &Role::Operator, "").unwrap();

    // Keys: none, unknown, another shop's.
    let (status, _) = http(addr, "GET", "/v1/admin/shops", &[], b"").await;
    assert_eq!(status, 401);
    assert_eq!(
        call(addr, "GET", "/v1/admin/shops", "hd_nope", "").await.0,
        401
    );
    let (status, v) = call(addr, "GET", "/v1/admin/shops/demo/faq", &other, "").await;
    assert_eq!(status, 403, "{v}");
    let (status, _) = call(
        addr,
        "PUT",
        "/v1/admin/shops/demo/faq?format=csv",
        &other,
        "id,question,answer\nx,q,a\n",
    )
    .await;
    assert_eq!(status, 403);
    // Every route under a shop refuses another shop's key, before it reads the body.
    for (method, path) in [
        ("GET", "/v1/admin/shops/demo/faq"),
        ("PUT", "/v1/admin/shops/demo/faq/ship-001"),
        ("DELETE", "/v1/admin/shops/demo/faq/ship-001"),
        ("GET", "/v1/admin/shops/demo/settings"),
        ("PUT", "/v1/admin/shops/demo/settings"),
        ("POST", "/v1/admin/shops/demo/settings/preview"),
        ("GET", "/v1/admin/shops/demo/numbers"),
        ("GET", "/v1/admin/shops/demo/embed"),
        ("PUT", "/v1/admin/shops/demo/embed"),
        ("POST", "/v1/admin/shops/demo/embed/secret"),
        ("GET", "/v1/admin/shops/demo/conversations"),
        ("GET", "/v1/admin/shops/demo/conversations/c-1"),
    ] {
        let (status, v) = call(addr, method, path, &other, "{}").await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("does not reach"),
            "{v}"
        );
    }
    let (_, v) = call(addr, "GET", "/v1/admin/shops", &demo, "").await;
    assert_eq!(v["shops"], json!(["demo"]));
    let (_, v) = call(addr, "GET", "/v1/admin/shops", &operator, "").await;
    assert!(v["shops"].as_array().unwrap().contains(&json!("demo")));

    // Export, then a broken import: every bad row reported, nothing changed.
    let (status, entries) = call(addr, "GET", "/v1/admin/shops/demo/faq", &demo, "").await;
    assert_eq!(status, 200);
    let before = entries.as_array().unwrap().len();
    assert!(before > 50);
    let broken = "id,question,answer\nok-1,满多少包邮,满99包邮\nbad-1,,没有问题的答案\nbad-2,没有答案的问题,\n";
    let (status, v) = call(
        addr,
        "PUT",
        "/v1/admin/shops/demo/faq?format=csv",
        &demo,
        broken,
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["at"], "line 3", "{v}");
    let (_, entries) = call(addr, "GET", "/v1/admin/shops/demo/faq", &demo, "").await;
    assert_eq!(
        entries.as_array().unwrap().len(),
        before,
        "nothing imported"
    );
    let (status, csv) = http(
        addr,
        "GET",
        "/v1/admin/shops/demo/faq?format=csv",
        &[("Authorization", &format!("Bearer {demo}"))],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert!(csv.starts_with("id,"), "{csv}");

    // One entry added, found by a shopper's search, then deleted.
    let entry = json!({"id": "gift-wrap", "question": "可以帮忙礼品包装吗",
        "similar": ["能包装成礼物吗", "do you offer gift wrapping"],
        "answer": {"text": "可以的亲，下单备注“礼品包装”即可，免费哦～"}});
    let (status, v) = call(
        addr,
        "PUT",
        "/v1/admin/shops/demo/faq/gift-wrap",
        &demo,
        &entry.to_string(),
    )
    .await;
    assert_eq!(status, 204, "{v}");
    let (_, hits) = net::get(addr, "/v1/faq/search?shop=demo&text=%E8%83%BD%E5%8C%85%E8%A3%85%E6%88%90%E7%A4%BC%E7%89%A9%E5%90%97").await;
    let hits: Value = serde_json::from_str(&hits).unwrap();
    assert_eq!(hits[0]["entry"]["id"], "gift-wrap", "{hits}");
    assert_eq!(
        call(
            addr,
            "DELETE",
            "/v1/admin/shops/demo/faq/gift-wrap",
            &demo,
            ""
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            addr,
            "DELETE",
            "/v1/admin/shops/demo/faq/gift-wrap",
            &demo,
            ""
        )
        .await
        .0,
        404
    );

    // Shoppers talk; the decisions are stored with their evidence.
    let mut ws = net::connect(addr, "/v1/ws").await;
    send(&mut ws, json!({"type": "hello", "v": 1, "shop": "demo"})).await;
    next(&mut ws).await;
    let texts = [
        "满多少包邮",
        "退货运费谁出",
        "发票怎么开",
        "How long does shipping take?",
        "转人工",
    ];
    for (i, t) in texts.iter().enumerate() {
        send(
            &mut ws,
            json!({"type": "message", "client_id": format!("m{i}"), "text": t}),
        )
        .await;
        until(&mut ws, |v| v["type"] == "event" && v["from"] == "bot").await;
    }

    // Preview a stricter FAQ threshold: fewer answers, and nothing is applied yet.
    let (status, p) = call(
        addr,
        "POST",
        "/v1/admin/shops/demo/settings/preview",
        &demo,
        r#"{"faq_threshold": 0.99, "intent_threshold": 0.99}"#,
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["decisions"], 4,
        "the handoff to a human is not the threshold's: {p}"
    );
    assert!(
        p["proposed"]["answer"].as_u64() < p["current"]["answer"].as_u64(),
        "{p}"
    );
    assert!(p["changed"].as_u64().unwrap() > 0);
    let (_, s) = call(addr, "GET", "/v1/admin/shops/demo/settings", &demo, "").await;
    assert!(
        (s["policy"]["faq_threshold"].as_f64().unwrap() - 0.45).abs() < 1e-6,
        "{s}"
    );
    let (status, v) = call(
        addr,
        "POST",
        "/v1/admin/shops/demo/settings/preview",
        &demo,
        r#"{"faq_threshold": 7}"#,
    )
    .await;
    assert_eq!(status, 422, "{v}");

    // Apply: written to the file (the rest kept), in force for the next message.
    let (status, v) = call(
        addr,
        "PUT",
        "/v1/admin/shops/demo/settings",
        &demo,
        r#"{"faq_threshold": 0.99}"#,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("faq_threshold = 0.99") && text.contains("closed_message_zh"),
        "{text}"
    );
    let (_, body) = net::post(
        addr,
        "/v1/message",
        r#"{"shop": "demo", "text": "满多少包邮"}"#,
    )
    .await;
    let d: Value = serde_json::from_str(body.trim()).unwrap();
    assert!(
        (d["decision"]["trace"]["policy"]["faq_threshold"]
            .as_f64()
            .unwrap()
            - 0.99)
            .abs()
            < 1e-6
    );
    assert_eq!(
        call(
            addr,
            "PUT",
            "/v1/admin/shops/demo/settings",
            &other,
            r#"{"faq_threshold": 0.1}"#
        )
        .await
        .0,
        403
    );

    // The shop's numbers.
    let (status, n) = call(addr, "GET", "/v1/admin/shops/demo/numbers", &demo, "").await;
    assert_eq!(status, 200, "{n}");
    assert_eq!(n["shopper_messages"], 5, "{n}");
    assert_eq!(n["handoffs_by_reason"]["human_request"], 1, "{n}");
    assert!(
        (n["automation_rate"].as_f64().unwrap() - 0.8).abs() < 1e-9,
        "{n}"
    );
    let (_, list) = call(addr, "GET", "/v1/admin/shops/demo/conversations", &demo, "").await;
    let id = list["conversations"][0]["id"].as_str().unwrap().to_string();
    let (_, conv) = call(
        addr,
        "GET",
        &format!("/v1/admin/shops/demo/conversations/{id}"),
        &demo,
        "",
    )
    .await;
    assert_eq!(conv["events"].as_array().unwrap().len(), 10);
    assert_eq!(
        call(
            addr,
            "GET",
            &format!("/v1/admin/shops/other/conversations/{id}"),
            &other,
            ""
        )
        .await
        .0,
        404
    );
    server.stop().await;
}
