//! Kernels on plain slices: elementwise maps with broadcasting, reductions and GEMM.
//!
//! Elementwise and reduction work is split into fixed-size chunks whose boundaries depend only
//! on the sizes involved, never on the number of threads. A matrix product is cut into one
//! block of the output per thread, but every element is computed the same way whichever block
//! it falls in. So a computation gives bit-identical results on any pool.

pub(crate) mod binary;
pub(crate) mod erf;
pub(crate) mod exp;
pub(crate) mod gemm;
pub(crate) mod lanes;
pub(crate) mod packed_gemm;
pub(crate) mod reduce;
pub(crate) mod small_gemm;

use crate::Element;
use rayon::prelude::*;
use std::cell::Cell;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::OnceLock;

/// The f32 matrix-product kernel a process uses, chosen once: the fastest this CPU runs, or
/// the one named by the environment variable `AUTOGRAD_GEMM` (`avx512`, `avx2` or
/// `portable`), so that every kernel a machine supports can be timed and tested on it. A name
/// this CPU cannot run, or an unknown one, is reported on standard error once and the fastest
/// kernel is used instead.
///
/// ```
/// let kernel = autograd::gemm_kernel();
/// println!("f32 products run on the {} kernel", kernel.name());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// The packed GEMM with a 12×32 register tile of AVX-512 vectors, and the AVX2 kernel
    /// without packing for small products.
    Avx512,
    /// The packed GEMM with a 6×16 register tile of AVX2 vectors and fused multiply-adds, and
    /// a kernel without packing for small products.
    Avx2,
    /// `matrixmultiply`, on any CPU.
    Portable,
}

impl GemmKernel {
    /// `avx512`, `avx2` or `portable`: the name `AUTOGRAD_GEMM` takes.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Avx512 => "avx512",
            GemmKernel::Avx2 => "avx2",
            GemmKernel::Portable => "portable",
        }
    }

    /// True if this CPU can run the kernel.
    pub fn available(self) -> bool {
        use packed_gemm::Kernel;
        match self {
            GemmKernel::Avx512 => packed_gemm::Avx512::available(),
            GemmKernel::Avx2 => packed_gemm::Avx2::available(),
            GemmKernel::Portable => true,
        }
    }

    /// The fastest kernel this CPU runs.
    pub fn best() -> GemmKernel {
        [GemmKernel::Avx512, GemmKernel::Avx2].into_iter().find(|k| k.available()).unwrap_or(GemmKernel::Portable)
    }

    /// The kernel `AUTOGRAD_GEMM` asks for, if it names one this CPU runs; otherwise why not.
    fn from_env(value: &str) -> Result<GemmKernel, String> {
        let kernel = [GemmKernel::Avx512, GemmKernel::Avx2, GemmKernel::Portable]
            .into_iter()
            .find(|k| k.name() == value)
            .ok_or_else(|| format!("AUTOGRAD_GEMM={value:?} is not avx512, avx2 or portable"))?;
        if kernel.available() {
            Ok(kernel)
        } else {
            Err(format!("AUTOGRAD_GEMM={value}: this CPU cannot run that kernel"))
        }
    }
}

/// The f32 matrix-product kernel of this process (see [`GemmKernel`]).
pub fn gemm_kernel() -> GemmKernel {
    static KERNEL: OnceLock<GemmKernel> = OnceLock::new();
    *KERNEL.get_or_init(|| match std::env::var("AUTOGRAD_GEMM") {
        Err(_) => GemmKernel::best(),
        Ok(value) => GemmKernel::from_env(value.trim()).unwrap_or_else(|why| {
            let best = GemmKernel::best();
            eprintln!("autograd: {why}; using {}", best.name());
            best
        }),
    })
}

