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
        let [config, vocab, weights] = read_dir(dir)?;
        Checkpoint::from_bytes(dir, &config, &vocab, &weights)
    }

    /// A model from the bytes of its three files; `dir` only names them in errors. The config
    /// is checked against the vocabulary and against the weights' header (every tensor's name
    /// and shape) before any tensor is built.
    pub fn from_bytes(dir: &Path, config: &[u8], vocab: &[u8], weights: &[u8]) -> Result<Checkpoint> {
        let config_path = dir.join("config.json");
        let text =
            std::str::from_utf8(config).map_err(|e| Error::file(&config_path, format!("not UTF-8 text ({e})")))?;
        let cfg = ModelConfig::from_json(text).map_err(|e| Error::file(&config_path, e))?;
        let vocab = parse_vocab(dir, vocab, cfg.vocab_size)?;
        crate::weights::check(dir, weights, &crate::weights::seq2seq(&cfg))?;
        let mut params = ParamStore::new();
        let model = Seq2Seq::new(&cfg, &mut params, &mut rand::rngs::StdRng::seed_from_u64(0));
        load_weights(dir, &params, weights)?;
        Ok(Checkpoint { model, params, vocab })
    }
}

/// The bytes of `config.json`, `vocab.json` and `model.safetensors` in a model directory.
pub(crate) fn read_dir(dir: &Path) -> Result<[Vec<u8>; 3]> {
    check_dir(dir)?;
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| Error::file(&path, format!("cannot read: {e}")))
    };
    Ok([read("config.json")?, read("vocab.json")?, read("model.safetensors")?])
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

/// Sets `params` from the bytes [`read_weights`] gave.
pub(crate) fn load_weights(dir: &Path, params: &ParamStore<f32>, bytes: &[u8]) -> Result<()> {
    params.load_safetensors_bytes(bytes).map_err(|e| Error::file(&dir.join("model.safetensors"), e))
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
    let path = dir.join("vocab.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::file(&path, format!("cannot read: {e}")))?;
    parse_vocab(dir, &bytes, vocab_size)
}

/// The bytes of `vocab.json`, which must hold the `vocab_size` tokens the config says.
pub(crate) fn parse_vocab(dir: &Path, bytes: &[u8], vocab_size: usize) -> Result<Vocab> {
    let path = dir.join("vocab.json");
    let text = std::str::from_utf8(bytes).map_err(|e| Error::file(&path, format!("not UTF-8 text ({e})")))?;
    let vocab = Vocab::from_json(text, &path)?;
    if vocab.len() != vocab_size {
        return Err(Error::file(
            &path,
            format!("holds {} tokens, but config.json says vocab_size = {vocab_size}", vocab.len()),
        ));
    }
    Ok(vocab)
}
