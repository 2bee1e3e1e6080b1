//! ANN -> spiking chip network, following sinabs' `from_model` + `DynapcnnNetwork`:
//! ReLU becomes IAF (threshold 1, min_v_mem -1, subtract reset), a spiking output layer is
//! appended when the network does not end in ReLU, Dropout/Identity vanish, Flatten is absorbed,
//! BatchNorm folds into the preceding weights, AvgPool becomes SumPool with 1/(kh*kw) moved into
//! the next layer's weights, Linear becomes a conv covering its whole input, and a leading pool
//! is absorbed into the DVS layer.

use crate::ann::{Ann, AnnLayer, NamedLayer};
use crate::error::{ModelError, Result};
use crate::network::{ChipLayer, Crop, DvsLayer, FloatParams, Network, Reset};

/// Options of the DVS input layer.
#[derive(Clone, Debug, Default)]
pub struct DvsOptions {
    /// Keep only this region (pooled coordinates).
    pub crop: Option<Crop>,
    /// Mirror left-right.
    pub flip_x: bool,
    /// Mirror top-bottom.
    pub flip_y: bool,
    /// Swap x and y.
    pub swap_xy: bool,
}

fn unsupported(l: &NamedLayer, message: impl Into<String>) -> ModelError {
    ModelError::Unsupported { layer: format!("layer {} ({})", l.name, l.layer.kind()), message: message.into() }
}

/// Folds each BatchNorm into the Conv/Linear before it, and drops no-op layers.
fn simplify(ann: &Ann) -> Result<Vec<NamedLayer>> {
    let mut out: Vec<NamedLayer> = Vec::new();
    for l in &ann.layers {
        match &l.layer {
            AnnLayer::Dropout | AnnLayer::Identity => {}
            AnnLayer::BatchNorm(bn) => {
                let Some(prev) = out.last_mut() else {
                    return Err(unsupported(l, "BatchNorm must follow a Conv2d or Linear"));
                };
                let prev_name = prev.name.clone();
                let (AnnLayer::Conv { weight, bias, .. } | AnnLayer::Linear { weight, bias }) = &mut prev.layer else {
                    return Err(unsupported(
                        l,
                        format!("BatchNorm must follow a Conv2d or Linear, not {} (layer {prev_name})", prev.layer.kind()),
                    ));
                };
                let out_ch = weight.shape[0];
                if let Some(n) = bn.arrays().iter().map(|a| a.len()).find(|&n| n != out_ch) {
                    return Err(unsupported(l, format!("BatchNorm has {n} features, layer {prev_name} has {out_ch} outputs")));
                }
                // sinabs' fold (no eps), not the ANN's eval map: its weights are the contract.
                let (factor, new_bias) = bn.sinabs_fold(bias.as_deref());
                let per = weight.len() / out_ch.max(1);
                for (o, chunk) in weight.data.chunks_mut(per.max(1)).enumerate() {
                    chunk.iter_mut().for_each(|w| *w *= factor[o]);
                }
                *bias = Some(new_bias);
                prev.name = format!("{prev_name}+{}", l.name);
            }
            _ => out.push(l.clone()),
        }
    }
    Ok(out)
}

/// Reads a run of pooling layers starting at `i`: returns (kernel product, area of the AvgPools
/// among them, next index).
fn pools(layers: &[NamedLayer], mut i: usize) -> Result<([usize; 2], usize, usize)> {
    let mut kernel = [1, 1];
    let mut avg_area = 1;
    while let Some(l) = layers.get(i) {
        match &l.layer {
            AnnLayer::AvgPool { kernel: k, stride } | AnnLayer::SumPool { kernel: k, stride } => {
                if k != stride {
                    return Err(unsupported(
                        l,
                        format!("pooling stride {stride:?} differs from its kernel {k:?}: the chip pools with stride = kernel"),
                    ));
                }
                if k[0] == 0 || k[1] == 0 {
                    return Err(unsupported(l, "pooling kernel of size 0"));
                }
                kernel = [kernel[0] * k[0], kernel[1] * k[1]];
                if matches!(l.layer, AnnLayer::AvgPool { .. }) {
                    avg_area *= k[0] * k[1];
                }
            }
            AnnLayer::Flatten => {}
            _ => break,
        }
        i += 1;
    }
    Ok((kernel, avg_area, i))
}

