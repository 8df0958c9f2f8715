//! Embedding: only listed origins (and honeydesk's own pages) may open a shop's widget, and a
//! merchant's logged-in shopper, signed with the shop's secret, keeps one history across devices.
//! A missing or bad signature is refused, never trusted.

use honeydesk::domain::Role;
use honeydesk::server::auth::{create_key, hmac_sha256_hex};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::net::{self, http, next, send, until, Options, Socket};

async fn from_origin(addr: std::net::SocketAddr, origin: Option<&str>) -> Socket {
    let mut req = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn hello(ws: &mut Socket, user: Option<Value>) -> Value {
    let mut h = json!({"type": "hello", "v": 1, "shop": "demo"});
    if let Some(u) = user {
        h["user"] = u;
    }
    send(ws, h).await;
    next(ws).await
}

/// An admin call that must succeed.
async fn admin(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> Value {
    let (status, v) = net::call(addr, method, path, key, body).await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn origins_are_checked_and_signed_shoppers_keep_their_history() {
    let server = net::start(Options::default()).await;
    let addr = server.addr;
    let state = server.state.clone();
    let key = create_key(
        server.store.as_ref(),
        &Role::Merchant {
            shop: "demo".into(),
        },
        "",
    )
    .unwrap();
    admin(
        addr,
        "PUT",
        "/v1/admin/shops/demo/embed",
        &key,
        r#"{"origins": ["https://shop.example.com/"]}"#,
    )
    .await;

    // A listed origin, honeydesk's own page and a non-browser client get in; another site does not.
    for origin in [
        Some("https://shop.example.com"),
        Some(&*format!("http://{addr}")),
        None,
    ] {
        let mut ws = from_origin(addr, origin).await;
        assert_eq!(hello(&mut ws, None).await["type"], "welcome", "{origin:?}");
    }
    let mut evil = from_origin(addr, Some("https://evil.example.net")).await;
    assert_eq!(hello(&mut evil, None).await["code"], "origin_refused");
    let (status, _) = http(
        addr,
        "POST",
        "/v1/message",
        &[
            ("Origin", "https://evil.example.net"),
            ("Content-Type", "application/json"),
        ],
        br#"{"shop":"demo","text":"hi"}"#,
    )
    .await;
    assert_eq!(status, 403);
    let (status, bad) = http(
        addr,
        "PUT",
        "/v1/admin/shops/demo/embed",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/json"),
        ],
        br#"{"origins": ["shop.example.com/path"]}"#,
    )
    .await;
    assert_eq!(status, 422, "{bad}");

    // No secret yet: a signed id cannot be checked, so it is refused.
    let mut ws = from_origin(addr, None).await;
    let refused = hello(&mut ws, Some(json!({"id": "u-1001", "signature": "00"}))).await;
    assert_eq!(refused["code"], "bad_identity", "{refused}");

    let secret = admin(addr, "POST", "/v1/admin/shops/demo/embed/secret", &key, "").await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let sign = |id: &str| hmac_sha256_hex(secret.as_bytes(), id.as_bytes());

    // Wrong signature, or another user's: refused.
    for user in [
        json!({"id": "u-1001", "signature": sign("u-1002")}),
        json!({"id": "u-1001", "signature": "zz"}),
    ] {
        let mut ws = from_origin(addr, None).await;
        assert_eq!(hello(&mut ws, Some(user)).await["code"], "bad_identity");
    }

    // The phone: a verified shopper talks to the bot.
    let mut phone = from_origin(addr, Some("https://shop.example.com")).await;
    let w = hello(
        &mut phone,
        Some(json!({"id": "u-1001", "signature": sign("u-1001")})),
    )
    .await;
    assert_eq!(w["type"], "welcome", "{w}");
    let conversation = w["conversation"].clone();
    send(
        &mut phone,
        json!({"type": "message", "client_id": "p1", "text": "满多少包邮"}),
    )
    .await;
    until(&mut phone, |v| v["type"] == "event" && v["from"] == "bot").await;

    // The laptop, no resume token: the same conversation, with the whole history.
    let mut laptop = from_origin(addr, Some("https://shop.example.com")).await;
    let w = hello(
        &mut laptop,
        Some(json!({"id": "u-1001", "signature": sign("u-1001").to_uppercase()})),
    )
    .await;
    assert_eq!(w["conversation"], conversation, "{w}");
    assert_eq!(w["seq"], 2);
    assert_eq!(next(&mut laptop).await["text"], "满多少包邮");
    assert_eq!(next(&mut laptop).await["from"], "bot");

    // Another verified shopper gets a conversation of their own.
    let mut other = from_origin(addr, None).await;
    let w = hello(
        &mut other,
        Some(json!({"id": "u-2002", "signature": sign("u-2002")})),
    )
    .await;
    assert_ne!(w["conversation"], conversation);
    assert_eq!(w["seq"], 0);

    // Shutdown drains: every open websocket is told to reconnect (1012) before the server returns.
    let open = state.open_sockets.load(std::sync::atomic::Ordering::SeqCst);
    assert!(open >= 3, "{open} open sockets");
    server.stop().await;
    assert_eq!(
        state.open_sockets.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    for ws in [&mut phone, &mut laptop, &mut other] {
        let close = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(u16::from(close.unwrap().code), 1012);
    }
}
