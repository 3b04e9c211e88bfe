//! Every op gives bit-identical values and gradients on 1 and on 2 threads, at sizes where the
//! kernels run in parallel (each case checks that they did).

use autograd::{CrossEntropyOptions, ParallelRuns, Tape, Tensor, Var, parallel_runs};
use rand::SeedableRng;

type Case = for<'t> fn(&[Var<'t, f32>]) -> Var<'t, f32>;

/// Which count of [`ParallelRuns`] a case must raise.
type Path = fn(&ParallelRuns) -> u64;

const ELEMENTWISE: Path = |r| r.elementwise;
const ROWS: Path = |r| r.rows;
const REDUCTIONS: Path = |r| r.reductions;
const SPLIT: Path = |r| r.split_products;
const BATCHED: Path = |r| r.batched_products;

/// A case: its name, input shapes, the computation, and the parallel path its forward and its
/// backward pass must take on two threads (checked, so that no case passes on a single-threaded
/// path).
type Row = (&'static str, Vec<Vec<usize>>, Case, Path, Path);

fn cases() -> Vec<Row> {
    vec![
        ("add_broadcast", vec![vec![512, 300], vec![300]], |x| x[0] + x[1], ROWS, REDUCTIONS),
        ("mul", vec![vec![512, 300], vec![512, 300]], |x| x[0] * x[1], ELEMENTWISE, ELEMENTWISE),
        ("div_broadcast", vec![vec![512, 300], vec![512, 1]], |x| x[0] / (x[1].exp() + 1.0), ROWS, ROWS),
        ("exp_log_sqrt", vec![vec![512, 300]], |x| (x[0].exp() + 1.0).log().sqrt(), ELEMENTWISE, ELEMENTWISE),
        (
            "tanh_sigmoid_erf",
            vec![vec![512, 300]],
            |x| x[0].tanh() + x[0].sigmoid() * x[0].erf(),
            ELEMENTWISE,
            ELEMENTWISE,
        ),
        ("relu_gelu", vec![vec![512, 300]], |x| x[0].relu() + x[0].gelu(), ELEMENTWISE, ELEMENTWISE),
        ("powf", vec![vec![512, 300]], |x| x[0].powf(3.0), ELEMENTWISE, ELEMENTWISE),
        ("sum_axis0", vec![vec![512, 300]], |x| x[0].sum(&[0], false), REDUCTIONS, ROWS),
        ("sum_axis1", vec![vec![300, 512]], |x| x[0].sum(&[1], true), ROWS, ROWS),
        ("sum_all_long", vec![vec![200_003]], |x| x[0] * x[0].sum_all(), REDUCTIONS, REDUCTIONS),
        ("mean_max", vec![vec![128, 40, 30]], |x| x[0].mean(&[0, 2], false) + x[0].max(&[0, 2], false), ROWS, ROWS),
        ("softmax", vec![vec![512, 300]], |x| x[0].softmax(-1), ROWS, ROWS),
        ("softmax_middle_axis", vec![vec![4, 512, 300]], |x| x[0].softmax(1), ROWS, ROWS),
        ("log_softmax", vec![vec![512, 300]], |x| x[0].log_softmax(-1), ROWS, ROWS),
        (
            "layer_norm",
            vec![vec![512, 300], vec![300], vec![300]],
            |x| x[0].layer_norm(&[300], Some(x[1]), Some(x[2]), 1e-5),
            ROWS,
            ROWS,
        ),
        ("matmul", vec![vec![300, 200], vec![200, 310]], |x| x[0].matmul(x[1]), SPLIT, SPLIT),
        (
            "matmul_bt_batched_rows",
            vec![vec![8, 64, 96], vec![128, 96]],
            |x| x[0].matmul_t(x[1], false, true),
            SPLIT,
            SPLIT,
        ),
        ("matmul_batched", vec![vec![32, 64, 48], vec![32, 48, 64]], |x| x[0].matmul(x[1]), BATCHED, BATCHED),
        ("permute_reshape", vec![vec![128, 40, 30]], |x| x[0].permute(&[2, 0, 1]).reshape([30, 5120]), ROWS, ROWS),
        ("broadcast_to", vec![vec![1, 300]], |x| x[0].broadcast_to([512, 300]), ROWS, REDUCTIONS),
        (
            "narrow_pad_concat",
            vec![vec![512, 300]],
            |x| {
                let a = x[0].narrow(1, 10, 200).pad(1, 3, 5);
                Var::concat(&[a, x[0]], 1)
            },
            ROWS,
            ROWS,
        ),
        (
            "index_select_embedding",
            vec![vec![1100, 128]],
            |x| {
                let ids: Vec<usize> = (0..1200).map(|i| (i * 7919) % 1100).collect();
                x[0].embedding(&ids, [40, 30])
            },
            ROWS,
            ROWS,
        ),
        (
            "masked_fill",
            vec![vec![512, 300]],
            |x| {
                let mask = Tensor::from_fn([512, 300], |i| ((i * 31) % 7 == 0) as u8 as f32);
                x[0].masked_fill(&mask, -1e9).softmax(-1)
            },
            ELEMENTWISE,
            ROWS,
        ),
        (
            "linear_relu",
            vec![vec![8, 64, 96], vec![128, 96], vec![128]],
            |x| x[0].linear_relu(x[1], Some(x[2])),
            SPLIT,
            SPLIT,
        ),
        (
            "layer_norm_affine_fused",
            vec![vec![512, 300], vec![300], vec![300]],
            |x| x[0].layer_norm(&[300], Some(x[1]), None, 1e-5) + x[2],
            ROWS,
            ROWS,
        ),
        (
            "attention",
            vec![vec![16, 64, 64], vec![16, 64, 64], vec![16, 64, 64]],
            |x| {
                // Each batch entry pads a different number of keys.
                let mask = Tensor::from_fn([16, 1, 1, 64], |i| ((i % 64) > 48 + i / 64) as u8 as f32);
                x[0].attention_weights(x[1], 4, Some(&mask)).attend(x[2])
            },
            BATCHED,
            BATCHED,
        ),
        (
            "cross_entropy",
            vec![vec![4096, 64]],
            |x| {
                let targets: Vec<usize> = (0..4096).map(|i| (i * 13) % 64).collect();
                x[0].cross_entropy(&targets, CrossEntropyOptions { ignore_index: Some(0), label_smoothing: 0.1 })
            },
            ROWS,
            ROWS,
        ),
    ]
}

/// The output, the gradient of every input, and the parallel runs of the forward and of the
/// backward pass.
fn run(shapes: &[Vec<usize>], f: Case) -> (Tensor<f32>, Vec<Tensor<f32>>, ParallelRuns, ParallelRuns) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let tape = Tape::new();
    let xs: Vec<Var<'_, f32>> = shapes.iter().map(|s| tape.var(Tensor::randn(s.clone(), 0.0, 1.0, &mut rng))).collect();
    let start = parallel_runs();
    let out = f(&xs);
    let w = tape.constant(Tensor::rand_uniform(out.shape(), -1.0, 1.0, &mut rng));
    let loss = (out * w).sum_all();
    let forward = parallel_runs();
    let value = out.value(); // before backward, which frees it
    let grads = loss.backward();
    let backward = parallel_runs() - forward;
    (value, xs.iter().map(|&x| grads[x].clone()).collect(), forward - start, backward)
}

#[test]
fn one_and_two_threads_agree_bit_for_bit() {
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("thread pool");
    let (one, two) = (pool(1), pool(2));
    let mut failures = Vec::new();
    for (name, shapes, f, forward_path, backward_path) in cases() {
        let (out1, grads1, ..) = one.install(|| run(&shapes, f));
        let (out2, grads2, forward, backward) = two.install(|| run(&shapes, f));
        if forward_path(&forward) == 0 {
            failures.push(format!("{name}: the forward pass did not take its parallel path ({forward:?})"));
        }
        if backward_path(&backward) == 0 {
            failures.push(format!("{name}: the backward pass did not take its parallel path ({backward:?})"));
        }
        if !out1.bit_eq(&out2) {
            failures.push(format!("{name}: forward"));
        }
        for (i, (a, b)) in grads1.iter().zip(&grads2).enumerate() {
            if !a.bit_eq(b) {
                failures.push(format!("{name}: gradient of input {i}"));
            }
        }
    }
    assert!(failures.is_empty(), "results depend on the thread count:\n{}", failures.join("\n"));
}
