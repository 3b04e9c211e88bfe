//! Cross-crate test suites live in `tests/`: PyTorch parity fixtures, GEMM sweeps, graph snapshots.
//! This library holds what several suites share: reading a fixture file and measuring how far a
//! result is from PyTorch's.

use autograd::{Element, Mismatch, Tensor, largest_magnitude, max_relative_error};
use std::collections::HashMap;

/// The tensors of a fixture file in `tests/fixtures/` (f32 or f64, converted to `T`) and its
/// metadata (for the model fixtures: case name → config.json text).
pub fn load_fixture<T: Element>(file: &str) -> (HashMap<String, Tensor<T>>, HashMap<String, String>) {
    let path = format!("{}/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("fixture header");
    let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("fixture is safetensors");
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| T::from_f64(f32::from_le_bytes(c.try_into().unwrap()) as f64))
                    .collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, Tensor::from_vec(values, view.shape().to_vec()))
        })
        .collect();
    (tensors, metadata)
}

/// The worst element of `a` against the reference `b`: the largest |a − b| / max(|b|, floor),
/// where floor = max(`floor.0`, `floor.1` · max|b|), and a NaN or infinity in `a` counts as an
/// infinite error. Values near zero come from cancellation and are only as exact as the large
/// terms that cancelled: in f64 an absolute floor covers them (the gradient of a key bias is
/// exactly zero in theory and ~1e-18 in practice); in f32 every error is measured against the
/// tensor's largest value.
pub fn worst<T: Element>(a: &Tensor<T>, b: &Tensor<T>, floor: (f64, f64)) -> Mismatch {
    let scale = largest_magnitude(b);
    assert!(scale.is_finite(), "the PyTorch reference holds a NaN or an infinity");
    let floor = floor.0.max(floor.1 * scale);
    max_relative_error(a, b, floor).unwrap_or(Mismatch { index: 0, got: 0.0, want: 0.0, error: 0.0 })
}

/// Token ids stored as floats in a `(batch, t)` fixture tensor, with their shape.
pub fn ids<T: Element>(t: &Tensor<T>) -> (Vec<usize>, [usize; 2]) {
    (t.data().iter().map(|v| v.to_f64() as usize).collect(), [t.dims()[0], t.dims()[1]])
}
