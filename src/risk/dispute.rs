//! An angry dispute: a complaint threat (投诉, 12315, chargeback), or anger in this message and in
//! one of the two before. A specialist takes over with an apology.

use std::sync::LazyLock;

use super::lexicon::{Rule, DISPUTE_RULES};
use super::pattern::PatternSet;
use super::scan::any_of;
use super::{rule_hits_of, Detector, Models, RiskHit, RiskKind, Scan, Switch};

pub(super) struct Dispute;

/// Short, loud expressions of anger. Two angry turns in a row make a dispute.
const ANGER: &[&str] = &[
    "气死我了",
    "什么破",
    "垃圾",
    "太差了",
    "差劲",
    "无语",
    "恶心",
    "坑人",
    "坑爹",
    "退钱",
    "滚",
    "有病",
    "耍我",
    "骗人",
    "忽悠",
    "态度太差",
    "!!!",
    "???",
    "什么玩意",
    "ridiculous",
    "unacceptable",
    "worst",
    "terrible",
    "furious",
    "angry",
    "wtf",
    "pathetic",
    "useless",
    "rubbish",
    "disgusting",
];

static ANGRY: LazyLock<PatternSet> = LazyLock::new(|| PatternSet::new(ANGER.iter().copied()));

impl Detector for Dispute {
    fn kind(&self) -> RiskKind {
        RiskKind::Dispute
    }

    fn switch(&self) -> Switch {
        Switch::On
    }

    fn rules(&self) -> &'static [Rule] {
        DISPUTE_RULES
    }

    fn reply(&self) -> Option<(&'static str, &'static str)> {
        Some((
            "非常抱歉给您带来不好的体验，我马上为您转接专员处理，请稍等。",
            "I'm sorry about this. A specialist will take over right away.",
        ))
    }

    fn warm_up(&self) {
        LazyLock::force(&ANGRY);
    }

    fn detect(&self, scan: &Scan, _: &Models, hits: &mut Vec<RiskHit>) {
        rule_hits_of(scan, RiskKind::Dispute, hits);
        // Anger reads the text with idioms kept: 气死我了 *is* the signal here.
        let Some(word) = any_of(&scan.current.raw, &ANGRY) else {
            return;
        };
        if let Some(before) = scan
            .recent
            .iter()
            .take(2)
            .find_map(|p| any_of(&p.raw, &ANGRY))
        {
            let evidence = vec![before, word];
            hits.push(RiskHit::new(
                RiskKind::Dispute,
                "dispute.repeated_anger",
                evidence,
            ));
        }
    }
}
