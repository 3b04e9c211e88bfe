//! An f32 GEMM for x86-64 CPUs with AVX-512 or with AVX2 and FMA, built the way
//! high-performance BLAS libraries are: a register-tile kernel keeps an `MR`×`NR` block of the
//! output in vector registers while it runs down the shared dimension, and the operands are
//! arranged so that what it reads comes from the nearest cache. The loops and the packing are
//! shared; each instruction set brings its register tile ([`Kernel`]): 12×32 in 24 of
//! AVX-512's 32 registers, 6×16 in 12 of AVX2's 16.
//!
//! For one block of the output (one per thread), the loops are, outermost first:
//!
//! 1. the shared dimension in slices of `KC`;
//! 2. the output's columns in slabs of `NC`: B's `KC`×`NC` slab is copied ("packed") into
//!    `NR`-wide column panels, each `KC` rows of `NR` contiguous floats, and stays in L2;
//! 3. the output's rows in chunks of `MC`, packed from A if they need to be (below);
//! 4. the chunk's rows in panels of `MR`: A's `MR`×`KC` row panel stays in L1;
//! 5. the column panels of the slab: one kernel call each.
//!
//! A's rows are read where they are when they are contiguous (the kernel broadcasts single
//! elements of A, so their layout matters little); otherwise, or when their stride would make
//! the rows of a panel evict each other from L1, A is packed too, each column of a row panel as
//! `MR` contiguous floats.
//!
//! Every output element is the sum over the `KC` slices in ascending order, each slice's part a
//! chain of fused multiply-adds in ascending `k`. How the output is cut into blocks decides only
//! who computes an element, never how, so the result does not depend on the thread count.

use rayon::prelude::*;
use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::ptr::NonNull;
use std::thread::LocalKey;

/// One instruction set's half of the GEMM: its register tile and the packing and kernel
/// functions compiled for it.
pub(crate) trait Kernel: Copy + Send + Sync + 'static {
    /// Rows of the register tile; divides `MC`.
    const MR: usize;
    /// Columns of the register tile; divides `NC`.
    const NR: usize;
    /// True if this CPU can run the kernel.
    fn available() -> bool;
    /// Packs rows `i0..i0+rows` (at most `MR`), columns `p0..p0+kc` of A into one `MR`-tall
    /// panel of `MR`·`kc` floats, column by column, rows past `rows` zero.
    ///
    /// # Safety
    /// Those rows and columns must be inside A; the CPU must run the kernel.
    unsafe fn pack_a(a: Strided, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]);
    /// Packs rows `p0..p0+kc`, columns `j0..j1` of B into `NR`-wide column panels of
    /// `kc`·`NR` floats each, row by row, columns past `j1` zero.
    ///
    /// # Safety
    /// Those rows and columns must be inside B; the CPU must run the kernel.
    unsafe fn pack_b(b: Strided, p0: usize, kc: usize, j0: usize, j1: usize, dst: &mut [f32]);
    /// Runs one tile.
    ///
    /// # Safety
    /// The CPU must run the kernel; `a` addresses `MR` rows of `kc` columns (only `rows` of
    /// them if it is read in place), `b` a packed panel of `kc` rows; `c` addresses a
    /// `rows`×`cols` block at row stride `ldc`, initialised if `accumulate`.
    unsafe fn tile(job: TileJob);
}

/// The AVX-512 kernel: a 12×32 tile, two 16-float vectors per row.
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

/// The AVX2 + FMA kernel: a 6×16 tile, two 8-float vectors per row.
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

/// Slice of the shared dimension: a row panel of A (12 KiB) stays in the L1 cache while the
/// column panels of B (32 KiB each) stream past it.
const KC: usize = 256;
/// Columns of B packed per slab, a multiple of every `NR`: `KC`·`NC` floats, 512 KiB, stay in L2
/// (a slab of 1 MiB measured 10–15% slower on products of 1024 and 2048).
const NC: usize = 512;
/// Rows of A packed at a time, a multiple of every `MR`: `MC`·`KC` floats, 144 KiB, beside B
/// in L2.
const MC: usize = 144;

/// A matrix read through (row, column) strides.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

// SAFETY: a `Strided` is only ever read, and only while the slice it came from is borrowed.
unsafe impl Send for Strided {}
unsafe impl Sync for Strided {}

impl Strided {
    /// The address of element (row, col).
    fn at(self, row: usize, col: usize) -> *const f32 {
        self.ptr.wrapping_add(row * self.rs + col * self.cs)
    }
}

/// The output pointer, shared by the blocks of one product (each writes only its own).
#[derive(Clone, Copy)]
struct Out(*mut f32);

// SAFETY: the blocks that share it write disjoint parts of the output.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The address of the output element at `offset`.
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

thread_local! {
    /// Each thread's packing buffers, kept from call to call: fresh pages for every product
    /// would cost more in page faults than small products cost in arithmetic.
    static B_BUFFER: RefCell<PackBuffer> = const { RefCell::new(PackBuffer::new()) };
    static A_BUFFER: RefCell<PackBuffer> = const { RefCell::new(PackBuffer::new()) };
}

/// Runs `f` with this thread's buffer from `cell`. A buffer is borrowed only while one block is
/// computed, which never waits on rayon, so it is never found in use; the fresh buffer in that
/// case is only a defence against a future change breaking that.
fn with_buffer<R>(cell: &'static LocalKey<RefCell<PackBuffer>>, f: impl FnOnce(&mut PackBuffer) -> R) -> R {
    cell.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => f(&mut buffer),
        Err(_) => f(&mut PackBuffer::new()),
    })
}

