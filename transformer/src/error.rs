//! `Error`: what goes wrong with things from outside the program — files, configs, data,
//! checkpoints, command-line flags — said in one line that names the file, line, field or flag.

use std::fmt;
use std::path::Path;

/// A one-line, user-facing error: `dates.tsv:12: expected source<TAB>target, found no tab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    kind: Kind,
}

/// What kind of failure, which decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The input was wrong: a file, a field, a flag.
    Input,
    /// The run started from good input and failed on the way (training diverged).
    RunFailed,
    /// The run was stopped on request (Ctrl-C, SIGTERM) after saving what it had.
    Interrupted,
}

impl Error {
    /// An error with a complete message.
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), kind: Kind::Input }
    }

    /// A run that started from good input and failed on the way (training diverged); the
    /// message may span a few lines.
    pub fn run_failed(message: impl Into<String>) -> Self {
        Error { message: message.into(), kind: Kind::RunFailed }
    }

    /// A run stopped on request (Ctrl-C, SIGTERM, or [`crate::train::TrainOptions::stop_after`])
    /// once its checkpoint was saved; the message says how to continue it.
    pub fn interrupted(message: impl Into<String>) -> Self {
        Error { message: message.into(), kind: Kind::Interrupted }
    }

    /// True for [`Error::interrupted`]: the run can be resumed.
    pub fn is_interrupted(&self) -> bool {
        self.kind == Kind::Interrupted
    }

    /// The program's exit status for this error: 2 for bad input (a file, a field, a flag), 1
    /// for a run that failed, 130 for a run stopped on request (as shells report Ctrl-C).
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Input => 2,
            Kind::RunFailed => 1,
            Kind::Interrupted => 130,
        }
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
