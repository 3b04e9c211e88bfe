//! `ModelConfig`: the hyperparameters of a model, read from and written to `config.json`.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The nonlinearity between the two linear maps of each feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(x, 0), as in the paper.
    Relu,
    /// x·Φ(x) in its exact erf form.
    Gelu,
}

/// How positions are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positional {
    /// The paper's fixed sines and cosines: P[pos, 2i] = sin(pos / 10000^(2i/d)), P[pos, 2i+1] = cos(...).
    Sinusoidal,
    /// A learned table `pos_embed.weight` of shape `[max_len, d_model]`.
    Learned,
}

/// The hyperparameters of an encoder-decoder Transformer; the `config.json` of a model directory.
///
/// ```
/// use transformer::ModelConfig;
/// let cfg: ModelConfig = serde_json::from_str(r#"{ "vocab_size": 40, "d_model": 128, "n_heads": 4,
///     "n_encoder_layers": 2, "n_decoder_layers": 2, "d_ff": 512, "dropout": 0.1, "activation": "relu",
///     "norm_first": false, "layer_norm_eps": 1e-5, "positional": "sinusoidal", "max_len": 256,
///     "scale_embeddings": true, "tie_output": false }"#).unwrap();
/// assert_eq!(cfg.d_head(), 32);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Number of tokens, the four specials included; one embedding serves source and target.
    pub vocab_size: usize,
    /// Width of every residual stream; the paper's base model uses 512.
    pub d_model: usize,
    /// Attention heads per attention block; each gets d_model / n_heads dimensions (the paper: 8).
    pub n_heads: usize,
    /// Encoder layers (the paper: 6).
    pub n_encoder_layers: usize,
    /// Decoder layers (the paper: 6).
    pub n_decoder_layers: usize,
    /// Inner width of the feed-forward blocks (the paper: 2048 = 4 · d_model).
    pub d_ff: usize,
    /// Dropout probability on embeddings, attention weights and sub-layer outputs (the paper: 0.1).
    pub dropout: f64,
    /// The feed-forward nonlinearity.
    pub activation: Activation,
    /// Layer norm before each sub-layer (pre-LN, trains more easily) instead of after (the paper).
    pub norm_first: bool,
    /// ε added to the variance in every layer norm.
    pub layer_norm_eps: f64,
    /// Fixed sinusoidal or learned positions.
    pub positional: Positional,
    /// Longest sequence the positional table covers.
    pub max_len: usize,
    /// Multiply embeddings by √d_model, as the paper does.
    pub scale_embeddings: bool,
    /// Use the embedding matrix as the output projection (no `generator.weight`).
    pub tie_output: bool,
}

impl Default for ModelConfig {
    /// The default model of `transformer train`: small enough to learn a task in minutes on a CPU.
    fn default() -> Self {
        ModelConfig {
            vocab_size: 0,
            d_model: 64,
            n_heads: 4,
            n_encoder_layers: 2,
            n_decoder_layers: 2,
            d_ff: 256,
            dropout: 0.0,
            activation: Activation::Relu,
            norm_first: true,
            layer_norm_eps: 1e-5,
            positional: Positional::Sinusoidal,
            max_len: 128,
            scale_embeddings: true,
            tie_output: false,
        }
    }
}

impl ModelConfig {
    /// d_model / n_heads: the width of one attention head.
    pub fn d_head(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// The shape of each encoder and decoder layer.
    pub fn layer(&self) -> crate::nn::LayerConfig {
        crate::nn::LayerConfig {
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_ff: self.d_ff,
            dropout: self.dropout,
            activation: self.activation,
            norm_first: self.norm_first,
            layer_norm_eps: self.layer_norm_eps,
        }
    }

    /// Checks the values fit together; the error names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        validate_layers(self.vocab_size, &self.layer())?;
        let fail = |field: &str, why: String| Err(format!("field \"{field}\": {why}"));
        if self.max_len == 0 || self.max_len > MAX_POSITIONS {
            return fail("max_len", format!("{} is outside 1..={MAX_POSITIONS}", self.max_len));
        }
        if self.positional == Positional::Sinusoidal && !self.d_model.is_multiple_of(2) {
            return fail("d_model", format!("{} must be even for sinusoidal positions", self.d_model));
        }
        // The sinusoidal table is computed, not read: its size must be bounded here.
        if self.positional == Positional::Sinusoidal && self.max_len.saturating_mul(self.d_model) > MAX_TABLE {
            return fail(
                "max_len",
                format!(
                    "max_len × d_model = {} × {} is more than the 2^28 entries a position table may have",
                    self.max_len, self.d_model
                ),
            );
        }
        Ok(())
    }