/// A growable buffer of floats for packed panels, aligned to a cache line (B's panels are read
/// with aligned vector loads): at most `KC`·`NC` floats (512 KiB) for B, `MC`·`KC` (144 KiB)
/// for A. It is zero-initialised when it grows, so that it is always a valid `[f32]`, though
/// packing overwrites whatever the kernel reads.
struct PackBuffer {
    ptr: NonNull<f32>,
    layout: Option<Layout>,
}

impl PackBuffer {
    const ALIGN: usize = 64;

    const fn new() -> PackBuffer {
        PackBuffer { ptr: NonNull::dangling(), layout: None }
    }

    /// The first `len` floats, growing the buffer if needed.
    fn get(&mut self, len: usize) -> &mut [f32] {
        let bytes = (len * 4).max(1);
        if self.layout.is_none_or(|layout| layout.size() < bytes) {
            self.release();
            let layout = Layout::from_size_align(bytes, Self::ALIGN).expect("buffer size overflows");
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc_zeroed(layout) };
            let Some(ptr) = NonNull::new(ptr.cast::<f32>()) else { handle_alloc_error(layout) };
            (self.ptr, self.layout) = (ptr, Some(layout));
        }
        // SAFETY: the allocation holds at least `len` initialised floats, and `&mut self`
        // makes this the only reference to them.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), len) }
    }

    fn release(&mut self) {
        if let Some(layout) = self.layout.take() {
            // SAFETY: allocated with this layout by `get`.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}

impl Drop for PackBuffer {
    fn drop(&mut self) {
        self.release();
    }
}

/// C (m×n, row-major) = op(A) · op(B), operands given by slices and (row, column) strides of
/// the logical matrices. With `parallel`, the output is cut into one block per thread of
/// rayon's pool.
///
/// # Safety
/// The CPU must run `K` ([`Kernel::available`]); m, k and n must be positive; the strides
/// must address elements inside the slices for every (i < m, p < k) and (p < k, j < n); `out`
/// must hold m·n elements.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm<K: Kernel>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    out: &mut [MaybeUninit<f32>],
    parallel: bool,
) {
    debug_assert!(m > 0 && k > 0 && n > 0 && out.len() == m * n);
    if m < n && m <= TRANSPOSE_MAX_ROWS && rsb == 1 && csb != 1 {
        // A few rows times B read transposed: x·Wᵀ in decoding, one row per sequence. Packing
        // B would copy all of W on every call, for a product that uses each of its elements
        // only m times. Computed as its transpose W·xᵀ instead, W's rows are read in place as
        // A and only x is packed. Each element is the same chain of multiply-adds, in the same
        // order (a fused multiply-add does not care which factor is which): the same bits.
        let mut transposed = vec![MaybeUninit::<f32>::uninit(); n * m];
        // SAFETY: Bᵀ (n×k) and Aᵀ (k×m) are B and A read with their strides swapped: the same
        // elements, inside the same slices; `transposed` holds n·m elements.
        unsafe { sgemm::<K>(n, k, m, b, (csb, rsb), a, (csa, rsa), &mut transposed, parallel) };
        for (j, column) in transposed.chunks_exact(m).enumerate() {
            for (i, &v) in column.iter().enumerate() {
                out[i * n + j] = v;
            }
        }
        return;
    }
    let product = Product {
        m,
        k,
        n,
        a: Strided { ptr: a.as_ptr(), rs: rsa, cs: csa },
        b: Strided { ptr: b.as_ptr(), rs: rsb, cs: csb },
        c: Out(out.as_mut_ptr().cast::<f32>()),
    };
    let (row_panels, col_panels) = (m.div_ceil(K::MR), n.div_ceil(K::NR));
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    // The last column panel runs the one-vector tile when it is at most half a panel wide.
    let narrow_last = !n.is_multiple_of(K::NR) && n % K::NR <= K::NR / 2;
    let (row_parts, col_parts) = partition(row_panels, col_panels, narrow_last, threads);
    if row_parts * col_parts == 1 {
        product.block::<K>(0..row_panels, 0..col_panels);
        return;
    }
    super::count(|r| &mut r.split_products);
    let blocks: Vec<_> = split(row_panels, row_parts)
        .flat_map(|rows| split(col_panels, col_parts).map(move |cols| (rows.clone(), cols)))
        .collect();
    blocks.into_par_iter().for_each(|(rows, cols)| product.block::<K>(rows, cols));
}

/// At most this many rows, a product with B read transposed is computed as its transpose
/// ([`sgemm`]). Up to a tile's width of them fit in one column panel of the transposed product.
const TRANSPOSE_MAX_ROWS: usize = 32;

/// How many parts to cut the row and the column panels into, for `threads` blocks of nearly
/// equal work: the factorization of `threads` whose largest block is smallest, cutting rows
/// rather than columns when both are as even. A row cut gives each thread its own rows of A
/// and all of B; a column cut makes every thread stream all of A, once per column panel.
///
/// Work is counted in vector multiply-adds per step of k: a full column panel takes two
/// vectors, and the last one half as many when it is `narrow_last` (at most half a panel wide,
/// run by the one-vector tile). Counting it as a full panel would, for example, give a
/// 40-column product's two column panels (32 + 8 columns) one thread each, two thirds of the
/// work to one of them.
fn partition(row_panels: usize, col_panels: usize, narrow_last: bool, threads: usize) -> (usize, usize) {
    let largest = |panels: usize, parts: usize, cost: &dyn Fn(Range<usize>) -> usize| {
        split(panels, parts).map(cost).max().unwrap_or(0)
    };
    let col_cost = |cols: Range<usize>| 2 * cols.len() - usize::from(narrow_last && cols.end == col_panels);
    (1..=threads)
        .filter(|&rows| threads.is_multiple_of(rows))
        .map(|rows| (rows.min(row_panels), (threads / rows).min(col_panels)))
        .min_by_key(|&(rows, cols)| {
            (largest(row_panels, rows, &|r| r.len()) * largest(col_panels, cols, &col_cost), cols)
        })
        .unwrap_or((1, 1))
}

/// Splits `panels` into `parts` ranges of nearly equal length.
fn split(panels: usize, parts: usize) -> impl Iterator<Item = Range<usize>> {
    let per = panels.div_ceil(parts);
    (0..panels).step_by(per).map(move |first| first..panels.min(first + per))
}

/// One product's sizes and operands.
#[derive(Clone, Copy)]
struct Product {
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: Strided,
    c: Out,
}

impl Product {
    /// Computes the block of C made of row panels `rows` and column panels `cols`, with this
    /// thread's packing buffers.
    fn block<K: Kernel>(self, rows: Range<usize>, cols: Range<usize>) {
        with_buffer(&A_BUFFER, |a_buf| with_buffer(&B_BUFFER, |b_buf| self.block_with::<K>(rows, cols, a_buf, b_buf)))
    }

    fn block_with<K: Kernel>(
        self,
        rows: Range<usize>,
        cols: Range<usize>,
        a_buf: &mut PackBuffer,
        b_buf: &mut PackBuffer,
    ) {
        let Product { m, k, n, a, b, c } = self;
        let (mr, nr) = (K::MR, K::NR);
        // Rows of A that are contiguous are read in place: the kernel only broadcasts single
        // elements of A, so packing them buys nothing but the copy, and the copy is dearest
        // when each element of A serves few columns (n < 512). Rows 8 KiB apart or a multiple
        // of it are packed all the same: measured on this project's machine, packing won at a
        // stride of 8 KiB (2048 floats) and lost at 4 KiB and below, where the rows of a panel
        // also share their L1 sets, so the line is drawn where it was measured.
        let in_place = a.cs == 1 && (n < 512 || !a.rs.is_multiple_of(2048));
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            for slab in cols.clone().step_by(NC / nr) {
                let slab = slab..cols.end.min(slab + NC / nr);
                // One slab of B's column panels, packed as it is needed: it stays in L2 while
                // the row panels of A, each in L1 in its turn, run against all of it.
                let b_panels = b_buf.get(slab.len() * kc * nr);
                // SAFETY: rows p0..p0+kc and the slab's columns (clipped to n) are inside B; the
                // CPU runs K.
                unsafe { K::pack_b(b, p0, kc, slab.start * nr, n.min(slab.end * nr), b_panels) };
                for chunk in rows.clone().step_by(MC / mr) {
                    let chunk = chunk..rows.end.min(chunk + MC / mr);
                    // A is packed (when it is) MC rows at a time, so that it shares L2 with
                    // the slab of B rather than pushing it out.
                    let a_panels: &[f32] = if in_place {
                        &[]
                    } else {
                        let a_panels = a_buf.get(chunk.len() * mr * kc);
                        for (dst, ir) in a_panels.chunks_mut(mr * kc).zip(chunk.clone()) {
                            let i = ir * mr;
                            // SAFETY: rows i..i+MR (clipped to m) and columns p0..p0+kc are
                            // inside A; the CPU runs K.
                            unsafe { K::pack_a(a, i, mr.min(m - i), p0, kc, dst) }
                        }
                        a_panels
                    };
                    for (index, ir) in chunk.enumerate() {
                        let i = ir * mr;
                        let a_tile = if in_place {
                            ATile::InPlace { ptr: a.at(i, p0), row_stride: a.rs }
                        } else {
                            ATile::Packed(a_panels[index * mr * kc..].as_ptr())
                        };
                        for (b_tile, jr) in b_panels.chunks(kc * nr).zip(slab.clone()) {
                            let j = jr * nr;
                            let job = TileJob {
                                kc,
                                a: a_tile,
                                b: b_tile.as_ptr(),
                                c: c.at(i * n + j),
                                ldc: n,
                                accumulate: p0 > 0,
                                rows: mr.min(m - i),
                                cols: nr.min(n - j),
                            };
                            // SAFETY: the tile at (i, j) is inside C and only this block writes
                            // it; A and the B panel hold kc columns and rows; the CPU runs K.
                            unsafe { K::tile(job) };
                        }
                    }
                }
            }
        }
    }
}