/// |got − exact| in units in the last place of `exact` rounded to f32 (the subnormal ulp below
/// 2⁻¹²⁶); 0 where `exact` overflows f32 and `got` is +∞; +∞ for a NaN.
#[cfg(test)]
pub(crate) fn ulps(got: f32, exact: f64) -> f64 {
    if exact > f64::from(f32::MAX) {
        return if got == f32::INFINITY { 0.0 } else { f64::INFINITY };
    }
    let exponent = if exact == 0.0 { -149 } else { (exact.abs().log2().floor() as i32 - 23).max(-149) };
    let d = (f64::from(got) - exact).abs() / 2f64.powi(exponent);
    if d.is_nan() { f64::INFINITY } else { d }
}

/// Asserts that `f` is within `bound` ulps of `reference` (computed in f64) at every `step`-th
/// float, both signs, whose magnitude's bits lie in each of `ranges`. In parallel, blocks of
/// 2^20 floats; the message names the worst float.
#[cfg(test)]
pub(crate) fn assert_within_ulps(
    f: impl Fn(f32) -> f32 + Sync,
    reference: impl Fn(f64) -> f64 + Sync,
    ranges: &[(std::ops::RangeInclusive<u32>, usize)],
    bound: f64,
) {
    use rayon::prelude::*;
    let error = |x: f32| ulps(f(x), reference(f64::from(x)));
    let worse = |a: (f64, f32), b: (f64, f32)| if b.0 > a.0 || b.0.is_nan() { b } else { a };
    for (bits, step) in ranges {
        for sign in [0, 1 << 31] {
            let (start, end) = (*bits.start(), *bits.end());
            let blocks: Vec<u32> = (start..=end).step_by(1 << 20).collect();
            let (worst, at) = blocks
                .par_iter()
                .map(|&b0| {
                    let b1 = end.min(b0.saturating_add((1 << 20) - 1));
                    (b0..=b1)
                        .step_by(*step)
                        .map(|bits| f32::from_bits(bits | sign))
                        .fold((0.0, 0.0), |w, x| worse(w, (error(x), x)))
                })
                .reduce(|| (0.0, 0.0), worse);
            assert!(worst < bound, "{worst} ulp at x = {at:e} (bound {bound})");
        }
    }
}

/// Says, past the test harness's capture of printed output, that a test could not run a
/// kernel on this CPU: a test of a kernel the CPU lacks must not pass in silence.
#[cfg(test)]
pub(crate) fn not_run(what: &str) {
    use std::io::Write;
    // Written to the stream itself, not through `eprintln!`, which the harness captures.
    let _ = writeln!(std::io::stderr(), "NOT RUN: {what}");
}

