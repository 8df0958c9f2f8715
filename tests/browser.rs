//! The pages in a real browser: headless Chromium, driven over WebDriver (chromedriver), goes
//! through one full handoff. A shopper opens the storefront, the widget answers an FAQ, a
//! life-care message is handed off, the agent console shows it at the top with the evidence, the
//! agent's reply reaches the widget, and resolve brings the rating buttons. Screenshots go to
//! `target/screenshots/` (or `$HONEYDESK_ARTIFACTS`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them, with CJK and emoji
//! fonts for legible screenshots); without them the test prints SKIP, except under CI.

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use honeydesk::domain::Role;
use honeydesk::handoff::{Agent, HandoffStore};
use honeydesk::server::auth::create_key;
use serde_json::json;

use crate::net::{self, Options};

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=zh-CN"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session")
}

fn artifacts() -> std::path::PathBuf {
    let dir = std::env::var_os("HONEYDESK_ARTIFACTS")
        .map(Into::into)
        .unwrap_or_else(|| crate::common::root().join("target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(artifacts().join(name), png).unwrap();
}

/// Evaluate `js` (a function body returning a value) until it returns something truthy, for up
/// to 10 s; returns that value.
async fn wait_for(c: &Client, what: &str, js: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = c.execute(js, vec![]).await.unwrap();
        let truthy = match &v {
            serde_json::Value::Null | serde_json::Value::Bool(false) => false,
            serde_json::Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// JavaScript reaching into the widget's shadow root.
const W: &str = "const w = document.getElementById('honeydesk-widget').shadowRoot;";

async fn widget_say(c: &Client, text: &str) {
    let js = format!(
        "{W} const t = w.querySelector('textarea'); t.value = arguments[0]; w.querySelector('.send').click(); return true;"
    );
    c.execute(&js, vec![json!(text)]).await.unwrap();
}

#[tokio::test]
async fn a_shopper_and_an_agent_go_through_a_handoff_in_chromium() {
    let (Some(chromium), Some(chromedriver)) = (
        which("chromium").or_else(|| which("chromium-browser")),
        which("chromedriver"),
    ) else {
        // CI installs them, so there a missing browser is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium and chromedriver (.ci/run installs them)"
        );
        eprintln!("SKIP: chromium and chromedriver are not installed (apt install chromium chromium-driver)");
        return;
    };
    let _ = chromium;
    let server = net::start(Options {
        life_care: true,
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let mut amy = Agent::new("amy", honeydesk::domain::QUEUES, 4);
    amy.name = "小美 Amy".into();
    server.state.handoff.add_agent(amy);
    let token = create_key(
        server.store.as_ref(),
        &Role::Agent {
            agent: "amy".into(),
        },
        "",
    )
    .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Driver(
        std::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The shopper: the storefront with the widget, opened, an FAQ answered.
    let shopper = browser(port).await;
    shopper.goto(&format!("http://{addr}/")).await.unwrap();
    wait_for(
        &shopper,
        "the widget",
        &format!("{W} return !!w.querySelector('.launcher');"),
    )
    .await;
    shopper
        .execute(
            &format!("{W} w.querySelector('.launcher').click(); return true;"),
            vec![],
        )
        .await
        .unwrap();
    widget_say(&shopper, "亲，满多少包邮呀").await;
    let answer = wait_for(
        &shopper,
        "the bot's answer",
        &format!("{W} const b = w.querySelectorAll('.row.bot .bubble'); return b.length ? b[b.length-1].textContent : '';"),
    )
    .await;
    assert!(answer.as_str().unwrap().contains("包邮"), "{answer}");
    shot(&shopper, "1-widget-faq-answer.png").await;

    // A life-care message: a caring reply with the hotline, and a handoff.
    widget_say(&shopper, "活着真的好累，我不想活了").await;
    wait_for(
        &shopper,
        "the caring reply",
        &format!("{W} return [...w.querySelectorAll('.row.bot .bubble')].some(b => b.textContent.includes('12356'));"),
    )
    .await;
    shot(&shopper, "2-widget-life-care-handoff.png").await;

    // The agent console: the chat is assigned, life-care, with the transcript and evidence.
    let agent = browser(port).await;
    agent
        .goto(&format!("http://{addr}/agent#token={token}"))
        .await
        .unwrap();
    wait_for(
        &agent,
        "the life-care chat in 'mine'",
        "return document.querySelector('#mine .ticket.life_care') !== null;",
    )
    .await;
    let transcript = wait_for(
        &agent,
        "the transcript",
        "return document.getElementById('transcript').textContent;",
    )
    .await;
    assert!(
        transcript.as_str().unwrap().contains("我不想活了"),
        "{transcript}"
    );
    let evidence = agent
        .find(Locator::Id("evidence"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(evidence.contains("life_care"), "{evidence}");
    let reply = agent.find(Locator::Id("reply")).await.unwrap();
    reply
        .send_keys("我在这里陪着你，愿意和我说说吗？")
        .await
        .unwrap();
    agent
        .find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &agent,
        "the reply in the console",
        "return [...document.querySelectorAll('.turn.agent')].some(t => t.textContent.includes('陪着你'));",
    )
    .await;
    shot(&agent, "3-agent-console.png").await;

    // The shopper sees the agent; the agent resolves; the widget asks for a rating.
    wait_for(
        &shopper,
        "the agent's reply in the widget",
        &format!("{W} return [...w.querySelectorAll('.row.agent .bubble')].some(b => b.textContent.includes('陪着你'));"),
    )
    .await;
    agent
        .find(Locator::Id("resolve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &shopper,
        "the rating buttons",
        &format!("{W} return w.querySelectorAll('.chips button').length >= 5;"),
    )
    .await;
    shopper
        .execute(
            &format!("{W} const b = [...w.querySelectorAll('.chips button')]; b[b.length-1].click(); return true;"),
            vec![],
        )
        .await
        .unwrap();
    wait_for(
        &shopper,
        "the thanks",
        &format!("{W} return [...w.querySelectorAll('.note')].some(n => n.textContent.includes('感谢'));"),
    )
    .await;
    shot(&shopper, "4-widget-rated.png").await;
    use honeydesk::store::ChatStore;
    assert_eq!(server.store.rating_summary("demo").unwrap(), (1, 5.0));
    assert!(server.state.handoff.tickets().is_empty(), "resolved");

    shopper.close().await.unwrap();
    agent.close().await.unwrap();
    server.stop().await;
}
