//! The direction of imports inside the crate: a module may use its own layer or a lower one, and
//! modules of one layer never use each other both ways. ARCHITECTURE.md draws the same picture.
//!
//! Read from the source rather than from a tool like `cargo modules`, so the check runs in every
//! `cargo test` with nothing to install.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. `domain` uses nothing; the command line may use everything.
const LAYERS: &[&[&str]] = &[
    &["domain"],
    &["text"],
    &["nlu", "knowledge", "risk"],
    &["dialog", "handoff"],
    &["store"],
    &["eval", "server"],
    &["config", "runtime", "cli", "main", "lib"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is not placed in a layer in tests/layers.rs"))
}

/// Every `crate::x` a file's code (not its comments) names, by the top module it sits in.
fn edges() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            // In the binary (main.rs and cli/), `crate::` is the binary's root, main.rs.
            let binary = module == "main" || module == "cli";
            let text = std::fs::read_to_string(&path).unwrap();
            // Comments out ("// " at a line's start or after a space, so "http://" stays), then
            // the file as one string, so a `use crate::{a, b}` over several lines is one path.
            let code: String = text
                .lines()
                .map(|line| match line.find("//") {
                    Some(i) if i == 0 || line[..i].ends_with(' ') => &line[..i],
                    _ => line,
                })
                .collect::<Vec<_>>()
                .join("\n");
            for used in crate_paths(&code) {
                let used = if binary && used != "cli" {
                    "main".to_string()
                } else {
                    used
                };
                if used != module {
                    out.entry(module.clone())
                        .or_default()
                        .insert((used, rel.display().to_string()));
                }
            }
        }
    }
    out
}

/// The top modules named after each `crate::` in `code`: `crate::a::b` gives `a`, and
/// `crate::{a::x, b}` gives `a` and `b`.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `honeydesk::...` or an identifier ending in "crate"
        }
        let rest = &code[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    out.push(ident(&item));
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else if depth == 1 {
                    item.push(c);
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

#[test]
fn paths_are_read_in_every_form() {
    let code =
        "use crate::{\n    dialog::Engine,\n    server::{a, b},\n};\nlet x = crate::store::open();";
    assert_eq!(crate_paths(code), ["dialog", "server", "store"]);
    assert!(crate_paths("honeydesk::crate_x::y").is_empty());
}

#[test]
fn no_module_uses_a_higher_layer() {
    let mut wrong = Vec::new();
    for (module, uses) in edges() {
        for (used, file) in uses {
            if layer(&used) > layer(&module) {
                wrong.push(format!(
                    "src/{file}: {module} (layer {}) uses {used} (layer {})",
                    layer(&module),
                    layer(&used)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run upward:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn modules_of_one_layer_do_not_use_each_other_both_ways() {
    let edges = edges();
    let uses = |a: &str, b: &str| edges.get(a).is_some_and(|s| s.iter().any(|(u, _)| u == b));
    let mut loops = Vec::new();
    for layer in LAYERS {
        for (i, a) in layer.iter().enumerate() {
            for b in &layer[i + 1..] {
                if uses(a, b) && uses(b, a) {
                    loops.push(format!("{a} <-> {b}"));
                }
            }
        }
    }
    assert!(loops.is_empty(), "import loops: {loops:?}");
}

#[test]
fn the_domain_core_uses_no_other_module() {
    let edges = edges();
    assert!(
        edges.get("domain").is_none_or(|s| s.is_empty()),
        "domain uses {:?}",
        edges.get("domain")
    );
    // And the check itself sees real edges: the server does use the dialog engine.
    assert!(edges["server"].iter().any(|(u, _)| u == "dialog"));
}
