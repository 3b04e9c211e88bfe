//! `Error`: what goes wrong with things from outside the program — files, configs, data,
//! checkpoints, command-line flags — said in one line that names the file, line, field or flag.

use std::fmt;
use std::path::Path;

/// A one-line, user-facing error: `dates.tsv:12: expected source<TAB>target, found no tab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    /// The run itself failed (training diverged), rather than its input being wrong.
    run_failed: bool,
}

impl Error {
    /// An error with a complete message.
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), run_failed: false }
    }

    /// A run that started from good input and failed on the way (training diverged); the
    /// message may span a few lines.
    pub fn run_failed(message: impl Into<String>) -> Self {
        Error { message: message.into(), run_failed: true }
    }

    /// The program's exit status for this error: 2 for bad input (a file, a field, a flag), 1
    /// for a run that failed.
    pub fn exit_code(&self) -> u8 {
        if self.run_failed { 1 } else { 2 }
    }

    /// An error about a whole file: `path: message`.
    pub fn file(path: &Path, message: impl fmt::Display) -> Self {
        Error::new(format!("{}: {message}", path.display()))
    }

    /// An error about one line of a file (1-based): `path:line: message`.
    pub fn line(path: &Path, line: usize, message: impl fmt::Display) -> Self {
        Error::new(format!("{}:{line}: {message}", path.display()))
    }

    /// An error about a command-line flag: `--flag: message`.
    pub fn flag(flag: &str, message: impl fmt::Display) -> Self {
        Error::new(format!("{flag}: {message}"))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<autograd::StoreError> for Error {
    fn from(e: autograd::StoreError) -> Self {
        Error::new(e.to_string())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