/// While alive, the other threads of the current rayon pool look for work without going to
/// sleep, so the many short parallel kernels of a training step start at once instead of first
/// waking a sleeping thread (on a virtual machine that can take tens of microseconds, longer
/// than a small kernel). Meant to span one step: take it at the start and drop it at the end.
///
/// Each other thread runs one waiting job that executes whatever work appears and otherwise
/// spins. It stops when this guard is dropped, or after [`SPIN_IDLE`] without work: so a
/// waiting job that a thread picked up while itself waiting inside another job (which then
/// cannot go on until it stops) holds that job back for at most that long, never forever. The
/// cost is those threads' cores while they wait, as with OpenMP's spinning threads. Results do
/// not change: every kernel computes the same values whichever thread runs it.
///
/// ```
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let x = autograd::Tensor::<f32>::from_fn([1 << 18], |i| (i % 7) as f32);
/// let (awake, plain) = pool.install(|| {
///     let awake = {
///         let _awake = autograd::keep_workers_awake(); // for the span of one step
///         x.exp().sum_all().item()
///     };
///     (awake, x.exp().sum_all().item())
/// });
/// assert_eq!(awake.to_bits(), plain.to_bits()); // the same result, to the bit
/// ```
#[must_use = "the threads go back to sleeping when this is dropped"]
pub struct KeepAwake {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How long a waiting thread of [`keep_workers_awake`] spins without finding work before it
/// gives up and may sleep.
pub const SPIN_IDLE: std::time::Duration = std::time::Duration::from_millis(1);

thread_local! {
    /// Whether this thread is already running a waiting job: a second one would never end
    /// while the first waits for it.
    static SPINNING: Cell<bool> = const { Cell::new(false) };
}

/// Starts a [`KeepAwake`] on the current rayon pool (the global one outside any pool).
pub fn keep_workers_awake() -> KeepAwake {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let caller = rayon::current_thread_index();
    for _ in 1..rayon::current_num_threads() {
        let stop = stop.clone();
        rayon::spawn(move || {
            // The calling thread does its own work, and a thread already waiting does not
            // start a second wait inside the first.
            if (caller.is_some() && rayon::current_thread_index() == caller) || SPINNING.with(Cell::get) {
                return;
            }
            SPINNING.with(|s| s.set(true));
            // Polls since work was last found: the clock is read only every 64 of them.
            let (mut last_work, mut idle_polls) = (std::time::Instant::now(), 0u32);
            while !stop.load(Ordering::Relaxed) {
                if rayon::yield_now() == Some(rayon::Yield::Executed) {
                    idle_polls = 0;
                    continue;
                }
                if idle_polls == 0 {
                    last_work = std::time::Instant::now();
                } else if idle_polls.is_multiple_of(64) {
                    if last_work.elapsed() >= SPIN_IDLE {
                        break;
                    }
                    // Let a thread that has work of its own have this core now and then (a
                    // pool with more threads than cores).
                    std::thread::yield_now();
                }
                std::hint::spin_loop();
                idle_polls = idle_polls.wrapping_add(1);
            }
            SPINNING.with(|s| s.set(false));
        });
    }
    KeepAwake { stop }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Elements per parallel task. Fixed, so chunk boundaries never depend on the thread count.
pub(crate) const CHUNK: usize = 1 << 13;

/// Below this many elements a kernel runs on the calling thread: waking another costs more
/// than it saves. At 2^15 the tiny reference Transformer's step (activations of 2^16 elements)
/// spent more time handing elementwise work to a sleeping worker than the worker took off the
/// caller; at 2^17 its step is about 5% faster on 2 threads, and larger models are unchanged.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 17;

/// How many kernels took each of their multi-threaded paths, counted on the thread that called
/// them. A test reads it before and after a computation to prove that its inputs were large
/// enough to exercise the parallel code (a determinism test on small inputs proves nothing).
///
/// ```
/// use autograd::{Tensor, parallel_runs};
/// let before = parallel_runs();
/// let _ = Tensor::<f32>::ones([1 << 18]).exp();
/// let ran = parallel_runs() - before;
/// assert_eq!(ran.elementwise, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParallelRuns {
    /// Elementwise maps over one, two or three tensors.
    pub elementwise: u64,
    /// Row-by-row kernels: softmax, layer norm, cross-entropy, gathers and copies.
    pub rows: u64,
    /// Sums and maxima over axes.
    pub reductions: u64,
    /// Single matrix products cut into one block per thread.
    pub split_products: u64,
    /// Batches of matrix products spread over threads, one product per task.
    pub batched_products: u64,
}

impl std::ops::Sub for ParallelRuns {
    type Output = ParallelRuns;
    fn sub(self, o: ParallelRuns) -> ParallelRuns {
        ParallelRuns {
            elementwise: self.elementwise - o.elementwise,
            rows: self.rows - o.rows,
            reductions: self.reductions - o.reductions,
            split_products: self.split_products - o.split_products,
            batched_products: self.batched_products - o.batched_products,
        }
    }
}

thread_local! {
    static PARALLEL_RUNS: Cell<ParallelRuns> = const {
        Cell::new(ParallelRuns { elementwise: 0, rows: 0, reductions: 0, split_products: 0, batched_products: 0 })
    };
}

/// The parallel paths kernels called from this thread have taken so far (see [`ParallelRuns`]).
pub fn parallel_runs() -> ParallelRuns {
    PARALLEL_RUNS.with(Cell::get)
}

/// Counts one run of a parallel path.
pub(crate) fn count(path: fn(&mut ParallelRuns) -> &mut u64) {
    PARALLEL_RUNS.with(|c| {
        let mut runs = c.get();
        *path(&mut runs) += 1;
        c.set(runs);
    });
}

/// `f` applied to every element, in parallel for large inputs.
pub(crate) fn map<T: Element>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    if x.len() < PARALLEL_THRESHOLD {
        return x.iter().map(|&v| f(v)).collect();
    }
    // SAFETY: `x[range]` is as long as `out` (or the slicing panics), and each of its elements
    // writes one of `out`'s.
    unsafe {
        in_chunks(x.len(), |range, out| {
            for (o, &v) in out.iter_mut().zip(&x[range]) {
                o.write(f(v));
            }
        })
    }
}

