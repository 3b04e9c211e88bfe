//! Data: vocabulary, TSV files, batching, built-in tasks.