/// Where the kernel reads its `MR` rows of A.
#[derive(Clone, Copy)]
pub(crate) enum ATile {
    /// A packed panel: column p is the `MR` floats from `MR`·p.
    Packed(*const f32),
    /// The rows of A where they lie: element (r, p) is at `row_stride`·r + p.
    InPlace { ptr: *const f32, row_stride: usize },
}

/// Packs an `MR`-tall panel of A ([`Kernel::pack_a`]); inlined into each kernel's packing
/// function, so the copies are compiled for its instruction set.
///
/// # Safety
/// As for [`Kernel::pack_a`].
#[inline(always)]
unsafe fn pack_a_body<const MR: usize>(a: Strided, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    debug_assert_eq!(dst.len(), MR * kc);
    // SAFETY: i0 + r < i0 + rows and p0 + p < p0 + kc, inside A by the caller's contract.
    let at = |r: usize, p: usize| unsafe { *a.ptr.add((i0 + r) * a.rs + (p0 + p) * a.cs) };
    if a.rs == 1 {
        // A read transposed: each packed column is `rows` contiguous floats.
        for (p, column) in dst.chunks_exact_mut(MR).enumerate() {
            // SAFETY: as above, `rows` contiguous floats of column p0 + p from row i0.
            let src = unsafe { std::slice::from_raw_parts(a.ptr.add(i0 + (p0 + p) * a.cs), rows) };
            copy_padded::<MR>(column, src);
        }
    } else {
        // Sixteen columns at a time, each row's sixteen read together: whole cache lines,
        // read once, even when the rows' stride makes them compete for the same sets of the
        // L1 cache.
        for p_block in (0..kc).step_by(16) {
            let block = &mut dst[p_block * MR..(p_block + 16).min(kc) * MR];
            for r in 0..rows {
                for (q, column) in block.chunks_exact_mut(MR).enumerate() {
                    column[r] = at(r, p_block + q);
                }
            }
        }
        if rows < MR {
            for column in dst.chunks_exact_mut(MR) {
                column[rows..].fill(0.0);
            }
        }
    }
}

