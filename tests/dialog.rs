//! The dialogue engine: decision order, thresholds, ambiguity, unhelpful turns, per-shop config,
//! reception modes and business hours, on the bundled models and the demo shop.

use std::sync::OnceLock;

use honeydesk::config::Config;
use honeydesk::dialog::{
    Action, BusinessHours, Context, Conversation, DialogConfig, Engine, Owner, PolicyOverride,
    Reason, Reception, Source,
};
use honeydesk::knowledge::import;
use honeydesk::risk::RiskKind;
use honeydesk::runtime::Assembly;

use crate::common::root;

struct Fixture {
    engine: Engine,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::net::engine(
            dir.path(),
            &crate::net::Options {
                life_care: true,
                ..Default::default()
            },
        );
        Fixture { engine, _dir: dir }
    })
}

/// An engine of its own, for tests that change the configuration.
/// The demo shop's engine with these settings and the lexicon alone (no learned life-care model),
/// over the shared fixture's data directory.
fn engine_with(config: DialogConfig) -> Engine {
    let f = fixture();
    Assembly::new(&Config::default())
        .root(root())
        .data_dir(f._dir.path())
        .model_dir(std::path::Path::new("models/intent"))
        .dialog_config(config)
        .without_life_care()
        .build()
        .unwrap()
        .engine
}

fn ctx(at: &str) -> Context {
    Context {
        now: import::parse_time(at, false).unwrap(),
        agents_available: 1,
    }
}

fn say(engine: &Engine, conv: &mut Conversation, text: &str) -> Action {
    engine
        .respond(conv, text, &ctx("2026-11-25 10:00"))
        .unwrap()
        .action
}

