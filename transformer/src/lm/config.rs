//! `LmConfig`: the hyperparameters of a decoder-only language model, read from and written to
//! `config.json`.

use crate::config::{Activation, MAX_POSITIONS, describe_json_error, validate_layers};
use crate::nn::LayerConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The only architecture an [`LmConfig`] describes; its `config.json` says so, which tells an
/// LM model directory from a translator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// A stack of causal self-attention blocks, as GPT.
    DecoderOnly,
}

/// The shape of a [`super::CharLM`]: `config.json` of an LM model directory.
///
/// ```
/// use transformer::lm::LmConfig;
/// let cfg = LmConfig { vocab_size: 40, ..LmConfig::default() };
/// assert!(cfg.validate().is_ok());
/// assert_eq!(cfg.d_model / cfg.n_heads, 32);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmConfig {
    /// Always `"decoder_only"`.
    pub architecture: Architecture,
    /// Tokens in the vocabulary: the four specials and the characters.
    pub vocab_size: usize,
    /// Width of every position's vector.
    pub d_model: usize,
    /// Attention heads; each sees d_model / n_heads features.
    pub n_heads: usize,
    /// Blocks of causal self-attention and feed-forward.
    pub n_layers: usize,
    /// Width of the feed-forward block's hidden layer (4·d_model, as GPT).
    pub d_ff: usize,
    /// Dropout on attention weights, in the feed-forward block and on each sub-layer.
    pub dropout: f64,
    /// The feed-forward nonlinearity (`gelu`, as GPT, or `relu`).
    pub activation: Activation,
    /// ε of the layer norms.
    pub layer_norm_eps: f64,
    /// The longest context: the number of learned positions.
    pub max_len: usize,
    /// The output layer reuses the token embedding (`embed.weight`) instead of its own
    /// `lm_head.weight`.
    pub tie_output: bool,
}

impl Default for LmConfig {
    /// The model `transformer lm train` trains by default: 3 blocks of width 128, 64 characters
    /// of context, tied output. `vocab_size` is 0 until the text sets it.
    fn default() -> Self {
        LmConfig {
            architecture: Architecture::DecoderOnly,
            vocab_size: 0,
            d_model: 128,
            n_heads: 4,
            n_layers: 3,
            d_ff: 512,
            dropout: 0.0,
            activation: Activation::Gelu,
            layer_norm_eps: 1e-5,
            max_len: 64,
            tie_output: true,
        }
    }
}

impl LmConfig {
    /// The shape of each block: a pre-LN `TransformerEncoderLayer`.
    pub fn layer(&self) -> LayerConfig {
        LayerConfig {
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_ff: self.d_ff,
            dropout: self.dropout,
            activation: self.activation,
            norm_first: true,
            layer_norm_eps: self.layer_norm_eps,
        }
    }

    /// Checks every field, naming the first that does not fit.
    pub fn validate(&self) -> std::result::Result<(), String> {
        validate_layers(self.vocab_size, &self.layer())?;
        let fail = |field: &str, why: String| Err(format!("field \"{field}\": {why}"));
        if self.n_layers == 0 {
            return fail("n_layers", "must be positive".into());
        }
        if self.max_len < 2 {
            return fail("max_len", format!("{} leaves no room for <bos> and a character", self.max_len));
        }
        if self.max_len > MAX_POSITIONS {
            return fail("max_len", format!("{} is more than {MAX_POSITIONS}", self.max_len));
        }
        Ok(())
    }

    /// Reads and checks `config.json`; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        Self::from_json(&text).map_err(|e| Error::file(path, e))
    }

    /// Parses and checks the text of a `config.json`.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::from_value(value)
    }

    /// Parses and checks a parsed `config.json`.
    pub fn from_value(value: serde_json::Value) -> std::result::Result<Self, String> {
        if value.get("architecture").is_none() && value.get("n_encoder_layers").is_some() {
            return Err("this is an encoder-decoder (translator) config; the `lm` commands need \
                        \"architecture\": \"decoder_only\""
                .into());
        }
        let cfg: LmConfig = serde_path_to_error::deserialize(value).map_err(|e| describe_json_error(&e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Writes `config.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::session::write_file_atomically(path, self.to_json().as_bytes())
    }

    /// The text of `config.json`: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_bad_fields() {
        let cfg = LmConfig { vocab_size: 30, ..LmConfig::default() };
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(text.contains("\"architecture\":\"decoder_only\""), "{text}");
        assert_eq!(LmConfig::from_json(&text).unwrap(), cfg);
        let bad = text.replace("\"n_heads\":4", "\"n_heads\":3");
        assert_eq!(LmConfig::from_json(&bad).unwrap_err(), "field \"n_heads\": 3 does not divide d_model = 128");
        let translator = r#"{"vocab_size": 40, "n_encoder_layers": 2}"#;
        assert!(LmConfig::from_json(translator).unwrap_err().contains("encoder-decoder"));
    }
}
