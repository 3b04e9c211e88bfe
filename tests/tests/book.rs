//! The book in `docs/` cannot point at nothing: every chapter listed in `SUMMARY.md` exists, and
//! every `{{#include}}` names a file inside this repository, an anchor that file marks with
//! `ANCHOR:` and `ANCHOR_END:`, or lines it has. `mdbook build` only logs a broken include and
//! carries on, and includes nothing at all for an anchor it cannot find, so without this test
//! a renamed anchor would quietly empty a page.

use std::path::{Path, PathBuf};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the repository root")
}

/// Every chapter file of the book, from the links of `SUMMARY.md`.
fn chapters() -> Vec<String> {
    let summary = std::fs::read_to_string(docs().join("SUMMARY.md")).expect("docs/src/SUMMARY.md");
    summary.split("](").skip(1).map(|rest| rest.split(')').next().expect("a closing parenthesis").to_string()).collect()
}

/// What one `{{#include ...}}` asks for: a file, and an anchor or a line range.
struct Include {
    chapter: String,
    file: String,
    selector: Option<String>,
}

fn includes(chapter: &str, text: &str) -> Vec<Include> {
    let mut found = Vec::new();
    for directive in ["{{#include ", "{{#rustdoc_include "] {
        for rest in text.split(directive).skip(1) {
            let body = rest.split("}}").next().expect("a closing }}").trim();
            let (file, selector) = match body.split_once(':') {
                Some((file, selector)) => (file, Some(selector.to_string())),
                None => (body, None),
            };
            found.push(Include { chapter: chapter.to_string(), file: file.to_string(), selector });
        }
    }
    found
}

/// The problem with one include, if it has one.
fn check(include: &Include) -> Option<String> {
    let at = format!("{}: {{{{#include {}}}}}", include.chapter, include.file);
    let path = docs().join(&include.file);
    let Ok(path) = path.canonicalize() else { return Some(format!("{at}: no such file")) };
    if !path.starts_with(repo_root()) {
        return Some(format!("{at}: the file is outside the repository"));
    }
    let text = std::fs::read_to_string(&path).expect("a readable file");
    let selector = include.selector.as_deref()?;
    let first = selector.split(':').next().unwrap_or("");
    if first.is_empty() || first.chars().all(|c| c.is_ascii_digit()) {
        // A line range `start:end`, `start:` or `:end`: the file must reach the lines named.
        let last_named = selector.split(':').filter_map(|n| n.parse::<usize>().ok()).max().unwrap_or(0);
        let lines = text.lines().count();
        return (last_named > lines).then(|| format!("{at}:{selector}: the file has only {lines} lines"));
    }
    let (start, end) = (format!("ANCHOR: {selector}"), format!("ANCHOR_END: {selector}"));
    let marks = |mark: &str| text.lines().filter(|l| l.trim_end().ends_with(mark)).count();
    match (marks(&start), marks(&end)) {
        (1, 1) => None,
        (0, _) | (_, 0) => Some(format!("{at}:{selector}: the file has no anchor {selector}")),
        _ => Some(format!("{at}:{selector}: the anchor {selector} is marked more than once")),
    }
}

#[test]
fn every_chapter_and_include_exists() {
    let mut problems = Vec::new();
    let mut count = 0;
    for chapter in chapters() {
        let Ok(text) = std::fs::read_to_string(docs().join(&chapter)) else {
            problems.push(format!("SUMMARY.md lists {chapter}, which does not exist"));
            continue;
        };
        for include in includes(&chapter, &text) {
            count += 1;
            problems.extend(check(&include));
        }
    }
    assert!(count > 20, "found only {count} includes: is the parser still reading the book?");
    assert!(problems.is_empty(), "the book has broken includes:\n{}", problems.join("\n"));
}

#[test]
fn a_broken_include_is_caught() {
    let include = |file: &str, selector: Option<&str>| Include {
        chapter: "test.md".into(),
        file: file.into(),
        selector: selector.map(str::to_string),
    };
    assert!(check(&include("../../examples/01_tensors.rs", None)).is_none());
    let missing = check(&include("../../examples/no_such_example.rs", None)).expect("a missing file");
    assert!(missing.contains("no such file"), "{missing}");
    let anchor = check(&include("../../examples/05_train_mlp.rs", Some("no_such_anchor"))).expect("a missing anchor");
    assert!(anchor.contains("has no anchor no_such_anchor"), "{anchor}");
    assert!(check(&include("../../examples/05_train_mlp.rs", Some("model"))).is_none());
    assert!(check(&include("../../examples/05_train_mlp.rs", Some("5:"))).is_none());
    assert!(check(&include("../../examples/05_train_mlp.rs", Some("99999:"))).is_some());
}

/// The name of every op the engine defines, read from its sources: the string an `Op::name`
/// returns, the method name a `pointwise!` op is named after, and the name given to
/// `binary_operator!`.
fn engine_op_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../autograd/src/ops");
    let quoted = |line: &str| -> Vec<String> { line.split('"').skip(1).step_by(2).map(str::to_string).collect() };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("autograd/src/ops") {
        let text = std::fs::read_to_string(entry.expect("a directory entry").path()).expect("a source file");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim();
            if line.starts_with("fn name(&self) -> &'static str {") {
                // The name is on the next line, or two names in an `if` there.
                names.extend(quoted(lines[i + 1]));
            } else if line == "pointwise! {" {
                // `    Name, method,` after the doc comment lines.
                let decl =
                    lines[i + 1..].iter().map(|l| l.trim()).find(|l| !l.starts_with("///")).expect("a declaration");
                names.push(decl.split(',').nth(1).expect("Name, method,").trim().to_string());
            } else if let Some(args) = line.strip_prefix("binary_operator!(") {
                names.extend(quoted(args).into_iter().take(1));
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_gradient_table_has_every_op() {
    let names = engine_op_names();
    assert!(names.len() > 30 && names.contains(&"exp".to_string()), "read only {names:?}");
    let table = std::fs::read_to_string(docs().join("gradient_table.md")).expect("docs/src/gradient_table.md");
    let missing: Vec<&String> = names.iter().filter(|n| !table.contains(&format!("| `{n}` |"))).collect();
    assert!(missing.is_empty(), "docs/src/gradient_table.md has no row for {missing:?}");
}

#[test]
fn the_reference_has_every_config_field() {
    let reference = std::fs::read_to_string(docs().join("reference.md")).expect("docs/src/reference.md");
    let fields = |config: serde_json::Value| -> Vec<String> {
        config.as_object().expect("a config is a JSON object").keys().cloned().collect()
    };
    let translator = fields(serde_json::to_value(transformer::ModelConfig::default()).unwrap());
    let lm = fields(serde_json::to_value(transformer::lm::LmConfig::default()).unwrap());
    assert!(translator.len() >= 14 && lm.len() >= 11, "{translator:?} {lm:?}");
    let missing: Vec<&String> =
        translator.iter().chain(&lm).filter(|f| !reference.contains(&format!("| `{f}` |"))).collect();
    assert!(missing.is_empty(), "docs/src/reference.md has no row for the config fields {missing:?}");
}
