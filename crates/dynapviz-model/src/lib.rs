//! The model pipeline: import -> convert -> discretize -> validate -> map.
//!
//! The equivalent of sinabs' `from_model` + `DynapcnnNetwork(dvs_input=True, discretize=True)`
//! + `.to(device, chip_layers_ordering="auto")`, without Python, reproducing its numbers exactly.
//!
//! ```no_run
//! use dynapviz_model::{Pipeline, Ordering};
//! let net = Pipeline::new("model.onnx".as_ref())
//!     .input_shape([2, 128, 128])
//!     .device("speck2e")
//!     .build()?;
//! # Ok::<(), dynapviz_model::ModelError>(())
//! ```

pub mod ann;
pub mod chip;
pub mod convert;
pub mod discretize;
mod error;
pub mod forward;
pub mod import;
pub mod mapping;
pub mod network;
mod pipeline;
pub mod report;
mod tensor;
pub mod zero_step;

pub use ann::{Ann, AnnLayer, BatchNorm, Source};
pub use chip::{ChipProfile, MemoryUse};
pub use convert::DvsOptions;
pub use error::{ModelError, Result};
pub use network::{ChipLayer, Network};
pub use pipeline::{Neurons, Ordering, Pipeline};
pub use tensor::Tensor;
