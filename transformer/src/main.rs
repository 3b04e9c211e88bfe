//! The `transformer` command-line program.

fn main() {}