/// `f` applied to pairs of elements of two slices of one length, in parallel for large inputs.
pub(crate) fn zip_map<T: Element>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    debug_assert_eq!(a.len(), b.len());
    if a.len() < PARALLEL_THRESHOLD {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    assert_eq!(a.len(), b.len(), "zip_map: slices of different lengths");
    // SAFETY: as in `map`, with `b` as long as `a`.
    unsafe {
        in_chunks(a.len(), |range, out| {
            for ((o, &x), &y) in out.iter_mut().zip(&a[range.clone()]).zip(&b[range]) {
                o.write(f(x, y));
            }
        })
    }
}

/// `f` applied to triples of elements of three slices of one length, in parallel for large inputs.
pub(crate) fn zip3_map<T: Element>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T + Sync + Send) -> Vec<T> {
    debug_assert!(a.len() == b.len() && b.len() == c.len());
    if a.len() < PARALLEL_THRESHOLD {
        return a.iter().zip(b).zip(c).map(|((&x, &y), &z)| f(x, y, z)).collect();
    }
    assert!(a.len() == b.len() && b.len() == c.len(), "zip3_map: slices of different lengths");
    // SAFETY: as in `map`, with `b` and `c` as long as `a`.
    unsafe {
        in_chunks(a.len(), |range, out| {
            for (((o, &x), &y), &z) in out.iter_mut().zip(&a[range.clone()]).zip(&b[range.clone()]).zip(&c[range]) {
                o.write(f(x, y, z));
            }
        })
    }
}

/// A vector of `n` elements written in parallel, `CHUNK` at a time: `fill(range, out)` writes
/// the elements `range` into `out`. Each chunk is one plain loop over slices, which the compiler
/// vectorizes where the element function allows; an item-by-item parallel `collect` is not.
///
/// # Safety
/// `fill` must write every element of each `out` it is given.
unsafe fn in_chunks<T: Element>(
    n: usize,
    fill: impl Fn(std::ops::Range<usize>, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    count(|r| &mut r.elementwise);
    let write = |out: &mut [MaybeUninit<T>]| {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| fill(i * CHUNK..i * CHUNK + chunk.len(), chunk));
    };
    // SAFETY: the chunks cover the vector, and the caller's `fill` writes each one whole.
    unsafe { filled(n, write) }
}

/// Runs `f(row_index, row)` for each `row_len`-long row of `out`, in parallel when `out` is large.
pub(crate) fn for_each_row<E: Send>(out: &mut [E], row_len: usize, f: impl Fn(usize, &mut [E]) + Sync + Send) {
    for_each_row_costing(out, row_len, row_len, f);
}

/// Like [`for_each_row`] for rows that each cost `cost` elements of work rather than `row_len`
/// (a row-wise reduction writes one value per row but reads a whole row of its input): in
/// parallel when the total work is large.
pub(crate) fn for_each_row_costing<E: Send>(
    out: &mut [E],
    row_len: usize,
    cost: usize,
    f: impl Fn(usize, &mut [E]) + Sync + Send,
) {
    if row_len == 0 {
        return;
    }
    let rows = out.len() / row_len;
    if rows.saturating_mul(cost) < PARALLEL_THRESHOLD || rows < 2 {
        out.chunks_mut(row_len).enumerate().for_each(|(i, r)| f(i, r));
    } else {
        count(|r| &mut r.rows);
        let min_rows = (CHUNK / cost.max(1)).max(1);
        out.par_chunks_mut(row_len).with_min_len(min_rows).enumerate().for_each(|(i, r)| f(i, r));
    }
}

