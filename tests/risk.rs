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
    let mut off = RiskSwitches::default();
    for &kind in RiskKind::ALL {
        off.set(kind, false);
    }
    let detector = RiskDetector::new(off);
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

/// English crisis talk, written for these tests (not taken from `risk/` or `eval/`): direct,
/// indirect, farewell, method and plan, self-harm, the community's slang, misspellings and
/// txt-speak, lower case and without apostrophes.
#[test]
fn english_crisis_talk_fires_life_care() {
    for m in [
        // direct
        "honestly i think about killing myself every night",
        "i'm going to take my life this weekend",
        "i've decided to end my life",
        "i'd be better off dead",
        "i wish i'd never been born",
        // indirect
        "my family would be better off if i was gone",
        "i feel like a burden to everyone",
        "i won't be around much longer so it doesn't matter",
        "you don't have to ship it fast, i won't be here to open it",
        "there's no point in going on",
        "i can't do this anymore, i'm so tired",
        "i'm tired of being alive",
        "i don't want to be here anymore",
        "i want to go to sleep forever",
        "i just want to disappear and never come back",
        "life isn't worth living anymore",
        "if i died tomorrow nobody would notice",
        // farewell, affairs, final order
        "this is my last message, thank you for everything",
        "this is goodbye, i'm sorry",
        "i'm putting my affairs in order this week",
        "i've said goodbye to everyone i care about",
        // method and plan
        "how many tylenol would it take to not wake up",
        "i took all my pills an hour ago",
        "i'm going to overdose tonight",
        "i want to jump off my balcony",
        "i'm going to hang myself tonight",
        "i'm going to lie down on the train tracks",
        "i'm gonna walk into traffic",
        // self-harm
        "i've been cutting my arms again",
        "i burn myself when it gets too much",
        // slang
        "kms fr",
        "i want to unalive myself",
        "i've been planning my sewerslide",
        "ready to ctb tonight",
        "i want to self delete so bad",
        // misspellings, txt-speak, no apostrophes
        "i want 2 die",
        "im gonna kill my self",
        "i want to comit suicide",
        "suicde is all i think about",
        "dont wanna live anymore",
        "i cant go on anymore",
        "wanna end it tonite, im done",
    ] {
        assert!(fires(RiskKind::LifeCare, m), "{m}");
    }
}

/// A hit says which kind of English rule fired.
#[test]
fn english_hits_name_their_rule() {
    for (m, rule) in [
        ("i want to die", "life_care.english"),
        (
            "everyone would be better off without me",
            "life_care.english_indirect",
        ),
        (
            "this is goodbye, thank you for being kind",
            "life_care.english_farewell",
        ),
        (
            "i've been stockpiling my pills for weeks",
            "life_care.english_method",
        ),
        ("sh urges are bad tonight", "life_care.english_self_harm"),
        ("gonna kms", "life_care.english_slang"),
    ] {
        let hits = bundled().detect(m, &[]);
        assert_eq!(
            hits.first().map(|h| h.rule.as_str()),
            Some(rule),
            "{m}: {hits:?}"
        );
    }
}

/// Shop idioms, goodnights, tiredness and never-again anger, English and Chinese, written for
/// these tests: none of them is life-care.
#[test]
fn shop_idioms_goodbyes_and_anger_stay_quiet() {
    for m in [
        "this lipstick is to die for",
        "i'd kill for free shipping on this order",
        "this price is killing me",
        "my phone has a dead battery, can you resend the code",
        "the lamp switch is dead after a week",
        "ive been waiting a week and nobody cares",
        "i'm done with this shop",
        "bye",
        "good night",
        "so tired after work, where is my parcel",
        "this is my last order with you, the service is awful",
        "i can't go on waiting for this parcel",
        "i won't be around next week, please hold the parcel",
        "i won't be home to receive the parcel tomorrow",
        "the plant arrived dead",
        "writing a goodbye card for my coworker",
        "how many kms range does this ebike have",
        "i cut myself on the packaging, the box had a sharp edge",
        "the glue gun stopped working",
        "so good i could die",
        "i'm dead tired, do you sell eye masks",
        "what's the point of life insurance",
        "this app is hopeless, i can't even log in",
        "无语死了，又发错颜色",
        "买的时候热情得很，出了问题就装死",
        "今天加班累死了，快递到哪了",
        "困死了，明天再付款",
        "这条裙子好看到想死",
        "找客服还爱答不理，真的心累",
        "晚安，明天再来问",
        "再见，谢谢客服",
        "拜拜啦，下次再买",
        "质量太差了，再也不买了",
        "今天是活动最后一天吗",
        "今年世界杯谁赢了",
        "等快递等得好累",
        "晚安晚安，辛苦了",
        "尴尬死了，寄错地址了，能改吗",
    ] {
        assert!(!fires(RiskKind::LifeCare, m), "{m}");
    }
}

