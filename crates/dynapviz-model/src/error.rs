//! Errors of the model pipeline. Each names the file or the layer, the limit or the expectation,
//! and the value found, so that a user can fix the network without reading our code.

use std::path::PathBuf;

/// Why a model could not be imported, converted or mapped.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said (in the message, not as a `source`: error chains would repeat it).
        error: std::io::Error,
    },
    /// A model file is malformed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// The network uses something the chip (or the converter) cannot express.
    #[error("{layer}: {message}")]
    Unsupported {
        /// Which layer (module index or ONNX node).
        layer: String,
        /// What, and what would work instead.
        message: String,
    },
    /// The network breaks one or more limits of the chip.
    #[error("the network does not fit the {device}:\n{}", .violations.join("\n"))]
    Constraints {
        /// The chip profile.
        device: String,
        /// One line per violation: layer, limit, value.
        violations: Vec<String>,
    },
    /// No assignment of layers to cores exists.
    #[error("no layer-to-core mapping exists on the {device}:\n{explanation}")]
    Mapping {
        /// The chip profile.
        device: String,
        /// Which layers compete for which cores, and why the other cores are too small.
        explanation: String,
    },
    /// An option is invalid.
    #[error("{0}")]
    Invalid(String),
    /// What is wrong with the network a model file holds (a layer the chip cannot run, its
    /// limits, the mapping), with the file: a user converting several models sees which.
    #[error("{path}: {error}")]
    Network {
        /// The model file.
        path: PathBuf,
        /// What is wrong with its network.
        error: Box<ModelError>,
    },
}

/// Result alias of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

pub(crate) fn file_error(path: &std::path::Path, message: impl Into<String>) -> ModelError {
    ModelError::File { path: path.to_path_buf(), message: message.into() }
}
