//! The runtime form of one chip layer: weights laid out for scattering one input event to every
//! neuron under the kernel with a contiguous inner loop over output channels, and the neuron
//! state. Shared by the event-driven and the binned simulation.

use dynapviz_model::network::Reset;
use dynapviz_model::{ChipLayer, ModelError};

/// One chip layer ready to run.
#[derive(Clone, Debug)]
pub struct LayerRt {
    /// Layer number (1-based).
    pub index: usize,
    /// Input (C, H, W).
    pub in_shape: [usize; 3],
    /// Output channels.
    pub out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    /// Sum-pooling kernel.
    pub pool: [usize; 2],
    /// Conv output (H, W).
    pub conv_out: [usize; 2],
    /// Output after pooling (C, H, W).
    pub out_shape: [usize; 3],
    /// Weights `[c][ky][kx][o]`.
    weights: Vec<i32>,
    bias: Option<Vec<i32>>,
    /// Spike threshold.
    pub threshold: i32,
    /// Lower bound of the membrane potential.
    pub min_v_mem: i32,
    reset: Reset,
    /// Membrane potentials `[oy][ox][o]`.
    pub state: Vec<i32>,
}

/// A neuron address in a layer's output after pooling, with a spike count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Channel.
    pub c: u16,
    /// Row.
    pub y: u16,
    /// Column.
    pub x: u16,
}

impl LayerRt {
    /// Builds the runtime layer from a discretized chip layer.
    pub fn new(l: &ChipLayer) -> Result<Self, ModelError> {
        let q = l
            .quant
            .as_ref()
            .ok_or_else(|| ModelError::Invalid(format!("layer {} is not discretized: the chip runs integer networks", l.index)))?;
        let [c_in, _, _] = l.in_shape;
        let [kh, kw] = l.kernel;
        if kh > 16 || kw > 16 {
            return Err(ModelError::Invalid(format!("layer {}: kernel {kh}x{kw} is larger than the chip's 16x16", l.index)));
        }
        if q.threshold <= 0 {
            return Err(ModelError::Invalid(format!("layer {}: threshold {} must be positive", l.index, q.threshold)));
        }
        let o = l.out_channels;
        let mut weights = vec![0i32; c_in * kh * kw * o];
        for oc in 0..o {
            for c in 0..c_in {
                for ky in 0..kh {
                    for kx in 0..kw {
                        weights[((c * kh + ky) * kw + kx) * o + oc] = i32::from(q.weights[((oc * c_in + c) * kh + ky) * kw + kx]);
                    }
                }
            }
        }
        Ok(Self {
            index: l.index,
            in_shape: l.in_shape,
            out_channels: o,
            kernel: l.kernel,
            stride: l.stride,
            padding: l.padding,
            pool: l.pool,
            conv_out: l.conv_out,
            out_shape: l.out_shape,
            weights,
            bias: q.bias.as_ref().map(|b| b.iter().map(|&v| i32::from(v)).collect()),
            threshold: q.threshold,
            min_v_mem: q.min_v_mem,
            reset: l.reset,
            state: vec![0; o * l.conv_out[0] * l.conv_out[1]],
        })
    }

    /// Clears the membrane potentials.
    pub fn reset_state(&mut self) {
        self.state.fill(0);
    }

    /// Bytes of neuron state the simulator holds for this layer.
    pub fn state_bytes(&self) -> usize {
        self.state.len() * std::mem::size_of::<i32>()
    }

    /// Output rows/columns reached by input row/column `v` along dimension `d`, with the kernel
    /// offset that connects them.
    #[inline]
    fn targets(&self, d: usize, v: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (k, s, p, n) = (self.kernel[d], self.stride[d], self.padding[d], self.conv_out[d]);
        (0..k).filter_map(move |kk| {
            let num = (v + p).checked_sub(kk)?;
            (num % s == 0 && num / s < n).then_some((num / s, kk))
        })
    }