/// Copies `src` (at most `N` floats) to the front of `dst` (`N` floats) and zeroes the rest. A
/// whole copy is a fixed-size one: a few vector moves, not a call to `memcpy`.
#[inline(always)]
fn copy_padded<const N: usize>(dst: &mut [f32], src: &[f32]) {
    match (<&mut [f32; N]>::try_from(&mut *dst), <&[f32; N]>::try_from(src)) {
        (Ok(dst), Ok(src)) => *dst = *src,
        _ => {
            dst[..src.len()].copy_from_slice(src);
            dst[src.len()..].fill(0.0);
        }
    }
}

/// Packs `NR`-wide column panels of B ([`Kernel::pack_b`]), with `transpose` for the `TB`×`TB`
/// blocks of a B read transposed; inlined into each kernel's packing function.
///
/// # Safety
/// As for [`Kernel::pack_b`]; `transpose(src, src_stride, dst, dst_stride)` must write the
/// transpose of the `TB`×`TB` block at `src` to `dst`.
#[inline(always)]
unsafe fn pack_b_body<const NR: usize, const TB: usize>(
    b: Strided,
    p0: usize,
    kc: usize,
    j0: usize,
    j1: usize,
    dst: &mut [f32],
    transpose: impl Fn(*const f32, usize, *mut f32, usize),
) {
    debug_assert_eq!(dst.len(), (j1 - j0).div_ceil(NR) * kc * NR);
    // SAFETY: p0 + p < p0 + kc and j0 + c < j1, inside B by the caller's contract.
    let at = |p: usize, c: usize| unsafe { *b.ptr.add((p0 + p) * b.rs + (j0 + c) * b.cs) };
    if b.cs == 1 {
        // Sixteen rows at a time, panel by panel: each row is read in order (the hardware
        // prefetcher follows rows, and B's rows may lie far apart), and each panel receives
        // sixteen contiguous rows at once rather than one scattered row per pass.
        for p_block in (0..kc).step_by(16) {
            for (jr, panel) in dst.chunks_exact_mut(kc * NR).enumerate() {
                let (j, cols) = (j0 + jr * NR, NR.min(j1 - j0 - jr * NR));
                for p in p_block..kc.min(p_block + 16) {
                    // SAFETY: as above, `cols` contiguous floats of row p0 + p from column j.
                    let src = unsafe { std::slice::from_raw_parts(b.ptr.add((p0 + p) * b.rs + j), cols) };
                    copy_padded::<NR>(&mut panel[p * NR..(p + 1) * NR], src);
                }
            }
        }
    } else {
        // B read transposed: its columns are contiguous. Full TB×TB blocks are transposed in
        // registers; the edges of a panel are copied one element at a time.
        for (jr, panel) in dst.chunks_exact_mut(kc * NR).enumerate() {
            let cols = NR.min(j1 - j0 - jr * NR);
            let full_p = if b.rs == 1 { kc - kc % TB } else { 0 };
            let full_c = cols - cols % TB;
            for p in (0..full_p).step_by(TB) {
                for c in (0..full_c).step_by(TB) {
                    // SAFETY: columns j0 + jr·NR + c.. +TB and rows p0 + p.. +TB are inside B, at
                    // column stride b.cs; the destination block lies inside the panel.
                    unsafe {
                        let src = b.ptr.add((j0 + jr * NR + c) * b.cs + p0 + p);
                        transpose(src, b.cs, panel.as_mut_ptr().add(p * NR + c), NR);
                    }
                }
            }
            for (p, row) in panel.chunks_exact_mut(NR).enumerate() {
                let done = if p < full_p { full_c } else { 0 };
                for (c, v) in row.iter_mut().enumerate().take(cols).skip(done) {
                    *v = at(p, jr * NR + c);
                }
                row[cols..].fill(0.0);
            }
        }
    }
}

