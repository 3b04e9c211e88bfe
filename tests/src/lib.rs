//! Cross-crate test suites live in `tests/`: PyTorch parity fixtures, GEMM sweeps, graph snapshots.
