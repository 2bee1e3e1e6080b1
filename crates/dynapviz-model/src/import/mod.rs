//! Importers: each turns a file into the common [`crate::Ann`].

pub mod arch;
#[cfg(feature = "nir")]
pub mod nir;
pub mod onnx;
pub mod safetensors;
pub mod torch;

use std::path::Path;

use crate::ann::{Ann, AnnLayer, BatchNorm};
use crate::error::{ModelError, Result, file_error};

/// The most elements an imported array may have: 2^26 (256 MiB as f32), a Linear layer of
/// 4096 x 16384, far past what a chip core holds (its kernel memory has 32 Ki entries). A file
/// that declares more is corrupt or not a chip network; it is refused before anything is read,
/// where reading would take gigabytes (a few hundred bytes of HDF5 can declare 300 M values
/// filled in from one).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 26;

/// The number of elements of `shape`, if it is within [`MAX_TENSOR_ELEMENTS`].
pub(crate) fn elements(shape: impl IntoIterator<Item = u64>) -> Option<usize> {
    // A dimension past usize (on a 32-bit machine) overflows the product unless another is 0.
    crate::tensor::len_of(shape.into_iter().map(|d| usize::try_from(d).unwrap_or(usize::MAX))).filter(|&n| n <= MAX_TENSOR_ELEMENTS)
}

/// An eval-mode batch norm from its parameters; every array has one value per channel.
pub(crate) fn batch_norm(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f32) -> AnnLayer {
    AnnLayer::BatchNorm(BatchNorm {
        gamma: gamma.to_vec(),
        beta: beta.to_vec(),
        running_mean: mean.to_vec(),
        running_var: var.to_vec(),
        eps,
    })
}

/// What an input file holds, chosen by extension.
fn kind(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("onnx") => "onnx",
        Some("nir") => "nir",
        Some("safetensors") => "safetensors",
        _ => "torch",
    }
}

/// Loads a model: an ONNX or NIR file on its own, or a state_dict (`.pt`/`.pth`/`.safetensors`)
/// with its architecture file. Returns the ANN and the input shape the file names (a NIR
/// graph's `Input` node, an architecture's `input_shape`).
pub fn load(model: &Path, arch: Option<&Path>) -> Result<(Ann, Option<[usize; 3]>)> {
    match (kind(model), arch) {
        ("onnx", _) => Ok((onnx::load(model)?, None)),
        #[cfg(feature = "nir")]
        ("nir", _) => nir::load(model).map(|(ann, shape)| (ann, Some(shape))),
        #[cfg(not(feature = "nir"))]
        ("nir", _) => Err(file_error(model, "this build reads no NIR files: build dynapviz-model with the `nir` feature")),
        (k, Some(arch_path)) => {
            let arch = arch::Arch::load(arch_path)?;
            let state = if k == "safetensors" { safetensors::load(model)? } else { torch::load_state_dict(model)? };
            Ok((arch.build(arch_path, model, state)?, arch.input_shape))
        }
        (_, None) => Err(file_error(model, "a state_dict holds weights only: pass --arch ARCH.toml describing the layers")),
    }
}

/// Checks that every weight is finite: a NaN or infinity would poison the discretization scale.
pub fn check_finite(ann: &Ann) -> Result<()> {
    for l in &ann.layers {
        let values: [&[f32]; 4] = match &l.layer {
            AnnLayer::Conv { weight, bias, .. } | AnnLayer::Linear { weight, bias } => {
                [&weight.data, bias.as_deref().unwrap_or_default(), &[], &[]]
            }
            AnnLayer::BatchNorm(bn) => bn.arrays(),
            _ => continue,
        };
        // A fold without an early exit, which vectorizes; the culprit is looked for only then.
        if !values.iter().all(|s| s.iter().fold(true, |finite, v| finite & v.is_finite()))
            && let Some(v) = values.iter().flat_map(|s| s.iter()).find(|v| !v.is_finite())
        {
            return Err(ModelError::Unsupported {
                layer: format!("layer {} ({})", l.name, l.layer.kind()),
                message: format!("weight value {v} is not finite"),
            });
        }
    }
    Ok(())
}