    /// Calls `f(state offset, weight offset)` for every output position the input `(c, y, x)`
    /// reaches; each names `out_channels` neurons and their weights.
    #[inline]
    fn for_each_target(&self, c: usize, y: usize, x: usize, mut f: impl FnMut(usize, usize)) {
        let o = self.out_channels;
        let [kh, kw] = self.kernel;
        let fw = self.conv_out[1];
        let rows: arrayvec_like::Small = self.targets(0, y).collect();
        let cols: arrayvec_like::Small = self.targets(1, x).collect();
        for &(oy, ky) in rows.as_slice() {
            for &(ox, kx) in cols.as_slice() {
                f((oy * fw + ox) * o, ((c * kh + ky) * kw + kx) * o);
            }
        }
    }

    /// sinabs accumulation: adds `count` x the weights of input `(c, y, x)` to the neurons under
    /// the kernel, without bounds (sinabs' state is a float). Returns synaptic operations.
    #[inline]
    pub fn accumulate(&mut self, c: usize, y: usize, x: usize, count: i32) -> u64 {
        let o = self.out_channels;
        let mut ops = 0;
        let mut bases = arrayvec_like::Pairs::default();
        self.for_each_target_into(c, y, x, &mut bases);
        let (state, weights) = (&mut self.state, &self.weights);
        for &(base, wbase) in bases.as_slice() {
            for (v, &w) in state[base..base + o].iter_mut().zip(&weights[wbase..wbase + o]) {
                *v += count * w;
            }
            ops += o as u64;
        }
        ops
    }

    fn for_each_target_into(&self, c: usize, y: usize, x: usize, out: &mut arrayvec_like::Pairs) {
        self.for_each_target(c, y, x, |b, w| out.push((b, w)));
    }

    /// The chip's response to one input event at `(c, y, x)`: every neuron under the kernel
    /// gets its weight added with int16 saturation and is clamped at `min_v_mem`; a neuron at or
    /// above threshold emits one spike and is reset. Each neuron is touched once per event, so
    /// the firing check can follow its update directly. Calls `spike` with the pooled site of
    /// each spike (`None` when pooling cuts it off); returns (synaptic ops, spikes).
    #[inline]
    pub fn event(&mut self, c: usize, y: usize, x: usize, mut spike: impl FnMut(Option<Site>)) -> (u64, u64) {
        let o = self.out_channels;
        let (thr, min, reset) = (self.threshold, self.min_v_mem.max(i32::from(i16::MIN)), self.reset);
        let geometry = self.geometry();
        let mut bases = arrayvec_like::Pairs::default();
        self.for_each_target_into(c, y, x, &mut bases);
        let (mut ops, mut spikes) = (0, 0);
        for &(base, wbase) in bases.as_slice() {
            let v = &mut self.state[base..base + o];
            let mut top = i32::MIN;
            for (v, &w) in v.iter_mut().zip(&self.weights[wbase..wbase + o]) {
                *v = (*v + w).clamp(min, i32::from(i16::MAX));
                top = top.max(*v);
            }
            ops += o as u64;
            if top >= thr {
                for (oc, v) in v.iter_mut().enumerate() {
                    if *v >= thr {
                        *v = match reset {
                            Reset::Subtract => (*v - thr).max(min),
                            Reset::Zero => 0.max(min),
                        };
                        spikes += 1;
                        spike(geometry.site(base / o, oc));
                    }
                }
            }
        }
        (ops, spikes)
    }

    /// Chip semantics for the `out_channels` neurons at `base` (used by the leak tick): a neuron
    /// at or above threshold emits one spike and is reset; every potential is then clamped at
    /// `min_v_mem`.
    fn fire_once(&mut self, base: usize, mut spike: impl FnMut(Option<Site>)) -> u64 {
        let o = self.out_channels;
        let (thr, min) = (self.threshold, self.min_v_mem);
        let geometry = self.geometry();
        let mut spikes = 0;
        for oc in 0..o {
            let v = &mut self.state[base + oc];
            if *v >= thr {
                *v = match self.reset {
                    Reset::Subtract => *v - thr,
                    Reset::Zero => 0,
                };
                spikes += 1;
                spike(geometry.site(base / o, oc));
            }
            *v = (*v).max(min);
        }
        spikes
    }

