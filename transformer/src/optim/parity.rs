//! Parity with `torch.optim`: five steps of each optimizer from the gradients in
//! `tests/fixtures/optim/optim.safetensors` (made by `generate_optim.py` beside it) must land on
//! PyTorch's parameters within 1e-5 relative.

use super::{Adam, AdamConfig, AdamW, Noam, Optimizer, Schedule, Sgd, SgdConfig, grad_clip};
use autograd::{ParamStore, Tape, Tensor, allclose, max_relative_error};
use std::collections::BTreeMap;
use std::path::PathBuf;

const STEPS: usize = 5;
const RTOL: f32 = 1e-5;
/// For values that pass near zero, where a relative tolerance alone asks for more than f32 has.
const ATOL: f32 = 1e-7;

/// Every f32 tensor of a safetensors file, by name (the format: an 8-byte little-endian header
/// length, a JSON header of names, dtypes, shapes and byte ranges, then the data).
fn read_safetensors(path: &PathBuf) -> BTreeMap<String, Tensor<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, info)| {
            assert_eq!(info["dtype"], "F32", "{name}: only f32 tensors are expected");
            let shape: Vec<usize> = serde_json::from_value(info["shape"].clone()).unwrap();
            let [start, end]: [usize; 2] = serde_json::from_value(info["data_offsets"].clone()).unwrap();
            let values = data[start..end].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name, Tensor::from_vec(values, shape))
        })
        .collect()
}

struct Fixture {
    tensors: BTreeMap<String, Tensor<f32>>,
}

impl Fixture {
    fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/optim/optim.safetensors");
        Fixture { tensors: read_safetensors(&path) }
    }

    #[track_caller]
    fn get(&self, name: &str) -> &Tensor<f32> {
        self.tensors.get(name).unwrap_or_else(|| panic!("the fixture has no tensor {name}; rerun generate_optim.py"))
    }

    /// A store holding the initial parameters (the names after `init.`).
    fn initial_params(&self) -> ParamStore<f32> {
        let mut store = ParamStore::new();
        for (name, value) in &self.tensors {
            if let Some(param) = name.strip_prefix("init.") {
                store.insert(param.to_string(), value.clone());
            }
        }
        assert!(!store.is_empty(), "the fixture holds no init.* tensors");
        store
    }
}

#[track_caller]
fn assert_close(what: &str, got: &Tensor<f32>, want: &Tensor<f32>) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    assert!(
        allclose(got, want, RTOL.into(), ATOL.into()),
        "{what}: {} (PyTorch's value second)",
        max_relative_error(got, want, ATOL.into()).expect("a mismatch is in a non-empty tensor")
    );
}

/// Runs `case` for five steps and compares every parameter after every step with PyTorch's.
fn check(case: &str, optimizer: &mut dyn Optimizer, schedule: Option<&dyn Schedule>, max_norm: Option<f64>) {
    let fixture = Fixture::load();
    let params = fixture.initial_params();
    let mut clipped_steps = 0;
    for step in 1..=STEPS {
        // loss = Σ_p Σ (p ⊙ G_p) has gradient G_p for each parameter p; a parameter with no
        // G_p in the fixture stays off the tape and so has no gradient, as `.grad = None`.
        let tape = Tape::new();
        let grads = params
            .iter()
            .filter_map(|p| {
                let g = fixture.tensors.get(&format!("grad{step}.{}", p.name()))?;
                Some((tape.param(p) * tape.constant(g.clone())).sum_all())
            })
            .reduce(|a, b| a + b)
            .expect("every step has some gradient")
            .backward();

        let want_lr = f64::from(fixture.get(&format!("{case}.lr")).data()[step - 1]);
        if let Some(schedule) = schedule {
            optimizer.set_lr(schedule.lr(step));
        }
        let lr = optimizer.lr();
        assert!(
            (lr - want_lr).abs() <= f64::from(RTOL) * want_lr.abs(),
            "{case} step {step}: lr {lr}, PyTorch used {want_lr}"
        );

        let scale = match max_norm {
            Some(max_norm) => {
                let clip = grad_clip(&grads, &params, max_norm);
                let want = fixture.get(&format!("{case}.norm")).data()[step - 1];
                let norm = clip.total_norm;
                assert!((norm - want).abs() <= RTOL * want, "{case} step {step}: norm {norm}, PyTorch has {want}");
                clipped_steps += usize::from(clip.is_clipped());
                clip.scale
            }
            None => 1.0,
        };
        optimizer.step_scaled(&params, &grads, scale);

        for p in params.iter() {
            let want = fixture.get(&format!("{case}.step{step}.{}", p.name()));
            assert_close(&format!("{case} step {step} {}", p.name()), &p.value(), want);
        }
    }
    if max_norm.is_some() {
        assert!(
            0 < clipped_steps && clipped_steps < STEPS,
            "{case}: clipping acted on {clipped_steps} of {STEPS} steps"
        );
    }
}

#[test]
fn adam_paper_with_noam_and_clipping() {
    check("adam_noam_clip", &mut Adam::paper(0.0), Some(&Noam::new(2.0, 16, 3)), Some(6.0));
}

#[test]
fn adam_with_l2_weight_decay() {
    let config = AdamConfig { weight_decay: 0.1, ..AdamConfig::pytorch(0.01) };
    check("adam_l2", &mut Adam::new(config), None, None);
}

#[test]
fn adamw() {
    let config = AdamConfig { weight_decay: 0.01, ..AdamConfig::pytorch(0.05) };
    check("adamw", &mut AdamW::new(config), None, None);
}

#[test]
fn sgd_plain() {
    check("sgd", &mut Sgd::plain(0.1), None, None);
}

#[test]
fn sgd_momentum() {
    check("sgd_momentum", &mut Sgd::with_momentum(0.1, 0.9), None, None);
}

#[test]
fn sgd_nesterov_with_weight_decay() {
    let config = SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 0.01, ..SgdConfig::new(0.1) };
    check("sgd_nesterov", &mut Sgd::new(config), None, None);
}

#[test]
fn fixture_skips_a_gradient() {
    // The fixture's step 3 has no gradient for one parameter: the skip path is exercised.
    let fixture = Fixture::load();
    let params = fixture.initial_params();
    let missing = params.iter().filter(|p| !fixture.tensors.contains_key(&format!("grad3.{}", p.name()))).count();
    assert_eq!(missing, 1);
}
