//! The op cases shared by the parity, finite-difference and second-order suites: each a name
//! (matching tests/fixtures/generate_ops.py) and the same computation written with `Var`s.

use autograd::{CrossEntropyOptions, Tensor, Var};
use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

/// Non-differentiable arguments of a case, read from the fixture.
pub struct Aux {
    pub idx: Vec<usize>,
    pub idx_shape: Vec<usize>,
    pub mask: Option<Tensor<f64>>,
    pub targets: Vec<usize>,
}

pub type CaseFn = for<'t> fn(&[Var<'t, f64>], &Aux) -> Var<'t, f64>;

/// Every case, by name. Inputs arrive in the order the fixture script lists them.
pub fn cases() -> Vec<(&'static str, CaseFn)> {
    vec![
        ("add_same", |x, _| x[0] + x[1]),
        ("add_broadcast", |x, _| x[0] + x[1]),
        ("add_scalar_shape", |x, _| x[0] + x[1]),
        ("add_size_one", |x, _| x[0] + x[1]),
        ("add_empty", |x, _| x[0] + x[1]),
        ("sub_broadcast", |x, _| x[0] - x[1]),
        ("mul_same", |x, _| x[0] * x[1]),
        ("mul_broadcast", |x, _| x[0] * x[1]),
        ("mul_self", |x, _| x[0] * x[0]),
        ("div_broadcast", |x, _| x[0] / x[1]),
        ("div_empty", |x, _| x[0] / x[1]),
        ("neg", |x, _| -x[0]),
        ("add_scalar", |x, _| x[0] + 2.5),
        ("mul_scalar", |x, _| x[0] * -1.5),
        ("powf_cube", |x, _| x[0].powf(3.0)),
        ("powf_half", |x, _| x[0].powf(0.5)),
        ("powf_negative", |x, _| x[0].powf(-2.0)),
        ("exp", |x, _| x[0].exp()),
        ("exp_empty", |x, _| x[0].exp()),
        ("log", |x, _| x[0].log()),
        ("sqrt", |x, _| x[0].sqrt()),
        ("tanh", |x, _| x[0].tanh()),
        ("sigmoid", |x, _| x[0].sigmoid()),
        ("relu", |x, _| x[0].relu()),
        ("gelu", |x, _| x[0].gelu()),
        ("erf", |x, _| x[0].erf()),
        ("sum_axis1", |x, _| x[0].sum(&[1], false)),
        ("sum_axes02_keepdim", |x, _| x[0].sum(&[0, 2], true)),
        ("sum_all", |x, _| x[0].sum_all()),
        ("sum_empty_axis", |x, _| x[0].sum(&[0], false)),
        ("sum_size_one_axis", |x, _| x[0].sum(&[1], false)),
        ("mean_last", |x, _| x[0].mean(&[-1], false)),
        ("mean_all", |x, _| x[0].mean_all()),
        ("max_axis1", |x, _| x[0].max(&[1], false)),
        ("max_axes01_keepdim", |x, _| x[0].max(&[0, 1], true)),
        ("reshape", |x, _| x[0].reshape([6, 4])),
        ("permute", |x, _| x[0].permute(&[2, 0, 1])),
        ("transpose", |x, _| x[0].transpose(0, 1)),
        ("broadcast_to", |x, _| x[0].broadcast_to([2, 3, 4])),
        ("narrow", |x, _| x[0].narrow(1, 1, 3)),
        ("narrow_first_axis", |x, _| x[0].narrow(0, 2, 2)),
        ("pad", |x, _| x[0].pad(-1, 1, 2)),
        ("concat", |x, _| Var::concat(&[x[0], x[1]], 1)),
        ("concat_axis0", |x, _| Var::concat(&[x[0], x[1], x[2]], 0)),
        ("split", |x, _| {
            let parts = x[0].split(0, &[2, 3]);
            Var::concat(&[parts[1], parts[0]], 0)
        }),
        ("index_select", |x, a| x[0].index_select(0, &a.idx)),
        ("index_select_axis1", |x, a| x[0].index_select(1, &a.idx)),
        ("embedding", |x, a| x[0].embedding(&a.idx, a.idx_shape.clone())),
        ("matmul", |x, _| x[0].matmul(x[1])),
        ("matmul_1x1", |x, _| x[0].matmul(x[1])),
        ("matmul_batched", |x, _| x[0].matmul(x[1])),
        ("matmul_broadcast_batch", |x, _| x[0].matmul(x[1])),
        ("matmul_batch_by_matrix", |x, _| x[0].matmul(x[1])),
        ("matmul_matrix_by_batch", |x, _| x[0].matmul(x[1])),
        ("matmul_bt", |x, _| x[0].matmul_t(x[1], false, true)),
        ("matmul_at", |x, _| x[0].matmul_t(x[1], true, false)),
        ("matmul_at_bt", |x, _| x[0].matmul_t(x[1], true, true)),
        ("matmul_empty_inner", |x, _| x[0].matmul(x[1])),
        ("matmul_empty_rows", |x, _| x[0].matmul(x[1])),
        ("softmax_last", |x, _| x[0].softmax(-1)),
        ("softmax_first", |x, _| x[0].softmax(0)),
        ("softmax_middle", |x, _| x[0].softmax(1)),
        ("log_softmax_last", |x, _| x[0].log_softmax(-1)),
        ("log_softmax_middle", |x, _| x[0].log_softmax(1)),
        ("layer_norm_affine", |x, _| x[0].layer_norm(&[5], Some(x[1]), Some(x[2]), 1e-5)),
        ("layer_norm_two_dims", |x, _| x[0].layer_norm(&[3, 4], None, None, 1e-5)),
        ("masked_fill", |x, a| x[0].masked_fill(a.mask.as_ref().expect("mask"), -2.5)),
        ("select_broadcast", |x, a| Var::select(a.mask.as_ref().expect("mask"), x[0], x[1])),
        ("cross_entropy", |x, a| x[0].cross_entropy(&a.targets, CrossEntropyOptions::default())),
        ("cross_entropy_ignore_smoothing", |x, a| {
            x[0].cross_entropy(&a.targets, CrossEntropyOptions { ignore_index: Some(0), label_smoothing: 0.1 })
        }),
        ("cross_entropy_3d", |x, a| {
            x[0].cross_entropy(&a.targets, CrossEntropyOptions { ignore_index: None, label_smoothing: 0.2 })
        }),
        ("linear", |x, _| x[0].linear(x[1], Some(x[2]))),
        ("linear_no_bias", |x, _| x[0].linear(x[1], None)),
        ("linear_relu", |x, _| x[0].linear_relu(x[1], Some(x[2]))),
        ("layer_norm_weight_only", |x, _| x[0].layer_norm(&[5], Some(x[1]), None, 1e-5)),
        ("attention_weights", |x, _| x[0].attention_weights(x[1], 2, None)),
        ("attention_weights_masked", |x, a| x[0].attention_weights(x[1], 3, a.mask.as_ref())),
        ("attend", |x, _| x[0].attend(x[1])),
        ("abs", |x, _| x[0].abs()),
        ("clamp", |x, _| x[0].clamp(Some(-0.5), Some(1.0))),
        ("clamp_min_only", |x, _| x[0].clamp(Some(0.2), None)),
        ("maximum", |x, _| x[0].maximum(x[1])),
        ("minimum_broadcast", |x, _| x[0].minimum(x[1])),
        ("stack", |x, _| Var::stack(&[x[0], x[1], x[2]], 1)),
        ("stack_last", |x, _| Var::stack(&[x[0], x[1]], -1)),
        ("t", |x, _| x[0].t()),
    ]
}

