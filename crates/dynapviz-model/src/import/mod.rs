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
