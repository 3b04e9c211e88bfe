//! The numbered tutorials live beside this crate as examples: `cargo run --example 01_tensors`.
//! This library holds what they share.

use std::path::PathBuf;

/// Checks that `docs/generated/{name}`, a copy of an example's output that the book includes,
/// is exactly `text`, and panics with the way to refresh it if not; with the environment
/// variable `AUTOGRAD_WRITE_BOOK=1` it writes `text` there instead. `cargo test` runs every
/// example, so a book page showing an example's output cannot fall behind the example.
///
/// # Panics
/// If the copy is missing or differs (and `AUTOGRAD_WRITE_BOOK` is not 1), or cannot be
/// written.
pub fn book_output(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/generated").join(name);
    if std::env::var("AUTOGRAD_WRITE_BOOK").is_ok_and(|v| v == "1") {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "docs/generated/{name} is not what this example prints now; refresh the book's copy with\n  \
         AUTOGRAD_WRITE_BOOK=1 cargo test -p examples"
    );
}
