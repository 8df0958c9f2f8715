//! Dangerous medicine: a medicine that kills in quantity (sleeping pills, paracetamol, pesticide)
//! asked for in quantity, or by a shopper in distress now or lately. With distress it is life-care
//! talk too, and gets the caring reply.

use std::sync::LazyLock;

use super::lexicon::{DANGEROUS, QUANTITY};
use super::pattern::PatternSet;
use super::scan::any_of;
use super::{life_care, Detector, Models, RiskHit, RiskKind, Scan, Switch};

pub(super) struct DangerousMedicine;

static DRUGS: LazyLock<PatternSet> = LazyLock::new(|| PatternSet::new(DANGEROUS.iter().copied()));
static AMOUNTS: LazyLock<PatternSet> = LazyLock::new(|| PatternSet::new(QUANTITY.iter().copied()));

impl Detector for DangerousMedicine {
    fn kind(&self) -> RiskKind {
        RiskKind::DangerousMedicine
    }

    fn switch(&self) -> Switch {
        Switch::On
    }

    fn reply(&self) -> Option<(&'static str, &'static str)> {
        Some(life_care::REPLY)
    }

    fn warm_up(&self) {
        LazyLock::force(&DRUGS);
        LazyLock::force(&AMOUNTS);
    }

    fn detect(&self, scan: &Scan, _: &Models, hits: &mut Vec<RiskHit>) {
        let Some(drug) = any_of(&scan.current.text, &DRUGS) else {
            return;
        };
        let quantity = any_of(&scan.current.text, &AMOUNTS).or_else(|| {
            scan.recent
                .iter()
                .take(2)
                .find_map(|p| any_of(&p.text, &AMOUNTS))
        });
        let recent_life_care = scan
            .recent
            .iter()
            .any(|p| p.has_rule_of(RiskKind::LifeCare));
        let distressed = scan.distress_total >= 1.0 || recent_life_care;
        let kind = RiskKind::DangerousMedicine;
        if let Some(q) = &quantity {
            hits.push(RiskHit::new(
                kind,
                "medicine.quantity",
                vec![drug.clone(), q.clone()],
            ));
        }
        if distressed {
            hits.push(RiskHit::new(
                kind,
                "medicine.with_distress",
                vec![drug.clone()],
            ));
            let words = scan.distress_words.iter().cloned();
            let evidence = std::iter::once(drug).chain(words).collect();
            let rule = "life_care.medicine_with_distress";
            hits.push(RiskHit::new(RiskKind::LifeCare, rule, evidence));
        }
    }
}
