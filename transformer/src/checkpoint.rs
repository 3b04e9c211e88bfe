//! Model directories: `config.json`, `vocab.json` and `model.safetensors` (PyTorch's names).

use crate::config::ModelConfig;
use crate::data::Vocab;
use crate::model::Seq2Seq;
use crate::session::write_file_atomically;
use crate::{Error, Result};
use autograd::ParamStore;
use rand::SeedableRng;
use std::path::Path;

/// A model with its vocabulary and parameters, as saved in a model directory.
pub struct Checkpoint {
    /// The model.
    pub model: Seq2Seq<f32>,
    /// Its parameters, by PyTorch name.
    pub params: ParamStore<f32>,
    /// The token vocabulary.
    pub vocab: Vocab,
}

impl Checkpoint {
    /// Writes `config.json`, `vocab.json` and `model.safetensors` into `dir`, creating it.
    pub fn save(dir: &Path, model: &Seq2Seq<f32>, params: &ParamStore<f32>, vocab: &Vocab) -> Result<()> {
        save_dir(dir, model.cfg.to_json(), params, vocab)
    }

    /// Reads a model directory; every error names the file and what did not fit.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        check_dir(dir)?;
        let cfg = ModelConfig::load(&dir.join("config.json"))?;
        let vocab = load_vocab(dir, cfg.vocab_size)?;
        let mut params = ParamStore::new();
        let model = Seq2Seq::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
        params.load(dir.join("model.safetensors"))?;
        Ok(Checkpoint { model, params, vocab })
    }
}

/// Writes a model directory, creating it: `config.json` (the text `config_json`), `vocab.json`
/// and `model.safetensors`, each replaced atomically (written beside, flushed, renamed), so a
/// crash leaves every file whole. Shared by both model families.
pub(crate) fn save_dir(dir: &Path, config_json: String, params: &ParamStore<f32>, vocab: &Vocab) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    write_file_atomically(&dir.join("config.json"), config_json.as_bytes())?;
    write_file_atomically(&dir.join("vocab.json"), vocab.to_json().as_bytes())?;
    write_file_atomically(&dir.join("model.safetensors"), &params.to_safetensors_bytes())
}

/// An error unless `dir` is a directory.
pub(crate) fn check_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::file(dir, "is not a model directory (config.json, vocab.json, model.safetensors)"))
    }
}

/// `vocab.json` of a model directory, which must hold the `vocab_size` tokens its config says.
pub(crate) fn load_vocab(dir: &Path, vocab_size: usize) -> Result<Vocab> {
    let vocab = Vocab::load(&dir.join("vocab.json"))?;
    if vocab.len() != vocab_size {
        return Err(Error::file(
            &dir.join("vocab.json"),
            format!("holds {} tokens, but config.json says vocab_size = {vocab_size}", vocab.len()),
        ));
    }
    Ok(vocab)
}
