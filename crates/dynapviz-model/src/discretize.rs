//! Discretization to the chip's integers, exactly as sinabs does it (DESIGN.md §3), in f32
//! arithmetic like torch: per layer one scale `s = min(scale(W, 8), scale(bias, 8),
//! scale([min_v_mem, threshold], 16), scale(v_mem, 16))`, then every value times `s`, rounded
//! half to even. `v_mem` are the potentials sinabs' conversion leaves (see [`crate::zero_step`]).

use crate::network::{ChipLayer, Network, QuantParams};
use crate::zero_step;

/// sinabs' `determine_discretization_scale`: the factor that maps the values' range onto a
/// signed `bits`-bit range, using the larger negative side when the values lean negative.
pub fn scale(values: &[f32], bits: u32) -> f32 {
    let dmin = -(2f64.powi(bits as i32 - 1));
    let dmax = 2f64.powi(bits as i32 - 1) - 1.0;
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // torch: a Python float times a float32 tensor is computed in float32.
    let ratio = (dmin / dmax).abs() as f32;
    // And a Python number divided by a tensor is the tensor's reciprocal times the number
    // (`Tensor.__rtruediv__`): two roundings, not one. A single division differs in the last
    // bit for some ranges, and a weight then rounds the other way (a random network of
    // `tools/sinabs_random.py` had one at -42.5 that way, at -42.500004 with one division).
    let over = |d: f64, v: f32| ((1.0 / v) * d as f32).abs();
    if min.abs() <= max.abs() * ratio { over(dmax, max) } else { over(dmin, min) }
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
    let potentials = zero_step::potentials(network);
    for (layer, v_mem) in network.layers.iter_mut().zip(potentials) {
        let s = layer_scale(layer);
        let s = v_mem.as_ref().map_or(s, |v| s.min(scale(v, 16)));
        let q = |v: f32| round_half_even(v * s);
        let f = &layer.float;
        layer.quant = Some(QuantParams {
            weights: f.weights.iter().map(|&w| q(w).clamp(-128.0, 127.0) as i8).collect(),
            bias: f.bias.as_ref().map(|b| b.iter().map(|&v| q(v).clamp(-32768.0, 32767.0) as i16).collect()),
            threshold: q(f.threshold) as i32,
            min_v_mem: q(f.min_v_mem) as i32,
            scale: s,
            initial_v_mem: v_mem.map(|v| v.iter().map(|&x| q(x).clamp(-32768.0, 32767.0) as i16).collect()),
        });
    }
}

/// `x.round_ties_even()` for |x| <= 2^22, and ±2^22 beyond: the layer's scale maps every value
/// it rounds into ±2^15. The standard one is a call into libm per weight on x86-64, whose
/// baseline has no rounding instruction: a tenth of a simulation's start-up. Adding and taking
/// away 1.5 * 2^23 rounds half to even (the default rounding mode) exactly in that range, where
/// the sum's last bit is worth 1; the clamp (not a branch to the standard one, which the
/// vectorized loop took for every value) keeps it there.
#[inline]
fn round_half_even(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    const LIMIT: f32 = 4_194_304.0;
    (x.clamp(-LIMIT, LIMIT) + SHIFT) - SHIFT
}

#[cfg(test)]
mod tests {
    use super::round_half_even;

    #[test]
    fn rounding_half_to_even_equals_the_standard_library() {
        let mut uniform = dynapviz_testkit::uniform(3);
        let halves = (-20_000..20_000).map(|k| k as f32 * 0.5);
        let near = [0.49999997, 0.50000006, 2.4999998, 32_767.5, 4_194_303.5, 4_194_304.0].into_iter().flat_map(|x| [x, -x]);
        let random = (0..100_000).map(|_| (uniform() - 0.5) * 600.0);
        for x in halves.chain(near).chain(random) {
            // Zero's sign may differ (-0.4 gives +0): the chip's integers have none.
            assert_eq!(round_half_even(x) + 0.0, x.round_ties_even() + 0.0, "{x}");
        }
        assert_eq!(round_half_even(1e9), 4_194_304.0);
        assert_eq!(round_half_even(f32::NEG_INFINITY), -4_194_304.0);
        assert!(round_half_even(f32::NAN).is_nan());
    }
}
