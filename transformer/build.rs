//! Builds the corpus `transformer lm train` learns from when given no `--text`: this
//! repository's own Rust sources and book, so the model learns to write in the style of the
//! engine it runs on.
//!
//! The rule (documented in the book, and followed by the PyTorch reference script): every file
//! under `autograd/src` and `transformer/src` ending in `.rs`, and under `docs/src` ending in
//! `.md`, by path relative to the repository root with `/` separators, sorted bytewise, their
//! contents concatenated as they are.

use std::path::{Path, PathBuf};

fn collect(root: &Path, dir: &str, ext: &str, out: &mut Vec<(String, PathBuf)>) {
    let mut stack = vec![root.join(dir)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                let rel = path.strip_prefix(root).expect("under the root");
                let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                out.push((rel, path));
            }
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate sits in the workspace").to_path_buf();
    let mut files = Vec::new();
    for (dir, ext) in [("autograd/src", "rs"), ("transformer/src", "rs"), ("docs/src", "md")] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
        collect(&root, dir, ext, &mut files);
    }
    files.sort();
    let mut corpus = String::new();
    for (_, path) in &files {
        corpus.push_str(&std::fs::read_to_string(path).unwrap_or_default());
    }
    if corpus.is_empty() {
        println!(
            "cargo:warning=the built-in corpus is empty: {} holds no autograd/src, transformer/src or docs/src \
             (built outside the repository?); `lm train` will need --text",
            root.display()
        );
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("corpus.txt");
    std::fs::write(out, corpus).expect("OUT_DIR is writable");
}
