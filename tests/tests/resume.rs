//! A run stopped at any step and resumed ends exactly where an uninterrupted run ends: the
//! same `model.safetensors`, byte for byte, and the same losses, accuracies, learning rates and
//! held-out evaluations in `metrics.jsonl`. For both model families, with dropout, gradient
//! accumulation and evaluations during training switched on, so that every piece of state a
//! checkpoint holds (weights, Adam moments and steps, the dropout and data generators, the data
//! position, the logging window) has to come back exactly.

use std::path::{Path, PathBuf};
use transformer::data::DataSource;
use transformer::lm::{LmConfig, LmTrainOptions, TextSource};
use transformer::train::TrainOptions;
use transformer::{Activation, ModelConfig};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resume-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `metrics.jsonl` without its clock readings (`tokens_per_s`, `elapsed_s`).
fn figures(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            let object = value.as_object_mut().unwrap();
            object.remove("tokens_per_s");
            object.remove("elapsed_s");
            value
        })
        .collect()
}

fn model_bytes(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("model").join("model.safetensors")).unwrap()
}

fn translator_options(out: PathBuf) -> TrainOptions {
    let model = ModelConfig {
        d_model: 16,
        n_heads: 2,
        n_encoder_layers: 1,
        n_decoder_layers: 1,
        d_ff: 32,
        dropout: 0.1,
        max_len: 32,
        ..ModelConfig::default()
    };
    TrainOptions {
        model,
        data: DataSource::Task("reverse".into()),
        steps: 14,
        batch_size: 8,
        accumulate: 2,
        warmup: 3,
        log_every: 4,
        eval_every: 5,
        weight_decay: 0.01,
        out,
        progress: false,
        ..TrainOptions::default()
    }
}

#[test]
fn a_stopped_translator_run_resumes_to_the_same_bytes() {
    let reference = translator_options(scratch("translator-reference"));
    let data = reference.data.load(reference.seed).unwrap();
    let summary = transformer::train::train(&reference, &data).unwrap();
    assert!(summary.final_loss.is_finite());
    let (want_bytes, want_figures) = (model_bytes(&reference.out), figures(&reference.out));
    assert_eq!(want_figures.iter().filter(|f| f.get("held_out_exact_match").is_some()).count(), 3);

    // Stopped once (at the first step, mid-interval, at a logging step, at the last step), and
    // stopped twice in a row.
    for stops in [vec![1], vec![6], vec![8], vec![13], vec![5, 11]] {
        let out = scratch(&format!("translator-{stops:?}"));
        let mut opts = TrainOptions { stop_after: Some(stops[0]), ..translator_options(out.clone()) };
        let err = transformer::train::train(&opts, &data).unwrap_err();
        assert!(err.is_interrupted(), "{err}");
        assert!(err.message().contains("--resume"), "{err}");
        for &stop in &stops[1..] {
            opts = TrainOptions { stop_after: Some(stop), ..transformer::train::resume_options(&out).unwrap() };
            assert!(transformer::train::resume(&opts, &data).unwrap_err().is_interrupted());
        }
        let opts = transformer::train::resume_options(&out).unwrap();
        assert_eq!(opts.steps, 14, "the settings come from the checkpoint");
        transformer::train::resume(&opts, &data).unwrap();
        assert!(model_bytes(&out) == want_bytes, "stopped at {stops:?}: model.safetensors differs");
        assert_eq!(figures(&out), want_figures, "stopped at {stops:?}");
        let again = transformer::train::resume(&opts, &data).unwrap_err();
        assert!(again.message().contains("is complete (14 of 14 steps)"), "{again}");
        std::fs::remove_dir_all(&out).unwrap();
    }
    std::fs::remove_dir_all(&reference.out).unwrap();
}

fn lm_options(out: PathBuf, text: PathBuf) -> LmTrainOptions {
    let model = LmConfig {
        d_model: 16,
        n_heads: 2,
        n_layers: 2,
        d_ff: 32,
        dropout: 0.1,
        max_len: 16,
        activation: Activation::Gelu,
        ..LmConfig::default()
    };
    LmTrainOptions {
        model,
        text: TextSource::File(text),
        steps: 12,
        batch_size: 4,
        accumulate: 2,
        warmup: 2,
        label_smoothing: 0.05,
        log_every: 5,
        eval_every: 4,
        out,
        progress: false,
        ..LmTrainOptions::default()
    }
}

#[test]
fn a_stopped_language_model_run_resumes_to_the_same_bytes() {
    let dir = scratch("lm-text");
    std::fs::create_dir_all(&dir).unwrap();
    let text_path = dir.join("text.txt");
    let text: String = (0..400).map(|i| format!("line {i}: the quick brown fox {}\n", i * 7 % 13)).collect();
    std::fs::write(&text_path, &text).unwrap();

    let reference = lm_options(dir.join("reference"), text_path.clone());
    transformer::lm::train(&reference, &text).unwrap();
    let (want_bytes, want_figures) = (model_bytes(&reference.out), figures(&reference.out));
    assert_eq!(want_figures.iter().filter(|f| f.get("held_out_loss").is_some()).count(), 3);

    for stops in [vec![1], vec![7], vec![10], vec![3, 9]] {
        let out = dir.join(format!("stopped-{stops:?}"));
        let mut opts = LmTrainOptions { stop_after: Some(stops[0]), ..lm_options(out.clone(), text_path.clone()) };
        assert!(transformer::lm::train(&opts, &text).unwrap_err().is_interrupted());
        for &stop in &stops[1..] {
            opts = LmTrainOptions { stop_after: Some(stop), ..transformer::lm::resume_options(&out).unwrap() };
            assert!(transformer::lm::resume(&opts, &text).unwrap_err().is_interrupted());
        }
        let opts = transformer::lm::resume_options(&out).unwrap();
        transformer::lm::resume(&opts, &text).unwrap();
        assert!(model_bytes(&out) == want_bytes, "stopped at {stops:?}: model.safetensors differs");
        assert_eq!(figures(&out), want_figures, "stopped at {stops:?}");
    }

    // A text that changed since the checkpoint is refused, by name.
    let out = dir.join("changed");
    let opts = LmTrainOptions { stop_after: Some(2), ..lm_options(out.clone(), text_path.clone()) };
    assert!(transformer::lm::train(&opts, &text).unwrap_err().is_interrupted());
    let err = transformer::lm::resume(&transformer::lm::resume_options(&out).unwrap(), &text.replace("fox", "cat"))
        .unwrap_err();
    assert!(err.message().contains("trained on another text"), "{err}");
    // And a translator cannot resume a language model's checkpoint.
    let err = transformer::train::resume_options(&out).err().unwrap();
    assert!(err.message().contains("`transformer lm train --resume`"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
