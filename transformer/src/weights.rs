//! The tensors a config implies, checked against the header of `model.safetensors` before any
//! tensor is built: a config that disagrees with its weights (another width, another number of
//! layers, a tied output that the file unties) is an error naming the config field and the
//! tensor, not an allocation sized by the wrong number.

use crate::config::{ModelConfig, Positional};
use crate::lm::LmConfig;
use crate::{Error, Result};
use autograd::Shape;
use std::path::Path;

/// One tensor a config implies: its name, each dimension with the config field that sets it,
/// and the field that makes it exist at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expected {
    pub name: String,
    pub dims: Vec<(usize, &'static str)>,
    pub because: &'static str,
}

fn tensor(name: String, dims: &[(usize, &'static str)], because: &'static str) -> Expected {
    Expected { name, dims: dims.to_vec(), because }
}

/// The tensors of one attention block: `in_proj_*` (W_Q, W_K, W_V stacked) and `out_proj.*`.
fn attention(out: &mut Vec<Expected>, prefix: &str, d: usize, because: &'static str) {
    let (d1, d3) = ((d, "d_model"), (3 * d, "d_model"));
    out.push(tensor(format!("{prefix}.in_proj_weight"), &[d3, d1], because));
    out.push(tensor(format!("{prefix}.in_proj_bias"), &[d3], because));
    out.push(tensor(format!("{prefix}.out_proj.weight"), &[d1, d1], because));
    out.push(tensor(format!("{prefix}.out_proj.bias"), &[d1], because));
}

/// A LayerNorm's `weight` and `bias`.
fn norm(out: &mut Vec<Expected>, prefix: &str, d: usize, because: &'static str) {
    for part in ["weight", "bias"] {
        out.push(tensor(format!("{prefix}.{part}"), &[(d, "d_model")], because));
    }
}

/// One encoder or decoder layer (with cross-attention and `norm3` when `cross`).
fn layer(out: &mut Vec<Expected>, prefix: &str, d: usize, d_ff: usize, cross: bool, because: &'static str) {
    attention(out, &format!("{prefix}.self_attn"), d, because);
    if cross {
        attention(out, &format!("{prefix}.multihead_attn"), d, because);
    }
    out.push(tensor(format!("{prefix}.linear1.weight"), &[(d_ff, "d_ff"), (d, "d_model")], because));
    out.push(tensor(format!("{prefix}.linear1.bias"), &[(d_ff, "d_ff")], because));
    out.push(tensor(format!("{prefix}.linear2.weight"), &[(d, "d_model"), (d_ff, "d_ff")], because));
    out.push(tensor(format!("{prefix}.linear2.bias"), &[(d, "d_model")], because));
    let norms: &[&str] = if cross { &["norm1", "norm2", "norm3"] } else { &["norm1", "norm2"] };
    for n in norms {
        norm(out, &format!("{prefix}.{n}"), d, because);
    }
}

/// Every tensor of a [`crate::Seq2Seq`] with this config, as `torch.nn.Transformer` names them.
pub(crate) fn seq2seq(cfg: &ModelConfig) -> Vec<Expected> {
    let (d, v) = (cfg.d_model, cfg.vocab_size);
    let mut out = vec![tensor("embed.weight".into(), &[(v, "vocab_size"), (d, "d_model")], "vocab_size")];
    if cfg.positional == Positional::Learned {
        out.push(tensor("pos_embed.weight".into(), &[(cfg.max_len, "max_len"), (d, "d_model")], "positional"));
    }
    for i in 0..cfg.n_encoder_layers {
        layer(&mut out, &format!("encoder.layers.{i}"), d, cfg.d_ff, false, "n_encoder_layers");
    }
    norm(&mut out, "encoder.norm", d, "d_model");
    for i in 0..cfg.n_decoder_layers {
        layer(&mut out, &format!("decoder.layers.{i}"), d, cfg.d_ff, true, "n_decoder_layers");
    }
    norm(&mut out, "decoder.norm", d, "d_model");
    if !cfg.tie_output {
        out.push(tensor("generator.weight".into(), &[(v, "vocab_size"), (d, "d_model")], "tie_output"));
    }
    out.push(tensor("generator.bias".into(), &[(v, "vocab_size")], "vocab_size"));
    out
}

/// Every tensor of a [`crate::lm::CharLM`] with this config, as the PyTorch `CharLM` names them.
pub(crate) fn char_lm(cfg: &LmConfig) -> Vec<Expected> {
    let (d, v) = (cfg.d_model, cfg.vocab_size);
    let mut out = vec![
        tensor("embed.weight".into(), &[(v, "vocab_size"), (d, "d_model")], "vocab_size"),
        tensor("pos_embed.weight".into(), &[(cfg.max_len, "max_len"), (d, "d_model")], "max_len"),
    ];
    for i in 0..cfg.n_layers {
        layer(&mut out, &format!("blocks.layers.{i}"), d, cfg.d_ff, false, "n_layers");
    }
    norm(&mut out, "blocks.norm", d, "d_model");
    if !cfg.tie_output {
        out.push(tensor("lm_head.weight".into(), &[(v, "vocab_size"), (d, "d_model")], "tie_output"));
    }
    out
}

/// The config field an unexpected tensor speaks of: a layer beyond the configured count, an
/// untied head, a learned position table.
fn field_of_extra(name: &str) -> &'static str {
    let prefixes = [
        ("encoder.layers.", "n_encoder_layers"),
        ("decoder.layers.", "n_decoder_layers"),
        ("blocks.layers.", "n_layers"),
        ("generator.weight", "tie_output"),
        ("lm_head.weight", "tie_output"),
        ("pos_embed.", "positional"),
    ];
    prefixes.iter().find(|(p, _)| name.starts_with(p)).map_or("the model's architecture", |(_, f)| f)
}

/// Checks the header of `weights` (the bytes of `model.safetensors` in `dir`) against what the
/// config implies: the same names, each with the implied shape and element type f32. An error
/// names the file, the tensor and the config field.
pub(crate) fn check(dir: &Path, weights: &[u8], expected: &[Expected]) -> Result<()> {
    let path = dir.join("model.safetensors");
    let header = autograd::safetensors_header(weights).map_err(|e| Error::file(&path, e))?;
    let found = |name: &str| header.iter().find(|(n, _, _)| n == name);
    for e in expected {
        let want = Shape::from(e.dims.iter().map(|d| d.0).collect::<Vec<_>>());
        let Some((_, dtype, shape)) = found(&e.name) else {
            return Err(Error::file(
                &path,
                format!("has no tensor {} of shape {want}, which config.json's {} implies", e.name, e.because),
            ));
        };
        if *shape != want {
            let fields: Vec<String> = e
                .dims
                .iter()
                .enumerate()
                .filter(|(i, d)| shape.dims().get(*i) != Some(&d.0))
                .map(|(_, (size, field))| format!("{field} = {size}"))
                .collect();
            let fields = if fields.is_empty() { "its rank".to_string() } else { fields.join(", ") };
            return Err(Error::file(
                &path,
                format!("tensor {} has shape {shape}, but config.json ({fields}) implies {want}", e.name),
            ));
        }
        if dtype != "f32" {
            return Err(Error::file(&path, format!("tensor {} has dtype {dtype}, expected f32", e.name)));
        }
    }
    if let Some((name, _, _)) = header.iter().find(|(n, _, _)| !expected.iter().any(|e| &e.name == n)) {
        return Err(Error::file(
            &path,
            format!("holds tensor {name}, which a model with config.json's {} does not have", field_of_extra(name)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;
    use autograd::ParamStore;
    use rand::SeedableRng;

    fn built(params: &ParamStore<f32>) -> Vec<(String, Shape)> {
        let mut v: Vec<(String, Shape)> = params.iter().map(|p| (p.name().to_string(), p.shape())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn listed(expected: &[Expected]) -> Vec<(String, Shape)> {
        let mut v: Vec<(String, Shape)> = expected
            .iter()
            .map(|e| (e.name.clone(), Shape::from(e.dims.iter().map(|d| d.0).collect::<Vec<_>>())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The list is the model: every config variant builds exactly the tensors listed.
    #[test]
    fn the_listed_tensors_are_the_built_ones() {
        let rng = &mut rand::rngs::StdRng::seed_from_u64(0);
        for (tie, positional, layers) in [(false, Positional::Sinusoidal, 2), (true, Positional::Learned, 1)] {
            let cfg = ModelConfig {
                vocab_size: 11,
                d_model: 8,
                n_heads: 2,
                d_ff: 12,
                n_encoder_layers: layers,
                n_decoder_layers: 3 - layers,
                tie_output: tie,
                positional,
                ..ModelConfig::default()
            };
            let mut params = ParamStore::new();
            crate::Seq2Seq::<f32>::new(&cfg, &mut params, rng);
            assert_eq!(listed(&seq2seq(&cfg)), built(&params), "{cfg:?}");
        }
        for tie in [false, true] {
            let cfg = LmConfig {
                vocab_size: 9,
                d_model: 8,
                n_heads: 2,
                n_layers: 2,
                d_ff: 16,
                tie_output: tie,
                activation: Activation::Gelu,
                ..LmConfig::default()
            };
            let mut params = ParamStore::new();
            crate::lm::CharLM::<f32>::new(&cfg, &mut params, rng);
            assert_eq!(listed(&char_lm(&cfg)), built(&params), "{cfg:?}");
        }
    }

    #[test]
    fn a_mismatch_names_the_tensor_and_the_field() {
        let small = ModelConfig { vocab_size: 11, d_model: 8, n_heads: 2, d_ff: 12, ..ModelConfig::default() };
        let mut params = ParamStore::<f32>::new();
        crate::Seq2Seq::<f32>::new(&small, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
        let bytes = params.to_safetensors_bytes();
        let dir = Path::new("m");
        let error = |cfg: ModelConfig| check(dir, &bytes, &seq2seq(&cfg)).unwrap_err().to_string();
        assert_eq!(check(dir, &bytes, &seq2seq(&small)), Ok(()));
        assert_eq!(
            error(ModelConfig { d_ff: 4096, ..small.clone() }),
            "m/model.safetensors: tensor encoder.layers.0.linear1.weight has shape [12, 8], but config.json \
             (d_ff = 4096) implies [4096, 8]"
        );
        assert_eq!(
            error(ModelConfig { n_encoder_layers: 3, ..small.clone() }),
            "m/model.safetensors: has no tensor encoder.layers.2.self_attn.in_proj_weight of shape [24, 8], which \
             config.json's n_encoder_layers implies"
        );
        assert_eq!(
            error(ModelConfig { tie_output: true, ..small.clone() }),
            "m/model.safetensors: holds tensor generator.weight, which a model with config.json's tie_output does \
             not have"
        );
        assert!(error(ModelConfig { vocab_size: 1 << 20, ..small }).contains("(vocab_size = 1048576)"));
    }
}
