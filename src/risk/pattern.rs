//! The small pattern language the risk lexicons are written in.
//!
//! A pattern is literal text with `~` between parts that may be separated by up to [`GAP`]
//! characters: `安眠药~多少` matches 安眠药吃多少 and 安眠药一次最多吃多少. Patterns run on the
//! normalized message (Simplified, lower case, half-width), so one pattern covers 安眠藥 and
//! 安眠药, "Kill Myself" and "kill myself".

/// Most characters allowed between two parts of a pattern.
pub const GAP: usize = 8;

/// The byte span of the first match of `pattern` in `text` that starts at or after `from`.
pub fn find(text: &str, pattern: &str, from: usize) -> Option<(usize, usize)> {
    let mut parts = pattern.split('~');
    let first = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    for (start, _) in text[from..].match_indices(first) {
        let start = from + start;
        let mut end = start + first.len();
        let mut ok = true;
        for part in &rest {
            match text[end..].find(part) {
                Some(offset) if text[end..end + offset].chars().count() <= GAP => {
                    end += offset + part.len();
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            return Some((start, end));
        }
    }
    None
}

/// Whether an English pattern's match sits on word boundaries (so "die" does not fire on
/// "diet" or "studied").
pub fn on_word_boundaries(text: &str, (start, end): (usize, usize)) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    // A hyphen joins words: "scam-proof" is not "scam".
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
    !is_word(before) && !is_word(after)
}

/// Replace every match of `pattern` with spaces, keeping byte offsets of the rest.
pub fn blank(text: &mut String, pattern: &str) {
    let mut from = 0;
    while let Some((start, end)) = find(text, pattern, from) {
        let spaces = " ".repeat(end - start);
        text.replace_range(start..end, &spaces);
        from = end;
    }
}

/// A list of patterns with one Aho-Corasick automaton over their first parts, so that a message
/// is scanned once per list instead of once per pattern: with about a thousand patterns, trying
/// each with `match_indices` was a fifth of the server's CPU per message. Only the patterns whose
/// first part occurs are then checked exactly with [`find`]; the result is the same as trying
/// every pattern in list order.
pub struct PatternSet {
    patterns: Vec<&'static str>,
    /// Automaton over the distinct first parts.
    automaton: aho_corasick::AhoCorasick,
    /// For each distinct first part, the indices of the patterns that start with it.
    by_first: Vec<Vec<usize>>,
}

impl PatternSet {
    pub fn new(patterns: impl IntoIterator<Item = &'static str>) -> PatternSet {
        let patterns: Vec<&'static str> = patterns.into_iter().collect();
        let mut firsts: Vec<&'static str> = Vec::new();
        let mut by_first: Vec<Vec<usize>> = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let first = p.split('~').next().unwrap_or(p);
            match firsts.iter().position(|f| *f == first) {
                Some(j) => by_first[j].push(i),
                None => {
                    firsts.push(first);
                    by_first.push(vec![i]);
                }
            }
        }
        let automaton = aho_corasick::AhoCorasick::new(&firsts)
            .expect("the risk lexicon's patterns build an automaton");
        PatternSet {
            patterns,
            automaton,
            by_first,
        }
    }

    /// The patterns whose first part occurs in `text`, as indices in list order.
    pub fn candidates(&self, text: &str) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for m in self.automaton.find_overlapping_iter(text) {
            out.extend(&self.by_first[m.pattern().as_usize()]);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn pattern(&self, index: usize) -> &'static str {
        self.patterns[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_bounded() {
        assert!(find("安眠药一次最多吃多少", "安眠药~多少", 0).is_some());
        assert!(find(
            "安眠药的说明书上写的东西太多了我看不懂多少",
            "安眠药~多少",
            0
        )
        .is_none());
        assert_eq!(find("abc", "b", 0), Some((1, 2)));
    }

    #[test]
    fn blanking_keeps_offsets() {
        let mut t = "笑死我了想死".to_string();
        blank(&mut t, "笑死");
        assert_eq!(t.len(), "笑死我了想死".len());
        assert!(t.starts_with("      我了"));
    }

    #[test]
    fn candidates_are_the_patterns_that_can_match() {
        let set = PatternSet::new(["安眠药~多少", "多少", "die", "想死", "安眠药"]);
        let c: Vec<&str> = set
            .candidates("安眠药一次吃多少 diet")
            .into_iter()
            .map(|i| set.pattern(i))
            .collect();
        // "die" is a candidate inside "diet": the exact check decides, not the prefilter.
        assert_eq!(c, ["安眠药~多少", "多少", "die", "安眠药"]);
        assert!(set.candidates("你好").is_empty());
    }

    #[test]
    fn word_boundaries() {
        let t = "my diet plan";
        let m = find(t, "die", 0).unwrap();
        assert!(!on_word_boundaries(t, m));
        let t = "i want to die.";
        assert!(on_word_boundaries(t, find(t, "die", 0).unwrap()));
    }
}