/// Writes the transpose of the 16×16 block at `src` (row stride `src_stride` floats) to `dst`
/// (row stride `dst_stride`): four rounds of shuffles, the last two moving 128-bit lanes.
///
/// # Safety
/// The CPU must have AVX-512F; both blocks must be in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): 16 rows of 16 floats are read at `src` and written at `dst`.
    unsafe {
        let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * src_stride)));
        // t[2i] holds, in each 128-bit lane L, elements 4L and 4L+1 of rows 2i and 2i+1,
        // interleaved; t[2i+1] elements 4L+2 and 4L+3.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (x, y) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 { _mm512_unpacklo_ps(x, y) } else { _mm512_unpackhi_ps(x, y) }
        });
        // u[4g+j] holds, in lane L, element 4L+j of rows 4g..4g+3.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (g, j) = (i / 4, i % 4);
            let (x, y) = (_mm512_castps_pd(t[4 * g + j / 2]), _mm512_castps_pd(t[4 * g + 2 + j / 2]));
            _mm512_castpd_ps(if j % 2 == 0 { _mm512_unpacklo_pd(x, y) } else { _mm512_unpackhi_pd(x, y) })
        });
        for j in 0..4 {
            // Lanes 0 and 1 (or 2 and 3) of rows 0..8, then of rows 8..16.
            let v_lo = _mm512_shuffle_f32x4::<0x44>(u[j], u[4 + j]);
            let v_hi = _mm512_shuffle_f32x4::<0xEE>(u[j], u[4 + j]);
            let w_lo = _mm512_shuffle_f32x4::<0x44>(u[8 + j], u[12 + j]);
            let w_hi = _mm512_shuffle_f32x4::<0xEE>(u[8 + j], u[12 + j]);
            // Output row 4L+j gathers lane L of every group of four rows.
            _mm512_storeu_ps(dst.add(j * dst_stride), _mm512_shuffle_f32x4::<0x88>(v_lo, w_lo));
            _mm512_storeu_ps(dst.add((4 + j) * dst_stride), _mm512_shuffle_f32x4::<0xDD>(v_lo, w_lo));
            _mm512_storeu_ps(dst.add((8 + j) * dst_stride), _mm512_shuffle_f32x4::<0x88>(v_hi, w_hi));
            _mm512_storeu_ps(dst.add((12 + j) * dst_stride), _mm512_shuffle_f32x4::<0xDD>(v_hi, w_hi));
        }
    }
}

/// Writes the transpose of the 8×8 block at `src` (row stride `src_stride` floats) to `dst`
/// (row stride `dst_stride`): three rounds of shuffles, the last one moving 128-bit halves.
///
/// # Safety
/// The CPU must have AVX; both blocks must be in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose8(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): 8 rows of 8 floats are read at `src` and written at `dst`.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * src_stride)));
        // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved, low and high pairs of each half.
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (x, y) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 { _mm256_unpacklo_ps(x, y) } else { _mm256_unpackhi_ps(x, y) }
        });
        // u[4g+j] holds, in each half H, element 4H+j of rows 4g..4g+3.
        let u: [__m256; 8] = std::array::from_fn(|i| {
            let (g, j) = (i / 4, i % 4);
            let (x, y) = (_mm256_castps_pd(t[4 * g + j / 2]), _mm256_castps_pd(t[4 * g + 2 + j / 2]));
            _mm256_castpd_ps(if j % 2 == 0 { _mm256_unpacklo_pd(x, y) } else { _mm256_unpackhi_pd(x, y) })
        });
        for j in 0..4 {
            // Output row j takes the low halves of rows 0..4 and 4..8, row 4+j the high ones.
            _mm256_storeu_ps(dst.add(j * dst_stride), _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j]));
            _mm256_storeu_ps(dst.add((4 + j) * dst_stride), _mm256_permute2f128_ps::<0x31>(u[j], u[4 + j]));
        }
    }
}

