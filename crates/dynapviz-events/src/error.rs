//! Errors of reading and writing event files: every one names the file, the byte offset and
//! what was expected there, so a user can find the problem with a hex editor.

use std::path::PathBuf;

/// Why an event file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused an operation on the file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said (in the message, not as a `source`: error chains would repeat it).
        error: std::io::Error,
    },
    /// The bytes at `offset` are not what the format requires.
    #[error("{path}: at byte {offset}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Byte offset of the offending data from the start of the file.
        offset: u64,
        /// What was found and what was expected instead.
        message: String,
    },
    /// Neither the content nor the extension identifies a known format.
    #[error("{path}: unknown event file format: {reason}")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// What was looked at.
        reason: String,
    },
    /// The format cannot store what it was asked to write.
    #[error("{path}: cannot write {format}: {message}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The output format.
        format: &'static str,
        /// What does not fit.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
