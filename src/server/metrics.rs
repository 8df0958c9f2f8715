//! Prometheus metrics through the `metrics` facade: counters and histograms are recorded where
//! things happen; queue lengths and waits are read from the handoff state when `/metrics` is
//! scraped, so they are never stale.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::handoff::{AgentStatus, HandoffStore};

/// Latency buckets in seconds: the engine answers in well under a millisecond, webhooks take up to
/// seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process's recorder, installed on first use. One per process: several test servers share it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("seconds".into()), BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (an embedding program's) keeps working; ours then
        // renders nothing, which /metrics shows as empty rather than failing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// A shopper message handled: the decision's kind and the time it took.
pub fn decision(kind: &'static str, seconds: f64) {
    metrics::counter!("honeydesk_messages_total").increment(1);
    metrics::counter!("honeydesk_decisions_total", "kind" => kind).increment(1);
    metrics::histogram!("honeydesk_decision_seconds").record(seconds);
}

/// Which intent tier (`fast`, or `encoder` behind it in a cascade) classified a message.
pub fn intent_tier(tier: &'static str) {
    metrics::counter!("honeydesk_intent_tier_total", "tier" => tier).increment(1);
}

pub fn handoff(reason: &str) {
    metrics::counter!("honeydesk_handoffs_total", "reason" => reason.to_string()).increment(1);
}

pub fn rating(score: u8) {
    metrics::counter!("honeydesk_ratings_total", "score" => score.to_string()).increment(1);
}

pub fn agent_message() {
    metrics::counter!("honeydesk_agent_messages_total").increment(1);
}

pub fn frame_error(code: &'static str) {
    metrics::counter!("honeydesk_frame_errors_total", "code" => code).increment(1);
}

/// Queue gauges from the handoff state, then the text exposition.
pub fn render(handoff: &dyn HandoffStore, now: chrono::DateTime<chrono::FixedOffset>) -> String {
    let handle = handle();
    for queue in crate::domain::QUEUES {
        let waiting = handoff.waiting(queue);
        let oldest = waiting
            .iter()
            .map(|t| (now - t.since).num_milliseconds() as f64 / 1000.0)
            .fold(0.0, f64::max);
        metrics::gauge!("honeydesk_queue_waiting", "queue" => *queue).set(waiting.len() as f64);
        metrics::gauge!("honeydesk_queue_oldest_wait_seconds", "queue" => *queue).set(oldest);
    }
    let agents = handoff.agents();
    for (status, name) in [
        (AgentStatus::Online, "online"),
        (AgentStatus::Busy, "busy"),
        (AgentStatus::Away, "away"),
    ] {
        let n = agents.iter().filter(|a| a.status == status).count();
        metrics::gauge!("honeydesk_agents", "status" => name).set(n as f64);
    }
    handle.render()
}