/// Apostrophes are dropped before matching, so a pattern with one could never match; and a
/// pattern listed twice in a weighted list would count twice.
#[test]
fn lexicon_patterns_have_no_apostrophes_or_repeats() {
    use honeydesk::risk::lexicon::{CONTEXT, DISTRESS, IDIOMS, NEGATIONS};
    let mut lists: Vec<(&str, Vec<&str>)> = vec![
        ("IDIOMS", IDIOMS.to_vec()),
        ("NEGATIONS", NEGATIONS.to_vec()),
        ("DISTRESS", DISTRESS.iter().map(|w| w.0).collect()),
        ("CONTEXT", CONTEXT.iter().map(|w| w.0).collect()),
    ];
    lists.extend(honeydesk::risk::rules().map(|r| (r.name, r.patterns.to_vec())));
    for (name, list) in lists {
        let mut seen = std::collections::HashSet::new();
        for p in list {
            assert!(!p.contains('\''), "{name}: {p}");
            assert!(seen.insert(p), "{name}: {p} twice");
        }
    }
}

/// The vector half is shipped for the training files as they are (`risk train --encoder`).
#[test]
fn the_shipped_vector_half_matches_its_training_data() {
    let examples = model::training_set(root()).unwrap();
    let meta = honeydesk::nlu::head::read_meta(&root().join(model::BUNDLED_VECTORS)).unwrap();
    assert_eq!(
        meta.data_sha256,
        honeydesk::nlu::train::data_hash(&examples),
        "risk/*.txt or intents/train.jsonl changed: run `honeydesk risk train --encoder \
         models/encoders/multilingual-e5-small`"
    );
    // A plain linear read: no nearest-example vote, no training vectors shipped.
    assert!(meta.knn.is_none() && meta.support == 0, "{meta:?}");
}

/// With e5, the n-grams and the sentence vectors together catch English crisis talk that names
/// no method and no distress word; general talk about life, accounts and songs stays quiet.
/// Written for this test, not taken from `risk/` or `eval/`.
#[test]
fn the_models_together_catch_quiet_english_crisis_talk() {
    let Some(e5) = crate::e5::real_e5() else {
        return;
    };
    let encoder =
        Arc::new(honeydesk::nlu::encoder::Encoder::load(&e5, &candle_core::Device::Cpu).unwrap());
    let m = LifeCareModel::load_bundled(root(), Some(encoder)).unwrap();
    assert!(m.has_vectors());
    let with = RiskDetector::default().with_model(Arc::new(m));
    let without = bundled();
    let life_care = |d: &RiskDetector, text: &str| {
        d.detect(text, &[])
            .into_iter()
            .find(|h| h.kind == RiskKind::LifeCare)
    };
    let mut only_together = 0;
    for text in [
        "i gave my guitar to my brother and my books to a friend, this order is the last thing",
        "everyone would be happier if i just wasnt around",
    ] {
        let hit = life_care(&with, text).unwrap_or_else(|| panic!("missed: {text}"));
        if life_care(without, text).is_none() {
            only_together += 1;
            assert_eq!(hit.rule, "life_care.agree", "{text}");
            assert!(hit.evidence.iter().any(|e| e.starts_with("vectors p=")));
        }
    }
    assert!(only_together > 0, "the vectors added nothing");
    for text in [
        "please close my account, i'm moving to another bank",
        "play the next song, i don't want to listen to this one",
        "what's the weather like on the coast this weekend",
        "this is my last order before the holidays, please ship it fast",
        "I won't be home on Friday, can the courier come Monday",
    ] {
        assert!(life_care(&with, text).is_none(), "{text}");
    }
}

#[test]
fn a_wish_to_die_is_not_hyperbole() {
    for m in ["I wish I could just die", "i wish i could die"] {
        assert!(fires(RiskKind::LifeCare, m), "{m}");
    }
    assert!(!fires(
        RiskKind::LifeCare,
        "this candle smells so good i could die"
    ));
}

#[test]
fn fraud_is_off_until_a_shop_turns_it_on() {
    let reports = [
        "有个自称是你们客服的人让我加他微信，说给我双倍赔偿",
        "刚才有人发我一个退款链接，还要我的验证码",
        "someone pretending to be your customer service wants me to share my screen for a refund",
        "a guy on the order chat asked me to pay outside the platform",
        "找我做兼职刷单，说先垫付再返佣金",
    ];
    let mut on = RiskSwitches::default();
    on.set(RiskKind::Fraud, true);
    let detector = RiskDetector::new(on);
    for m in reports {
        assert!(!fires(RiskKind::Fraud, m), "off by default: {m}");
        let hits = detector.detect(m, &[]);
        assert!(
            hits.iter()
                .any(|h| h.kind == RiskKind::Fraud && h.rule.starts_with("fraud.")),
            "{m}: {hits:?}"
        );
    }
    for m in [
        "可以用微信支付吗",
        "can my friend pay for my order",
        "退款多久到账",
        "do you take gift cards",
    ] {
        assert!(
            !detector
                .detect(m, &[])
                .iter()
                .any(|h| h.kind == RiskKind::Fraud),
            "{m}"
        );
    }
    // Life-care still comes first when both are there.
    let hits = detector.detect("被刷单骗光了积蓄，我不想活了", &[]);
    assert_eq!(hits[0].kind, RiskKind::LifeCare, "{hits:?}");
    assert!(hits.iter().any(|h| h.kind == RiskKind::Fraud), "{hits:?}");
}
