//! The shopper websocket over a real loopback connection: open, ack, replies, retries, resume
//! with exactly the missed events, and error frames that keep the connection open.

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::root;
use crate::net::{self, next, send, Options, Socket};

async fn connect(addr: std::net::SocketAddr) -> Socket {
    net::connect(addr, "/v1/ws").await
}

#[tokio::test]
async fn a_conversation_is_acked_answered_retried_and_resumed() {
    let server = net::start(Options::default()).await;
    let addr = server.addr;
    let mut ws = connect(addr).await;
    send(
        &mut ws,
        json!({"type": "message", "client_id": "x", "text": "hi"}),
    )
    .await;
    assert_eq!(next(&mut ws).await["code"], "not_open");
    send(&mut ws, json!({"type": "hello", "v": 1, "shop": "demo"})).await;
    let welcome = next(&mut ws).await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["seq"].as_u64()),
        (Some("welcome"), Some(0))
    );
    let conv = welcome["conversation"].as_str().unwrap().to_string();
    let token = welcome["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 32);

    send(
        &mut ws,
        json!({"type": "message", "client_id": "m1", "text": "亲，满多少包邮"}),
    )
    .await;
    let ack = next(&mut ws).await;
    assert_eq!(ack, json!({"type": "ack", "client_id": "m1", "seq": 1}));
    let mine = next(&mut ws).await;
    assert_eq!(
        (mine["seq"].as_u64(), mine["from"].as_str()),
        (Some(1), Some("shopper"))
    );
    let reply = next(&mut ws).await;
    assert_eq!(
        (reply["seq"].as_u64(), reply["from"].as_str()),
        (Some(2), Some("bot"))
    );
    assert!(reply["text"].as_str().unwrap().contains("99"), "{reply}");

    // A retry of m1 is acknowledged again with the same seq and not processed twice.
    send(
        &mut ws,
        json!({"type": "message", "client_id": "m1", "text": "亲，满多少包邮"}),
    )
    .await;
    assert_eq!(
        next(&mut ws).await,
        json!({"type": "ack", "client_id": "m1", "seq": 1})
    );

    // Bad input gets error frames and the connection goes on.
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next(&mut ws).await["code"], "bad_json");
    send(&mut ws, json!({"type": "dance"})).await;
    assert_eq!(next(&mut ws).await["code"], "unknown_type");
    ws.send(Message::Binary(vec![0xff, 0xfe, 0x00].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["code"], "binary_frame");
    let long = "长".repeat(2001);
    send(
        &mut ws,
        json!({"type": "message", "client_id": "m2", "text": long}),
    )
    .await;
    assert_eq!(next(&mut ws).await["code"], "too_large");

    // A handoff event says so.
    send(
        &mut ws,
        json!({"type": "message", "client_id": "m3", "text": "转人工"}),
    )
    .await;
    assert_eq!(next(&mut ws).await["seq"], 3);
    assert_eq!(next(&mut ws).await["seq"], 3);
    let handoff = next(&mut ws).await;
    assert_eq!(handoff["handoff"]["reason"], "human_request", "{handoff}");
    drop(ws);

    // Resume from seq 2: exactly events 3 and 4, in order.
    let mut again = connect(addr).await;
    send(
        &mut again,
        json!({"type": "hello", "v": 1, "shop": "demo",
               "resume": {"conversation": conv, "token": token, "last_seq": 2}}),
    )
    .await;
    let w = next(&mut again).await;
    assert_eq!(
        (w["conversation"].as_str(), w["seq"].as_u64()),
        (Some(conv.as_str()), Some(4))
    );
    assert_eq!(next(&mut again).await["seq"], 3);
    assert_eq!(next(&mut again).await["seq"], 4);
    send(&mut again, json!({"type": "typing"})).await;
    send(
        &mut again,
        json!({"type": "message", "client_id": "m4", "text": "在吗"}),
    )
    .await;
    assert_eq!(
        next(&mut again).await["seq"],
        5,
        "nothing was replayed twice"
    );

    // A wrong token is refused.
    let mut thief = connect(addr).await;
    send(
        &mut thief,
        json!({"type": "hello", "v": 1, "shop": "demo",
               "resume": {"conversation": conv, "token": "0".repeat(32), "last_seq": 0}}),
    )
    .await;
    assert_eq!(next(&mut thief).await["code"], "bad_resume");

    let mut stranger = connect(addr).await;
    send(
        &mut stranger,
        json!({"type": "hello", "v": 1, "shop": "nobody"}),
    )
    .await;
    assert_eq!(next(&mut stranger).await["code"], "unknown_shop");
    server.stop().await;
}

