//! The accurate tier without any download: a tiny BERT with random weights, written to a temp
//! folder in the Hugging Face layout (config.json, model.safetensors, a small tokenizer.json that
//! pads to a fixed length the way all-MiniLM-L6-v2's does), then loaded, pooled, batched, and a
//! head trained, saved, reloaded and refused by another encoder.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use honeydesk::nlu::data::Example;
use honeydesk::nlu::encoder::{cosine, Encoder};
use honeydesk::nlu::head::{self, EncoderIntentModel, HeadConfig};
use honeydesk::nlu::rng::SplitMix64;

const WORDS: &[&str] = &[
    "where", "is", "my", "parcel", "package", "order", "refund", "return", "money", "back", "want",
    "to", "the", "a", "it", "size", "small", "large", "fit", "does", "please", "send", "invoice",
    "receipt", "need", "an", "for", "shipping", "track", "when", "arrive", "##s",
];

fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        .iter()
        .chain(WORDS)
        .enumerate()
    {
        vocab.insert(t.to_string(), i.into());
    }
    serde_json::json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 128, "strategy": "LongestFirst", "stride": 0},
        // A fixed 128-token padding, as all-MiniLM-L6-v2 ships: the encoder must override it.
        "padding": {"strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    })
    .to_string()
}

/// Write a tiny random BERT to `dir`; `seed` changes the weights.
fn tiny_bert(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "vocab_size": WORDS.len() + 4, "hidden_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 48, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "model_type": "bert"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let cfg: Config = serde_json::from_value(config).unwrap();
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    // Loading through a VarMap creates every tensor under BERT's names. candle's CPU generator
    // cannot be seeded, so the weights (all but the layer norms) are redrawn from our own.
    BertModel::load(vb, &cfg).unwrap();
    let mut rng = SplitMix64::new(seed);
    let vars = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names.into_iter().filter(|n| !n.contains("LayerNorm")) {
        let var = &vars[name];
        let values: Vec<f32> = (0..var.elem_count()).map(|_| rng.normal() * 0.2).collect();
        var.set(&Tensor::from_vec(values, var.shape(), &device).unwrap())
            .unwrap();
    }
    drop(vars);
    varmap.save(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
}

/// Run the honeydesk binary with `args`; its standard output, once it has succeeded.
fn cli<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Vec<u8> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_honeydesk"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `honeydesk eval --json --model MODEL --data DATA`, parsed.
fn eval_json(model: &Path, data: &Path) -> serde_json::Value {
    let stdout = cli([
        "eval".as_ref(),
        "--json".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
    ]);
    serde_json::from_slice(&stdout).unwrap()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
}

#[test]
fn a_local_bert_folder_loads_pools_and_batches_with_padding_to_the_longest() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert(dir.path(), 1);
    let enc = Encoder::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(enc.dim(), 24);
    assert_eq!(enc.max_tokens(), 64);

    let short = "where is my parcel";
    let long = "please send the invoice for my order when it does arrive please";
    let alone = enc.embed(&[short]).unwrap().pop().unwrap();
    let norm: f32 = alone.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    // Padding must not change a sentence's vector: alone, or beside a longer one in a batch.
    let batch = enc.embed(&[short, long]).unwrap();
    assert!(close(&alone, &batch[0]), "padding leaked into the mean");
    assert!((cosine(&batch[0], &batch[1]) - 1.0).abs() > 1e-3);
    // More texts than one batch holds come back in order.
    let many: Vec<&str> = (0..70)
        .map(|i| if i % 2 == 0 { short } else { long })
        .collect();
    let out = enc.embed(&many).unwrap();
    assert_eq!(out.len(), 70);
    assert!(close(&out[68], &alone) && close(&out[69], &batch[1]));
    assert!(enc.embed(&[]).unwrap().is_empty());
    // Words the vocabulary lacks.
    assert_eq!(enc.unknown_share("where is my parcel").unwrap(), 0.0);
    assert!(enc.unknown_share("我的快递到哪了").unwrap() > 0.9);
}

#[test]
fn a_missing_or_broken_encoder_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Encoder::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    tiny_bert(dir.path(), 1);
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 3}").unwrap();
    let err = Encoder::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a BERT config"), "{err}");
}

