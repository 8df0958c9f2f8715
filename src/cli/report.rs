//! The self-contained HTML report of `honeydesk eval --report DIR`: tables and inline SVG charts,
//! nothing fetched when it is opened.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use honeydesk::dialog::{Action, Source};
use honeydesk::eval::replay::{
    answer_is_wrong, EntryIntents, LabelledTurn, SweepPoint, TurnResult,
};
use honeydesk::nlu::calibrate::Scored;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(v: &serde_json::Value) -> String {
    v.as_f64()
        .map_or("n/a".into(), |x| format!("{:.2}%", x * 100.0))
}

/// A scatter of automation rate (x) against answer error rate (y); Pareto points joined.
fn sweep_svg(points: &[SweepPoint], best: Option<&SweepPoint>) -> String {
    let (w, h, pad) = (560.0, 320.0, 40.0);
    let max_err = points
        .iter()
        .map(|p| p.answer_error_rate)
        .fold(0.05, f64::max);
    let x = |a: f64| pad + a * (w - 2.0 * pad);
    let y = |e: f64| h - pad - e / max_err * (h - 2.0 * pad);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"automation against answer error\">\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"#333\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">automation rate</text>\
         <text x=\"12\" y=\"{}\" font-size=\"12\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">answer error rate (max {:.1}%)</text>",
        h - pad, w - pad, h - pad, h - pad, w / 2.0, h - 8.0, h / 2.0, h / 2.0, max_err * 100.0
    );
    for p in points {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"#bbb\"/>",
            x(p.automation_rate),
            y(p.answer_error_rate)
        );
    }
    let mut front: Vec<&SweepPoint> = points.iter().filter(|p| p.pareto).collect();
    front.sort_by(|a, b| a.automation_rate.total_cmp(&b.automation_rate));
    let path: Vec<String> = front
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.automation_rate), y(p.answer_error_rate)))
        .collect();
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    if let Some(b) = best {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"none\" stroke=\"#27ae60\" stroke-width=\"3\"/>",
            x(b.automation_rate),
            y(b.answer_error_rate)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Histogram of answer confidence, correct answers above the axis and wrong ones below.
fn histogram_svg(correct: &[f32], wrong: &[f32]) -> String {
    let bins = 20usize;
    let count = |v: &[f32]| {
        let mut c = vec![0usize; bins];
        for x in v {
            c[((x.clamp(0.0, 0.9999)) * bins as f32) as usize] += 1;
        }
        c
    };
    let (c, wr) = (count(correct), count(wrong));
    let max = c.iter().chain(&wr).copied().max().unwrap_or(1).max(1) as f64;
    let (w, h, pad) = (560.0, 300.0, 30.0);
    let mid = h / 2.0;
    let bw = (w - 2.0 * pad) / bins as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"confidence of correct and wrong answers\">\
         <line x1=\"{pad}\" y1=\"{mid}\" x2=\"{}\" y2=\"{mid}\" stroke=\"#333\"/>\
         <text x=\"{pad}\" y=\"14\" font-size=\"12\">correct (up) / wrong (down), confidence 0 → 1</text>",
        w - pad
    );
    for i in 0..bins {
        let up = c[i] as f64 / max * (mid - pad);
        let down = wr[i] as f64 / max * (mid - pad);
        let x = pad + i as f64 * bw;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{up:.1}\" fill=\"#2e86c1\"/>\
             <rect x=\"{x:.1}\" y=\"{mid}\" width=\"{:.1}\" height=\"{down:.1}\" fill=\"#c0392b\"/>",
            mid - up,
            bw - 1.0,
            bw - 1.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[allow(clippy::too_many_arguments)]
/// `lines.jsonl`: every replayed line with its labels and what the engine did, one JSON object a
/// line, for an analyst to filter (the wrong answers, the clarifications of one intent, ...).
fn write_lines(path: &Path, turns: &[LabelledTurn], results: &[TurnResult]) -> Result<()> {
    let known = EntryIntents::of(turns);
    let mut text = String::new();
    for (t, r) in turns.iter().zip(results) {
        let trace = &r.decision.trace;
        let (source, wrong) = match &r.decision.action {
            Action::Answer { source, .. } => (
                Some(match source {
                    Source::Faq(id) => format!("faq:{id}"),
                    Source::Intent(i) => format!("intent:{i}"),
                    Source::Action(a) => format!("action:{a}"),
                }),
                Some(answer_is_wrong(t, source, &known)),
            ),
            _ => (None, None),
        };
        let line = serde_json::json!({
            "line": t.line,
            "conversation": t.conversation,
            "text": t.text,
            "intent": t.intent,
            "faq": t.faq,
            "expected": t.expected.map(|e| format!("{e:?}").to_lowercase()),
            "risk": t.risk,
            "decided": format!("{:?}", honeydesk::eval::replay::decided(&r.decision.action)).to_lowercase(),
            "rule": trace.rule,
            "source": source,
            "wrong": wrong,
            "tier": trace.tier,
            "intents": trace.intents.iter().take(3).collect::<Vec<_>>(),
            "faq_candidates": trace.faq.iter().take(3).map(|c| (&c.id, c.score)).collect::<Vec<_>>(),
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn write(
    dir: &Path,
    out: &serde_json::Value,
    turns: &[LabelledTurn],
    results: &[TurnResult],
    sweep: Option<&[SweepPoint]>,
    scored: &[Scored],
    threshold: f32,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_lines(&dir.join("lines.jsonl"), turns, results)?;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>honeydesk eval report</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
         .bad{color:#c0392b}</style></head><body><h1>honeydesk eval report</h1>",
    );
    let _ = write!(
        html,
        "<p>{} turns, shop <b>{}</b>, {} bad lines skipped, {:.0} µs per turn.</p>",
        out["turns"],
        esc(out["shop"].as_str().unwrap_or("")),
        out["bad_lines"],
        out["mean_latency_us"].as_f64().unwrap_or(0.0)
    );

    html.push_str("<h2>Summary</h2><table><tr><th>metric</th><th>value</th></tr>");
    let rows = [
        ("intent accuracy", &out["intent"]["accuracy"]),
        (
            "intent in-scope accuracy",
            &out["intent"]["in_scope_accuracy"],
        ),
        ("out-of-scope recall", &out["intent"]["oos_recall"]),
        ("FAQ hit@1", &out["faq"]["hit_at_1"]),
        ("FAQ hit@3", &out["faq"]["hit_at_3"]),
        ("decision accuracy", &out["decision"]["accuracy"]),
        ("automation rate", &out["decision"]["automation_rate"]),
        ("answer error rate", &out["decision"]["answer_error_rate"]),
        ("resolution rate", &out["decision"]["resolution_rate"]),
        ("risk recall", &out["risk"]["recall"]),
        ("risk false-alarm rate", &out["risk"]["false_alarm_rate"]),
    ];
    for (name, v) in rows {
        let _ = write!(html, "<tr><td>{name}</td><td>{}</td></tr>", pct(v));
    }
    html.push_str("</table>");

    // Missed risks first: recall is what matters.
    html.push_str("<h2>Missed risk lines</h2>");
    let missed: Vec<&LabelledTurn> = turns
        .iter()
        .filter(|t| {
            out["risk"]["missed"]
                .as_array()
                .is_some_and(|m| m.iter().any(|l| l.as_u64() == Some(t.line as u64)))
        })
        .collect();
    if missed.is_empty() {
        html.push_str("<p>None.</p>");
    } else {
        html.push_str("<table><tr><th>line</th><th>risk</th><th>text</th></tr>");
        for t in missed {
            let _ = write!(
                html,
                "<tr class=\"bad\"><td>{}</td><td>{:?}</td><td>{}</td></tr>",
                t.line,
                t.risk,
                esc(&t.text)
            );
        }
        html.push_str("</table>");
    }

    html.push_str("<h2>Risk by kind</h2><table><tr><th>kind</th><th>labelled</th><th>recall</th><th>precision</th><th>false alarms</th></tr>");
    if let Some(kinds) = out["risk"]["by_kind"].as_object() {
        for (k, v) in kinds {
            let _ = write!(
                html,
                "<tr><td>{k}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                v["labelled"],
                pct(&v["recall"]),
                pct(&v["precision"]),
                pct(&v["false_alarm_rate"])
            );
        }
    }
    html.push_str("</table>");

    html.push_str("<h2>Decisions (expected → decided)</h2><table>");
    if let Some(conf) = out["decision"]["confusion"].as_object() {
        for (want, row) in conf {
            let _ = write!(
                html,
                "<tr><th>{want}</th><td>{}</td></tr>",
                esc(&row.to_string())
            );
        }
    }
    html.push_str("</table>");

    // Per-intent table sorted by F1, weakest first.
    html.push_str("<h2>Intents by F1</h2><table><tr><th>intent</th><th>support</th><th>precision</th><th>recall</th><th>F1</th></tr>");
    let mut per: Vec<(&String, &serde_json::Value)> = out["per_intent"]
        .as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    per.sort_by(|a, b| {
        a.1["f1"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&b.1["f1"].as_f64().unwrap_or(0.0))
    });
    for (label, v) in per {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>",
            esc(label),
            v["support"],
            pct(&v["precision"]),
            pct(&v["recall"]),
            v["f1"].as_f64().unwrap_or(0.0)
        );
    }
    html.push_str("</table>");

    // Most confused pairs, with an example each.
    let intent_turns: Vec<&LabelledTurn> = turns.iter().filter(|t| t.intent.is_some()).collect();
    let mut pairs: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    for (s, t) in scored.iter().zip(&intent_turns) {
        let got = s.label_at(threshold);
        if got != s.gold {
            let e = pairs
                .entry((s.gold.clone(), got.to_string()))
                .or_insert((0, t.text.clone()));
            e.0 += 1;
        }
    }
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_by_key(|p| std::cmp::Reverse(p.1 .0));
    html.push_str("<h2>Most confused intents</h2><table><tr><th>true</th><th>predicted</th><th>count</th><th>example</th></tr>");
    for ((gold, got), (n, example)) in pairs.iter().take(10) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{n}</td><td>{}</td></tr>",
            esc(gold),
            esc(got),
            esc(example)
        );
    }
    html.push_str("</table>");

    // Confidence of the bot's answers, right against wrong.
    let (mut right, mut wrong) = (Vec::new(), Vec::new());
    let known = EntryIntents::of(turns);
    for (t, r) in turns.iter().zip(results) {
        if let Action::Answer { source, .. } = &r.decision.action {
            let conf = match source {
                Source::Faq(_) => r.decision.trace.faq.first().map(|c| c.score),
                Source::Intent(_) => r.decision.trace.intents.first().map(|i| i.1),
                Source::Action(_) => None,
            };
            if let Some(c) = conf {
                if answer_is_wrong(t, source, &known) {
                    wrong.push(c)
                } else {
                    right.push(c)
                }
            }
        }
    }
    html.push_str("<h2>Answer confidence</h2>");
    html.push_str(&histogram_svg(&right, &wrong));

    if let Some(points) = sweep {
        let target = out["best_for_target_error"]["target"].as_f64();
        let best: Option<SweepPoint> = serde_json::from_value::<serde_json::Value>(
            out["best_for_target_error"]["setting"].clone(),
        )
        .ok()
        .and_then(|v| {
            Some(SweepPoint {
                intent_threshold: v["intent_threshold"].as_f64()? as f32,
                faq_threshold: v["faq_threshold"].as_f64()? as f32,
                ambiguity_gap: v["ambiguity_gap"].as_f64()? as f32,
                automation_rate: v["automation_rate"].as_f64()?,
                answer_error_rate: v["answer_error_rate"].as_f64()?,
                pareto: true,
            })
        });
        html.push_str("<h2>Automation against answer error (threshold sweep)</h2>");
        html.push_str(&sweep_svg(points, best.as_ref()));
        if let (Some(b), Some(t)) = (&best, target) {
            let _ = write!(
                html,
                "<p>Best for an answer error of at most {:.1}%: intent threshold {:.2}, FAQ threshold {:.2}, gap {:.2} → automation {:.1}%, error {:.1}%.</p>",
                t * 100.0,
                b.intent_threshold,
                b.faq_threshold,
                b.ambiguity_gap,
                b.automation_rate * 100.0,
                b.answer_error_rate * 100.0
            );
        }
    }
    html.push_str("</body></html>");
    let path = dir.join("report.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
