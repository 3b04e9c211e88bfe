//! A PyTorch-made checkpoint works here: `tests/fixtures/checkpoint/torch_model` (written by
//! `tests/fixtures/checkpoint/interop.py make` from the PyTorch `Seq2Seq` of
//! generate_transformer.py, with `state_dict` names) loads with `Checkpoint::load`, gives the eval
//! loss, token count and token accuracy PyTorch computed on `eval.tsv` (expected.json), and
//! survives `Checkpoint::save` unchanged. The other direction (a model written by
//! `transformer train` loads into PyTorch with `strict=True` and gives the same eval loss) is
//! `interop.py check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use transformer::checkpoint::Checkpoint;
use transformer::data::{UNK, read_tsv};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/checkpoint").join(name)
}

fn load(dir: &Path) -> Checkpoint {
    Checkpoint::load(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// (loss, tokens, token accuracy) exactly as `transformer eval` computes them.
fn evaluate(ckpt: &Checkpoint, data: &Path) -> (f64, usize, f64) {
    let examples = read_tsv(data).unwrap_or_else(|e| panic!("{e}"));
    let report = transformer::eval::evaluate(ckpt, &examples);
    (report.loss, report.tokens, report.token_accuracy)
}

fn expected() -> serde_json::Value {
    let path = fixture("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Tensor names, shapes and dtypes of a safetensors file.
fn tensor_names(path: &Path) -> BTreeMap<String, (Vec<usize>, safetensors::Dtype)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.tensors().into_iter().map(|(name, view)| (name, (view.shape().to_vec(), view.dtype()))).collect()
}

// ANCHOR: from_pytorch
#[test]
fn pytorch_checkpoint_gives_pytorchs_eval_loss() {
    let ckpt = load(&fixture("torch_model"));
    let want = expected();
    let (loss, tokens, accuracy) = evaluate(&ckpt, &fixture("eval.tsv"));
    let want_loss = want["loss"].as_f64().expect("expected.json: loss");
    let want_tokens = want["tokens"].as_u64().expect("expected.json: tokens") as usize;
    let want_accuracy = want["token_accuracy"].as_f64().expect("expected.json: token_accuracy");
    let rel = |got: f64, want: f64| (got - want).abs() / want.abs().max(f64::MIN_POSITIVE);
    assert_eq!(tokens, want_tokens, "non-pad target tokens");
    assert!(rel(loss, want_loss) <= 1e-5, "loss {loss} vs PyTorch {want_loss} (relative {:.2e})", rel(loss, want_loss));
    assert!(
        rel(accuracy, want_accuracy) <= 1e-5,
        "token accuracy {accuracy} vs PyTorch {want_accuracy} ({} tokens)",
        tokens
    );
    // ANCHOR_END: from_pytorch
    // The fixture exercises what it says it does.
    let examples = read_tsv(&fixture("eval.tsv")).unwrap();
    assert_eq!(examples.len() as u64, want["examples"].as_u64().unwrap());
    assert!(
        examples.iter().any(|e| e.source.chars().chain(e.target.chars()).any(|c| ckpt.vocab.id(c) == UNK)),
        "eval.tsv should hold characters the vocabulary lacks"
    );
}

#[test]
fn saving_a_pytorch_checkpoint_round_trips_bit_for_bit() {
    let source = fixture("torch_model");
    let original = load(&source);
    let dir = std::env::temp_dir().join(format!("checkpoint-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Checkpoint::save(&dir, &original.model, &original.params, &original.vocab).unwrap();
    let reloaded = load(&dir);

    assert_eq!(reloaded.model.cfg, original.model.cfg);
    assert_eq!(reloaded.vocab, original.vocab);
    let names = |ckpt: &Checkpoint| ckpt.params.names().map(String::from).collect::<Vec<_>>();
    assert_eq!(names(&reloaded), names(&original));
    for p in original.params.iter() {
        let q = reloaded.params.get(p.name()).unwrap_or_else(|| panic!("{} is missing after reload", p.name()));
        let (a, b) = (p.value(), q.value());
        assert_eq!(a.dims(), b.dims(), "{}", p.name());
        let differ = a.data().iter().zip(b.data()).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
        assert_eq!(differ, 0, "{}: {differ} values differ after save and reload", p.name());
    }
    let written = tensor_names(&dir.join("model.safetensors"));
    assert_eq!(written, tensor_names(&source.join("model.safetensors")), "tensor names, shapes and dtypes");
    assert!(written.values().all(|(_, dtype)| *dtype == safetensors::Dtype::F32));
    std::fs::remove_dir_all(&dir).unwrap();
}
