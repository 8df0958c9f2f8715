//! The text normalizer every stage shares.
//!
//! Shoppers type the same question in many surface forms: full-width `？` or half-width `?`,
//! Traditional `發貨` or Simplified `发货`, `Hello` or `hello`, with `亲～在吗？` in front and a 😭 at
//! the end. The intent model, the FAQ index and the evaluation all call [`normalize`] so that these
//! forms meet in one place. The risk detectors read both the raw and the normalized text: an emoji or
//! a filler word can matter there, so nothing here decides anything, it only canonicalises.

use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;

/// The process's jieba segmenter, shared by the FAQ analyzer and the life-care model; its
/// dictionary loads once, on first use.
pub fn jieba() -> &'static jieba_rs::Jieba {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    JIEBA.get_or_init(jieba_rs::Jieba::new)
}

/// Longest shopper message accepted, in characters. An FAQ question is a message a shopper could
/// send, so the import takes questions up to the same length.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// Normalize one message for the models: NFKC (which also folds full-width ASCII to half-width),
/// CJK punctuation to ASCII, lower case, Traditional to Simplified Chinese, emoji removed, shop-talk
/// filler (亲, 在吗, 哈哈, trailing particles) removed, whitespace collapsed.
///
/// A message that is nothing but filler (`亲在吗？`) keeps its filler words: there they are the
/// message, a greeting, and the model must see them.
pub fn normalize(input: &str) -> String {
    let folded = fold(input);
    let stripped = strip_filler(&folded);
    if stripped.chars().any(is_meaningful) {
        stripped
    } else {
        folded
    }
}

/// Everything but filler removal: NFKC, punctuation, case, script, emoji, whitespace.
fn fold(input: &str) -> String {
    let nfkc: String = input.nfkc().collect();
    let simplified = fast2s::convert(&nfkc);
    let mut out = String::with_capacity(simplified.len());
    let mut last_space = true;
    let mut last_punct: Option<char> = None;
    for c in simplified.chars() {
        let c = map_punct(c);
        if is_emoji(c) || c.is_control() || c == '\u{200d}' || c == '\u{fe0f}' {
            push_space(&mut out, &mut last_space);
            continue;
        }
        if c.is_whitespace() {
            push_space(&mut out, &mut last_space);
            last_punct = None;
            continue;
        }
        // "！！！" and "???" carry no more than one mark does.
        if c.is_ascii_punctuation() {
            if last_punct == Some(c) {
                continue;
            }
            last_punct = Some(c);
        } else {
            last_punct = None;
        }
        for l in c.to_lowercase() {
            out.push(l);
        }
        last_space = false;
    }
    out.trim_end().to_string()
}

fn push_space(out: &mut String, last_space: &mut bool) {
    if !*last_space {
        out.push(' ');
        *last_space = true;
    }
}

/// CJK punctuation that NFKC leaves alone, mapped to the ASCII mark a shopper means by it.
fn map_punct(c: char) -> char {
    match c {
        '。' | '｡' => '.',
        '、' => ',',
        '「' | '」' | '『' | '』' | '“' | '”' | '〝' | '〞' => '"',
        '‘' | '’' => '\'',
        '【' | '〔' | '〖' => '[',
        '】' | '〕' | '〗' => ']',
        '《' | '〈' => '<',
        '》' | '〉' => '>',
        '…' | '⋯' => '.',
        '—' | '–' | '─' => '-',
        '～' | '〜' => '~',
        '·' | '・' => ' ',
        _ => c,
    }
}

/// Pictographs, dingbats and symbols that shoppers use as tone, not content.
pub fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF   // mahjong, cards, emoticons, pictographs, transport, supplemental
        | 0x2600..=0x27BF   // misc symbols and dingbats
        | 0x2B00..=0x2BFF   // arrows, stars
        | 0x2190..=0x21FF   // arrows
        | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0xE000..=0xF8FF   // private use (platform stickers)
    )
}

/// A CJK ideograph (the unified blocks and their extensions that shop talk uses).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_meaningful(c: char) -> bool {
    c.is_alphanumeric() || is_cjk(c)
}