fn examples() -> Vec<Example> {
    let mut out = Vec::new();
    for (intent, texts) in [
        (
            "where_is_my_parcel",
            &[
                "where is my parcel",
                "where is my package",
                "track my order",
                "when does my parcel arrive",
                "track the package please",
                "where is the order",
            ][..],
        ),
        (
            "return_refund",
            &[
                "i want a refund",
                "return it for my money back",
                "refund my order",
                "want to return the package",
                "money back please",
                "return and refund",
            ],
        ),
        (
            "invoice",
            &[
                "send an invoice",
                "i need a receipt",
                "invoice for my order",
                "please send the receipt",
                "need an invoice please",
                "receipt for the order",
            ],
        ),
    ] {
        for t in texts {
            out.push(Example::new(*t, Some(intent)));
        }
    }
    out
}

#[test]
fn a_head_trains_on_encoder_vectors_saves_and_refuses_another_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let enc_dir = dir.path().join("tiny");
    tiny_bert(&enc_dir, 1);
    let encoder = Arc::new(Encoder::load(&enc_dir, &Device::Cpu).unwrap());
    let train = examples();
    let cfg = HeadConfig {
        epochs: 300,
        lr: 0.05,
        batch_size: 18,
        weight_decay: 0.0,
        ..HeadConfig::default()
    };
    let (model, _) = head::train(encoder.clone(), false, &train, Some(&train), &cfg).unwrap();
    let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
    let right = texts
        .iter()
        .zip(&train)
        .filter(|(t, e)| model.classify(t).unwrap().label() == e.label())
        .count();
    // Random weights still give each word its own direction: the training set is learnable.
    assert!(right >= 16, "{right}/18 right on the training texts");
    assert_eq!(model.meta.kind, "encoder_head");
    assert_eq!(model.meta.encoder.name, "tiny");

    let saved = dir.path().join("head");
    model.save(&saved).unwrap();
    assert!(head::is_head(&saved));
    let back = EncoderIntentModel::load(&saved, encoder.clone()).unwrap();
    let (a, b) = (
        model.probabilities(&texts).unwrap(),
        back.probabilities(&texts).unwrap(),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| close(x, y)));
    assert_eq!(back.meta, model.meta);

    // Another encoder (other weights) must not answer with this head.
    let other_dir = dir.path().join("other");
    tiny_bert(&other_dir, 2);
    let other = Arc::new(Encoder::load(&other_dir, &Device::Cpu).unwrap());
    let err = EncoderIntentModel::load(&saved, other)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("trained on the encoder"), "{err}");
    // A fast model's folder is not a head.
    assert!(!head::is_head(&crate::common::root().join("models/intent")));
}

#[test]
fn a_head_with_word_features_separates_what_the_encoder_cannot_and_keeps_its_idf() {
    let dir = tempfile::tempdir().unwrap();
    let enc_dir = dir.path().join("tiny");
    tiny_bert(&enc_dir, 3);
    let encoder = Arc::new(Encoder::load(&enc_dir, &Device::Cpu).unwrap());
    let train = examples();
    let cfg = HeadConfig {
        epochs: 200,
        lr: 0.05,
        batch_size: 18,
        weight_decay: 0.0,
        ..HeadConfig::default()
    };
    let (model, _) = head::train(encoder.clone(), true, &train, None, &cfg).unwrap();
    assert_eq!(model.input_dim(), 24 + head::LEXICAL_BUCKETS);
    assert_eq!(model.meta.lexical.as_ref().unwrap().documents, train.len());
    let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
    let right = texts
        .iter()
        .zip(&train)
        .filter(|(t, e)| model.classify(t).unwrap().label() == e.label())
        .count();
    assert_eq!(
        right, 18,
        "distinct words per intent: the word features alone separate them"
    );

    let saved = dir.path().join("head");
    model.save(&saved).unwrap();
    let back = EncoderIntentModel::load(&saved, encoder.clone()).unwrap();
    let (a, b) = (
        model.probabilities(&texts).unwrap(),
        back.probabilities(&texts).unwrap(),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| close(x, y)));
    // A meta.json that promises other buckets than the saved idf is refused.
    let meta_path = saved.join("meta.json");
    let good = std::fs::read_to_string(&meta_path).unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(&good).unwrap();
    meta["lexical"]["buckets"] = serde_json::json!(100);
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let err = EncoderIntentModel::load(&saved, encoder.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("head shape") || err.contains("idf"), "{err}");
    std::fs::write(&meta_path, good).unwrap();

    // The command line finds the encoder from the head's meta.json.
    let data = dir.path().join("train.jsonl");
    honeydesk::nlu::data::write_jsonl(&data, &train).unwrap();
    let v = eval_json(&saved, &data);
    assert_eq!(v["tier"], "encoder");
    assert_eq!(v["intent"]["in_scope_accuracy"], 1.0, "{v}");
    let stdout = cli([
        "classify".as_ref(),
        "--json".as_ref(),
        "--model".as_ref(),
        saved.as_os_str(),
        "send an invoice".as_ref(),
    ]);
    let line: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(
        (line["intent"].as_str(), line["tier"].as_str()),
        (Some("invoice"), Some("encoder"))
    );
}

