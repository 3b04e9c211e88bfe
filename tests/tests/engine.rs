//! The engine's cross-cutting suites, in one test binary: PyTorch parity, finite differences,
//! second derivatives, thread-count determinism, the GEMM sweep, error messages, graph dumps and
//! the diagnostics (NaN reports, gradient coverage, tape memory).

#[path = "engine/cases.rs"]
mod cases;
#[path = "engine/determinism.rs"]
mod determinism;
#[path = "engine/diagnostics.rs"]
mod diagnostics;
#[path = "engine/errors.rs"]
mod errors;
#[path = "engine/files.rs"]
mod files;
#[path = "engine/finite_differences.rs"]
mod finite_differences;
#[path = "engine/gemm.rs"]
mod gemm;
#[path = "engine/graphs.rs"]
mod graphs;
#[path = "engine/parity.rs"]
mod parity;
#[path = "engine/second_order.rs"]
mod second_order;
