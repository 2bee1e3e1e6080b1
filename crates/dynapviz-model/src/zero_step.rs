//! The potentials a network starts with. sinabs' `from_model(ann, input_shape=...)` infers the
//! layers' shapes by running one time step of zeros through the spiking network, and leaves the
//! neurons where that step put them: a layer with a bias (its own, or one folded in from batch
//! norm) starts charged by it. `DynapcnnNetwork` then discretizes those potentials with the
//! layer's weights, writes them to the chip as its neurons' initial values, and its own
//! simulation starts from them: on a biased network the first bins differ without them. This is
//! that step, on the float network.

use crate::forward::{Conv, pad_to};
use crate::network::{ChipLayer, Network, Reset};

/// Per layer, the float potentials `[c][y][x]` (over the conv output) after one time step of
/// zero input, or `None` where they are all zero (no bias reaches the layer).
pub fn potentials(net: &Network) -> Vec<Option<Vec<f32>>> {
    let n = net.layers.len();
    // Per layer: the spikes its inputs sent it in the step, summed, `[c][y][x]` of its input.
    let mut input: Vec<Option<Vec<f32>>> = vec![None; n];
    let mut out = Vec::with_capacity(n);
    for (i, layer) in net.layers.iter().enumerate() {
        let v = step(layer, input[i].take());
        for (k, &d) in layer.destinations.iter().enumerate() {
            let Some(spikes) = v.as_ref().and_then(|(_, spikes)| pooled(layer, spikes, layer.pool_to(k))) else { continue };
            // Destinations are later layers, 1-based; a bad one was refused when converting.
            let Some(to) = d.checked_sub(1).filter(|_| d > layer.index).and_then(|d| net.layers.get(d)) else { continue };
            let from = layer.shape_to(k);
            if (0..3).any(|i| from[i] > to.in_shape[i]) {
                continue;
            }
            // A merge of different shapes pads the smaller at the end of each dimension.
            let mut spikes = pad_to(&spikes, from, to.in_shape);
            // The ANN averages where the chip sums and divides in the weights (see `AnnForm`).
            if let Some(area) = to.float.ann_form.as_ref().map(|f| f.area_from(layer.index)).filter(|&a| a > 1) {
                spikes.iter_mut().for_each(|s| *s /= area as f32);
            }
            match &mut input[d - 1] {
                Some(sum) => sum.iter_mut().zip(&spikes).for_each(|(s, &x)| *s += x),
                none => *none = Some(spikes),
            }
        }
        out.push(v.map(|(v, _)| v).filter(|v| v.iter().any(|&x| x != 0.0)));
    }
    out
}

/// One IAF step of `layer` on `input` (none: zeros), in f32 as torch computes it: the potentials
/// after the step and the spikes it fired (`[c][y][x]` over the conv output); `None` when both
/// are all zero. A layer runs in its ANN form where it has one (see
/// [`crate::network::AnnForm`]); the weighted sums come before the bias, as torch adds it.
fn step(layer: &ChipLayer, input: Option<Vec<f32>>) -> Option<(Vec<f32>, Vec<f32>)> {
    let f = &layer.float;
    let (weights, bias) = match &f.ann_form {
        Some(p) => (&p.weights, &p.bias),
        None => (&f.weights, &f.bias),
    };
    let [c, h, w] = layer.in_shape;
    let [oh, ow] = layer.conv_out;
    let o = layer.out_channels;
    let per_channel = oh * ow;
    let mut v = match input {
        Some(x) if x.len() == c * h * w => {
            let [kh, kw] = layer.kernel;
            let conv = Conv { c, h, w, o, kh, kw, stride: layer.stride, padding: layer.padding, oh, ow };
            let mut v = conv.dense(&x, weights, None);
            if let Some(b) = bias {
                v.chunks_mut(per_channel.max(1)).zip(b).for_each(|(plane, &b)| plane.iter_mut().for_each(|v| *v += b));
            }
            v
        }
        _ if bias.is_none() && f.ann_form.as_ref().is_none_or(|p| p.norms.iter().all(|(_, beta)| beta.iter().all(|&b| b == 0.0))) => {
            return None;
        }
        _ => {
            let zeros = vec![0.0; o];
            let b = bias.as_deref().unwrap_or(&zeros);
            b.iter().flat_map(|&b| std::iter::repeat_n(b, per_channel)).collect()
        }
    };
    for (alpha, beta) in f.ann_form.iter().flat_map(|p| &p.norms) {
        for ((plane, &a), &b) in v.chunks_mut(per_channel.max(1)).zip(alpha).zip(beta) {
            plane.iter_mut().for_each(|v| *v = crate::BatchNorm::apply(*v, a, b));
        }
    }
    let mut spikes = vec![0f32; v.len()];
    for (v, s) in v.iter_mut().zip(&mut spikes) {
        // sinabs' MultiSpike: `(v > 0) * trunc(v / threshold)` spikes, then the reset.
        *s = if *v > 0.0 { (*v / f.threshold).trunc() } else { 0.0 };
        if *s > 0.0 {
            *v = match layer.reset {
                Reset::Subtract => *v - *s * f.threshold,
                Reset::Zero => 0.0,
            };
        }
        // `relu(v - min_v_mem) + min_v_mem`, which rounds as f32 does.
        *v = (*v - f.min_v_mem).max(0.0) + f.min_v_mem;
    }
    Some((v, spikes))
}

/// The spikes sum-pooled by `pool` (`[c][y][x]` of the pooled map), or `None` if none.
fn pooled(layer: &ChipLayer, spikes: &[f32], pool: [usize; 2]) -> Option<Vec<f32>> {
    if spikes.iter().all(|&s| s == 0.0) {
        return None;
    }
    let c = layer.out_channels;
    let [fh, fw] = layer.conv_out;
    let [py, px] = pool.map(|p| p.max(1));
    let (ph, pw) = (fh / py, fw / px);
    let mut out = vec![0f32; c * ph * pw];
    for ch in 0..c {
        for y in 0..(ph * py).min(fh) {
            for x in 0..(pw * px).min(fw) {
                out[(ch * ph + y / py) * pw + x / px] += spikes[(ch * fh + y) * fw + x];
            }
        }
    }
    Some(out)
}