    /// Reads and validates a `config.json`; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        Self::from_json(&text).map_err(|e| Error::file(path, e))
    }

    /// Parses and validates JSON text; an error names the field it is about.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let cfg: ModelConfig = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| describe_json_error(&e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses and validates a JSON value (already read from a file).
    pub fn from_value(value: serde_json::Value) -> std::result::Result<Self, String> {
        let cfg: ModelConfig = serde_path_to_error::deserialize(value).map_err(|e| describe_json_error(&e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Writes the config as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::session::write_file_atomically(path, self.to_json().as_bytes())
    }

    /// The text of `config.json`: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serializes") + "\n"
    }
}

/// The most entries (max_len × d_model) of the sinusoidal position table, 1 GiB of f32.
pub const MAX_TABLE: usize = 1 << 28;

/// The most positions a config may ask for: tables of `max_len` rows are built before any
/// weight is read, so an absurd value must fail here rather than in an allocation.
pub const MAX_POSITIONS: usize = 1 << 16;
/// The widest `d_model` and `d_ff` a config may ask for, for the same reason.
pub const MAX_WIDTH: usize = 1 << 20;
/// The largest vocabulary: the four specials and every Unicode scalar value.
pub const MAX_VOCAB: usize = 4 + 0x11_0000;

/// Checks the fields both model families share: the vocabulary and the shape of a layer.
pub(crate) fn validate_layers(vocab_size: usize, layer: &crate::nn::LayerConfig) -> std::result::Result<(), String> {
    let fail = |field: &str, why: String| Err(format!("field \"{field}\": {why}"));
    if vocab_size < 5 {
        return fail(
            "vocab_size",
            format!("{vocab_size} is too small: the four special tokens and at least one character"),
        );
    }
    if vocab_size > MAX_VOCAB {
        return fail(
            "vocab_size",
            format!("{vocab_size} is more than the {MAX_VOCAB} tokens a character vocabulary can hold"),
        );
    }
    let (d, h) = (layer.d_model, layer.n_heads);
    if d == 0 || d > MAX_WIDTH {
        return fail("d_model", format!("{d} is outside 1..={MAX_WIDTH}"));
    }
    if layer.d_ff > MAX_WIDTH {
        return fail("d_ff", format!("{} is more than {MAX_WIDTH}", layer.d_ff));
    }
    if h == 0 || !d.is_multiple_of(h) {
        return fail("n_heads", format!("{h} does not divide d_model = {d}"));
    }
    if layer.d_ff == 0 {
        return fail("d_ff", "must be positive".into());
    }
    if !(0.0..1.0).contains(&layer.dropout) {
        return fail("dropout", format!("{} is outside [0, 1)", layer.dropout));
    }
    if layer.layer_norm_eps <= 0.0 || !layer.layer_norm_eps.is_finite() {
        return fail("layer_norm_eps", format!("{} must be a small positive number", layer.layer_norm_eps));
    }
    Ok(())
}

/// `field "d_model": invalid type: ...` when the error is inside a field, the plain message
/// (missing or unknown field, bad syntax) otherwise.
pub(crate) fn describe_json_error<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path.is_empty() || path == "." { e.inner().to_string() } else { format!("field \"{path}\": {}", e.inner()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let mut cfg = ModelConfig { vocab_size: 20, ..ModelConfig::default() };
        cfg.n_heads = 3;
        assert_eq!(cfg.validate().unwrap_err(), "field \"n_heads\": 3 does not divide d_model = 64");
        let json = serde_json::to_string(&ModelConfig { vocab_size: 20, ..ModelConfig::default() }).unwrap();
        let bad = json.replace("\"relu\"", "\"swish\"");
        assert!(
            ModelConfig::from_json(&bad).unwrap_err().contains("unknown variant `swish`, expected `relu` or `gelu`")
        );
        let missing = json.replace("\"d_ff\":256,", "");
        assert!(ModelConfig::from_json(&missing).unwrap_err().contains("missing field `d_ff`"));
    }
}
