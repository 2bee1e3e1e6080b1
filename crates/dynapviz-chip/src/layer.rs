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
    /// Weights `[c][ky][kx][o]`, for the binned mode's exact sums.
    weights: Vec<i32>,
    /// The same weights as the chip stores them, for the event mode.
    weights16: Vec<i16>,
    bias: Option<Vec<i32>>,
    /// Spike threshold.
    pub threshold: i32,
    /// Lower bound of the membrane potential.
    pub min_v_mem: i32,
    reset: Reset,
    /// Membrane potentials `[oy][ox][o]` of the binned mode (unbounded, like sinabs' floats).
    pub state: Vec<i32>,
    /// Membrane potentials of the event mode: the chip's int16.
    pub state16: Vec<i16>,
    /// Binned mode: neuron columns that received input in the current bin, and their marks.
    touched: Vec<u32>,
    touched_mark: Vec<bool>,
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
            weights16: weights.iter().map(|&w| w as i16).collect(),
            weights,
            bias: q.bias.as_ref().map(|b| b.iter().map(|&v| i32::from(v)).collect()),
            threshold: q.threshold,
            min_v_mem: q.min_v_mem,
            reset: l.reset,
            state: vec![0; o * l.conv_out[0] * l.conv_out[1]],
            state16: vec![0; o * l.conv_out[0] * l.conv_out[1]],
            touched: Vec::new(),
            touched_mark: vec![false; l.conv_out[0] * l.conv_out[1]],
        })
    }

    /// Clears the membrane potentials.
    pub fn reset_state(&mut self) {
        self.state.fill(0);
        self.state16.fill(0);
        self.touched.clear();
        self.touched_mark.fill(false);
    }

    /// Bytes of neuron state the simulator holds for this layer.
    pub fn state_bytes(&self) -> usize {
        self.state.len() * std::mem::size_of::<i32>() + self.state16.len() * std::mem::size_of::<i16>()
    }

    fn conv(&self) -> ConvGeometry {
        ConvGeometry {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            conv_out: self.conv_out,
            out_channels: self.out_channels,
        }
    }

    /// sinabs accumulation: adds `count` x the weights of input `(c, y, x)` to the neurons under
    /// the kernel, without bounds (sinabs' state is a float). Returns synaptic operations.
    #[inline]
    pub fn accumulate(&mut self, c: usize, y: usize, x: usize, count: i32) -> u64 {
        let o = self.out_channels;
        let mut ops = 0;
        let conv = self.conv();
        let (state, weights, touched, mark) = (&mut self.state, &self.weights, &mut self.touched, &mut self.touched_mark);
        conv.for_each_target(c, y, x, |base, wbase| {
            for (v, &w) in state[base..base + o].iter_mut().zip(&weights[wbase..wbase + o]) {
                *v += count * w;
            }
            if !mark[base / o] {
                mark[base / o] = true;
                touched.push(base as u32);
            }
            ops += o as u64;
        });
        ops
    }

    /// The chip's response to one input event at `(c, y, x)`: every neuron under the kernel
    /// gets its weight added with int16 saturation and is clamped at `min_v_mem`; a neuron at or
    /// above threshold emits one spike and is reset. Each neuron is touched once per event, so
    /// the firing check can follow its update directly. Calls `spike` with the pooled site of
    /// each spike (`None` when pooling cuts it off); returns (synaptic ops, spikes).
    #[inline]
    pub fn event(&mut self, c: usize, y: usize, x: usize, mut spike: impl FnMut(Option<Site>)) -> (u64, u64) {
        let o = self.out_channels;
        let (thr, reset) = (self.threshold, self.reset);
        let min = self.min_v_mem.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        let geometry = self.geometry();
        let conv = self.conv();
        let (state, weights) = (&mut self.state16, &self.weights16);
        let (mut ops, mut spikes) = (0, 0);
        conv.for_each_target(c, y, x, |base, wbase| {
            let v = &mut state[base..base + o];
            let mut top = i16::MIN;
            // i16 saturating adds: the chip's arithmetic, and 8-16 lanes per instruction.
            for (v, &w) in v.iter_mut().zip(&weights[wbase..wbase + o]) {
                *v = v.saturating_add(w).max(min);
                top = top.max(*v);
            }
            ops += o as u64;
            if i32::from(top) >= thr {
                for (oc, v) in v.iter_mut().enumerate() {
                    if i32::from(*v) >= thr {
                        *v = match reset {
                            Reset::Subtract => (i32::from(*v) - thr).max(i32::from(min)) as i16,
                            Reset::Zero => 0.max(min),
                        };
                        spikes += 1;
                        spike(geometry.site(base / o, oc));
                    }
                }
            }
        });
        (ops, spikes)
    }

    /// Chip semantics for the `out_channels` neurons at `base` (used by the leak tick): a neuron
    /// at or above threshold emits one spike and is reset; every potential is then clamped at
    /// `min_v_mem`.
    fn fire_once(&mut self, base: usize, mut spike: impl FnMut(Option<Site>)) -> u64 {
        let o = self.out_channels;
        let (thr, min) = (self.threshold, self.min_v_mem.clamp(i32::from(i16::MIN), i32::from(i16::MAX)));
        let geometry = self.geometry();
        let mut spikes = 0;
        for oc in 0..o {
            let mut v = i32::from(self.state16[base + oc]);
            if v >= thr {
                v = match self.reset {
                    Reset::Subtract => v - thr,
                    Reset::Zero => 0,
                };
                spikes += 1;
                spike(geometry.site(base / o, oc));
            }
            self.state16[base + oc] = v.max(min) as i16;
        }
        spikes
    }

    /// sinabs semantics for every neuron (one time bin): add the bias, then
    /// `n = v > 0 ? v / thr : 0`, `v -= n * thr`, clamp at `min_v_mem`. Calls `spike(site, n)`.
    pub fn fire_binned(&mut self, mut spike: impl FnMut(Option<Site>, i32)) {
        let o = self.out_channels;
        let (thr, min) = (self.threshold, self.min_v_mem);
        let geometry = self.geometry();
        if self.bias.is_none() {
            // Without a bias only neurons that received input this bin can change: visit those
            // (in first-touch order, which is deterministic) instead of the whole layer.
            let mut touched = std::mem::take(&mut self.touched);
            for &base in &touched {
                let base = base as usize;
                self.touched_mark[base / o.max(1)] = false;
                for (oc, v) in self.state[base..base + o].iter_mut().enumerate() {
                    if *v >= thr {
                        let n = *v / thr;
                        *v -= n * thr;
                        spike(geometry.site(base / o, oc), n);
                    }
                    *v = (*v).max(min);
                }
            }
            touched.clear();
            self.touched = touched;
            return;
        }
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

/// What a convolution needs to find the neurons one input reaches.
#[derive(Clone, Copy)]
struct ConvGeometry {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    conv_out: [usize; 2],
    out_channels: usize,
}

impl ConvGeometry {
    /// Calls `f(state offset, weight offset)` for every output position input `(c, y, x)`
    /// reaches; each names `out_channels` neurons and their weights. Allocates nothing.
    #[inline]
    fn for_each_target(self, c: usize, y: usize, x: usize, mut f: impl FnMut(usize, usize)) {
        let o = self.out_channels;
        let ([kh, kw], [sy, sx], [py, px], [fh, fw]) = (self.kernel, self.stride, self.padding, self.conv_out);
        for ky in 0..kh {
            let Some(ny) = (y + py).checked_sub(ky) else { break };
            if ny % sy != 0 || ny / sy >= fh {
                continue;
            }
            let oy = ny / sy;
            for kx in 0..kw {
                let Some(nx) = (x + px).checked_sub(kx) else { break };
                if nx % sx != 0 || nx / sx >= fw {
                    continue;
                }
                f((oy * fw + nx / sx) * o, ((c * kh + ky) * kw + kx) * o);
            }
        }
    }
}
