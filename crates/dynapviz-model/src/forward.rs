//! The imported ANN's own float forward pass (PyTorch's eval-mode semantics), so the accuracy of
//! the network before conversion can be reported beside the chip's: the gap between the two is
//! what conversion, discretization and the chip's neurons cost.

use crate::{Ann, AnnLayer, ModelError, Result, Tensor};

/// Runs `ann` on one input of shape `[c, h, w]` and returns the flattened output.
pub fn forward(ann: &Ann, input: &Tensor) -> Result<Vec<f32>> {
    let mut shape = input.shape.clone();
    let mut x = input.data.clone();
    for layer in &ann.layers {
        let bad = |message: String| ModelError::Unsupported { layer: layer.name.clone(), message };
        match &layer.layer {
            AnnLayer::Conv { weight, bias, stride, padding } => {
                let [c, h, w] = shape[..] else { return Err(bad(format!("a convolution needs a C,H,W input, got {shape:?}"))) };
                let [o, wc, kh, kw] = weight.shape[..] else { return Err(bad("the kernel is not 4-D".into())) };
                if wc != c {
                    return Err(bad(format!("the kernel expects {wc} input channels, the input has {c}")));
                }
                let oh = (h + 2 * padding[0])
                    .checked_sub(kh)
                    .map(|v| v / stride[0] + 1)
                    .ok_or_else(|| bad("kernel taller than input".into()))?;
                let ow =
                    (w + 2 * padding[1]).checked_sub(kw).map(|v| v / stride[1] + 1).ok_or_else(|| bad("kernel wider than input".into()))?;
                let mut out = vec![0f32; o * oh * ow];
                for (oc, plane) in out.chunks_mut(oh * ow).enumerate() {
                    let b = bias.as_ref().and_then(|b| b.get(oc)).copied().unwrap_or(0.0);
                    plane.fill(b);
                    for ic in 0..c {
                        let src = &x[ic * h * w..(ic + 1) * h * w];
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let wv = weight.data[((oc * c + ic) * kh + ky) * kw + kx];
                                if wv == 0.0 {
                                    continue;
                                }
                                // Output columns whose input column lies inside the image.
                                let ox0 = padding[1].saturating_sub(kx).div_ceil(stride[1]);
                                let ox1 = (w + padding[1]).checked_sub(kx + 1).map_or(0, |v| (v / stride[1] + 1).min(ow));
                                for oy in 0..oh {
                                    let Some(iy) = (oy * stride[0] + ky).checked_sub(padding[0]).filter(|&v| v < h) else { continue };
                                    let row = &src[iy * w..(iy + 1) * w];
                                    let dst = &mut plane[oy * ow..(oy + 1) * ow];
                                    for ox in ox0..ox1 {
                                        dst[ox] += wv * row[ox * stride[1] + kx - padding[1]];
                                    }
                                }
                            }
                        }
                    }
                }
                x = out;
                shape = vec![o, oh, ow];
            }
            AnnLayer::Linear { weight, bias } => {
                let [o, i] = weight.shape[..] else { return Err(bad("the weight is not 2-D".into())) };
                if x.len() != i {
                    return Err(bad(format!("expects {i} inputs, got {} (shape {shape:?})", x.len())));
                }
                x = weight
                    .data
                    .chunks(i)
                    .enumerate()
                    .map(|(k, row)| row.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>() + bias.as_ref().map_or(0.0, |b| b[k]))
                    .collect();
                shape = vec![o];
            }
            AnnLayer::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            AnnLayer::AvgPool { kernel, stride } | AnnLayer::SumPool { kernel, stride } => {
                let [c, h, w] = shape[..] else { return Err(bad(format!("pooling needs a C,H,W input, got {shape:?}"))) };
                let scale = if matches!(layer.layer, AnnLayer::AvgPool { .. }) { 1.0 / (kernel[0] * kernel[1]) as f32 } else { 1.0 };
                let (oh, ow) = ((h.saturating_sub(kernel[0])) / stride[0] + 1, (w.saturating_sub(kernel[1])) / stride[1] + 1);
                let mut out = vec![0f32; c * oh * ow];
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut s = 0.0;
                            for ky in 0..kernel[0] {
                                for kx in 0..kernel[1] {
                                    s += x[(ch * h + oy * stride[0] + ky) * w + ox * stride[1] + kx];
                                }
                            }
                            out[(ch * oh + oy) * ow + ox] = s * scale;
                        }
                    }
                }
                x = out;
                shape = vec![c, oh, ow];
            }
            AnnLayer::BatchNorm { scale, shift } => {
                let c = shape.first().copied().unwrap_or(0);
                if scale.len() != c {
                    return Err(bad(format!("{} channels of batch norm for {c} channels", scale.len())));
                }
                let per = x.len() / c.max(1);
                for (k, v) in x.iter_mut().enumerate() {
                    let ch = k / per.max(1);
                    *v = *v * scale[ch] + shift[ch];
                }
            }
            AnnLayer::Flatten => shape = vec![x.len()],
            AnnLayer::Dropout | AnnLayer::Identity => {}
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_network_gives_the_hand_computed_output() {
        let mut ann = Ann::default();
        // One 2x2 kernel of ones over a 1x3x3 input, stride 1, padding 1 -> 4x4.
        ann.push(
            "conv",
            AnnLayer::Conv { weight: Tensor::new(vec![1, 1, 2, 2], vec![1.0; 4]).unwrap(), bias: None, stride: [1, 1], padding: [1, 1] },
        );
        ann.push("relu", AnnLayer::Relu);
        ann.push("pool", AnnLayer::AvgPool { kernel: [2, 2], stride: [2, 2] });
        ann.push("flat", AnnLayer::Flatten);
        ann.push(
            "fc",
            AnnLayer::Linear {
                weight: Tensor::new(vec![2, 4], vec![1.0, 0.0, 0.0, 0.0, -1.0, 1.0, 1.0, 1.0]).unwrap(),
                bias: Some(vec![0.0, 0.5]),
            },
        );
        let input = Tensor::new(vec![1, 3, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]).unwrap();
        let out = forward(&ann, &input).unwrap();
        // Conv output (4x4): [[1,3,5,3],[5,12,16,9],[11,24,28,15],[7,15,17,9]]; avg pools: 21/4, 33/4, 57/4, 69/4.
        assert_eq!(out, vec![21.0 / 4.0, -21.0 / 4.0 + 33.0 / 4.0 + 57.0 / 4.0 + 69.0 / 4.0 + 0.5]);
    }

    #[test]
    fn shape_mismatches_are_errors_naming_the_layer() {
        let mut ann = Ann::default();
        ann.push("7", AnnLayer::Linear { weight: Tensor::new(vec![1, 5], vec![0.0; 5]).unwrap(), bias: None });
        let err = forward(&ann, &Tensor::new(vec![1, 2, 2], vec![0.0; 4]).unwrap()).unwrap_err().to_string();
        assert!(err.starts_with("7:") && err.contains("expects 5 inputs"), "{err}");
    }
}