/// One call of the kernel: `c = a·b` (or `c += a·b` with `accumulate`) over `kc` columns of
/// `a` and packed rows of `b`, storing only the top-left `rows`×`cols` of the `MR`×`NR` tile
/// into `c` (row stride `ldc`).
#[derive(Clone, Copy)]
pub(crate) struct TileJob {
    kc: usize,
    a: ATile,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    rows: usize,
    cols: usize,
}

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx512 {
    const MR: usize = 12;
    const NR: usize = 32;

    fn available() -> bool {
        // AVX2 and FMA too: products small enough to skip packing run on the AVX2 small kernel
        // under this choice. Every AVX-512 CPU has them, but a hypervisor may hide CPUID bits.
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }

    unsafe fn pack_a(a: Strided, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
        #[target_feature(enable = "avx512f")]
        unsafe fn pack(a: Strided, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
            // SAFETY: forwarded.
            unsafe { pack_a_body::<{ Avx512::MR }>(a, i0, rows, p0, kc, dst) }
        }
        // SAFETY: forwarded; the caller checked the CPU.
        unsafe { pack(a, i0, rows, p0, kc, dst) }
    }

    unsafe fn pack_b(b: Strided, p0: usize, kc: usize, j0: usize, j1: usize, dst: &mut [f32]) {
        #[target_feature(enable = "avx512f")]
        unsafe fn pack(b: Strided, p0: usize, kc: usize, j0: usize, j1: usize, dst: &mut [f32]) {
            // SAFETY: forwarded; `transpose16` runs on this CPU and stays inside the blocks.
            unsafe {
                pack_b_body::<{ Avx512::NR }, 16>(b, p0, kc, j0, j1, dst, |s, ss, d, ds| transpose16(s, ss, d, ds))
            }
        }
        // SAFETY: forwarded; the caller checked the CPU.
        unsafe { pack(b, p0, kc, j0, j1, dst) }
    }

    unsafe fn tile(job: TileJob) {
        // SAFETY: forwarded; each variant is monomorphized for one layout of A so that its
        // addressing folds to constants, with the one-vector variant for tiles at most 16
        // columns wide.
        unsafe {
            match (job.cols > 16, job.a) {
                (true, ATile::Packed(a)) => tile512::<2, false>(job, a, 1),
                (true, ATile::InPlace { ptr, row_stride }) => tile512::<2, true>(job, ptr, row_stride),
                (false, ATile::Packed(a)) => tile512::<1, false>(job, a, 1),
                (false, ATile::InPlace { ptr, row_stride }) => tile512::<1, true>(job, ptr, row_stride),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;

    fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    unsafe fn pack_a(a: Strided, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn pack(a: Strided, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
            // SAFETY: forwarded.
            unsafe { pack_a_body::<{ Avx2::MR }>(a, i0, rows, p0, kc, dst) }
        }
        // SAFETY: forwarded; the caller checked the CPU.
        unsafe { pack(a, i0, rows, p0, kc, dst) }
    }

    unsafe fn pack_b(b: Strided, p0: usize, kc: usize, j0: usize, j1: usize, dst: &mut [f32]) {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn pack(b: Strided, p0: usize, kc: usize, j0: usize, j1: usize, dst: &mut [f32]) {
            // SAFETY: forwarded; `transpose8` runs on this CPU and stays inside the blocks.
            unsafe { pack_b_body::<{ Avx2::NR }, 8>(b, p0, kc, j0, j1, dst, |s, ss, d, ds| transpose8(s, ss, d, ds)) }
        }
        // SAFETY: forwarded; the caller checked the CPU.
        unsafe { pack(b, p0, kc, j0, j1, dst) }
    }

    unsafe fn tile(job: TileJob) {
        // SAFETY: forwarded, as for AVX-512, with the one-vector variant up to 8 columns.
        unsafe {
            match (job.cols > 8, job.a) {
                (true, ATile::Packed(a)) => tile256::<2, false>(job, a, 1),
                (true, ATile::InPlace { ptr, row_stride }) => tile256::<2, true>(job, ptr, row_stride),
                (false, ATile::Packed(a)) => tile256::<1, false>(job, a, 1),
                (false, ATile::InPlace { ptr, row_stride }) => tile256::<1, true>(job, ptr, row_stride),
            }
        }
    }
}

/// Off x86-64 neither kernel exists: `available` is false, so nothing else is ever called.
#[cfg(not(target_arch = "x86_64"))]
macro_rules! unavailable_kernel {
    ($kernel:ty, $mr:literal, $nr:literal) => {
        impl Kernel for $kernel {
            const MR: usize = $mr;
            const NR: usize = $nr;
            fn available() -> bool {
                false
            }
            unsafe fn pack_a(_: Strided, _: usize, _: usize, _: usize, _: usize, _: &mut [f32]) {
                unreachable!("the packed GEMM is only called where `available` is true")
            }
            unsafe fn pack_b(_: Strided, _: usize, _: usize, _: usize, _: usize, _: &mut [f32]) {
                unreachable!("the packed GEMM is only called where `available` is true")
            }
            unsafe fn tile(_: TileJob) {
                unreachable!("the packed GEMM is only called where `available` is true")
            }
        }
    };
}
#[cfg(not(target_arch = "x86_64"))]
unavailable_kernel!(Avx512, 12, 32);
#[cfg(not(target_arch = "x86_64"))]
unavailable_kernel!(Avx2, 6, 16);

/// The AVX-512 kernel for `NV` vectors of 16 columns. A is a packed panel at `a`, or with
/// `IN_PLACE` its rows where they lie, `row_stride` apart; the layout is a constant of each
/// variant, so that a packed panel's addressing folds to fixed offsets.
///
/// # Safety
/// As for [`Kernel::tile`], with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile512<const NV: usize, const IN_PLACE: bool>(job: TileJob, a: *const f32, row_stride: usize) {
    const MR: usize = Avx512::MR;
    const NR: usize = Avx512::NR;
    let TileJob { kc, b, c, ldc, accumulate, rows, cols, .. } = job;
    use std::arch::x86_64::*;
    // Element (r, p) of A is at a + rs·r + cs·p.
    let (rs, cs) = if IN_PLACE { (row_stride, 1) } else { (1, MR) };
    // Rows past `rows` of an in-place A may not exist: read row 0 again for them (their
    // results are never stored). A packed panel has all `MR` rows, zero past `rows`.
    let mut row_offset = [0usize; MR];
    for (r, offset) in row_offset.iter_mut().enumerate() {
        *offset = if r < rows || !IN_PLACE { r * rs } else { 0 };
    }
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // SAFETY (whole body): reads stay inside the kc columns of A's rows and the kc·NR packed
    // panel; writes stay inside the rows×cols block of `c`, the masks covering only its first
    // `cols` columns.
    unsafe {
        // The tile of C is read or written only after the loop: start fetching it now.
        for r in 0..rows {
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * ldc).cast());
            if NV == 2 {
                _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * ldc + 16).cast());
            }
        }
        for p in 0..kc {
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_load_ps(b.add(p * NR + 16 * v));
            }
            let column = a.add(p * cs);
            for r in 0..MR {
                let x = _mm512_set1_ps(*column.add(row_offset[r]));
                for v in 0..NV {
                    acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
                }
            }
        }
        let mask = |from: usize| -> __mmask16 {
            let live = cols.saturating_sub(from).min(16);
            ((1u32 << live) - 1) as __mmask16
        };
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(r * ldc);
            for (v, &sum) in acc.iter().enumerate() {
                // Masked-off lanes are never touched, so the address may point past the block.
                let (dst, live) = (row.wrapping_add(16 * v), mask(16 * v));
                let sum = if accumulate { _mm512_add_ps(sum, _mm512_maskz_loadu_ps(live, dst)) } else { sum };
                _mm512_mask_storeu_ps(dst, live, sum);
            }
        }
    }
}