/// Runs `f(row_index, a_row, b_row)` for each pair of `row_len`-long rows of two outputs of one
/// length, in parallel when they are large.
pub(crate) fn for_each_row_pair<E: Send>(
    a: &mut [E],
    b: &mut [E],
    row_len: usize,
    f: impl Fn(usize, &mut [E], &mut [E]) + Sync + Send,
) {
    debug_assert_eq!(a.len(), b.len());
    if row_len == 0 {
        return;
    }
    if a.len() < PARALLEL_THRESHOLD || a.len() / row_len < 2 {
        a.chunks_mut(row_len).zip(b.chunks_mut(row_len)).enumerate().for_each(|(i, (x, y))| f(i, x, y));
    } else {
        count(|r| &mut r.rows);
        let min_rows = (CHUNK / row_len).max(1);
        a.par_chunks_mut(row_len)
            .zip(b.par_chunks_mut(row_len))
            .with_min_len(min_rows)
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
}

/// A vector of `n` elements that `fill` writes, without zeroing the memory first (for outputs
/// a kernel overwrites anyway, such as a GEMM's).
///
/// # Safety
/// `fill` must write every one of the `n` elements.
pub(crate) unsafe fn filled<T: Element>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v: Vec<MaybeUninit<T>> = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` elements need no initialization.
    unsafe { v.set_len(n) };
    fill(&mut v);
    let mut v = ManuallyDrop::new(v);
    // SAFETY: the caller promised every element was written, so the buffer is a valid `[T]` of
    // the same length, capacity and allocation (`MaybeUninit<T>` has `T`'s layout).
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

/// Copies `src` into the uninitialized `dst` of the same length.
#[inline]
pub(crate) fn write_slice<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

#[cfg(test)]
mod keep_awake_tests {
    use super::keep_workers_awake;
    use crate::Tensor;
    use rayon::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Work with parallel kernels nested inside a parallel loop (as Adam's per-parameter tasks
    /// run parallel updates): a waiting thread may be picked up by a thread that is itself
    /// waiting inside a job.
    fn nested_work(round: usize) -> Vec<f32> {
        (0..6)
            .into_par_iter()
            .map(|i| {
                let x = Tensor::<f32>::from_fn([1 << 17], |j| ((j * 7 + i + round) % 13) as f32 * 0.1);
                x.exp().sum_all().item() + x.softmax(0).sum_all().item()
            })
            .collect()
    }

    /// On pools with more threads than this machine has cores, many rounds of nested parallel
    /// work under a fresh guard each finish (a watchdog aborts on a hang) and give the bits they
    /// give without one.
    #[test]
    fn nested_parallel_work_finishes_and_is_unchanged() {
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(120));
            if !watchdog.load(Ordering::Relaxed) {
                eprintln!("keep_workers_awake: nested parallel work hung for 120 s");
                std::process::abort();
            }
        });
        for threads in [2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            let plain: Vec<Vec<f32>> = pool.install(|| (0..20).map(nested_work).collect());
            let awake: Vec<Vec<f32>> = pool.install(|| {
                (0..20)
                    .map(|round| {
                        let _awake = keep_workers_awake();
                        nested_work(round)
                    })
                    .collect()
            });
            let same = plain.iter().flatten().zip(awake.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{threads} threads: results changed with the threads kept awake");
        }
        // Outside any pool, on the global one.
        let _awake = keep_workers_awake();
        assert_eq!(nested_work(0).len(), 6);
        done.store(true, Ordering::Relaxed);
    }
}
