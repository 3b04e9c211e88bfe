//! A PyTorch-made language model works here: `tests/fixtures/lm/torch_model` (written by
//! `tests/fixtures/lm/interop.py make` from the PyTorch `CharLM` with
//! `safetensors.torch.save_model`) loads with `LmCheckpoint::load` and gives the eval loss
//! PyTorch computed on `eval.txt` (expected.json). A model saved here holds exactly the tensors
//! PyTorch's `save_model` writes: a tied head is `embed.weight` alone. The other direction (a
//! model written by `transformer lm train` loads into `CharLM` strictly and gives the same eval
//! loss) is `interop.py check`.

use autograd::ParamStore;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use transformer::data::Vocab;
use transformer::lm::{CharLM, LmCheckpoint, LmConfig, evaluate};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lm").join(name)
}

#[test]
fn pytorch_model_gives_pytorchs_eval_loss() {
    let ckpt = LmCheckpoint::load(&fixture("torch_model")).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(fixture("eval.txt")).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let report = evaluate(&ckpt.model, &ckpt.vocab, &text);
    let want_loss = want["loss"].as_f64().expect("expected.json: loss");
    assert_eq!(report.characters as u64, want["characters"].as_u64().unwrap());
    let rel = (report.loss - want_loss).abs() / want_loss;
    assert!(rel <= 1e-5, "loss {} vs PyTorch {want_loss} (relative {rel:.2e})", report.loss);
    assert!(want["unknown_characters"].as_u64().unwrap() > 0, "eval.txt should exercise <unk>");
    assert!(!ckpt.model.cfg.tie_output && ckpt.model.cfg.dropout > 0.0, "the fixture is untied and has dropout");
}

/// Tensor names of a safetensors file.
fn names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut names: Vec<String> =
        safetensors::SafeTensors::deserialize(&bytes).unwrap().names().into_iter().cloned().collect();
    names.sort();
    names
}

#[test]
fn a_tied_model_is_saved_as_save_model_writes_it() {
    let vocab = Vocab::from_texts(["abc"]);
    let dir = std::env::temp_dir().join(format!("lm_interop_tied_{}", std::process::id()));
    for tie_output in [true, false] {
        let cfg = LmConfig {
            vocab_size: vocab.len(),
            d_model: 8,
            n_heads: 2,
            n_layers: 1,
            d_ff: 16,
            max_len: 8,
            tie_output,
            ..LmConfig::default()
        };
        let mut params = ParamStore::<f32>::new();
        let model = CharLM::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
        LmCheckpoint::save(&dir, &model, &params, &vocab).unwrap();
        let saved = names(&dir.join("model.safetensors"));
        assert!(saved.contains(&"embed.weight".to_string()) && saved.contains(&"pos_embed.weight".to_string()));
        assert_eq!(saved.contains(&"lm_head.weight".to_string()), !tie_output, "{saved:?}");
        let back = LmCheckpoint::load(&dir).unwrap();
        for p in params.iter() {
            assert!(back.params.get(p.name()).unwrap().value().bit_eq(&p.value()), "{}", p.name());
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
