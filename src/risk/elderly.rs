//! An elderly or struggling shopper (小棉袄): a self-description fires at once; confusion needs
//! company (an earlier self-description); the same message three times fires on its own. The
//! handoff asks a patient person to walk them through it.

use super::lexicon::{Rule, ELDERLY_RULES};
use super::{Detector, Models, RiskHit, RiskKind, Scan, Switch};

pub(super) struct Elderly;

/// The rule for confusion, which alone is every shopper sometimes.
const CONFUSED: &str = "elderly.confused";

impl Detector for Elderly {
    fn kind(&self) -> RiskKind {
        RiskKind::Elderly
    }

    fn switch(&self) -> Switch {
        Switch::On
    }

    fn rules(&self) -> &'static [Rule] {
        ELDERLY_RULES
    }

    fn reply(&self) -> Option<(&'static str, &'static str)> {
        Some((
            "您别着急，我请人工客服一步一步帮您操作，请稍等一下～",
            "No rush. I'm asking a person to walk you through it step by step.",
        ))
    }

    fn detect(&self, scan: &Scan, _: &Models, hits: &mut Vec<RiskHit>) {
        let kind = RiskKind::Elderly;
        let mut confused = None;
        for (rule, words) in &scan.current.rules {
            if rule.kind != kind {
                continue;
            }
            if rule.name == CONFUSED {
                confused = Some(words);
            } else {
                hits.push(RiskHit::new(kind, rule.name, words.clone()));
            }
        }
        let before = scan.recent.iter().any(|p| p.has_rule_of(kind));
        if let (Some(words), true) = (confused, before) {
            hits.push(RiskHit::new(kind, CONFUSED, words.clone()));
        }
        let asked = scan.current.raw.trim();
        let repeats = scan
            .recent
            .iter()
            .filter(|p| !asked.is_empty() && p.raw.trim() == asked)
            .count();
        if repeats >= 2 {
            hits.push(RiskHit::new(
                kind,
                "elderly.repeats",
                vec![asked.to_string()],
            ));
        }
    }
}
