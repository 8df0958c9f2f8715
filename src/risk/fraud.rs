//! A scam a shopper reports or is being drawn into: 刷单 (paid fake orders), 代付 (pay for a
//! stranger), someone posing as the shop's service who wants them on WeChat, a "refund link", a
//! verification code or a shared screen. Real shops lose customers' money to these; the shop's
//! own service never asks for any of them, so the bot says so and hands over to a person who can
//! check. Off unless a shop turns it on (`fraud = true` under `[risk]`): the words are common in
//! shops that do sell phone top-ups or accept payment by a friend.

use super::lexicon::Rule;
use super::{rule_hits_of, Detector, Models, RiskHit, RiskKind, Scan, Switch};

pub(super) struct Fraud;

/// Patterns name a third party or a request, not the feature itself: 退款链接 alone is a shopper
/// asking where the shop's own refund page is, 代付 is a platform feature, 验证码 is how a courier
/// hands over a parcel.
const RULES: &[Rule] = &[
    Rule {
        name: "fraud.fake_service",
        kind: RiskKind::Fraud,
        patterns: &[
            "冒充客服",
            "冒充你们",
            "假客服",
            "自称客服",
            "自称是客服",
            "自称是你们",
            "说是你们客服",
            "说是你们的客服",
            "说他是客服",
            "有人~退款链接",
            "陌生人~退款链接",
            "发我~退款链接",
            "发来~退款链接",
            "发来~理赔链接",
            "还要我的验证码",
            "让我共享屏幕",
            "要我共享屏幕",
            "让我开屏幕共享",
            "让我把验证码发",
            "要我把验证码",
            "骗我验证码",
            "陌生人要验证码",
            "取消百万保障",
            "关闭百万保障",
            "注销金条",
            "关闭金条",
            "posing as your customer service",
            "posing as customer service",
            "pretending to be your customer service",
            "pretending to be customer service",
            "pretending to be from your shop",
            "fake customer service",
            "said they were your support",
            "said they were from your shop",
            "sent me a refund link",
            "someone~refund link",
            "asked me to share my screen",
            "asked for my verification code",
            "asked me for the verification code",
        ],
        negatable: false,
    },
    Rule {
        name: "fraud.off_platform",
        kind: RiskKind::Fraud,
        patterns: &[
            "兼职刷单",
            "刷单返",
            "刷单任务",
            "做刷单",
            "刷单被骗",
            "刷单~骗",
            "刷信誉",
            "刷好评返现",
            "陌生人代付",
            "让我代付",
            "私下转账",
            "私下交易",
            "加我微信转账",
            "微信转账给你",
            "asked me to pay outside",
            "pay outside the platform",
            "pay outside the app",
            "wants me to pay by gift card",
            "brushing scam",
            "task scam",
        ],
        negatable: false,
    },
];

impl Detector for Fraud {
    fn kind(&self) -> RiskKind {
        RiskKind::Fraud
    }

    fn switch(&self) -> Switch {
        Switch::Off
    }

    fn rules(&self) -> &'static [Rule] {
        RULES
    }

    fn reply(&self) -> Option<(&'static str, &'static str)> {
        Some((
            "亲，请先别转账、别点链接，也别把验证码告诉任何人！本店客服只在这个窗口服务，\
             不会让您加微信、私下付款或代付，也不会发退款链接。我马上请专员来帮您核实。",
            "Please don't pay, click any link or share a code yet! Our service only talks to you \
             here: we never ask you to add us elsewhere, pay outside the shop, or open a refund \
             link. A person from our team is joining to check this with you.",
        ))
    }

    fn detect(&self, scan: &Scan, _: &Models, hits: &mut Vec<RiskHit>) {
        rule_hits_of(scan, RiskKind::Fraud, hits);
    }
}