/// Words that open a shop chat without adding meaning.
const LEADING_FILLER: &[&str] = &[
    "亲爱的",
    "亲亲",
    "亲们",
    "在吗",
    "在么",
    "在嘛",
    "在不在",
    "在没",
    "你好",
    "您好",
    "哈喽",
    "哈啰",
    "嗨",
    "hello",
    "hi",
    "hey",
    "请问",
];
/// Characters that may follow 亲 in a real word (亲自, 亲戚, 亲子…), where 亲 is not the address "dear".
const QIN_COMPOUNDS: &str = "自戚子人友情密手切身生属眼口笔测近热吻和爹娘妈";
/// Sentence-final particles: tone, not content. (么 and 嘛 are left alone: 为什么, 干嘛.)
const PARTICLES: &str = "啊呀哦噢嗯呢啦哈哇吧";

/// Remove shop-talk filler at the start of each clause and particles at the end of each clause.
fn strip_filler(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, clause) in split_clauses(text).into_iter().enumerate() {
        let (body, sep) = clause;
        let body = strip_clause(body);
        if !body.is_empty() {
            if i > 0 && !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
            out.push_str(body);
            if let Some(sep) = sep {
                out.push(sep);
            }
        }
    }
    out.trim().to_string()
}

/// Split on clause punctuation, keeping the mark (`?` still says "question"). Spaces do not
/// split: in English they separate words, not clauses.
fn split_clauses(text: &str) -> Vec<(&str, Option<char>)> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, ',' | '.' | '!' | '?' | ';' | '~') {
            parts.push((&text[start..i], Some(c)));
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        parts.push((&text[start..], None));
    }
    parts
}

fn strip_clause(mut s: &str) -> &str {
    s = s.trim();
    // Leading address and greeting words, possibly several ("亲亲在吗").
    loop {
        let before = s;
        for f in LEADING_FILLER {
            if let Some(rest) = s.strip_prefix(f) {
                // "hi" must not eat "hiking": ASCII filler needs a word boundary.
                let ascii = f.is_ascii();
                if !ascii
                    || rest
                        .chars()
                        .next()
                        .is_none_or(|c| !c.is_ascii_alphanumeric())
                {
                    s = rest.trim_start();
                }
            }
        }
        if let Some(rest) = s.strip_prefix('亲') {
            if !rest.starts_with(|c| QIN_COMPOUNDS.contains(c)) {
                s = rest.trim_start();
            }
        }
        if s == before {
            break;
        }
    }
    // Trailing particles and laughter ("好的呀", "谢谢啦哈哈").
    while let Some(c) = s.chars().last() {
        if PARTICLES.contains(c) && s.chars().count() > 1 {
            s = &s[..s.len() - c.len_utf8()];
        } else {
            break;
        }
    }
    // A clause of pure laughter or particles is dropped.
    if s.chars().all(|c| PARTICLES.contains(c)) {
        return "";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn folds_width_case_and_script() {
        assert_eq!(
            normalize("ＷＨＥＲＥ　ｉｓ　ｍｙ　ｏｒｄｅｒ？"),
            "where is my order?"
        );
        assert_eq!(normalize("請問什麼時候發貨？"), "什么时候发货?");
        assert_eq!(normalize("ORDER 12345"), "order 12345");
    }

    #[test]
    fn strips_filler_but_not_words_that_contain_it() {
        assert_eq!(normalize("亲，在吗？我的快递到哪了😭"), "我的快递到哪了");
        assert_eq!(normalize("亲亲 衣服起球了呀"), "衣服起球了");
        assert_eq!(normalize("我要亲自去取"), "我要亲自去取");
        assert_eq!(normalize("hiking boots size?"), "hiking boots size?");
        assert_eq!(normalize("哈密瓜味的有吗"), "哈密瓜味的有吗");
        assert_eq!(normalize("为什么还没发货"), "为什么还没发货");
        assert_eq!(normalize("hello, where is my parcel"), "where is my parcel");
    }

    #[test]
    fn filler_only_message_keeps_its_words() {
        assert_eq!(normalize("亲在吗？"), "亲在吗?");
        assert_eq!(normalize("hi"), "hi");
    }

    #[test]
    fn collapses_repeated_marks_and_spaces() {
        assert_eq!(normalize("快点发货！！！   谢谢"), "快点发货! 谢谢");
        assert_eq!(normalize("👍👍"), "");
    }
}
