//! Text for the language model: the built-in corpus, and the one framing rule that training,
//! evaluation and the PyTorch parity scripts share.
//!
//! The text is one stream of characters (newlines included; a character the vocabulary lacks
//! becomes `<unk>`), cut into consecutive chunks of `max_len` characters, the last possibly
//! shorter. A chunk's input is `<bos>` followed by all but its last character; its target is
//! the chunk. So every character of the text is predicted exactly once.

use crate::data::{BOS, PAD};

/// This repository's own Rust sources and book, embedded when the program was built: every
/// `.rs` file under `autograd/src` and `transformer/src` and every `.md` file under
/// `docs/src`, sorted by path, concatenated.
pub const BUILTIN_CORPUS: &str = include_str!(concat!(env!("OUT_DIR"), "/corpus.txt"));

/// One framed chunk: the model reads `input` and should predict `target`, position by position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// `<bos>` and all but the last character of the chunk.
    pub input: Vec<usize>,
    /// The chunk's characters.
    pub target: Vec<usize>,
}

impl Chunk {
    /// The chunk of characters `ids`, framed.
    pub fn new(ids: &[usize]) -> Chunk {
        let input = std::iter::once(BOS).chain(ids[..ids.len().saturating_sub(1)].iter().copied()).collect();
        Chunk { input, target: ids.to_vec() }
    }
}

/// The stream `ids` cut into consecutive chunks of `max_len` (the last may be shorter), framed.
///
/// ```
/// use transformer::data::BOS;
/// use transformer::lm::frame;
/// let chunks = frame(&[10, 11, 12, 13, 14], 2);
/// assert_eq!(chunks.len(), 3);
/// assert_eq!((chunks[0].input.clone(), chunks[0].target.clone()), (vec![BOS, 10], vec![10, 11]));
/// assert_eq!((chunks[2].input.clone(), chunks[2].target.clone()), (vec![BOS], vec![14]));
/// ```
pub fn frame(ids: &[usize], max_len: usize) -> Vec<Chunk> {
    assert!(max_len > 0, "frame: max_len must be positive");
    ids.chunks(max_len).map(Chunk::new).collect()
}

/// Chunks as one padded batch: (inputs, targets, [batch, t]), both `(batch, t)` row-major with
/// `<pad>` after a shorter chunk, which the loss ignores and the causal mask keeps from
/// affecting earlier positions.
pub fn batch(chunks: &[Chunk]) -> (Vec<usize>, Vec<usize>, [usize; 2]) {
    let t = chunks.iter().map(|c| c.target.len()).max().unwrap_or(0);
    let pad = |v: &[usize]| v.iter().copied().chain(std::iter::repeat_n(PAD, t - v.len())).collect::<Vec<_>>();
    let inputs = chunks.iter().flat_map(|c| pad(&c.input)).collect();
    let targets = chunks.iter().flat_map(|c| pad(&c.target)).collect();
    (inputs, targets, [chunks.len(), t])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_is_predicted_once() {
        let ids: Vec<usize> = (4..21).collect();
        let chunks = frame(&ids, 5);
        let predicted: Vec<usize> = chunks.iter().flat_map(|c| c.target.clone()).collect();
        assert_eq!(predicted, ids);
        let (inputs, targets, [b, t]) = batch(&chunks);
        assert_eq!([b, t], [4, 5]);
        assert_eq!(&inputs[15..], &[BOS, 19, PAD, PAD, PAD]);
        assert_eq!(&targets[15..], &[19, 20, PAD, PAD, PAD]);
    }

    #[test]
    fn the_builtin_corpus_is_this_repository() {
        assert!(BUILTIN_CORPUS.len() > 100_000, "{} bytes", BUILTIN_CORPUS.len());
        assert!(BUILTIN_CORPUS.contains("pub struct CharLM"));
    }
}