/// Chinese shop talk for two of the intents: all unknown to the tiny encoder's vocabulary.
fn chinese() -> Vec<Example> {
    [
        ("where_is_my_parcel", "我的快递到哪了"),
        ("where_is_my_parcel", "亲，包裹到哪里了"),
        ("where_is_my_parcel", "查一下物流"),
        ("return_refund", "我要退款"),
        ("return_refund", "亲，这个能退货吗"),
        ("return_refund", "把钱退给我"),
    ]
    .into_iter()
    .map(|(i, t)| Example::new(t, Some(i)))
    .collect()
}

#[test]
fn the_cascade_sends_what_the_fast_model_gets_wrong_to_the_encoder_and_keeps_chinese_on_the_fast_model(
) {
    use honeydesk::nlu::cascade::{self, Cascade, Route, Tier};
    use honeydesk::nlu::{self, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let enc_dir = dir.path().join("tiny");
    tiny_bert(&enc_dir, 4);
    let encoder = Arc::new(Encoder::load(&enc_dir, &Device::Cpu).unwrap());
    let english = examples();
    // A fast model that never saw the invoice intent: it is wrong on every invoice message, so
    // the cascade is only as good as the encoder if those go up to it.
    let mut fast_data: Vec<Example> = english
        .iter()
        .filter(|e| e.label() != "invoice")
        .cloned()
        .collect();
    fast_data.extend(chinese());
    let fast = nlu::train(&fast_data, None, &TrainConfig::default(), &mut |_| {})
        .unwrap()
        .model;
    let fast_dir = dir.path().join("fast");
    fast.save(&fast_dir).unwrap();
    let fast = Arc::new(fast);
    let mut all = english.clone();
    all.extend(chinese());
    let cfg = HeadConfig {
        epochs: 300,
        lr: 0.05,
        batch_size: 24,
        weight_decay: 0.0,
        ..HeadConfig::default()
    };
    let (mut model, val_features) =
        head::train(encoder.clone(), false, &all, Some(&all), &cfg).unwrap();
    let meta = cascade::fit(
        &fast,
        fast_dir.display().to_string(),
        &model,
        &all,
        &val_features.unwrap(),
        0.0,
    )
    .unwrap();
    assert!(meta.escalate_below > 0.0, "{meta:?}");
    // With no loss allowed, the cascade does as well as the encoder (English) on validation.
    let han_encoder = meta.val.han_encoder_accuracy.unwrap();
    let han_fast = meta.val.han_fast_accuracy.unwrap();
    assert!(
        han_encoder < han_fast,
        "the tiny encoder knows no Chinese: {meta:?}"
    );
    assert!(meta.han_to_fast, "{meta:?}");
    assert_eq!(meta.val.han_examples, 6);
    model.meta.cascade = Some(meta.clone());
    let saved = dir.path().join("head");
    model.save(&saved).unwrap();
    let model = Arc::new(model);
    let c = Cascade::new(fast.clone(), model.clone()).unwrap();
    for e in english.iter().filter(|e| e.label() == "invoice") {
        let r = c.classify(&e.text).unwrap();
        assert_eq!(r.tier, Tier::Encoder, "{}: {r:?}", e.text);
        assert_eq!(r.route, Route::Escalated);
        assert!(r.fast_top < meta.escalate_below);
    }
    let texts: Vec<&str> = all.iter().map(|e| e.text.as_str()).collect();
    let batch = c.classify_all(&texts, None).unwrap();
    for (t, b) in texts.iter().zip(&batch) {
        let one = c.classify(t).unwrap();
        assert_eq!(
            (one.tier, one.route, one.prediction.label()),
            (b.tier, b.route, b.prediction.label())
        );
        if cascade::has_han(t) {
            assert_eq!((b.tier, b.route), (Tier::Fast, Route::Language), "{t}");
        }
    }
    let m = cascade::metrics(&batch, &all);
    let english_right = batch
        .iter()
        .zip(&all)
        .filter(|(b, e)| !cascade::has_han(&e.text) && b.prediction.label() == e.label())
        .count();
    let encoder_right = english
        .iter()
        .filter(|e| model.classify(&e.text).unwrap().label() == e.label())
        .count();
    assert!(
        english_right >= encoder_right,
        "{english_right} < {encoder_right}; {m:?}"
    );

    // The folder loads as a cascade; another fast model, or a head without one, is refused.
    let loaded = cascade::load(&saved, &Device::Cpu).unwrap();
    assert_eq!(loaded.meta(), Some(&meta));
    // The dialogue engine on the cascade records the tier in each decision's trace.
    {
        use honeydesk::dialog::{Context, Conversation, DialogConfig, Engine};
        use honeydesk::knowledge::{Analyzer, Knowledge, RankWeights};
        let kdir = dir.path().join("knowledge");
        let knowledge = Knowledge::open(&kdir, Analyzer::default(), RankWeights::default());
        let engine = Engine::new(loaded, Arc::new(knowledge), None, DialogConfig::default());
        let ctx = Context {
            now: honeydesk::domain::now(),
            agents_available: 1,
        };
        let mut conv = Conversation::new("c1", "demo");
        let d = engine
            .respond(&mut conv, "need an invoice please", &ctx)
            .unwrap();
        assert_eq!(d.trace.tier, Tier::Encoder, "{:?}", d.trace);
        let mut conv = Conversation::new("c2", "demo");
        let d = engine.respond(&mut conv, "查一下物流", &ctx).unwrap();
        assert_eq!(d.trace.tier, Tier::Fast, "{:?}", d.trace);
    }
    let other = nlu::train(&english, None, &TrainConfig::default(), &mut |_| {})
        .unwrap()
        .model;
    let err = Cascade::new(Arc::new(other), model.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fitted with the fast model"), "{err}");
    let mut bare = EncoderIntentModel::load(&saved, encoder.clone()).unwrap();
    bare.meta.cascade = None;
    let err = Cascade::new(fast.clone(), Arc::new(bare))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no cascade"), "{err}");
    // A fast model folder alone is a cascade of one tier.
    let alone = cascade::load(&fast_dir, &Device::Cpu).unwrap();
    assert_eq!(alone.classify("查一下物流").unwrap().route, Route::FastOnly);

    // The command line: classify and eval say which tier answered.
    let stdout = cli([
        "classify".as_ref(),
        "--json".as_ref(),
        "--model".as_ref(),
        saved.as_os_str(),
        "need an invoice please".as_ref(),
        "我要退款".as_ref(),
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["tier"], "encoder", "{:?}", lines[0]);
    assert_eq!(
        (lines[1]["tier"].as_str(), lines[1]["route"].as_str()),
        (Some("fast"), Some("language"))
    );
    let data = dir.path().join("all.jsonl");
    honeydesk::nlu::data::write_jsonl(&data, &all).unwrap();
    let v = eval_json(&saved, &data);
    assert_eq!(v["cascade"]["report"]["examples"], 24, "{v}");
    assert_eq!(
        v["cascade"]["intent"]["accuracy"].as_f64().unwrap(),
        m.accuracy,
        "{v}"
    );
}

fn faq(id: &str, question: &str, similar: &[&str], answer: &str) -> honeydesk::knowledge::FaqEntry {
    let similar = similar.iter().map(|s| s.to_string()).collect();
    honeydesk::knowledge::FaqEntry::plain(id.into(), question.into(), similar, answer.into())
}

/// Three English entries, each with one similar question.
fn shop_faq() -> Vec<honeydesk::knowledge::FaqEntry> {
    vec![
        faq(
            "track",
            "where is my parcel",
            &["track my order"],
            "It ships in 48 hours.",
        ),
        faq(
            "refund",
            "i want a refund",
            &["money back please"],
            "Refunds take 3 days.",
        ),
        faq(
            "invoice",
            "send an invoice",
            &["i need a receipt"],
            "Invoices come by email.",
        ),
    ]
}

#[test]
fn faq_question_vectors_are_reused_across_imports_and_mixed_with_the_lexical_score() {
    use honeydesk::knowledge::semantic::{QuestionVectors, VectorStore};
    use honeydesk::knowledge::{Analyzer, RankWeights, ShopIndex};
    let dir = tempfile::tempdir().unwrap();
    let enc_dir = dir.path().join("tiny");
    tiny_bert(&enc_dir, 5);
    let encoder = Encoder::load(&enc_dir, &Device::Cpu).unwrap();
    let now = honeydesk::domain::now();
    let entries = shop_faq();
    let index = ShopIndex::build(
        entries.clone(),
        Analyzer::default(),
        RankWeights::default(),
        1,
    )
    .unwrap();
    let mut store = VectorStore::new(&encoder);
    let (vectors, counts) = QuestionVectors::build(&index, &encoder, &mut store).unwrap();
    assert_eq!((counts.embedded, counts.reused), (6, 0));
    assert_eq!(vectors.len(), index.question_texts().len());
    let path = dir.path().join("vectors.safetensors");
    store.save(&path).unwrap();

    // Re-import with one similar question edited: only that one is embedded again, from a store
    // read back from disk.
    let mut edited = entries.clone();
    edited[1].similar = vec!["return it for my money back".into()];
    let index2 = ShopIndex::build(edited, Analyzer::default(), RankWeights::default(), 2).unwrap();
    let mut store2 = VectorStore::load(&path, &encoder).unwrap();
    assert_eq!(store2.len(), 6);
    let (vectors2, counts) = QuestionVectors::build(&index2, &encoder, &mut store2).unwrap();
    assert_eq!((counts.embedded, counts.reused), (1, 5));
    assert!(close(vectors.get(0), vectors2.get(0)));
    // A store written for another encoder is not used.
    let other_dir = dir.path().join("other");
    tiny_bert(&other_dir, 6);
    let other = Encoder::load(&other_dir, &Device::Cpu).unwrap();
    assert!(VectorStore::load(&path, &other).unwrap().is_empty());

    // Weight 0 is the lexical ranking; weight 1 ranks by cosine alone, and the exact text of a
    // question has cosine 1 with it.
    let query = "i need a receipt";
    let q = honeydesk::nlu::head::embed(&encoder, &[query])
        .unwrap()
        .pop()
        .unwrap();
    let lexical: Vec<String> = index
        .search(query, 3, now)
        .unwrap()
        .into_iter()
        .map(|h| h.entry.id.clone())
        .collect();
    let hybrid0 = index
        .search_hybrid(
            index.lexical(query, now).unwrap(),
            &q,
            &vectors,
            0.0,
            3,
            now,
        )
        .unwrap();
    let ids0: Vec<String> = hybrid0.iter().map(|h| h.entry.id.clone()).collect();
    assert_eq!(ids0[..lexical.len()], lexical[..]);
    let hybrid1 = index
        .search_hybrid(
            index.lexical(query, now).unwrap(),
            &q,
            &vectors,
            1.0,
            3,
            now,
        )
        .unwrap();
    assert_eq!(hybrid1[0].entry.id, "invoice");
    assert!(
        (hybrid1[0].cosine - 1.0).abs() < 1e-4,
        "{}",
        hybrid1[0].cosine
    );
    assert_eq!(hybrid1[0].matched, "i need a receipt");
    assert!((hybrid1[0].score - hybrid1[0].cosine).abs() < 1e-6);
    // Every active entry is a candidate, found or not by the words.
    assert_eq!(hybrid1.len(), 3);
    // Vectors that do not fit the index are refused.
    let short = ShopIndex::build(
        entries[..1].to_vec(),
        Analyzer::default(),
        RankWeights::default(),
        3,
    )
    .unwrap();
    let err = short
        .search_hybrid(
            short.lexical(query, now).unwrap(),
            &q,
            &vectors,
            0.5,
            3,
            now,
        )
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("question vectors for"), "{err}");
}

#[test]
fn the_knowledge_store_keeps_question_vectors_beside_the_shop_and_asks_the_encoder_only_when_the_words_are_unsure(
) {
    use honeydesk::knowledge::{Analyzer, HybridPolicy, Knowledge, RankWeights};
    let dir = tempfile::tempdir().unwrap();
    let enc_dir = dir.path().join("tiny");
    tiny_bert(&enc_dir, 5);
    let encoder = std::sync::Arc::new(Encoder::load(&enc_dir, &Device::Cpu).unwrap());
    let data = dir.path().join("data");
    let open = || {
        Knowledge::open(&data, Analyzer::default(), RankWeights::default())
            .with_semantic(encoder.clone(), HybridPolicy::default())
    };
    let now = honeydesk::domain::now();
    let mut entries = shop_faq();
    entries.push(faq(
        "size",
        "尺码怎么选",
        &["亲 衣服偏大吗"],
        "按平时尺码拍就好。",
    ));
    let k = open();
    k.replace("shop1", entries.clone()).unwrap();
    let vectors = data.join("shops/shop1/vectors.safetensors");
    assert!(vectors.is_file(), "vectors stored beside the entries");
    let index = k.index("shop1").unwrap();
    assert_eq!(
        index.vectors().map(|v| v.len()),
        Some(index.question_texts().len())
    );

    // A message the words settle: the lexical answer, no encoder (cosine 0).
    let hits = k.search("shop1", "where is my parcel", 3, now).unwrap();
    assert_eq!(hits[0].entry.id, "track");
    assert!(hits.iter().all(|h| h.cosine == 0.0));
    // No word in common: the encoder is asked, and every active entry is a candidate.
    let hits = k.search("shop1", "hello there", 3, now).unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().any(|h| h.cosine != 0.0));
    // Chinese never goes to the English encoder, however weak the words.
    let hits = k.search("shop1", "发票呢", 3, now).unwrap();
    assert!(hits.iter().all(|h| h.cosine == 0.0));

    // A fresh store (a restart) reads the vectors instead of embedding again: the file is not
    // rewritten when nothing changed, and an edit rewrites it with just the current questions.
    let written = std::fs::metadata(&vectors).unwrap().modified().unwrap();
    let k2 = open();
    assert!(k2.index("shop1").unwrap().vectors().is_some());
    assert_eq!(
        std::fs::metadata(&vectors).unwrap().modified().unwrap(),
        written
    );
    let mut edited = entries.clone();
    edited[1].similar = vec!["return it for my money back".into()];
    k2.replace("shop1", edited).unwrap();
    let store = honeydesk::knowledge::semantic::VectorStore::load(&vectors, &encoder).unwrap();
    assert_eq!(
        store.len(),
        k2.index("shop1").unwrap().question_texts().len()
    );
    assert!(store.get("money back please").is_none());
    assert!(store.get("return it for my money back").is_some());
}

#[test]
fn the_head_keeps_its_training_examples_to_vote_and_to_tell_what_is_far_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let enc_dir = dir.path().join("tiny");
    tiny_bert(&enc_dir, 4);
    let encoder = Arc::new(Encoder::load(&enc_dir, &Device::Cpu).unwrap());
    let train = examples();
    let mut val = train.clone();
    for t in ["what is the weather on mars", "tell me a joke about cats"] {
        val.push(Example::new(t, None));
    }
    let cfg = HeadConfig {
        epochs: 50,
        lr: 0.05,
        batch_size: 18,
        ..HeadConfig::default()
    };
    let (mut model, _) = head::train(encoder.clone(), false, &train, Some(&val), &cfg).unwrap();
    assert_eq!(model.meta.support, train.len());
    let knn = model.meta.knn.clone().expect("a mix chosen on validation");
    assert!(head::KNN_LAMBDAS.contains(&knn.lambda), "{knn:?}");

    // Every training text is its own nearest example; an unrelated text is farther.
    let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
    let features = model.features(&texts).unwrap();
    let near = model.nearest(&features).unwrap().unwrap();
    assert!(near.iter().all(|c| (c - 1.0).abs() < 1e-4), "{near:?}");
    let far = model
        .nearest(&model.features(&["zebra xylophone quantum"]).unwrap())
        .unwrap()
        .unwrap();
    assert!(far[0] < 0.999, "{far:?}");

    // The vote alone (lambda 1) of the nearest example gives each training text its own label.
    model.meta.knn = Some(honeydesk::nlu::head::KnnMeta {
        k: 1,
        lambda: 1.0,
        ..knn.clone()
    });
    let probs = model.probabilities_of(&features).unwrap();
    for (p, e) in probs.iter().zip(&train) {
        let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        assert_eq!(model.labels()[best], e.label());
    }
    model.meta.knn = Some(knn);

    // Saved and loaded with its examples; a head whose support file is gone is refused.
    let saved = dir.path().join("head");
    model.save(&saved).unwrap();
    let back = EncoderIntentModel::load(&saved, encoder.clone()).unwrap();
    assert_eq!(back.nearest(&features).unwrap().unwrap(), near);
    let (a, b) = (
        model.predictions_of(&features).unwrap(),
        back.predictions_of(&features).unwrap(),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| x.label() == y.label()));
    std::fs::remove_file(saved.join("support.safetensors")).unwrap();
    let err = EncoderIntentModel::load(&saved, encoder)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("support.safetensors"), "{err}");
}
