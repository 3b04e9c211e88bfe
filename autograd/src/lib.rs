//! A tape-based reverse-mode automatic differentiation engine.
//!
//! # The idea in one example
//!
//! Every operation on a [`Var`] computes its value at once *and* appends a node to a [`Tape`]:
//! which op, which inputs, the result. Because inputs are always recorded before the ops that
//! use them, the tape is already in topological order, and [`Var::backward`] is a single scan
//! from the end to the start, applying each op's vector-Jacobian product (VJP) and summing the
//! gradients of values used more than once.
//!
//! ```
//! use autograd::{Tape, Tensor};
//!
//! // f(x, w, b) = Σ relu(x·w + b)
//! let tape = Tape::<f64>::new();
//! let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
//! let w = tape.var(Tensor::from_vec(vec![0.5, -1.0, 0.25, 1.0], [2, 2]));
//! let b = tape.var(Tensor::from_vec(vec![0.0, 0.5], [2]));
//! let h = (x.matmul(w) + b).relu();      // each op is recorded as it runs
//! let loss = h.sum_all();
//!
//! print!("{}", tape.dump());             // one line per node: id, op, inputs, shape, source
//! let grads = loss.backward();           // one reverse scan of the tape
//!
//! // h = [[1.0, 1.5], [2.5, 1.5]] is positive everywhere, so ∂loss/∂b = Σ over rows = [2, 2]
//! assert_eq!(grads[b].to_vec(), vec![2.0, 2.0]);
//! // and ∂loss/∂w = xᵀ·1 = column sums of x, repeated
//! assert_eq!(grads[w].to_vec(), vec![4.0, 4.0, 6.0, 6.0]);
//! ```
//!
//! # The pieces
//!
//! - [`Tensor`]: a contiguous, row-major buffer shared by cheap clones, with NumPy broadcasting.
//!   Every op exists on tensors too, so inference needs no tape.
//! - [`Tape`] and [`Var`]: the record and the `Copy` handles into it. [`Tape::no_grad`] and
//!   [`Var::detach`] stop gradients; [`Tape::dump`], [`Tape::to_dot`] and [`Tape::to_svg`] draw
//!   the graph.
//! - [`Var::backward`] computes gradients on plain tensors. [`Var::backward_with_graph`] records
//!   the backward pass on the tape, so gradients can be differentiated again (Hessian-vector
//!   products, gradient penalties).
//! - [`Op`] and [`Math`]: each op's VJP is written once, against [`Math`], which tensors
//!   implement by computing and vars by recording. Your own ops can do the same.
//! - [`Param`] and [`ParamStore`]: weights that outlive a tape, with dotted names and
//!   safetensors files.
//! - [`gradcheck`] and [`gradgradcheck`]: check any function's derivatives against central
//!   differences; [`allclose`] and [`max_relative_error`] compare tensors, failing on any NaN or
//!   infinity the reference does not have.
//!
//! Shape mistakes are programming errors and panic with a message naming the op, the shapes and
//! what would fit; anything read from outside (parameter files) returns a `Result`.
//!
//! Kernels run on rayon above a size threshold. Work is chunked by size, never by thread count,
//! so results are bit-identical however many threads run them.

#![warn(missing_docs)]

mod backward;
mod check;
mod compare;
mod element;
mod gradcheck;
mod graph;
mod kernels;
mod math;
mod memory;
mod op;
mod ops;
mod param;
mod shape;
mod svg;
mod tape;
mod tensor;

pub use backward::{CoverageReport, GradVars, GradientProblem, Gradients, ParamProblem};
pub use check::{GradientOf, NonFiniteReport, Phase, catch_nonfinite};
pub use compare::{Mismatch, allclose, largest_magnitude, max_relative_error};
pub use element::Element;
pub use gradcheck::{GradcheckError, GradcheckOptions, gradcheck, gradgradcheck};
pub use kernels::{GemmKernel, KeepAwake, ParallelRuns, SPIN_IDLE, gemm_kernel, keep_workers_awake, parallel_runs};
pub use math::Math;
pub use memory::{MemoryReport, MemoryUse};
pub use op::{InputGrads, Op, Vjp};
pub use ops::{CrossEntropyOptions, MASKED_SCORE};
pub use param::{Param, ParamPath, ParamStore, StoreError, StoreErrorKind, safetensors_header};
pub use shape::Shape;
pub use tape::{NoGradGuard, Tape, Var};
pub use tensor::Tensor;

/// The random number generator crate used by the seeded constructors, re-exported so callers
/// use the same version.
pub use rand;