    /// sinabs semantics for every neuron (one time bin): add the bias, then
    /// `n = v > 0 ? v / thr : 0`, `v -= n * thr`, clamp at `min_v_mem`. Calls `spike(site, n)`.
    pub fn fire_binned(&mut self, mut spike: impl FnMut(Option<Site>, i32)) {
        let o = self.out_channels;
        let (thr, min) = (self.threshold, self.min_v_mem);
        let geometry = self.geometry();
        for (i, v) in self.state.iter_mut().enumerate() {
            if let Some(b) = &self.bias {
                *v += b[i % o];
            }
            if *v >= thr {
                let n = *v / thr;
                *v -= n * thr;
                spike(geometry.site(i / o, i % o), n);
            }
            *v = (*v).max(min);
        }
    }

    /// Adds the bias once to every neuron (one slow-clock tick of the chip's leak), saturating,
    /// then applies the chip's firing rule to all neurons. Returns spikes.
    pub fn leak_tick(&mut self, mut spike: impl FnMut(Option<Site>)) -> u64 {
        let Some(bias) = self.bias.clone() else {
            return 0;
        };
        let o = self.out_channels;
        for (i, v) in self.state.iter_mut().enumerate() {
            *v = (*v + bias[i % o]).clamp(i32::from(i16::MIN), i32::from(i16::MAX));
        }
        let mut n = 0;
        for base in (0..self.state.len()).step_by(o.max(1)) {
            n += self.fire_once(base, &mut spike);
        }
        n
    }

    /// Whether the layer has a bias (a leak on the chip).
    pub fn has_bias(&self) -> bool {
        self.bias.is_some()
    }

    fn geometry(&self) -> PoolGeometry {
        PoolGeometry { fw: self.conv_out[1], pool: self.pool, out: [self.out_shape[1], self.out_shape[2]] }
    }
}

/// Where a neuron's spike lands after sum pooling.
#[derive(Clone, Copy)]
struct PoolGeometry {
    fw: usize,
    pool: [usize; 2],
    out: [usize; 2],
}

impl PoolGeometry {
    /// The pooled site of neuron column `pix` (row-major over the conv output), channel `oc`;
    /// `None` for the rows/columns the pooling cuts off.
    #[inline]
    fn site(self, pix: usize, oc: usize) -> Option<Site> {
        let (py, px) = ((pix / self.fw) / self.pool[0], (pix % self.fw) / self.pool[1]);
        (py < self.out[0] && px < self.out[1]).then_some(Site { c: oc as u16, y: py as u16, x: px as u16 })
    }
}

/// A tiny inline vector for the (at most 16) kernel offsets along one dimension, so scattering
/// allocates nothing.
mod arrayvec_like {
    pub struct Small {
        items: [(usize, usize); 16],
        len: usize,
    }

    impl Small {
        pub fn as_slice(&self) -> &[(usize, usize)] {
            &self.items[..self.len]
        }
    }

    /// (state offset, weight offset) pairs of one event: at most 16 x 16.
    pub struct Pairs {
        items: [(usize, usize); 256],
        len: usize,
    }

    impl Default for Pairs {
        fn default() -> Self {
            Pairs { items: [(0, 0); 256], len: 0 }
        }
    }

    impl Pairs {
        #[inline]
        pub fn push(&mut self, item: (usize, usize)) {
            if self.len < 256 {
                self.items[self.len] = item;
                self.len += 1;
            }
        }

        pub fn as_slice(&self) -> &[(usize, usize)] {
            &self.items[..self.len]
        }
    }

    impl FromIterator<(usize, usize)> for Small {
        fn from_iter<I: IntoIterator<Item = (usize, usize)>>(iter: I) -> Self {
            let mut s = Small { items: [(0, 0); 16], len: 0 };
            for item in iter {
                if s.len < 16 {
                    s.items[s.len] = item;
                    s.len += 1;
                }
            }
            s
        }
    }
}
