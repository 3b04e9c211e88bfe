//! Loading parameters from a bad file returns an error naming the file and the tensor, never
//! panics, and never half-loads the store.

use autograd::{ParamStore, Tensor};
use std::path::PathBuf;

fn store() -> ParamStore<f32> {
    let mut s = ParamStore::new();
    let mut layer = s.prefix("layer");
    layer.param("weight", Tensor::from_fn([3, 2], |i| i as f32));
    layer.param("bias", Tensor::from_fn([3], |i| i as f32 * 0.5));
    s
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autograd-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The store's values, to prove a failed load changed nothing.
fn values(s: &ParamStore<f32>) -> Vec<Vec<f32>> {
    s.iter().map(|p| p.value().to_vec()).collect()
}

/// Loads `bytes` into a fresh store and returns the error text with the temp dir replaced by `$DIR`.
fn load_error(name: &str, bytes: &[u8]) -> String {
    let path = temp_file(name, bytes);
    let s = store();
    let before = values(&s);
    let err = s.load(&path).expect_err("the load should fail");
    assert_eq!(values(&s), before, "a failed load changed the store");
    err.to_string().replace(&path.parent().unwrap().display().to_string(), "$DIR")
}

fn encoded(build: impl FnOnce(&mut ParamStore<f32>)) -> Vec<u8> {
    let mut s = ParamStore::new();
    build(&mut s);
    s.to_safetensors_bytes()
}

#[test]
fn round_trip_through_a_file() {
    let a = store();
    let path = temp_file("good.safetensors", &a.to_safetensors_bytes());
    let b = store();
    b.iter().for_each(|p| p.update(|d| d.fill(0.0)));
    b.load(&path).unwrap();
    assert_eq!(values(&a), values(&b));
}

#[test]
fn bad_files_are_named_errors() {
    let good = store().to_safetensors_bytes();
    let extra = encoded(|s| {
        let mut l = s.prefix("layer");
        l.param("weight", Tensor::zeros([3, 2]));
        l.param("bias", Tensor::zeros([3]));
        l.param("scale", Tensor::zeros([3]));
    });
    let missing = encoded(|s| {
        s.prefix("layer").param("weight", Tensor::ones([3, 2]));
    });
    let wrong_shape = encoded(|s| {
        let mut l = s.prefix("layer");
        l.param("weight", Tensor::ones([2, 3]));
        l.param("bias", Tensor::ones([3]));
    });
    let mut f64_store = ParamStore::<f64>::new();
    f64_store.prefix("layer").param("weight", Tensor::ones([3, 2]));
    f64_store.prefix("layer").param("bias", Tensor::ones([3]));
    let wrong_dtype = f64_store.to_safetensors_bytes();

    let report = [
        ("truncated", load_error("truncated.safetensors", &good[..good.len() - 5])),
        ("not safetensors", load_error("notes.txt", b"these are not tensors")),
        ("empty", load_error("empty.safetensors", b"")),
        ("extra tensor", load_error("extra.safetensors", &extra)),
        ("missing tensor", load_error("missing.safetensors", &missing)),
        ("wrong shape", load_error("shape.safetensors", &wrong_shape)),
        ("wrong dtype", load_error("dtype.safetensors", &wrong_dtype)),
    ]
    .map(|(what, msg)| format!("{what}: {msg}"))
    .join("\n");
    insta::assert_snapshot!(report);

    let absent = store().load("/nonexistent/model.safetensors").unwrap_err().to_string();
    assert!(absent.starts_with("/nonexistent/model.safetensors: "), "{absent}");
}