/// Converts an ANN to a (float) chip network for an input of `input_shape` (C, H, W).
pub fn convert(ann: &Ann, input_shape: [usize; 3], dvs_options: &DvsOptions) -> Result<Network> {
    crate::import::check_finite(ann)?;
    let layers = simplify(ann)?;
    let [c, h, w] = input_shape;
    if !(1..=2).contains(&c) || h == 0 || w == 0 {
        return Err(ModelError::Invalid(format!(
            "input shape {input_shape:?}: expected (C, H, W) with C = 2 polarities or 1 (merged) and H, W > 0"
        )));
    }
    let (dvs_pool, mut rescale, mut i) = pools(&layers, 0)?;
    let pooled = [h / dvs_pool[0], w / dvs_pool[1]];
    if pooled[0] == 0 || pooled[1] == 0 {
        return Err(ModelError::Invalid(format!("input {h}x{w} is smaller than the DVS pooling {dvs_pool:?}")));
    }
    let mut spatial = pooled;
    if let Some(crop) = dvs_options.crop {
        if crop.y0 >= crop.y1 || crop.x0 >= crop.x1 || crop.y1 > pooled[0] || crop.x1 > pooled[1] {
            return Err(ModelError::Invalid(format!(
                "crop rows {}..{}, columns {}..{} does not lie inside the pooled input {}x{}",
                crop.y0, crop.y1, crop.x0, crop.x1, pooled[0], pooled[1]
            )));
        }
        spatial = [crop.y1 - crop.y0, crop.x1 - crop.x0];
    }
    if dvs_options.swap_xy {
        spatial = [spatial[1], spatial[0]];
    }
    let dvs = DvsLayer {
        input_shape,
        merge_polarities: c == 1,
        pool: dvs_pool,
        crop: dvs_options.crop,
        flip_x: dvs_options.flip_x,
        flip_y: dvs_options.flip_y,
        swap_xy: dvs_options.swap_xy,
        output_shape: [c, spatial[0], spatial[1]],
    };
    let mut shape = dvs.output_shape;
    let mut chip: Vec<ChipLayer> = Vec::new();
    let weight_layers = layers.iter().filter(|l| matches!(l.layer, AnnLayer::Conv { .. } | AnnLayer::Linear { .. })).count();
    while i < layers.len() {
        let l = &layers[i];
        let (weights, bias, kernel, stride, padding) = match &l.layer {
            AnnLayer::Conv { weight, bias, stride, padding } => {
                let [_, ci, kh, kw] = weight.shape[..] else {
                    return Err(unsupported(l, "weight is not 4-D"));
                };
                if ci != shape[0] {
                    return Err(unsupported(l, format!("expects {ci} input channels, receives {} (input shape {shape:?})", shape[0])));
                }
                if kh == 0 || kw == 0 || stride[0] == 0 || stride[1] == 0 {
                    return Err(unsupported(l, "kernel and stride must be at least 1"));
                }
                (weight.data.clone(), bias.clone(), [kh, kw], *stride, *padding)
            }
            AnnLayer::Linear { weight, bias } => {
                let [_, fin] = weight.shape[..] else {
                    return Err(unsupported(l, "weight is not 2-D"));
                };
                let flat = shape.iter().product::<usize>();
                if fin != flat {
                    return Err(unsupported(l, format!("expects {fin} input features, receives {flat} ({shape:?} flattened)")));
                }
                // Flatten order is (C, H, W), so the [out][in] weight is already [out][C][H][W].
                (weight.data.clone(), bias.clone(), [shape[1], shape[2]], [1, 1], [0, 0])
            }
            AnnLayer::Relu => {
                return Err(unsupported(l, "ReLU must follow a Conv2d or Linear layer"));
            }
            AnnLayer::AvgPool { .. } | AnnLayer::SumPool { .. } => {
                return Err(unsupported(l, "pooling must follow a ReLU (spiking) layer"));
            }
            AnnLayer::Flatten => {
                i += 1;
                continue;
            }
            AnnLayer::BatchNorm { .. } | AnnLayer::Dropout | AnnLayer::Identity => {
                unreachable!("removed by simplify")
            }
        };
        let out_channels = weights.len() / (shape[0] * kernel[0] * kernel[1]).max(1);
        let mut source = vec![l.name.clone()];
        let conv_out = [0, 1].map(|d| (shape[d + 1] + 2 * padding[d]).checked_sub(kernel[d]).map(|v| v / stride[d] + 1));
        let [Some(fh), Some(fw)] = conv_out else {
            return Err(unsupported(
                l,
                format!("kernel {kernel:?} is larger than the padded input {}x{}", shape[1] + 2 * padding[0], shape[2] + 2 * padding[1]),
            ));
        };
        i += 1;
        let is_last = chip.len() + 1 == weight_layers;
        while matches!(layers.get(i).map(|l| &l.layer), Some(AnnLayer::Flatten)) {
            i += 1;
        }
        match layers.get(i).map(|l| &l.layer) {
            Some(AnnLayer::Relu) => {
                source.push(layers[i].name.clone());
                i += 1;
            }
            _ if is_last => {} // the spiking output layer sinabs appends
            _ => {
                return Err(unsupported(
                    l,
                    "is not followed by a ReLU: every Conv2d/Linear but the last must feed a ReLU (the chip's spiking layer)",
                ));
            }
        }
        let (pool, avg_area, next) = pools(&layers, i)?;
        source.extend(layers[i..next].iter().filter(|l| !matches!(l.layer, AnnLayer::Flatten)).map(|l| l.name.clone()));
        i = next;
        if fh < pool[0] || fw < pool[1] {
            return Err(unsupported(l, format!("pooling {pool:?} is larger than its input {fh}x{fw}")));
        }
        let mut weights = weights;
        if rescale != 1 {
            // sinabs divides (not multiplies) the weights by the pooled area, in f32.
            let r = rescale as f32;
            weights.iter_mut().for_each(|w| *w /= r);
        }
        rescale = avg_area;
        let index = chip.len() + 1;
        if let Some(prev) = chip.last_mut() {
            prev.destinations = vec![index];
        }
        let out_shape = [out_channels, fh / pool[0], fw / pool[1]];
        chip.push(ChipLayer {
            index,
            core: None,
            in_shape: shape,
            out_channels,
            kernel,
            stride,
            padding,
            pool,
            conv_out: [fh, fw],
            out_shape,
            reset: Reset::Subtract,
            float: FloatParams { weights, bias, threshold: 1.0, min_v_mem: -1.0 },
            quant: None,
            destinations: Vec::new(),
            source,
        });
        shape = out_shape;
    }
    if chip.is_empty() {
        return Err(ModelError::Invalid("the network has no Conv2d or Linear layer".into()));
    }
    Ok(Network { dvs, layers: chip, device: None })
}