#[test]
fn life_care_is_handed_off_with_a_hotline_even_when_the_faq_matches() {
    let e = &fixture().engine;
    let mut conv = Conversation::new("c1", "demo");
    let d = e
        .respond(
            &mut conv,
            "退货怎么退？算了，我不想活了",
            &ctx("2026-11-25 10:00"),
        )
        .unwrap();
    assert_eq!(d.trace.rule, "risk.life_care");
    match &d.action {
        Action::Handoff {
            reason,
            priority,
            queue,
            reply,
        } => {
            assert_eq!(
                (*reason, *priority, queue.as_str()),
                (Reason::LifeCare, 100, "life_care")
            );
            assert!(reply.contains("12356"), "{reply}");
        }
        other => panic!("{other:?}"),
    }
    assert!(d.trace.faq.is_empty(), "risk never waits behind retrieval");
    assert_eq!(conv.owner, Owner::Queued);

    let mut conv = Conversation::new("c2", "demo");
    match say(e, &mut conv, "honestly I just want to end my life") {
        Action::Handoff { reason, reply, .. } => {
            assert_eq!(reason, Reason::LifeCare);
            assert!(reply.contains("988"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_confident_faq_match_is_answered_with_its_evidence() {
    let e = &fixture().engine;
    let mut conv = Conversation::new("c3", "demo");
    let d = e
        .respond(&mut conv, "亲，满多少包邮呀", &ctx("2026-11-25 10:00"))
        .unwrap();
    assert_eq!(d.trace.rule, "faq.confident");
    match &d.action {
        Action::Answer { source, .. } => assert_eq!(*source, Source::Faq("ship-003".into())),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.trace.faq[0].id, "ship-003");
    assert!(d.trace.faq[0].score >= d.trace.policy.faq_threshold);
    assert!(!d.trace.intents.is_empty());
    assert_eq!(conv.turns.len(), 2, "the shopper's turn and the bot's");
}

#[test]
fn an_entry_that_notifies_a_human_still_answers() {
    let e = &fixture().engine;
    let mut conv = Conversation::new("c4", "demo");
    match say(e, &mut conv, "物流一直不更新怎么办") {
        Action::Answer {
            notify_human,
            source,
            ..
        } => {
            assert!(notify_human, "{source:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(conv.owner, Owner::Bot);
}

#[test]
fn close_candidates_get_a_clarifying_question() {
    let mut config = DialogConfig::default();
    config.defaults.ambiguity_gap = 0.5;
    let e = engine_with(config);
    let mut conv = Conversation::new("c5", "demo");
    match say(&e, &mut conv, "退货运费谁出，包邮吗") {
        Action::Clarify { choices, .. } => {
            assert!((2..=3).contains(&choices.len()), "{choices:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nothing_confident_twice_reaches_a_human() {
    let mut config = DialogConfig::default();
    config.defaults.faq_threshold = 1.0;
    config.defaults.intent_threshold = 1.0;
    let e = engine_with(config);
    let mut conv = Conversation::new("c6", "demo");
    let first = e
        .respond(&mut conv, "那个东西咋弄", &ctx("2026-11-25 10:00"))
        .unwrap();
    assert_eq!(first.trace.rule, "fallback");
    assert!(matches!(first.action, Action::Clarify { .. }));
    assert_eq!(conv.unhelpful, 1);
    match say(&e, &mut conv, "就是那个啊") {
        Action::Handoff { reason, .. } => assert_eq!(reason, Reason::LowConfidence),
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_unhelpful_answers_in_a_row_reach_a_human() {
    let e = &fixture().engine;
    let mut conv = Conversation::new("c7", "demo");
    assert!(matches!(
        say(e, &mut conv, "满多少包邮"),
        Action::Answer { .. }
    ));
    let second = say(e, &mut conv, "没用，不是这个");
    assert!(!matches!(second, Action::Handoff { .. }), "{second:?}");
    match say(e, &mut conv, "答非所问") {
        Action::Handoff { reason, .. } => assert_eq!(reason, Reason::Unhelpful),
        other => panic!("{other:?}"),
    }
}

#[test]
fn feedback_alone_is_asked_again_not_answered_at_random() {
    let e = &fixture().engine;
    let mut conv = Conversation::new("c7b", "demo");
    assert!(matches!(
        say(e, &mut conv, "满多少包邮"),
        Action::Answer { .. }
    ));
    let r = e
        .respond(&mut conv, "答非所问", &ctx("2026-11-25 10:00"))
        .unwrap();
    assert_eq!(r.trace.rule, "unhelpful.ask_again");
    match r.action {
        Action::Clarify { text, choices } => {
            assert!(text.contains("换个说法"), "{text}");
            assert_eq!(choices[0].value, "转人工");
        }
        other => panic!("{other:?}"),
    }
    // Feedback with a question of its own is answered.
    let mut conv = Conversation::new("c7c", "demo");
    say(e, &mut conv, "满多少包邮");
    let r = e
        .respond(
            &mut conv,
            "没用，我问的是退货运费谁出",
            &ctx("2026-11-25 10:00"),
        )
        .unwrap();
    assert_ne!(r.trace.rule, "unhelpful.ask_again");
}

#[test]
fn an_intent_without_an_faq_entry_asks_for_what_it_needs() {
    let e = &fixture().engine;
    // A shop with no FAQ: the platform default response for the intent.
    let mut conv = Conversation::new("c8", "no-faq-shop");
    match say(e, &mut conv, "我的快递到哪了") {
        Action::AskFor { slot, text } => {
            assert_eq!(slot, "order_number");
            assert!(text.contains("订单号"));
        }
        other => panic!("{other:?}"),
    }
    // This shop has no order system for the bot to ask, so a person looks it up, with the
    // order number already in the conversation.
    let d = e
        .respond(&mut conv, "4089123456789012345", &ctx("2026-11-25 10:00"))
        .unwrap();
    match &d.action {
        Action::Handoff { reason, reply, .. } => {
            assert_eq!(*reason, Reason::ActionFailed);
            assert!(
                reply.contains("人工"),
                "the conversation's language is kept: {reply}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.trace.slots["order_number"], "4089123456789012345");
    assert_eq!(conv.slots["order_number"], "4089123456789012345");
}

#[test]
fn the_bot_is_silent_while_a_human_owns_the_chat_and_keeps_every_message() {
    let e = &fixture().engine;
    let mut conv = Conversation::new("c9", "demo");
    assert!(matches!(
        say(e, &mut conv, "转人工"),
        Action::Handoff { .. }
    ));
    for m in ["在吗", "还有人吗", "满多少包邮"] {
        assert_eq!(say(e, &mut conv, m), Action::Silent);
    }
    let shopper: Vec<&str> = conv
        .turns
        .iter()
        .filter(|t| t.speaker == honeydesk::dialog::Speaker::Shopper)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(shopper, ["转人工", "在吗", "还有人吗", "满多少包邮"]);
    // Life-care while waiting raises the conversation to the life-care queue.
    match say(e, &mut conv, "等不到人，我真的不想活了") {
        Action::Handoff { reason, .. } => assert_eq!(reason, Reason::LifeCare),
        other => panic!("{other:?}"),
    }
}

#[test]
fn per_shop_config_changes_apply_to_the_next_message() {
    let e = engine_with(DialogConfig::default());
    let mut conv = Conversation::new("c10", "demo");
    assert!(matches!(
        say(&e, &mut conv, "满多少包邮"),
        Action::Answer { .. }
    ));
    let mut config = DialogConfig::default();
    config.shops.insert(
        "demo".into(),
        PolicyOverride {
            reception: Some(Reception::HumanFirst),
            ..PolicyOverride::default()
        },
    );
    e.set_config(config);
    let mut conv = Conversation::new("c11", "demo");
    match say(&e, &mut conv, "满多少包邮") {
        Action::Handoff { reason, .. } => assert_eq!(reason, Reason::Reception),
        other => panic!("{other:?}"),
    }
    // Human first with nobody online: the bot covers.
    let mut conv = Conversation::new("c12", "demo");
    let d = e
        .respond(
            &mut conv,
            "满多少包邮",
            &Context {
                agents_available: 0,
                ..ctx("2026-11-25 10:00")
            },
        )
        .unwrap();
    assert!(matches!(d.action, Action::Answer { .. }), "{:?}", d.action);
    // Other shops keep the defaults.
    let mut conv = Conversation::new("c13", "other");
    assert!(!matches!(
        say(&e, &mut conv, "满多少包邮"),
        Action::Handoff { .. }
    ));
}

#[test]
fn outside_business_hours_the_bot_says_so_but_life_care_is_still_handed_off() {
    let config = DialogConfig::parse(
        r#"
        [defaults.hours]
        open = "09:00"
        close = "22:00"
        closed_message_zh = "人工客服工作时间为9:00-22:00，您可以留言，我们上班后第一时间回复。"
        closed_message_en = "Our team is here 9:00-22:00; leave a message and we'll reply first thing."
        "#,
    )
    .unwrap();
    let e = engine_with(config);
    let night = ctx("2026-11-25 23:30");
    let mut conv = Conversation::new("c14", "demo");
    let d = e.respond(&mut conv, "转人工", &night).unwrap();
    assert!(matches!(d.action, Action::Closed { .. }), "{:?}", d.action);
    let mut conv = Conversation::new("c15", "demo");
    let d = e.respond(&mut conv, "我不想活了", &night).unwrap();
    assert!(matches!(
        d.action,
        Action::Handoff {
            reason: Reason::LifeCare,
            ..
        }
    ));
}

#[test]
fn bad_config_is_refused_with_the_reason() {
    let err = DialogConfig::parse("[defaults]\nfaq_threshold = 1.5\n").unwrap_err();
    assert!(err.contains("faq_threshold"), "{err}");
    let err = DialogConfig::parse("[defaults]\nfaq_treshold = 0.5\n").unwrap_err();
    assert!(err.contains("faq_treshold"), "{err}");
    let err = DialogConfig::parse("[shops.demo.hours]\nopen = \"9am\"\nclose = \"22:00\"\nclosed_message_zh = \"\"\nclosed_message_en = \"\"\n").unwrap_err();
    assert!(err.contains("hours"), "{err}");
    let ok = DialogConfig::parse("[shops.demo.risk]\nelderly = false\n").unwrap();
    assert!(!ok.policy("demo").risk.allows(RiskKind::Elderly));
    assert!(ok.policy("other").risk.allows(RiskKind::Elderly));
    let err = DialogConfig::parse("[defaults.risk]\nlife_care = false\n").unwrap_err();
    assert!(
        err.contains("life_care") && err.contains("always on"),
        "{err}"
    );
    let err = DialogConfig::parse("[defaults.risk]\nfruad = true\n").unwrap_err();
    assert!(err.contains("fruad") && err.contains("fraud"), "{err}");
    let _ = BusinessHours {
        open: "20:00".into(),
        close: "02:00".into(),
        closed_message_zh: String::new(),
        closed_message_en: String::new(),
    };
}

#[test]
fn every_bundled_intent_has_a_default_response_in_both_languages() {
    let responses = honeydesk::dialog::responses::bundled();
    let model =
        honeydesk::nlu::IntentModel::load(&root().join("models/intent"), &candle_core::Device::Cpu)
            .unwrap();
    for label in model.labels().iter().filter(|l| *l != honeydesk::nlu::OOS) {
        let r = responses
            .get(label)
            .unwrap_or_else(|| panic!("no response for {label}"));
        assert!(r.zh.chars().any(honeydesk::text::is_cjk), "{label}");
        assert!(!r.en.is_empty() && r.en.is_ascii(), "{label}");
        assert_eq!(r.buttons_zh.len(), r.buttons_en.len(), "{label}");
        for need in &r.needs {
            assert_eq!(need, "order_number", "{label}: no extractor for '{need}'");
        }
    }
}

#[test]
fn a_handed_off_chat_reaches_an_agent_with_everything_the_shopper_said() {
    use honeydesk::handoff::{Agent, HandoffStore, MemoryHandoff, Ticket};
    let e = &fixture().engine;
    let h = MemoryHandoff::new();
    let now = ctx("2026-11-25 10:00").now;
    let mut conv = Conversation::new("e2e", "demo");
    let d = e
        .respond(
            &mut conv,
            "我要投诉，再不处理就打12315",
            &ctx("2026-11-25 10:00"),
        )
        .unwrap();
    let t = Ticket::from_decision(&conv, &d, now).expect("a dispute is handed off");
    assert_eq!((t.reason, t.queue.as_str()), (Reason::Dispute, "disputes"));
    assert!(t
        .evidence
        .risk
        .iter()
        .any(|r| r.evidence.iter().any(|w| w.contains("12315"))));
    h.enqueue(t, now);
    for m in ["人呢", "订单号4089123456789012345"] {
        assert_eq!(say(e, &mut conv, m), Action::Silent);
    }
    h.save(&conv);
    h.add_agent(Agent::new("zoe", &["disputes"], 1));
    let a = h.assign(now);
    let said: Vec<&str> = a[0]
        .transcript
        .iter()
        .filter(|t| t.speaker == honeydesk::dialog::Speaker::Shopper)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(
        said,
        [
            "我要投诉，再不处理就打12315",
            "人呢",
            "订单号4089123456789012345"
        ]
    );
}

/// A merchant's order system on a loopback port: `/status` answers from the order number,
/// `/slow` never answers in time, `/broken` fails.
fn merchant_system() -> std::net::SocketAddr {
    use axum::routing::post;
    use axum::Json;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/status",
                    post(
                        |Json(req): Json<honeydesk::dialog::action::ActionRequest>| async move {
                            let order = req.slots.get("order_number").cloned().unwrap_or_default();
                            Json(serde_json::json!({
                                "text": format!("订单{order}已到达杭州转运中心，预计明天送达"),
                                "buttons": ["查看物流详情"]
                            }))
                        },
                    ),
                )
                .route(
                    "/slow",
                    post(|| async {
                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                        "late"
                    }),
                )
                .route(
                    "/broken",
                    post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "db down") }),
                );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

#[test]
fn merchant_actions_answer_and_their_failures_hand_off() {
    let addr = merchant_system();
    let config = |path: &str| {
        DialogConfig::parse(&format!(
            "[shops.shop1]\naction_timeout_ms = 500\n[shops.shop1.actions]\norder_status = \"http://{addr}{path}\"\n"
        ))
        .unwrap()
    };
    let e = engine_with(config("/status"));
    let mut conv = Conversation::new("w1", "shop1");
    assert!(matches!(
        say(&e, &mut conv, "我的快递到哪了"),
        Action::AskFor { .. }
    ));
    let d = e
        .respond(
            &mut conv,
            "订单号是4089123456789012345",
            &ctx("2026-11-25 10:00"),
        )
        .unwrap();
    match &d.action {
        Action::Answer {
            text,
            buttons,
            source,
            ..
        } => {
            assert!(text.contains("4089123456789012345"), "{text}");
            assert_eq!(buttons, &["查看物流详情"]);
            assert_eq!(source, &Source::Action("order_status".into()));
        }
        other => panic!("{other:?}"),
    }

    for path in ["/slow", "/broken"] {
        e.set_config(config(path));
        let mut conv = Conversation::new(format!("w{path}"), "shop1");
        let d = e
            .respond(
                &mut conv,
                "4089123456789012345 这个单到哪了",
                &ctx("2026-11-25 10:00"),
            )
            .unwrap();
        match &d.action {
            Action::Handoff { reason, .. } => assert_eq!(*reason, Reason::ActionFailed, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
        assert!(
            d.trace.rule.starts_with("action.failed"),
            "{}",
            d.trace.rule
        );
    }
}

#[test]
fn a_reported_scam_goes_to_the_fraud_queue_where_the_shop_turned_it_on() {
    let config = DialogConfig::parse("[shops.demo.risk]\nfraud = true\n").unwrap();
    let e = engine_with(config);
    let report = "有人冒充你们客服让我加微信，说点退款链接就能退钱";
    let mut conv = Conversation::new("f1", "demo");
    let d = e
        .respond(&mut conv, report, &ctx("2026-11-25 10:00"))
        .unwrap();
    match &d.action {
        Action::Handoff {
            reason,
            queue,
            reply,
            ..
        } => {
            assert_eq!(*reason, Reason::Fraud);
            assert_eq!(queue, "fraud");
            assert!(
                reply.contains("验证码") && reply.contains("链接"),
                "{reply}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.trace.rule, "risk.fraud");
    // Another shop has not turned it on: the same words are not a handoff for fraud.
    let mut conv = Conversation::new("f2", "other");
    let d = e
        .respond(&mut conv, report, &ctx("2026-11-25 10:00"))
        .unwrap();
    assert!(
        !matches!(
            d.action,
            Action::Handoff {
                reason: Reason::Fraud,
                ..
            }
        ),
        "{:?}",
        d.action
    );
}
