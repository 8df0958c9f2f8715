//! The questions the load benchmark (`examples/load.rs`) sends and `benches/respond.rs` times the
//! engine on, so the two measure the same mix.

/// Questions the demo shop's bot answers itself. None hands the chat off: after a handoff the bot
/// is silent and only the risk check runs, so a mix with handoffs would measure that cheap path
/// instead of the pipeline (the demo shop has no merchant webhooks, so an order-status question
/// with an order number is handed off there; it was in this list until 2026-12, when 72% of the
/// benchmark's messages were such silent ones). The run prints how many messages the bot
/// answered.
pub const QUESTIONS: &[&str] = &[
    "亲，满多少包邮呀",
    "今天下单什么时候发货",
    "退货运费谁出",
    "发票怎么开",
    "这个尺码偏大还是偏小",
    "How long does shipping take?",
    "Do you ship internationally?",
    "有没有优惠券",
    "在吗",
    "物流一直不更新怎么办",
];
