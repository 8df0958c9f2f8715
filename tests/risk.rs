//! Risk detectors: each kind in both languages, with the idioms and negations that must not fire.

use std::sync::{Arc, OnceLock};

use honeydesk::risk::model::{self, LifeCareModel};
use honeydesk::risk::{RiskDetector, RiskKind, RiskSwitches};

use crate::common::root;

/// The lexicon plus the shipped life-care model, as `serve` runs them.
fn bundled() -> &'static RiskDetector {
    static DETECTOR: OnceLock<RiskDetector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let m = LifeCareModel::load(&root().join(model::BUNDLED_MODEL)).unwrap();
        RiskDetector::default().with_model(Arc::new(m))
    })
}

fn kinds(message: &str, before: &[&str]) -> Vec<RiskKind> {
    let history: Vec<String> = before.iter().map(|s| s.to_string()).collect();
    let mut k: Vec<RiskKind> = bundled()
        .detect(message, &history)
        .into_iter()
        .map(|h| h.kind)
        .collect();
    k.dedup();
    k
}

fn fires(kind: RiskKind, message: &str) -> bool {
    kinds(message, &[]).contains(&kind)
}

#[test]
fn life_care_fires_on_direct_and_indirect_talk() {
    for m in [
        "我不想活了",
        "活着没意思，真的好累",
        "安眠药吃多少会死",
        "親，我想自殺",
        "衣服不用发了，我应该用不到了，想从这个世界消失",
        "I want to end it all",
        "i just want to kill myself",
        "I don't want to live anymore",
        "there is no reason to live",
        // Filter-evading homophones and indirect warning signs.
        "好想紫砂，撑不住了",
        "奶奶，带我走吧，我一个人好难",
        "I wish I could go to sleep and not wake up, I'm so tired of everything",
    ] {
        assert!(fires(RiskKind::LifeCare, m), "{m}");
    }
}

/// Looking for someone to die with fires, by rule or by the model the company words let in;
/// buying, shipping and paying together does not. None of these sentences is in `risk/`.
#[test]
fn life_care_knows_a_pact_from_a_group_deal() {
    for m in [
        "有人想一起死吗",
        "我们一起离开吧",
        "谁跟我一起，今晚",
        "有一起的么，我不想一个人",
        "一起走吧，这边太冷了",
        "anyone want to die together this weekend",
    ] {
        assert!(fires(RiskKind::LifeCare, m), "{m}");
    }
    let pact = bundled().detect("我们一起了结吧", &[]);
    assert_eq!(pact[0].rule, "life_care.pact");
    assert_eq!(pact[0].evidence, vec!["一起了结".to_string()]);
    for m in [
        "有人一起拼单吗，差一个人成团",
        "这两件能一起发货吗",
        "我和老公一起买的，能合并付款吗",
        "谁和我一起凑满300减50",
        "两个订单一起退可以吗",
        "周末一起烧烤，木炭要几袋",
        "一起走顺丰吗，还是分开寄",
        "can we order together and split the shipping",
    ] {
        assert!(!fires(RiskKind::LifeCare, m), "{m}");
    }
}

#[test]
fn life_care_ignores_idioms_and_negations() {
    for m in [
        "笑死我了，这个客服太逗了",
        "想死你了亲爱的店家",
        "这价格贵死了",
        "手机死机了怎么退款",
        "跳楼价清仓吗",
        "秒杀活动什么时候结束",
        "我才不会自杀呢，就是问问衣服",
        "this price is killing me",
        "I'm dying to get this dress",
        "my phone battery died, can you resend the code",
        "roll a six sided die for me",
        "I would never kill myself, just kidding about the price",
        "紫砂壶开壶要怎么处理",
        "发票开错了，能重开一张吗",
        "天堂伞有没有折叠的款",
        "等等我，我去拿一下订单号",
        "goodbye, thanks for the help",
    ] {
        assert!(!fires(RiskKind::LifeCare, m), "{m}");
    }
}

#[test]
fn every_hit_names_its_rule_and_words() {
    let hits = bundled().detect("我不想活了", &[]);
    let hit = hits.iter().find(|h| h.kind == RiskKind::LifeCare).unwrap();
    assert_eq!(hit.rule, "life_care.wish_to_die");
    assert_eq!(hit.evidence, ["不想活"]);
    // Indirect talk with no lexicon phrase is the model's: it names the words that weighed most
    // and its probability.
    let hits = bundled().detect(
        "东西都送人了，以后也用不上了，就这样吧，再也不用难过了",
        &[],
    );
    let hit = hits
        .iter()
        .find(|h| h.kind == RiskKind::LifeCare)
        .expect("life-care");
    assert!(hit.rule.starts_with("life_care."), "{hit:?}");
    assert!(!hit.evidence.is_empty());
}

#[test]
fn the_shipped_life_care_model_matches_its_training_data() {
    let examples = model::training_set(root()).unwrap();
    let shipped = honeydesk::nlu::IntentModel::load(
        &root().join(model::BUNDLED_MODEL),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        shipped.meta.data_sha256,
        honeydesk::nlu::train::data_hash(&examples),
        "risk/*.txt or intents/train.jsonl changed: run `honeydesk risk train`"
    );
}

