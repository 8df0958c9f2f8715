//! Human queues: ordering, assignment, capacity, escalation, transfer, notes, resolve and the
//! return to the bot, driven through the dialogue engine's decisions.

use chrono::Duration;
use honeydesk::dialog::{Conversation, Owner, Reason, Speaker, Trace};
use honeydesk::handoff::{
    Agent, AgentStatus, Escalation, HandoffStore, MemoryHandoff, Target, Ticket,
};
use honeydesk::knowledge::import;

fn at(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
    import::parse_time(s, false).unwrap()
}

fn trace() -> Trace {
    Trace {
        rule: "test".into(),
        risk: Vec::new(),
        intents: Vec::new(),
        faq: Vec::new(),
        policy: Default::default(),
        slots: Default::default(),
        unhelpful: 0,
        intent_in_scope: false,
        tier: Default::default(),
    }
}

fn ticket(id: &str, reason: Reason, since: &str) -> Ticket {
    Ticket {
        conversation: id.into(),
        shop: "demo".into(),
        reason,
        priority: reason.priority(),
        queue: reason.queue().into(),
        since: at(since),
        evidence: trace(),
        agent: None,
        escalation: Escalation::None,
        notes: Vec::new(),
    }
}

#[test]
fn queues_order_by_priority_then_waiting_time() {
    let h = MemoryHandoff::new();
    let now = at("2026-11-25 10:05");
    h.enqueue(ticket("a", Reason::HumanRequest, "2026-11-25 10:00"), now);
    h.enqueue(ticket("b", Reason::Unhelpful, "2026-11-25 09:58"), now);
    h.enqueue(ticket("c", Reason::LifeCare, "2026-11-25 10:04"), now);
    h.enqueue(ticket("d", Reason::Dispute, "2026-11-25 10:01"), now);
    let general: Vec<String> = h
        .waiting("general")
        .into_iter()
        .map(|t| t.conversation)
        .collect();
    assert_eq!(general, ["b", "a"], "same priority: longest waiting first");
    assert_eq!(h.waiting("life_care")[0].conversation, "c");

    // One generalist who also handles disputes and life-care: life-care first, then the dispute,
    // then the general queue in waiting order, as capacity allows.
    h.add_agent(Agent::new("amy", &["general", "disputes", "life_care"], 3));
    let order: Vec<String> = h
        .assign(now)
        .into_iter()
        .map(|a| a.ticket.conversation)
        .collect();
    assert_eq!(order, ["c", "d", "b"]);
    assert_eq!(
        h.waiting("general").len(),
        1,
        "capacity 3 leaves one waiting"
    );
}

#[test]
fn assignment_goes_to_the_least_loaded_online_agent_with_the_skill() {
    let h = MemoryHandoff::new();
    let now = at("2026-11-25 10:00");
    h.add_agent(Agent::new("bo", &["general"], 2));
    h.add_agent(Agent::new("cy", &["general"], 2));
    h.add_agent(Agent::new("di", &["after_sales"], 5));
    h.add_agent(Agent::new("ed", &["general"], 5));
    h.set_status("ed", AgentStatus::Away).unwrap();
    for (i, id) in ["g1", "g2", "g3", "g4", "g5"].iter().enumerate() {
        h.enqueue(
            ticket(id, Reason::HumanRequest, &format!("2026-11-25 09:0{i}")),
            now,
        );
    }
    let assignments = h.assign(now);
    assert_eq!(
        assignments.len(),
        4,
        "bo and cy have two seats each; di lacks the skill; ed is away"
    );
    let agents = h.agents();
    let load = |id: &str| agents.iter().find(|a| a.id == id).unwrap().active.len();
    assert_eq!(
        (load("bo"), load("cy"), load("di"), load("ed")),
        (2, 2, 0, 0)
    );
    assert_eq!(h.waiting("general")[0].conversation, "g5");
    assert_eq!(h.available("general"), 0);
    assert!(
        h.pick("di", "g5", now).is_err(),
        "agents reach only the conversations of their queues"
    );
    h.set_status("ed", AgentStatus::Online).unwrap();
    assert!(
        h.pick("ed", "g5", now).is_ok(),
        "an agent may pick from its queue"
    );
}

