//! An explicit ask for a human: 转人工, "talk to a person", or a bare 人工 on its own.

use super::lexicon::{Rule, HUMAN_EXACT, HUMAN_RULES};
use super::{rule_hits_of, Detector, Models, RiskHit, RiskKind, Scan, Switch};

pub(super) struct HumanRequest;

impl Detector for HumanRequest {
    fn kind(&self) -> RiskKind {
        RiskKind::HumanRequest
    }

    fn switch(&self) -> Switch {
        Switch::On
    }

    fn rules(&self) -> &'static [Rule] {
        HUMAN_RULES
    }

    fn detect(&self, scan: &Scan, _: &Models, hits: &mut Vec<RiskHit>) {
        let before = hits.len();
        rule_hits_of(scan, RiskKind::HumanRequest, hits);
        // A whole message that is only an ask (人工, "agent"), where the word inside a sentence
        // (人工刺绣) is not one.
        let bare = scan
            .current
            .raw
            .trim()
            .trim_matches(|c: char| c.is_ascii_punctuation() || c == ' ');
        if hits.len() == before && HUMAN_EXACT.contains(&bare) {
            let evidence = vec![bare.to_string()];
            hits.push(RiskHit::new(
                RiskKind::HumanRequest,
                "human_request.bare",
                evidence,
            ));
        }
    }
}
