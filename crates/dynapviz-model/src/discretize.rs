//! Discretization to the chip's integers, exactly as sinabs does it (DESIGN.md §3), in f32
//! arithmetic like torch: per layer one scale `s = min(scale(W, 8), scale(bias, 8),
//! scale([min_v_mem, threshold], 16))`, then every value times `s`, rounded half to even.

use crate::network::{ChipLayer, Network, QuantParams};

/// sinabs' `determine_discretization_scale`: the factor that maps the values' range onto a
/// signed `bits`-bit range, using the larger negative side when the values lean negative.
pub fn scale(values: &[f32], bits: u32) -> f32 {
    let dmin = -(2f64.powi(bits as i32 - 1));
    let dmax = 2f64.powi(bits as i32 - 1) - 1.0;
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // torch: a Python float times a float32 tensor is computed in float32.
    let ratio = (dmin / dmax).abs() as f32;
    if min.abs() <= max.abs() * ratio { (dmax as f32 / max).abs() } else { (dmin as f32 / min).abs() }
}

/// The one scale factor of a layer.
pub fn layer_scale(layer: &ChipLayer) -> f32 {
    let f = &layer.float;
    let mut s = scale(&f.weights, 8);
    if let Some(b) = &f.bias {
        s = s.min(scale(b, 8));
    }
    s.min(scale(&[f.min_v_mem, f.threshold], 16))
}

/// Discretizes every layer in place (the float parameters stay).
pub fn discretize(network: &mut Network) {
    for layer in &mut network.layers {
        let s = layer_scale(layer);
        let q = |v: f32| (v * s).round_ties_even();
        let f = &layer.float;
        layer.quant = Some(QuantParams {
            weights: f.weights.iter().map(|&w| q(w).clamp(-128.0, 127.0) as i8).collect(),
            bias: f.bias.as_ref().map(|b| b.iter().map(|&v| q(v).clamp(-32768.0, 32767.0) as i16).collect()),
            threshold: q(f.threshold) as i32,
            min_v_mem: q(f.min_v_mem) as i32,
            scale: s,
        });
    }
}