/// One case's tensors from the fixture.
pub struct Fixture {
    pub inputs: Vec<Tensor<f64>>,
    pub out: Tensor<f64>,
    pub up: Tensor<f64>,
    pub grads: Vec<Tensor<f64>>,
    pub aux: Aux,
}

/// All fixture tensors by name, read once.
pub fn fixture_tensors() -> &'static HashMap<String, Tensor<f64>> {
    static TENSORS: OnceLock<HashMap<String, Tensor<f64>>> = OnceLock::new();
    TENSORS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ops.safetensors");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("fixture is safetensors");
        file.tensors()
            .into_iter()
            .map(|(name, view)| {
                assert_eq!(view.dtype(), safetensors::Dtype::F64, "{name}");
                let data: Vec<f64> =
                    view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
                (name, Tensor::from_vec(data, view.shape().to_vec()))
            })
            .collect()
    })
}

/// The case names the fixture holds.
pub fn fixture_case_names() -> BTreeSet<String> {
    fixture_tensors().keys().map(|k| k.split('.').next().unwrap().to_string()).collect()
}

pub fn fixture(name: &str) -> Fixture {
    let t = fixture_tensors();
    let get = |suffix: &str| t.get(&format!("{name}.{suffix}")).cloned();
    let series = |prefix: &str| (0..).map_while(|i| get(&format!("{prefix}{i}"))).collect::<Vec<_>>();
    let as_indices = |x: &Tensor<f64>| x.data().iter().map(|&v| v as usize).collect::<Vec<_>>();
    let idx = get("idx");
    let (inputs, grads) = (series("in"), series("grad"));
    assert_eq!(grads.len(), inputs.len(), "fixture {name}: {} gradients for {} inputs", grads.len(), inputs.len());
    Fixture {
        inputs,
        out: get("out").unwrap_or_else(|| panic!("fixture has no {name}.out")),
        up: get("up").unwrap_or_else(|| panic!("fixture has no {name}.up")),
        grads,
        aux: Aux {
            idx: idx.as_ref().map(as_indices).unwrap_or_default(),
            idx_shape: idx.as_ref().map(|t| t.dims().to_vec()).unwrap_or_default(),
            mask: get("mask"),
            targets: get("targets").as_ref().map(as_indices).unwrap_or_default(),
        },
    }
}
