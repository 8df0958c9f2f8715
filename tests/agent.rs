//! Shoppers and agents on real websockets: FAQ answers in Chinese and English, handoffs for low
//! confidence and life-care that reach an agent with the transcript and the reason, the agent's
//! reply reaching the shopper, resolve handing back to the bot with a rating, and the queues
//! surviving a restart of the handoff state.

use std::sync::Arc;

use honeydesk::dialog::Speaker;
use honeydesk::domain::Role;
use honeydesk::handoff::{Agent, HandoffStore, MemoryHandoff};
use honeydesk::server::auth::create_key;
use serde_json::{json, Value};

use crate::net::{self, next, send, until, Options, Socket};

async fn shopper(addr: std::net::SocketAddr) -> (Socket, String) {
    let mut ws = net::connect(addr, "/v1/ws").await;
    send(&mut ws, json!({"type": "hello", "v": 1, "shop": "demo"})).await;
    let welcome = next(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let id = welcome["conversation"].as_str().unwrap().to_string();
    (ws, id)
}

/// Send a message; return the bot's reply event (or `None` when it stays silent).
async fn say(ws: &mut Socket, client_id: &str, text: &str) -> Option<Value> {
    send(
        ws,
        json!({"type": "message", "client_id": client_id, "text": text}),
    )
    .await;
    let ack = until(ws, |v| v["type"] == "ack").await;
    let mine = ack["seq"].as_u64().unwrap();
    let deadline = std::time::Duration::from_millis(300);
    loop {
        match tokio::time::timeout(deadline, next(ws)).await {
            Ok(v) if v["type"] == "event" && v["seq"].as_u64() > Some(mine) => return Some(v),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

async fn agent(addr: std::net::SocketAddr, token: &str) -> (Socket, Value) {
    let mut ws = net::connect(addr, "/v1/agent/ws").await;
    send(&mut ws, json!({"type": "auth", "v": 1, "token": token})).await;
    let ready = next(&mut ws).await;
    (ws, ready)
}

#[tokio::test]
async fn a_handoff_reaches_an_agent_and_comes_back_to_the_bot() {
    let server = net::start(Options {
        life_care: true,
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let store = server.store.clone();
    // Amy serves the demo shop's general and life-care queues; Zed works for another shop.
    let mut amy = Agent::new("amy", &["general", "life_care"], 3);
    amy.shop = Some("demo".into());
    server.state.handoff.add_agent(amy);
    let mut zed = Agent::new("zed", &["general", "life_care"], 3);
    zed.shop = Some("other".into());
    server.state.handoff.add_agent(zed);
    let amy_key = create_key(
        store.as_ref(),
        &Role::Agent {
            agent: "amy".into(),
        },
        "",
    )
    .unwrap();
    let zed_key = create_key(
        store.as_ref(),
        &Role::Agent {
            agent: "zed".into(),
        },
        "",
    )
    .unwrap();
    let merchant_key = create_key(
        store.as_ref(),
        &Role::Merchant {
            shop: "demo".into(),
        },
        "",
    )
    .unwrap();

    // Keys that are not agent keys are refused.
    for bad in ["hd_0000", merchant_key.as_str()] {
        let (_, refused) = agent(addr, bad).await;
        assert_eq!(refused["code"], "unauthorized", "{refused}");
    }

    // A Chinese and an English shopper get FAQ answers from the bot.
    let (mut zh, _) = shopper(addr).await;
    let reply = say(&mut zh, "z1", "亲，满多少包邮呀").await.unwrap();
    assert_eq!(reply["from"], "bot");
    assert!(reply["text"].as_str().unwrap().contains("包邮"), "{reply}");
    let (mut en, _) = shopper(addr).await;
    let reply = say(&mut en, "e1", "How long does shipping take?")
        .await
        .unwrap();
    assert_eq!(reply["from"], "bot");
    assert!(reply["handoff"].is_null(), "{reply}");

    // Nobody is online yet: a low-confidence chat and a life-care chat wait in their queues.
    let (mut lost, lost_id) = shopper(addr).await;
    let mut handed = None;
    for (i, text) in ["啊这个那个", "xyzzy plugh", "嗯嗯哦哦"].iter().enumerate() {
        if let Some(r) = say(&mut lost, &format!("l{i}"), text).await {
            if !r["handoff"].is_null() {
                handed = Some(r);
                break;
            }
        }
    }
    let handed = handed.expect("low confidence hands off");
    assert_eq!(handed["handoff"]["reason"], "low_confidence", "{handed}");
    let (mut sad, sad_id) = shopper(addr).await;
    let care = say(&mut sad, "s1", "活着真的好累，我不想活了")
        .await
        .unwrap();
    assert_eq!(care["handoff"]["reason"], "life_care", "{care}");
    assert!(care["text"].as_str().unwrap().contains("12356"), "{care}");

    // Zed sees none of the demo shop's chats and cannot take one.
    let (mut z, ready) = agent(addr, &zed_key).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    let view = until(&mut z, |v| v["type"] == "queues").await;
    assert_eq!(view["waiting"].as_array().unwrap().len(), 0, "{view}");
    send(&mut z, json!({"type": "take", "conversation": sad_id})).await;
    let refused = until(&mut z, |v| v["type"] == "error").await;
    assert_eq!(refused["code"], "refused", "{refused}");

    // Amy comes online and is given both, life-care first, with reason and transcript.
    let (mut a, ready) = agent(addr, &amy_key).await;
    assert_eq!(ready["agent"]["id"], "amy", "{ready}");
    let first = until(&mut a, |v| v["type"] == "assigned").await;
    assert_eq!(first["ticket"]["conversation"], sad_id.as_str(), "{first}");
    assert_eq!(first["ticket"]["reason"], "life_care");
    assert_eq!(first["ticket"]["queue"], "life_care");
    assert!(
        first["ticket"]["evidence"]["risk"][0]["rule"]
            .as_str()
            .unwrap()
            .starts_with("life_care"),
        "{first}"
    );
    let transcript = first["transcript"].as_array().unwrap();
    assert_eq!(transcript[0]["text"], "活着真的好累，我不想活了");
    let second = until(&mut a, |v| v["type"] == "assigned").await;
    assert_eq!(second["ticket"]["conversation"], lost_id.as_str());
    assert_eq!(second["ticket"]["reason"], "low_confidence");

    // The agent's reply reaches the shopper; the shopper's answer reaches the agent, and the
    // bot stays silent while a human owns the chat.
    send(
        &mut a,
        json!({"type": "reply", "conversation": sad_id, "client_id": "r1",
               "text": "我在这里陪着你，能和我说说发生了什么吗？"}),
    )
    .await;
    let ack = until(&mut a, |v| v["type"] == "ack").await;
    assert_eq!(ack["client_id"], "r1");
    let heard = until(&mut sad, |v| v["type"] == "event").await;
    assert_eq!(heard["from"], "agent", "{heard}");
    assert_eq!(heard["seq"], ack["seq"]);
    assert_eq!(say(&mut sad, "s2", "工作丢了，家里也不理解我").await, None);
    let relayed = until(&mut a, |v| {
        v["type"] == "event" && v["event"]["from"] == "shopper"
    })
    .await;
    assert_eq!(relayed["conversation"], sad_id.as_str());
    assert_eq!(relayed["event"]["text"], "工作丢了，家里也不理解我");

    // A private note, then the other chat goes back to the general queue.
    send(
        &mut a,
        json!({"type": "note", "conversation": sad_id, "text": "已建议拨打12356"}),
    )
    .await;
    assert_eq!(
        until(&mut a, |v| v["type"] == "ok").await["request"],
        "note"
    );
    send(
        &mut a,
        json!({"type": "transfer", "conversation": lost_id, "queue": "after_sales"}),
    )
    .await;
    let ok = until(&mut a, |v| v["type"] == "ok").await;
    assert_eq!(ok["request"], "transfer", "{ok}");

    // The queues survive a restart of the handoff state: a new store over the same database sees
    // the assignment, the note and the transfer.
    let reloaded = MemoryHandoff::durable(server.store.clone()).unwrap();
    let t = reloaded.ticket(&sad_id).unwrap();
    assert_eq!(t.agent.as_deref(), Some("amy"));
    assert_eq!(t.notes[0].text, "已建议拨打12356");
    let t = reloaded.ticket(&lost_id).unwrap();
    assert_eq!(
        (t.agent.as_deref(), t.queue.as_str()),
        (None, "after_sales")
    );
    let speakers: Vec<Speaker> = reloaded
        .conversation(&sad_id)
        .unwrap()
        .turns
        .iter()
        .map(|t| t.speaker)
        .collect();
    assert_eq!(
        speakers,
        [
            Speaker::Shopper,
            Speaker::Bot,
            Speaker::Agent,
            Speaker::Shopper
        ]
    );

    // Resolve: back to the bot, which asks for a rating; the shopper rates once.
    send(&mut a, json!({"type": "resolve", "conversation": sad_id})).await;
    assert_eq!(
        until(&mut a, |v| v["type"] == "ok").await["request"],
        "resolve"
    );
    let ask = until(&mut sad, |v| v["type"] == "event").await;
    assert_eq!(ask["from"], "bot");
    assert_eq!(ask["rating_for"], "amy", "{ask}");
    assert_eq!(ask["buttons"].as_array().unwrap().len(), 5);
    send(
        &mut sad,
        json!({"type": "rating", "seq": ask["seq"], "score": 5}),
    )
    .await;
    assert_eq!(
        until(&mut sad, |v| v["type"] == "rated").await["seq"],
        ask["seq"]
    );
    send(
        &mut sad,
        json!({"type": "rating", "seq": ask["seq"], "score": 1}),
    )
    .await;
    assert_eq!(
        until(&mut sad, |v| v["type"] == "error").await["message"],
        "already rated"
    );
    use honeydesk::store::ChatStore;
    assert_eq!(store.rating_summary("demo").unwrap(), (1, 5.0));
    let bot = say(&mut sad, "s3", "满多少包邮").await.unwrap();
    assert_eq!(bot["from"], "bot", "the bot answers again");

    // The metrics page counts what happened.
    let (status, metrics) = net::get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "honeydesk_decisions_total{kind=\"answer\"}",
        "honeydesk_intent_tier_total{tier=\"fast\"}",
        "honeydesk_handoffs_total{reason=\"life_care\"}",
        "honeydesk_queue_waiting{queue=\"after_sales\"} 1",
        "honeydesk_decision_seconds_bucket",
        "honeydesk_ratings_total{score=\"5\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }
    drop((zh, en, lost, z, a));
    let _: Arc<_> = server.state.clone();
    server.stop().await;
}
