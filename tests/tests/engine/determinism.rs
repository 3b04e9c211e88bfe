//! Every op gives bit-identical values and gradients on 1 and on 2 threads, at sizes where the
//! kernels run in parallel.

use autograd::{CrossEntropyOptions, Tape, Tensor, Var};
use rand::SeedableRng;

type Case = for<'t> fn(&[Var<'t, f32>]) -> Var<'t, f32>;

/// Inputs big enough (≥ 2¹⁵ elements) that every kernel takes its parallel path.
fn cases() -> Vec<(&'static str, Vec<Vec<usize>>, Case)> {
    vec![
        ("add_broadcast", vec![vec![256, 300], vec![300]], |x| x[0] + x[1]),
        ("mul", vec![vec![256, 300], vec![256, 300]], |x| x[0] * x[1]),
        ("div_broadcast", vec![vec![256, 300], vec![256, 1]], |x| x[0] / (x[1].exp() + 1.0)),
        ("exp_log_sqrt", vec![vec![256, 300]], |x| (x[0].exp() + 1.0).log().sqrt()),
        ("tanh_sigmoid_erf", vec![vec![256, 300]], |x| x[0].tanh() + x[0].sigmoid() * x[0].erf()),
        ("relu_gelu", vec![vec![256, 300]], |x| x[0].relu() + x[0].gelu()),
        ("powf", vec![vec![256, 300]], |x| x[0].powf(3.0)),
        ("sum_axis0", vec![vec![512, 300]], |x| x[0].sum(&[0], false)),
        ("sum_axis1", vec![vec![300, 512]], |x| x[0].sum(&[1], true)),
        ("sum_all_long", vec![vec![200_003]], |x| x[0].sum_all()),
        ("mean_max", vec![vec![64, 40, 30]], |x| x[0].mean(&[0, 2], false) + x[0].max(&[0, 2], false)),
        ("softmax", vec![vec![256, 300]], |x| x[0].softmax(-1)),
        ("softmax_axis0", vec![vec![256, 300]], |x| x[0].softmax(0)),
        ("log_softmax", vec![vec![256, 300]], |x| x[0].log_softmax(-1)),
        ("layer_norm", vec![vec![256, 300], vec![300], vec![300]], |x| {
            x[0].layer_norm(&[300], Some(x[1]), Some(x[2]), 1e-5)
        }),
        ("matmul", vec![vec![300, 200], vec![200, 310]], |x| x[0].matmul(x[1])),
        ("matmul_bt_batched_rows", vec![vec![8, 64, 96], vec![128, 96]], |x| x[0].matmul_t(x[1], false, true)),
        ("matmul_batched", vec![vec![16, 40, 32], vec![16, 32, 40]], |x| x[0].matmul(x[1])),
        ("permute_reshape", vec![vec![32, 40, 30]], |x| x[0].permute(&[2, 0, 1]).reshape([30, 1280])),
        ("broadcast_to", vec![vec![1, 300]], |x| x[0].broadcast_to([256, 300])),
        ("narrow_pad_concat", vec![vec![256, 300]], |x| {
            let a = x[0].narrow(1, 10, 200).pad(1, 3, 5);
            Var::concat(&[a, x[0]], 1)
        }),
        ("index_select_embedding", vec![vec![500, 128]], |x| {
            let ids: Vec<usize> = (0..600).map(|i| (i * 7919) % 500).collect();
            x[0].embedding(&ids, [20, 30])
        }),
        ("masked_fill", vec![vec![256, 300]], |x| {
            let mask = Tensor::from_fn([256, 300], |i| ((i * 31) % 7 == 0) as u8 as f32);
            x[0].masked_fill(&mask, -1e9).softmax(-1)
        }),
        ("cross_entropy", vec![vec![1024, 64]], |x| {
            let targets: Vec<usize> = (0..1024).map(|i| (i * 13) % 64).collect();
            x[0].cross_entropy(&targets, CrossEntropyOptions { ignore_index: Some(0), label_smoothing: 0.1 })
        }),
    ]
}

fn run(shapes: &[Vec<usize>], f: Case) -> (Tensor<f32>, Vec<Tensor<f32>>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let tape = Tape::new();
    let xs: Vec<Var<'_, f32>> = shapes.iter().map(|s| tape.var(Tensor::randn(s.clone(), 0.0, 1.0, &mut rng))).collect();
    let out = f(&xs);
    let w = tape.constant(Tensor::rand_uniform(out.shape(), -1.0, 1.0, &mut rng));
    let grads = (out * w).sum_all().backward();
    (out.value(), xs.iter().map(|&x| grads[x].clone()).collect())
}

#[test]
fn one_and_two_threads_agree_bit_for_bit() {
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("thread pool");
    let (one, two) = (pool(1), pool(2));
    let mut failures = Vec::new();
    for (name, shapes, f) in cases() {
        let (out1, grads1) = one.install(|| run(&shapes, f));
        let (out2, grads2) = two.install(|| run(&shapes, f));
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