/// The AVX2 kernel for `NV` vectors of 8 columns: the AVX-512 one with 8-float vectors and a
/// 6-row tile, its 12 accumulators, two vectors of B and one broadcast of A within AVX2's 16
/// registers. Partial columns are loaded and stored through lane masks.
///
/// # Safety
/// As for [`Kernel::tile`], with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256<const NV: usize, const IN_PLACE: bool>(job: TileJob, a: *const f32, row_stride: usize) {
    const MR: usize = Avx2::MR;
    const NR: usize = Avx2::NR;
    let TileJob { kc, b, c, ldc, accumulate, rows, cols, .. } = job;
    use std::arch::x86_64::*;
    let (rs, cs) = if IN_PLACE { (row_stride, 1) } else { (1, MR) };
    let mut row_offset = [0usize; MR];
    for (r, offset) in row_offset.iter_mut().enumerate() {
        *offset = if r < rows || !IN_PLACE { r * rs } else { 0 };
    }
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    // SAFETY (whole body): reads stay inside the kc columns of A's rows and the kc·NR packed
    // panel; writes stay inside the rows×cols block of `c`, the masks covering only its first
    // `cols` columns.
    unsafe {
        for r in 0..rows {
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * ldc).cast());
        }
        for p in 0..kc {
            let mut bv = [_mm256_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_load_ps(b.add(p * NR + 8 * v));
            }
            let column = a.add(p * cs);
            for r in 0..MR {
                let x = _mm256_set1_ps(*column.add(row_offset[r]));
                for v in 0..NV {
                    acc[r][v] = _mm256_fmadd_ps(x, bv[v], acc[r][v]);
                }
            }
        }
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = |from: usize| _mm256_cmpgt_epi32(_mm256_set1_epi32(cols.saturating_sub(from).min(8) as i32), lanes);
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(r * ldc);
            for (v, &sum) in acc.iter().enumerate() {
                let dst = row.wrapping_add(8 * v);
                if cols >= 8 * (v + 1) {
                    let sum = if accumulate { _mm256_add_ps(sum, _mm256_loadu_ps(dst)) } else { sum };
                    _mm256_storeu_ps(dst, sum);
                } else {
                    // Masked-off lanes are never touched, so the address may point past the block.
                    let live = mask(8 * v);
                    let sum = if accumulate { _mm256_add_ps(sum, _mm256_maskload_ps(dst, live)) } else { sum };
                    _mm256_maskstore_ps(dst, live, sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operands of a product op(A)·op(B): stored row-major, A as m×k (or k×m if `ta`), B as
    /// k×n (or n×k if `tb`), with the (row, column) strides of the logical matrices.
    struct Case {
        m: usize,
        k: usize,
        n: usize,
        a: Vec<f32>,
        b: Vec<f32>,
        sa: (usize, usize),
        sb: (usize, usize),
    }

    impl Case {
        fn new(m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Case {
            let a = (0..m * k).map(|i| ((i * 7919) % 23) as f32 / 11.0 - 1.0).collect();
            let b = (0..k * n).map(|i| ((i * 104_729) % 19) as f32 / 9.0 - 1.0).collect();
            let sa = if ta { (1, m) } else { (k, 1) };
            let sb = if tb { (1, k) } else { (n, 1) };
            Case { m, k, n, a, b, sa, sb }
        }

        fn run<K: Kernel>(&self, parallel: bool) -> Vec<f32> {
            let mut out = vec![MaybeUninit::new(f32::NAN); self.m * self.n];
            // SAFETY: checked by the callers' `available()`; the strides address m×k and k×n.
            unsafe { sgemm::<K>(self.m, self.k, self.n, &self.a, self.sa, &self.b, self.sb, &mut out, parallel) };
            // SAFETY: sgemm writes every element.
            out.into_iter().map(|v| unsafe { v.assume_init() }).collect()
        }

        /// Each element in f64, and the sum of the magnitudes of its terms.
        fn reference(&self, i: usize, j: usize) -> (f64, f64) {
            let (mut sum, mut magnitude) = (0.0, 0.0);
            for p in 0..self.k {
                let x = self.a[i * self.sa.0 + p * self.sa.1] as f64 * self.b[p * self.sb.0 + j * self.sb.1] as f64;
                sum += x;
                magnitude += x.abs();
            }
            (sum, magnitude)
        }
    }

    /// Runs a case on one kernel, on one thread or split over the pool.
    type RunKernel = dyn Fn(&Case, bool) -> Vec<f32> + Sync;

    /// Runs `check` for each kernel this CPU has, and says which it could not run: a test of
    /// a kernel the CPU lacks must not pass silently.
    fn for_each_kernel(check: impl Fn(&str, &RunKernel)) {
        let kernels: [(&str, bool, &RunKernel); 2] = [
            ("AVX-512", Avx512::available(), &|c: &Case, p| c.run::<Avx512>(p)),
            ("AVX2+FMA", Avx2::available(), &|c: &Case, p| c.run::<Avx2>(p)),
        ];
        for (name, available, run) in kernels {
            if available {
                check(name, run);
            } else {
                crate::kernels::not_run(&format!("the {name} GEMM kernel, which this CPU cannot run"));
            }
        }
    }

    #[test]
    fn matches_a_reference_across_tile_slice_and_slab_edges() {
        for_each_kernel(|kernel, run| matches_a_reference(kernel, run));
    }

    fn matches_a_reference(kernel: &str, run: &RunKernel) {
        // Partial tiles in both directions, one-vector tails, several KC slices, several NC
        // slabs, and a row stride of 8 KiB (A packed rather than read in place).
        let sizes = [(1, 1, 1), (13, 7, 33), (12, 256, 32), (25, 300, 17), (37, 513, 1100), (14, 2048, 520)];
        for (m, k, n) in sizes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let case = Case::new(m, k, n, ta, tb);
                let out = run(&case, false);
                for i in 0..m {
                    for j in 0..n {
                        let (want, magnitude) = case.reference(i, j);
                        let got = out[i * n + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-6 * magnitude.max(1.0),
                            "{kernel}: {m}x{k}x{n} ta={ta} tb={tb} at ({i}, {j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Products of a few rows with B read transposed, computed as their transpose, give the
    /// bits of the direct computation: the rows of each case are also run one block of
    /// `TRANSPOSE_MAX_ROWS + 1` rows at a time, which takes the direct path, and compared.
    #[test]
    fn few_rows_computed_transposed_give_the_direct_bits() {
        for_each_kernel(|kernel, run| {
            for (m, k, n) in [(1, 16, 40), (5, 64, 192), (32, 128, 384), (17, 300, 1000), (32, 600, 33)] {
                let case = Case::new(m, k, n, false, true);
                // The same rows padded with copies of row 0 up to TRANSPOSE_MAX_ROWS + 1 rows.
                let rows = TRANSPOSE_MAX_ROWS + 1;
                let mut tall = Case::new(rows, k, n, false, true);
                for i in 0..rows {
                    let from = if i < m { i } else { 0 };
                    tall.a[i * k..(i + 1) * k].copy_from_slice(&case.a[from * k..(from + 1) * k]);
                }
                tall.b.clone_from(&case.b);
                for parallel in [false, true] {
                    let (few, direct) = (run(&case, parallel), run(&tall, parallel));
                    let same = few.iter().zip(&direct[..m * n]).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{kernel}: {m}x{k}x{n} computed transposed differs from the direct product");
                }
            }
        });
    }

    #[test]
    fn parallel_blocks_give_bit_identical_results() {
        for_each_kernel(|kernel, run| parallel_blocks_agree(kernel, run));
    }

    fn parallel_blocks_agree(kernel: &str, run: &RunKernel) {
        for (m, k, n) in [(100, 300, 700), (13, 600, 90), (250, 64, 40)] {
            for (ta, tb) in [(false, false), (true, true)] {
                let case = Case::new(m, k, n, ta, tb);
                let serial = run(&case, false);
                for threads in [2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
                    let parallel = pool.install(|| run(&case, true));
                    let same = serial.iter().zip(&parallel).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{kernel}: {m}x{k}x{n} ta={ta} tb={tb} on {threads} threads");
                }
            }
        }
    }

    /// `transpose(src, 20, dst, 18)` of a `size`×`size` block.
    fn check_transpose(size: usize, transpose: impl Fn(*const f32, usize, *mut f32, usize)) {
        let src: Vec<f32> = (0..size * 20).map(|i| i as f32).collect();
        let mut dst = vec![-1.0f32; size * 18];
        transpose(src.as_ptr(), 20, dst.as_mut_ptr(), 18);
        for i in 0..size {
            for j in 0..18 {
                let want = if j < size { src[j * 20 + i] } else { -1.0 };
                assert_eq!(dst[i * 18 + j], want, "{size}×{size} at ({i}, {j})");
            }
        }
    }

    #[test]
    fn the_register_transposes_transpose() {
        #[cfg(target_arch = "x86_64")]
        {
            if Avx512::available() {
                // SAFETY: a 16×16 block at stride 20 and one at stride 18 are in bounds.
                check_transpose(16, |s, ss, d, ds| unsafe { transpose16(s, ss, d, ds) });
            } else {
                crate::kernels::not_run("the AVX-512 transpose, which this CPU cannot run");
            }
            if Avx2::available() {
                // SAFETY: an 8×8 block at stride 20 and one at stride 18 are in bounds.
                check_transpose(8, |s, ss, d, ds| unsafe { transpose8(s, ss, d, ds) });
            } else {
                crate::kernels::not_run("the AVX2 transpose, which this CPU cannot run");
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        crate::kernels::not_run("the register transposes, which exist on x86-64 only");
    }

    #[test]
    fn partition_balances_the_blocks() {
        assert_eq!(partition(171, 64, false, 1), (1, 1));
        // Few row panels: the columns are cut instead.
        assert_eq!(partition(1, 16, false, 2), (1, 2));
        assert_eq!(partition(11, 1, false, 2), (2, 1));
        // 11 row panels do not halve evenly, 16 column panels do.
        assert_eq!(partition(11, 16, false, 2), (1, 2));
        // More threads than panels: never an empty block.
        assert_eq!(partition(1, 1, false, 8), (1, 1));
        // A 40-column product on the AVX-512 kernel (a 32-column panel and an 8-column one):
        // the narrow panel is a third of the work, so the rows are cut, not the two panels.
        assert_eq!(partition(171, 2, true, 2), (2, 1));
        assert_eq!(partition(171, 2, false, 2), (1, 2));
        // Three threads over 3 row panels and 2 column panels of which one is narrow.
        assert_eq!(partition(3, 2, true, 3), (3, 1));
        assert_eq!(split(11, 2).collect::<Vec<_>>(), vec![0..6, 6..11]);
    }
}
