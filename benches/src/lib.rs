//! Criterion benchmarks live in `benches/`; comparison scripts beside them.
