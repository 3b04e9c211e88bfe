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

use crate::Result;
use crate::checkpoint::{check_dir, load_vocab, save_dir};
use crate::data::Vocab;
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
        check_dir(dir)?;
        let cfg = LmConfig::load(&dir.join("config.json"))?;
        let vocab = load_vocab(dir, cfg.vocab_size)?;
        let mut params = ParamStore::new();
        let model = CharLM::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
        params.load(dir.join("model.safetensors"))?;
        Ok(LmCheckpoint { model, params, vocab })
    }
}
