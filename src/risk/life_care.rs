//! Life-care: talk of suicide or self-harm, direct or indirect, in Chinese and English. Always on:
//! a shop cannot switch it off.
//!
//! Three layers, each able only to add a hit: the named rules ([`LIFE_CARE_RULES`]); distress
//! words adding up over this message and the two before; and the learned model, for indirect talk
//! with no lexicon word (its n-gram half alone when a distress or method word opens the gate, both
//! halves agreeing when none does).

use super::lexicon::{Rule, LIFE_CARE_RULES};
use super::{model, rule_hits_of, Detector, Models, RiskHit, RiskKind, Scan, Switch};

pub(super) struct LifeCare;

/// The caring reply, with a crisis line; the dangerous-medicine detector uses it too.
pub(super) const REPLY: (&str, &str) = (
    "亲，看到你这么说，我很担心你。你现在安全吗？我马上请专门的同事来陪你聊聊。\
     如果你觉得撑不住了，请拨打全国心理援助热线 12356（24小时），紧急情况请拨打 120 或 110。\
     你并不孤单，我们都在。",
    "I'm really worried about what you said. Are you safe right now? I'm bringing in a person \
     from our care team to talk with you. If you are in danger, please call your local \
     emergency number now; in the US you can call or text 988, the Suicide & Crisis \
     Lifeline. You are not alone.",
);

/// Distress and context weight below which a message's words are too thin for the n-gram model
/// alone at [`model::THRESHOLD`]: a single 海 (0.2), 病 or 楼 (0.3) is not talk about dying.
const WEAK_SIGNAL: f32 = 0.4;

impl Detector for LifeCare {
    fn kind(&self) -> RiskKind {
        RiskKind::LifeCare
    }

    fn switch(&self) -> Switch {
        Switch::Always
    }

    fn rules(&self) -> &'static [Rule] {
        LIFE_CARE_RULES
    }

    fn reply(&self) -> Option<(&'static str, &'static str)> {
        Some(REPLY)
    }

    fn detect(&self, scan: &Scan, models: &Models, hits: &mut Vec<RiskHit>) {
        rule_hits_of(scan, RiskKind::LifeCare, hits);
        let found = |hits: &[RiskHit]| hits.iter().any(|h| h.kind == RiskKind::LifeCare);

        // Indirect talk: distress words adding up over this and the recent turns.
        if !found(hits)
            && scan.distress_now > 0.0
            && scan.distress_total >= scan.distress_threshold()
        {
            let words = scan.distress_words.clone();
            hits.push(RiskHit::new(
                RiskKind::LifeCare,
                "life_care.distress",
                words,
            ));
        }

        // The learned classifier, for indirect talk with no lexicon word. A model failure is
        // logged and leaves the lexicon's verdict standing: it can only add a hit.
        let Some(m) = models.life_care else {
            return;
        };
        if found(hits) {
            return;
        }
        // With a distress or method word the n-grams decide alone; on text far from both their
        // classes (poems, train tickets) their guess is noise, so without one they are trusted
        // only when the sentence vectors agree (below).
        let signal = scan.signal_now;
        // One weak word (海 in 凉拌海带, 病 in 颈椎病) opens the gate only to a sure model.
        let model_threshold = if signal < WEAK_SIGNAL {
            model::AGREE_THRESHOLD
        } else {
            model::THRESHOLD
        };
        // The words whose removal lowers P(life-care) most, then the probabilities.
        let evidence = |probabilities: &[String]| {
            let mut words = m.explain(scan.message).unwrap_or_default();
            words.extend_from_slice(probabilities);
            words
        };
        match m.probabilities(&[scan.message]) {
            Ok(p) if signal > 0.0 && p[0] >= model_threshold => {
                let evidence = evidence(&[format!("p={:.2}", p[0])]);
                hits.push(RiskHit::new(
                    RiskKind::LifeCare,
                    "life_care.model",
                    evidence,
                ));
            }
            // Most English crisis talk that names no method and no distress word ("by then I'll
            // be gone") is caught here, by two models of different kinds.
            Ok(p) if p[0] >= model::AGREE_THRESHOLD => match m.vector_probability(scan.message) {
                Ok(Some(v)) if v >= model::AGREE_THRESHOLD => {
                    let evidence =
                        evidence(&[format!("p={:.2}", p[0]), format!("vectors p={v:.2}")]);
                    hits.push(RiskHit::new(
                        RiskKind::LifeCare,
                        "life_care.agree",
                        evidence,
                    ));
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "life-care vectors failed"),
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "life-care model failed"),
        }
    }
}
