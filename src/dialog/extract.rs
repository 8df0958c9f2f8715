//! Values shoppers type that actions need: order numbers, phone numbers, amounts and dates.
//! Extracted from every message and remembered for the conversation, so an action can ask for
//! what is missing ("请提供订单号") instead of failing.

use std::collections::BTreeMap;

/// Slot names.
pub const ORDER_NUMBER: &str = "order_number";
pub const PHONE: &str = "phone";
pub const AMOUNT: &str = "amount";
pub const DATE: &str = "date";

/// Every value found in `text` (already normalized: half-width digits), by slot.
pub fn extract(text: &str) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let run = run.trim_end_matches('.');
        let digits_only = run.chars().all(|c| c.is_ascii_digit());
        let before = start.checked_sub(1).map(|j| chars[j]);
        let after: String = chars[i..chars.len().min(i + 3)].iter().collect();
        if digits_only && run.len() == 11 && run.starts_with('1') && run.as_bytes()[1] >= b'3' {
            out.entry(PHONE).or_insert_with(|| run.to_string());
        } else if digits_only && (12..=22).contains(&run.len()) {
            out.entry(ORDER_NUMBER).or_insert_with(|| run.to_string());
        } else if matches!(before, Some('¥' | '$' | '￥'))
            || ["元", "块", "rmb", "yuan", " yuan", " rmb"]
                .iter()
                .any(|u| after.starts_with(u))
        {
            out.entry(AMOUNT).or_insert_with(|| run.to_string());
        } else if let Some(date) = date_at(&chars, start, i) {
            out.entry(DATE).or_insert(date);
        }
    }
    out
}

/// `2026-11-11`, `11月11日` or `11/11` starting at `start`.
fn date_at(chars: &[char], start: usize, end: usize) -> Option<String> {
    let rest: String = chars[start..chars.len().min(start + 12)].iter().collect();
    let first: String = chars[start..end].iter().collect();
    let after = &rest[first.len()..];
    let num = |s: &str| -> Option<(u32, usize)> {
        let d: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        Some((d.parse().ok()?, d.len()))
    };
    if first.len() == 4 {
        let after = after
            .strip_prefix('-')
            .or_else(|| after.strip_prefix('/'))?;
        let (m, ml) = num(after)?;
        let after = after[ml..]
            .strip_prefix('-')
            .or_else(|| after[ml..].strip_prefix('/'))?;
        let (d, _) = num(after)?;
        return ((1..=12).contains(&m) && (1..=31).contains(&d))
            .then(|| format!("{first}-{m:02}-{d:02}"));
    }
    let m: u32 = first.parse().ok()?;
    let after = after
        .strip_prefix('月')
        .or_else(|| after.strip_prefix('/'))?;
    let (d, _) = num(after)?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| format!("{m:02}-{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_kind() {
        let v = extract("订单号 4089123456789012345，电话13812345678，付了299元，11月11日下的单");
        assert_eq!(v[ORDER_NUMBER], "4089123456789012345");
        assert_eq!(v[PHONE], "13812345678");
        assert_eq!(v[AMOUNT], "299");
        assert_eq!(v[DATE], "11-11");
        let v = extract("order 202611110001234 paid $45.50 on 2026-11-11");
        assert_eq!(v[ORDER_NUMBER], "202611110001234");
        assert_eq!(v[AMOUNT], "45.50");
        assert_eq!(v[DATE], "2026-11-11");
    }

    #[test]
    fn sizes_and_counts_are_not_values() {
        assert!(extract("我165cm，平时穿M码，买2件").is_empty());
    }
}
