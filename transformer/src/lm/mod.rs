//! A second model family: a decoder-only character language model, its text framing, training,
//! evaluation and cached generation.
//!
//! - [`CharLM`]: embeddings for characters and positions, pre-LN blocks of causal
//!   self-attention and feed-forward, a final layer norm and a head that may be tied to the
//!   embedding; parameters named as the PyTorch module in `tests/fixtures/lm/charlm.py`.
//! - [`frame`] and [`batch`]: the one rule that turns a text into inputs and targets.
//! - [`train`], [`evaluate`] and [`generate`]: what `transformer lm train`, `lm eval` and
//!   `lm generate` run. Generation keeps each block's keys and values in a
//!   [`crate::nn::KvCache`].
//! - [`LmCheckpoint`]: model directories, `"architecture": "decoder_only"`.
//!
//! The crate's front page shows the whole model in one screen: build, train a step, generate.

mod config;
mod eval;
mod generate;
mod model;
mod text;
mod train;

pub use config::{Architecture, LmConfig};
pub use eval::{LmEvalReport, evaluate};
pub use generate::{Generated, Sampling, generate};
pub use model::CharLM;
pub use text::{BUILTIN_CORPUS, Chunk, batch, frame};
pub use train::{LmTrainOptions, LmTrainSummary, TextSource, lm_optimizer, resume, resume_options, train};

use crate::checkpoint::{load_weights, parse_vocab, read_dir, save_dir};
use crate::data::Vocab;
use crate::{Error, Result};
use autograd::ParamStore;
use rand::SeedableRng;
use std::path::Path;

/// A language model with its vocabulary and parameters, as saved in a model directory
/// (`config.json` with `"architecture": "decoder_only"`, `vocab.json`, `model.safetensors`).
pub struct LmCheckpoint {
    /// The model.
    pub model: CharLM<f32>,
    /// Its parameters, by PyTorch name (a tied model has `embed.weight` and no
    /// `lm_head.weight`, as `safetensors.torch.save_model` writes it).
    pub params: ParamStore<f32>,
    /// The character vocabulary.
    pub vocab: Vocab,
}

impl LmCheckpoint {
    /// Writes `config.json`, `vocab.json` and `model.safetensors` into `dir`, creating it.
    pub fn save(dir: &Path, model: &CharLM<f32>, params: &ParamStore<f32>, vocab: &Vocab) -> Result<()> {
        save_dir(dir, model.cfg.to_json(), params, vocab)
    }

    /// Reads an LM model directory; every error names the file and what did not fit.
    pub fn load(dir: &Path) -> Result<LmCheckpoint> {
        let [config, vocab, weights] = read_dir(dir)?;
        LmCheckpoint::from_bytes(dir, &config, &vocab, &weights)
    }

    /// A language model from the bytes of its three files; `dir` only names them in errors.
    /// The config is checked against the vocabulary and the weights' header before any tensor
    /// is built.
    pub fn from_bytes(dir: &Path, config: &[u8], vocab: &[u8], weights: &[u8]) -> Result<LmCheckpoint> {
        let config_path = dir.join("config.json");
        let text =
            std::str::from_utf8(config).map_err(|e| Error::file(&config_path, format!("not UTF-8 text ({e})")))?;
        let cfg = LmConfig::from_json(text).map_err(|e| Error::file(&config_path, e))?;
        let vocab = parse_vocab(dir, vocab, cfg.vocab_size)?;
        crate::weights::check(dir, weights, &crate::weights::char_lm(&cfg))?;
        let mut params = ParamStore::new();
        let model = CharLM::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
        load_weights(dir, &params, weights)?;
        Ok(LmCheckpoint { model, params, vocab })
    }
}