#[test]
fn dangerous_medicine_needs_quantity_or_distress() {
    assert!(fires(RiskKind::DangerousMedicine, "安眠药能多买几瓶吗"));
    assert!(fires(
        RiskKind::DangerousMedicine,
        "can I buy sleeping pills in bulk"
    ));
    assert!(fires(RiskKind::DangerousMedicine, "百草枯最多能买多少"));
    assert!(!fires(
        RiskKind::DangerousMedicine,
        "安眠药怎么吃，饭前还是饭后"
    ));
    assert!(!fires(
        RiskKind::DangerousMedicine,
        "do you sell painkillers"
    ));
    // Distress in an earlier turn makes a plain medicine question a risk, and life-care too.
    let k = kinds("你们店有安眠药吗", &["最近好绝望，活着好痛苦"]);
    assert!(
        k.contains(&RiskKind::DangerousMedicine) && k.contains(&RiskKind::LifeCare),
        "{k:?}"
    );
}

#[test]
fn elderly_shoppers_are_noticed() {
    assert!(fires(RiskKind::Elderly, "我年纪大了不会用手机，怎么付款"));
    assert!(fires(RiskKind::Elderly, "I'm 80 and not good with phones"));
    // Confusion alone is any shopper; after an earlier sign of age it counts.
    assert!(!fires(RiskKind::Elderly, "尺码表看不懂"));
    assert!(!fires(
        RiskKind::Elderly,
        "I don't understand the size chart"
    ));
    assert!(!fires(
        RiskKind::Elderly,
        "is this jacket good for an old man, it's for my dad"
    ));
    assert!(kinds("看不懂，按哪里", &["我眼睛不好，字太小"]).contains(&RiskKind::Elderly));
    // The same question three times.
    let k = kinds("怎么退款", &["怎么退款", "怎么退款"]);
    assert!(k.contains(&RiskKind::Elderly), "{k:?}");
    assert!(!kinds("怎么退款", &["怎么退款"]).contains(&RiskKind::Elderly));
}

#[test]
fn disputes_and_threats() {
    assert!(fires(RiskKind::Dispute, "再不处理我就打12315投诉你们"));
    assert!(fires(RiskKind::Dispute, "I'll contact my lawyer"));
    assert!(!fires(RiskKind::Dispute, "我不投诉，就是问问什么时候发货"));
    assert!(!fires(
        RiskKind::Dispute,
        "is this a scam-proof wallet? it says RFID blocking"
    ));
    assert!(kinds("什么破服务，退钱", &["垃圾店铺，气死我了"]).contains(&RiskKind::Dispute));
    assert!(!kinds("什么破天气，快递会晚吗", &["谢谢亲"]).contains(&RiskKind::Dispute));
}

#[test]
fn asking_for_a_human() {
    for m in [
        "转人工",
        "亲，我要人工客服",
        "Can I talk to a human?",
        "real person please",
    ] {
        assert!(fires(RiskKind::HumanRequest, m), "{m}");
    }
    assert!(!fires(RiskKind::HumanRequest, "这件衣服是人工刺绣的吗"));
    assert!(!fires(RiskKind::HumanRequest, "is the fur real or faux"));
}

#[test]
fn life_care_comes_first_and_cannot_be_switched_off() {
    let detector = RiskDetector::new(RiskSwitches {
        dangerous_medicine: false,
        elderly: false,
        dispute: false,
        human_request: false,
    });
    let hits = detector.detect("转人工！我不想活了，要投诉你们", &[]);
    assert_eq!(hits[0].kind, RiskKind::LifeCare);
    assert!(
        hits.iter().all(|h| h.kind == RiskKind::LifeCare),
        "{hits:?}"
    );
    let all = RiskDetector::default().detect("转人工！我不想活了，要投诉你们", &[]);
    assert_eq!(all[0].kind, RiskKind::LifeCare);
    assert!(all.iter().any(|h| h.kind == RiskKind::Dispute));
    assert!(all.iter().any(|h| h.kind == RiskKind::HumanRequest));
}

/// Life-care on real data: recall on SOS-1K's high-risk test posts, false alarms on ordinary
/// queries. Only counts are read; no post is printed.
#[test]
fn life_care_on_real_posts_and_ordinary_queries() {
    let Some(shared) = crate::common::shared("sos1k_zh_suicide_risk/binary/testdata_twoClass.tsv")
    else {
        return;
    };
    let shared = shared.ancestors().nth(3).unwrap().to_path_buf();
    let root = crate::common::root();
    let mut bundled = honeydesk::nlu::data::load(&root.join("intents/train.jsonl")).unwrap();
    bundled.extend(honeydesk::nlu::data::load(&root.join("intents/val.jsonl")).unwrap());
    let report =
        honeydesk::eval::risk::life_care(self::bundled(), &shared, &bundled, "testdata").unwrap();
    // The bar (README: 110 / 119 = 0.924 measured).
    let recall = report.sos1k_high_risk.unwrap().rate;
    assert!(recall >= 0.90, "life-care recall {recall:.3}");
    for (name, rate) in [
        ("clinc150", report.clinc150_in_scope_test),
        ("banking77", report.banking77_train),
        ("smp2019", report.smp2019),
        ("bundled", Some(report.bundled_intents)),
    ] {
        let rate = rate.unwrap().rate;
        assert!(
            rate <= 0.01,
            "{name}: life-care fired on {:.2}% of ordinary queries",
            rate * 100.0
        );
    }
}
