//! The imported ANN's own float forward pass (PyTorch's eval-mode semantics), so the accuracy of
//! the network before conversion can be reported beside the chip's: the gap between the two is
//! what conversion, discretization and the chip's neurons cost.

use crate::{Ann, AnnLayer, ModelError, Result, Source, Tensor};

/// A layer's output, with its shape.
type Value = (Vec<f32>, Vec<usize>);

/// Runs `ann` on one input of shape `[c, h, w]` and returns the flattened output (of its last
/// layer).
pub fn forward(ann: &Ann, input: &Tensor) -> Result<Vec<f32>> {
    // Outputs still to be read, and by how many layers: the last reader takes it.
    let mut readers = vec![0usize; ann.layers.len()];
    for s in ann.layers.iter().flat_map(|l| &l.inputs) {
        if let Source::Layer(i) = *s
            && let Some(r) = readers.get_mut(i)
        {
            *r += 1;
        }
    }
    let mut values: Vec<Option<Value>> = vec![None; ann.layers.len()];
    let mut last = None;
    for (index, layer) in ann.layers.iter().enumerate() {
        let bad = |message: String| ModelError::Unsupported { layer: layer.name.clone(), message };
        let mut take = |s: Source| -> Result<Value> {
            match s {
                Source::Input => Ok((input.data.clone(), input.shape.clone())),
                Source::Layer(i) if i < index => {
                    readers[i] = readers[i].saturating_sub(1);
                    let v = if readers[i] == 0 { values[i].take() } else { values[i].clone() };
                    v.ok_or_else(|| bad(format!("the output of layer #{i} is not there")))
                }
                Source::Layer(i) => Err(bad(format!("takes the output of layer #{i}, which does not come before it"))),
            }
        };
        let (mut x, mut shape) = match layer.inputs[..] {
            [s] => take(s)?,
            [a, b] if matches!(layer.layer, AnnLayer::Merge) => {
                let (a, b) = (take(a)?, take(b)?);
                values[index] = Some(merge(a, b).map_err(bad)?);
                last = Some(index);
                continue;
            }
            _ => return Err(bad(format!("{} inputs", layer.inputs.len()))),
        };
        match &layer.layer {
            AnnLayer::Conv { weight, bias, stride, padding } => {
                let [c, h, w] = shape[..] else { return Err(bad(format!("a convolution needs a C,H,W input, got {shape:?}"))) };
                let [o, wc, kh, kw] = weight.shape[..] else { return Err(bad("the kernel is not 4-D".into())) };
                if wc != c {
                    return Err(bad(format!("the kernel expects {wc} input channels, the input has {c}")));
                }
                if stride.contains(&0) {
                    return Err(bad("stride 0".into()));
                }
                let oh = (h + 2 * padding[0])
                    .checked_sub(kh)
                    .map(|v| v / stride[0] + 1)
                    .ok_or_else(|| bad("kernel taller than input".into()))?;
                let ow =
                    (w + 2 * padding[1]).checked_sub(kw).map(|v| v / stride[1] + 1).ok_or_else(|| bad("kernel wider than input".into()))?;
                let conv = Conv { c, h, w, o, kh, kw, stride: *stride, padding: *padding, oh, ow };
                let bias = bias.as_deref();
                // Event-count frames and early ReLU outputs are mostly zero: scatter the non-zero
                // inputs like the chip does; dense maps go through contiguous, vectorized rows.
                let nonzero = x.iter().filter(|&&v| v != 0.0).count();
                let out = if nonzero * 5 < x.len() { conv.sparse(&x, &weight.data, bias) } else { conv.dense(&x, &weight.data, bias) };
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
                    .map(|(k, row)| {
                        row.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>() + bias.as_ref().and_then(|b| b.get(k)).copied().unwrap_or(0.0)
                    })
                    .collect();
                shape = vec![o];
            }
            AnnLayer::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            // An IAF's rate for a constant input: its ReLU over the threshold.
            AnnLayer::Iaf { threshold, .. } => x.iter_mut().for_each(|v| *v = v.max(0.0) / threshold),
            AnnLayer::AvgPool { kernel, stride } | AnnLayer::SumPool { kernel, stride } => {
                let [c, h, w] = shape[..] else { return Err(bad(format!("pooling needs a C,H,W input, got {shape:?}"))) };
                if stride.contains(&0) || kernel.contains(&0) || kernel[0] > h || kernel[1] > w {
                    return Err(bad(format!("pooling kernel {kernel:?} / stride {stride:?} do not fit the input {h}x{w}")));
                }
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
            AnnLayer::BatchNorm(bn) => {
                let (scale, shift) = bn.eval_affine();
                let c = shape.first().copied().unwrap_or(0);
                if scale.len() != c || shift.len() != c {
                    return Err(bad(format!("{} channels of batch norm for {c} channels", scale.len())));
                }
                let per = x.len() / c.max(1);
                for (k, v) in x.iter_mut().enumerate() {
                    let ch = k / per.max(1);
                    *v = crate::BatchNorm::apply(*v, scale[ch], shift[ch]);
                }
            }
            AnnLayer::Flatten => shape = vec![x.len()],
            AnnLayer::Dropout | AnnLayer::Identity => {}
            AnnLayer::PadEnd { pads } => {
                let [c, h, w] = shape[..] else { return Err(bad(format!("padding needs a C,H,W input, got {shape:?}"))) };
                let to = [c + pads[0], h + pads[1], w + pads[2]];
                (x, shape) = (pad_to(&x, [c, h, w], to), to.to_vec());
            }
            AnnLayer::Merge => return Err(bad("a merge takes two inputs".into())),
        }
        values[index] = Some((x, shape));
        last = Some(index);
    }
    Ok(last.and_then(|i| values[i].take()).map_or_else(|| input.data.clone(), |(x, _)| x))
}

/// sinabs' `Merge`: the sum of two outputs, the smaller padded with zeros at the end of each
/// dimension.
fn merge((a, sa): Value, (b, sb): Value) -> std::result::Result<Value, String> {
    if sa == sb {
        return Ok((a.iter().zip(&b).map(|(x, y)| x + y).collect(), sa));
    }
    let (&[ca, ha, wa], &[cb, hb, wb]) = (&sa[..], &sb[..]) else {
        return Err(format!("merges outputs of shapes {sa:?} and {sb:?}: different shapes need C,H,W"));
    };
    let to = [ca.max(cb), ha.max(hb), wa.max(wb)];
    let mut sum = pad_to(&a, [ca, ha, wa], to);
    sum.iter_mut().zip(pad_to(&b, [cb, hb, wb], to)).for_each(|(s, v)| *s += v);
    Ok((sum, to.to_vec()))
}

/// `x` of shape `from` (C, H, W) with zeros appended up to shape `to`.
pub(crate) fn pad_to(x: &[f32], from: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = from;
    let mut out = vec![0f32; to.iter().product()];
    for ch in 0..c {
        for y in 0..h {
            let src = (ch * h + y) * w;
            let dst = (ch * to[1] + y) * to[2];
            out[dst..dst + w].copy_from_slice(&x[src..src + w]);
        }
    }
    out
}

/// One convolution's geometry.
pub(crate) struct Conv {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub oh: usize,
    pub ow: usize,
}

impl Conv {
    /// Output rows by kernel offset, skipping all-zero input rows. `[o][oh][ow]`.
    pub(crate) fn dense(&self, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let Conv { c, h, w, o, kh, kw, stride, padding, oh, ow } = *self;
        let busy_rows: Vec<bool> = x.chunks(w.max(1)).map(|r| r.iter().any(|&v| v != 0.0)).collect();
        let mut out = vec![0f32; o * oh * ow];
        for (oc, plane) in out.chunks_mut(oh * ow).enumerate() {
            plane.fill(bias.and_then(|b| b.get(oc)).copied().unwrap_or(0.0));
            for ic in 0..c {
                let src = &x[ic * h * w..(ic + 1) * h * w];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wv = weight[((oc * c + ic) * kh + ky) * kw + kx];
                        // Output columns whose input column lies inside the image.
                        let ox0 = padding[1].saturating_sub(kx).div_ceil(stride[1]);
                        let ox1 = (w + padding[1]).checked_sub(kx + 1).map_or(0, |v| (v / stride[1] + 1).min(ow));
                        if wv == 0.0 || ox0 >= ox1 {
                            continue;
                        }
                        for oy in 0..oh {
                            let Some(iy) = (oy * stride[0] + ky).checked_sub(padding[0]).filter(|&v| v < h) else { continue };
                            if !busy_rows[ic * h + iy] {
                                continue;
                            }
                            let row = &src[iy * w..(iy + 1) * w];
                            let dst = &mut plane[oy * ow + ox0..oy * ow + ox1];
                            let first = ox0 * stride[1] + kx - padding[1];
                            let n = dst.len();
                            if stride[1] == 1 {
                                // Contiguous on both sides: the compiler vectorizes this.
                                dst.iter_mut().zip(&row[first..first + n]).for_each(|(d, &v)| *d += wv * v);
                            } else {
                                dst.iter_mut().zip(row[first..].iter().step_by(stride[1])).for_each(|(d, &v)| *d += wv * v);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Every non-zero input adds its weights to the outputs it reaches, over the output
    /// channels at once (weights laid out `[ic][ky][kx][oc]`, outputs channel-last, transposed
    /// back at the end). `[o][oh][ow]`.
    fn sparse(&self, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let Conv { c, h, w, o, kh, kw, stride, padding, oh, ow } = *self;
        let mut wt = vec![0f32; weight.len()];
        for oc in 0..o {
            for k in 0..c * kh * kw {
                wt[k * o + oc] = weight[oc * c * kh * kw + k];
            }
        }
        let mut acc = vec![0f32; oh * ow * o];
        for ic in 0..c {
            for iy in 0..h {
                for ix in 0..w {
                    let v = x[(ic * h + iy) * w + ix];
                    if v == 0.0 {
                        continue;
                    }
                    for ky in 0..kh {
                        // oy * stride + ky = iy + padding.
                        let Some(ty) = (iy + padding[0]).checked_sub(ky).filter(|t| t % stride[0] == 0) else { continue };
                        let oy = ty / stride[0];
                        if oy >= oh {
                            continue;
                        }
                        for kx in 0..kw {
                            let Some(tx) = (ix + padding[1]).checked_sub(kx).filter(|t| t % stride[1] == 0) else { continue };
                            let ox = tx / stride[1];
                            if ox >= ow {
                                continue;
                            }
                            let ws = &wt[((ic * kh + ky) * kw + kx) * o..][..o];
                            let dst = &mut acc[(oy * ow + ox) * o..][..o];
                            dst.iter_mut().zip(ws).for_each(|(d, &wv)| *d += wv * v);
                        }
                    }
                }
            }
        }
        let mut out = vec![0f32; o * oh * ow];
        for (pos, chans) in acc.chunks(o.max(1)).enumerate() {
            for (oc, &v) in chans.iter().enumerate() {
                out[oc * oh * ow + pos] = v + bias.and_then(|b| b.get(oc)).copied().unwrap_or(0.0);
            }
        }
        out
    }
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
    fn a_merge_sums_two_outputs_padding_the_smaller_at_the_end() {
        // The input (1x2x2) and its 2x2 sum pooling (1x1x1), merged: the pooled value lands at
        // (0, 0), zeros elsewhere, as sinabs' Merge pads.
        let mut ann = Ann::default();
        ann.push("pool", AnnLayer::SumPool { kernel: [2, 2], stride: [2, 2] });
        ann.push_from("merge", AnnLayer::Merge, vec![Source::Input, Source::Layer(0)]);
        let input = Tensor::new(vec![1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(forward(&ann, &input).unwrap(), vec![11.0, 2.0, 3.0, 4.0]);
        // The same through an explicit padding first (torch's export of it).
        let mut padded = Ann::default();
        padded.push("pool", AnnLayer::SumPool { kernel: [2, 2], stride: [2, 2] });
        padded.push("pad", AnnLayer::PadEnd { pads: [0, 1, 1] });
        padded.push_from("merge", AnnLayer::Merge, vec![Source::Input, Source::Layer(1)]);
        assert_eq!(forward(&padded, &input).unwrap(), vec![11.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn shape_mismatches_are_errors_naming_the_layer() {
        let mut ann = Ann::default();
        ann.push("7", AnnLayer::Linear { weight: Tensor::new(vec![1, 5], vec![0.0; 5]).unwrap(), bias: None });
        let err = forward(&ann, &Tensor::new(vec![1, 2, 2], vec![0.0; 4]).unwrap()).unwrap_err().to_string();
        assert!(err.starts_with("7:") && err.contains("expects 5 inputs"), "{err}");
    }

    #[test]
    fn strided_and_padded_convolutions_match_a_direct_sum() {
        // 2 channels of 5x6 with zeros (skipped rows), kernels 3x2, stride (2, 3), padding (1, 2).
        let (c, h, w, o, kh, kw, s, p) = (2usize, 5usize, 6usize, 3usize, 3usize, 2usize, [2usize, 3usize], [1usize, 2usize]);
        let input: Vec<f32> = (0..c * h * w).map(|i| if (i / w) % 2 == 1 { 0.0 } else { (i % 7) as f32 - 2.0 }).collect();
        let weight: Vec<f32> = (0..o * c * kh * kw).map(|i| ((i * 5) % 11) as f32 * 0.25 - 1.0).collect();
        let mut ann = Ann::default();
        ann.push(
            "c",
            AnnLayer::Conv {
                weight: Tensor::new(vec![o, c, kh, kw], weight.clone()).unwrap(),
                bias: Some(vec![0.5, 0.0, -0.5]),
                stride: s,
                padding: p,
            },
        );
        let got = forward(&ann, &Tensor::new(vec![c, h, w], input.clone()).unwrap()).unwrap();
        let (oh, ow) = ((h + 2 * p[0] - kh) / s[0] + 1, (w + 2 * p[1] - kw) / s[1] + 1);
        let conv = Conv { c, h, w, o, kh, kw, stride: s, padding: p, oh, ow };
        let bias = [0.5, 0.0, -0.5];
        let sparse = conv.sparse(&input, &weight, Some(&bias));
        let mut want = Vec::new();
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = [0.5, 0.0, -0.5][oc];
                    for ic in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let (iy, ix) = ((oy * s[0] + ky) as i64 - p[0] as i64, (ox * s[1] + kx) as i64 - p[1] as i64);
                                if (0..h as i64).contains(&iy) && (0..w as i64).contains(&ix) {
                                    acc += weight[((oc * c + ic) * kh + ky) * kw + kx] * input[(ic * h + iy as usize) * w + ix as usize];
                                }
                            }
                        }
                    }
                    want.push(acc);
                }
            }
        }
        assert_eq!(conv.dense(&input, &weight, Some(&bias)), want);
        assert_eq!(got, want);
        // The scatter sums in another order: equal up to rounding.
        assert!(sparse.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0)), "{sparse:?} vs {want:?}");
    }

    #[test]
    fn zero_strides_and_oversized_pools_are_errors_not_panics() {
        let mut ann = Ann::default();
        ann.push("3", AnnLayer::AvgPool { kernel: [4, 4], stride: [4, 4] });
        let err = forward(&ann, &Tensor::new(vec![1, 2, 2], vec![0.0; 4]).unwrap()).unwrap_err().to_string();
        assert!(err.starts_with("3:"), "{err}");
        let mut ann = Ann::default();
        ann.push(
            "0",
            AnnLayer::Conv { weight: Tensor::new(vec![1, 1, 1, 1], vec![1.0]).unwrap(), bias: None, stride: [0, 1], padding: [0, 0] },
        );
        assert!(forward(&ann, &Tensor::new(vec![1, 2, 2], vec![0.0; 4]).unwrap()).is_err());
    }
}