#[test]
fn an_untaken_life_care_chat_escalates_and_is_logged() {
    let h = MemoryHandoff::new();
    let start = at("2026-11-25 10:00");
    h.add_agent(Agent::new("gen", &["general"], 1));
    let mut sup = Agent::new("sup", &["supervision"], 1);
    sup.supervisor = true;
    sup.active = vec!["earlier".into()];
    h.add_agent(sup);
    h.add_agent(Agent::new("busy", &["general"], 1));
    h.set_status("gen", AgentStatus::Busy).unwrap();
    h.enqueue(ticket("lc", Reason::LifeCare, "2026-11-25 10:00"), start);
    let timeout = Duration::seconds(60);

    assert!(h.escalate(at("2026-11-25 10:00:30"), timeout).is_empty());
    assert!(
        h.assign(at("2026-11-25 10:00:30")).is_empty(),
        "nobody has the life-care skill"
    );

    h.set_status("busy", AgentStatus::Busy).unwrap();
    let first = h.escalate(at("2026-11-25 10:01:05"), timeout);
    assert_eq!(first.len(), 1);
    assert_eq!(h.ticket("lc").unwrap().escalation, Escalation::AnyAgent);
    assert!(
        h.assign(at("2026-11-25 10:01:05")).is_empty(),
        "no one online has room"
    );

    let second = h.escalate(at("2026-11-25 10:02:10"), timeout);
    assert!(second[0].what.contains("Supervisor"), "{second:?}");
    let given = h.assign(at("2026-11-25 10:02:10"));
    assert_eq!(
        given[0].agent, "sup",
        "a supervisor takes it even over capacity"
    );
    assert!(h.events().iter().filter(|e| e.conversation == "lc").count() >= 4);
}

#[test]
fn transfer_note_agent_messages_and_resolve_return_the_chat_to_the_bot() {
    let h = MemoryHandoff::new();
    let now = at("2026-11-25 10:00");
    h.add_agent(Agent::new("amy", &["general"], 2));
    h.add_agent(Agent::new("bob", &["after_sales"], 2));
    let mut conv = Conversation::new("t1", "demo");
    conv.owner = Owner::Queued;
    conv.push_turn(Speaker::Shopper, "转人工".into(), now);
    h.save(&conv);
    h.enqueue(ticket("t1", Reason::HumanRequest, "2026-11-25 10:00"), now);
    let given = h.assign(now);
    assert_eq!(
        given[0].transcript[0].text, "转人工",
        "the agent gets the transcript"
    );
    assert_eq!(h.conversation("t1").unwrap().owner, Owner::Agent);

    h.note(
        "t1",
        "amy",
        "shopper wants a different size, after-sales",
        now,
    )
    .unwrap();
    h.transfer("t1", Target::Queue("after_sales".into()), now)
        .unwrap();
    assert_eq!(
        h.waiting("after_sales")[0].notes.len(),
        1,
        "notes travel with the ticket"
    );
    assert!(
        h.agent_says("t1", "amy", "hello", now).is_err(),
        "amy no longer owns it"
    );
    let given = h.assign(now);
    assert_eq!(given[0].agent, "bob");
    h.transfer("t1", Target::Agent("amy".into()), now).unwrap();
    h.agent_says("t1", "amy", "您好，我来帮您换尺码", now)
        .unwrap();

    let (closed, question) = h.resolve("t1", "amy", now).unwrap();
    assert_eq!(closed.reason, Reason::HumanRequest);
    assert!(question.contains("满意"), "{question}");
    let conv = h.conversation("t1").unwrap();
    assert_eq!(conv.owner, Owner::Bot);
    assert_eq!(conv.turns.last().unwrap().text, question);
    assert!(conv.turns.iter().any(|t| t.speaker == Speaker::Agent));
    assert!(h.ticket("t1").is_none());
    assert!(h.agents().iter().all(|a| a.active.is_empty()));
}

#[test]
fn a_higher_priority_reason_moves_a_queued_chat() {
    let h = MemoryHandoff::new();
    let now = at("2026-11-25 10:00");
    h.enqueue(ticket("x", Reason::HumanRequest, "2026-11-25 10:00"), now);
    h.enqueue(ticket("x", Reason::LifeCare, "2026-11-25 10:02"), now);
    let t = h.ticket("x").unwrap();
    assert_eq!(
        (t.reason, t.queue.as_str(), t.priority),
        (Reason::LifeCare, "life_care", 100)
    );
    assert_eq!(
        t.since,
        at("2026-11-25 10:00"),
        "it keeps its place in time"
    );
    h.enqueue(ticket("x", Reason::HumanRequest, "2026-11-25 10:03"), now);
    assert_eq!(
        h.ticket("x").unwrap().reason,
        Reason::LifeCare,
        "never lowered"
    );
}