async fn agent_socket(addr: std::net::SocketAddr, token: &str) -> Socket {
    let mut agent = net::connect(addr, "/v1/agent/ws").await;
    send(&mut agent, json!({"type": "auth", "v": 1, "token": token})).await;
    let ready = next(&mut agent).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    agent
}

async fn wait_ready(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn serve(addr: std::net::SocketAddr, data: &std::path::Path) -> std::process::Child {
    // The bundled settings, with the demo shop open at this hour so 转人工 reaches the queue.
    let config = data.join("honeydesk.toml");
    crate::common::bundled_config_open_now(&config);
    std::process::Command::new(env!("CARGO_BIN_EXE_honeydesk"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(&config)
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_killed_server_loses_no_acknowledged_message() {
    let data = tempfile::tempdir().unwrap();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut server = serve(addr, data.path());
    wait_ready(addr).await;
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "hello", "v": 1, "shop": "demo"})).await;
    let welcome = next(&mut ws).await;
    let (conv, token) = (welcome["conversation"].clone(), welcome["token"].clone());
    let texts = [
        "满多少包邮",
        "退货运费谁出",
        "How long does shipping take?",
        "发票怎么开",
    ];
    let mut acked = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        send(
            &mut ws,
            json!({"type": "message", "client_id": format!("k{i}"), "text": text}),
        )
        .await;
        loop {
            let f = next(&mut ws).await;
            if f["type"] == "ack" {
                acked.push((f["seq"].as_u64().unwrap(), text.to_string()));
                break;
            }
        }
    }
    // The chat goes to a human, and the demo agent (its key is in the data directory) takes it.
    send(
        &mut ws,
        json!({"type": "message", "client_id": "k-human", "text": "转人工"}),
    )
    .await;
    net::until(&mut ws, |v| v["type"] == "ack").await;
    let keys = std::fs::read_to_string(data.path().join("demo-keys.txt")).unwrap();
    let agent_token = keys
        .lines()
        .find(|l| l.starts_with("agent"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    let mut agent = agent_socket(addr, &agent_token).await;
    let assigned = net::until(&mut agent, |v| v["type"] == "assigned").await;
    assert_eq!(assigned["ticket"]["conversation"], conv);
    send(
        &mut agent,
        json!({"type": "reply", "conversation": conv, "client_id": "a1", "text": "您好，我是人工客服小美"}),
    )
    .await;
    let agent_ack = net::until(&mut agent, |v| v["type"] == "ack").await;
    acked.push((
        agent_ack["seq"].as_u64().unwrap(),
        "您好，我是人工客服小美".into(),
    ));

    // SIGKILL: no shutdown, no flush beyond what was committed.
    server.kill().unwrap();
    server.wait().unwrap();

    let mut server = serve(addr, data.path());
    wait_ready(addr).await;
    let mut again = connect(addr).await;
    send(
        &mut again,
        json!({"type": "hello", "v": 1, "shop": "demo",
               "resume": {"conversation": conv, "token": token, "last_seq": 0}}),
    )
    .await;
    let w = next(&mut again).await;
    assert_eq!(w["type"], "welcome", "{w}");
    let total = w["seq"].as_u64().unwrap();
    let mut events = Vec::new();
    for _ in 0..total {
        events.push(next(&mut again).await);
    }
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "in order, no gaps, no duplicates"
    );
    for (seq, text) in &acked {
        let e = &events[*seq as usize - 1];
        assert_eq!(e["text"].as_str(), Some(text.as_str()), "{e}");
    }
    assert_eq!(events.last().unwrap()["from"], "agent");
    // The assignment survived: the agent reconnects and the chat is still its own.
    let mut agent = agent_socket(addr, &agent_token).await;
    let view = net::until(&mut agent, |v| v["type"] == "queues").await;
    assert_eq!(view["mine"][0]["conversation"], conv, "{view}");
    // A retry of an acknowledged message after the restart is recognised, not processed again.
    send(
        &mut again,
        json!({"type": "message", "client_id": "k1", "text": "退货运费谁出"}),
    )
    .await;
    let ack = next(&mut again).await;
    assert_eq!(ack["seq"].as_u64(), Some(acked[1].0), "{ack}");
    server.kill().unwrap();
    server.wait().unwrap();
}
