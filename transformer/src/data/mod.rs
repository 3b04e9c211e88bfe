//! Data: the character vocabulary, TSV data files, padded and length-bucketed batches, and the
//! built-in tasks.

pub mod batch;
pub mod source;
pub mod tasks;
pub mod tsv;
pub mod vocab;

pub(crate) use batch::BatcherPosition;
pub use batch::{Batch, Batcher, encode_source, encode_target};
pub use source::{DataSource, TrainData};
pub use tasks::Task;
pub use tsv::{Example, parse_tsv, read_tsv, write_tsv};
pub use vocab::{BOS, EOS, PAD, SPECIALS, UNK, Vocab};
