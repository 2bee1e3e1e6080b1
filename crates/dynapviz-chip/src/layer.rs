//! The runtime form of one chip layer: weights laid out for scattering one input event to every
//! neuron under the kernel with a contiguous inner loop over output channels, and the neuron
//! state. Shared by the event-driven and the binned simulation.

use std::sync::atomic::{AtomicBool, Ordering};

use dynapviz_model::network::Reset;
use dynapviz_model::{ChipLayer, ModelError};

/// Set by [`use_vector_instructions`]`(false)`.
static PORTABLE_ONLY: AtomicBool = AtomicBool::new(false);

/// Turns the AVX2 kernel off or back on, process-wide: to compare speeds, and to test the
/// portable kernel on a machine that has AVX2. Results are identical either way.
pub fn use_vector_instructions(on: bool) {
    PORTABLE_ONLY.store(!on, Ordering::Relaxed);
}

/// Whether the AVX2 kernel runs: the CPU has it and it is not turned off.
#[inline]
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return !PORTABLE_ONLY.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// One chip layer ready to run.
#[derive(Clone, Debug)]
pub struct LayerRt {
    /// Layer number (1-based).
    pub index: usize,
    /// Input (C, H, W).
    pub in_shape: [usize; 3],
    /// Output channels.
    pub out_channels: usize,
    /// Which neurons and weights each input reaches.
    reach: Reach,
    /// Sum-pooling kernel.
    pub pool: [usize; 2],
    /// Conv output (H, W).
    pub conv_out: [usize; 2],
    /// Output after pooling (C, H, W).
    pub out_shape: [usize; 3],
    /// Weights `[c][ky][kw - 1 - kx][o]`, for the binned mode's exact sums. Kernel columns are
    /// reversed so that the weights of consecutive output columns follow each other.
    weights: Vec<i32>,
    /// The same weights as the chip stores them, for the event mode.
    weights16: Vec<i16>,
    bias: Option<Vec<i32>>,
    /// Spike threshold.
    pub threshold: i32,
    /// Lower bound of the membrane potential.
    pub min_v_mem: i32,
    /// Membrane potentials `[oy][ox][o]` of the binned mode (unbounded, like sinabs' floats).
    pub state: Vec<i32>,
    /// Membrane potentials of the event mode: the chip's int16.
    pub state16: Vec<i16>,
    /// Binned mode: neuron columns that received input in the current bin, and their marks.
    touched: Vec<u32>,
    touched_mark: Vec<bool>,
    /// Event mode: the threshold masks of one event's chunks (see [`Masks`]).
    masks: Vec<u32>,
    /// Event mode: the firing rule in int16.
    neuron: Neuron,
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
        if l.stride.contains(&0) {
            return Err(ModelError::Invalid(format!("layer {}: stride {:?} must be at least 1", l.index, l.stride)));
        }
        if q.threshold <= 0 {
            return Err(ModelError::Invalid(format!("layer {}: threshold {} must be positive", l.index, q.threshold)));
        }
        let o = l.out_channels;
        if q.weights.len() != o * c_in * kh * kw {
            return Err(ModelError::Invalid(format!(
                "layer {}: {} weights, expected {o} x {c_in} x {kh} x {kw} (out x in x kernel)",
                l.index,
                q.weights.len()
            )));
        }
        let mut weights = vec![0i32; c_in * kh * kw * o];
        for oc in 0..o {
            for c in 0..c_in {
                for ky in 0..kh {
                    for kx in 0..kw {
                        weights[((c * kh + ky) * kw + (kw - 1 - kx)) * o + oc] =
                            i32::from(q.weights[((oc * c_in + c) * kh + ky) * kw + kx]);
                    }
                }
            }
        }
        let [fh, fw] = l.conv_out;
        let rows = Fanout::new(l.in_shape[1], kh, l.stride[0], l.padding[0], fh, l.pool[0], l.out_shape[1], [fw * o, kw * o], false);
        let cols = Fanout::new(l.in_shape[2], kw, l.stride[1], l.padding[1], fw, l.pool[1], l.out_shape[2], [o, o], true);
        let masks = vec![0; rows.widest() * cols.widest() * o.div_ceil(16)];
        Ok(Self {
            index: l.index,
            in_shape: l.in_shape,
            out_channels: o,
            reach: Reach { rows, cols, channels: c_in, channel_stride: kh * kw * o, contiguous: l.stride[1] == 1 },
            pool: l.pool,
            conv_out: l.conv_out,
            out_shape: l.out_shape,
            weights16: weights.iter().map(|&w| w as i16).collect(),
            weights,
            bias: q.bias.as_ref().map(|b| b.iter().map(|&v| i32::from(v)).collect()),
            threshold: q.threshold,
            min_v_mem: q.min_v_mem,
            state: vec![0; o * l.conv_out[0] * l.conv_out[1]],
            state16: vec![0; o * l.conv_out[0] * l.conv_out[1]],
            touched: Vec::new(),
            touched_mark: vec![false; l.conv_out[0] * l.conv_out[1]],
            masks,
            neuron: Neuron {
                threshold: q.threshold,
                below: (q.threshold - 1).min(i32::from(i16::MAX)) as i16,
                min: q.min_v_mem.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16,
                reset: l.reset,
            },
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

    /// sinabs accumulation: adds `count` x the weights of input `(c, y, x)` to the neurons under
    /// the kernel, without bounds (sinabs' state is a float). Returns synaptic operations.
    #[inline]
    pub fn accumulate(&mut self, c: usize, y: usize, x: usize, count: i32) -> u64 {
        let o = self.out_channels;
        let Some((rows, cols, wc)) = self.reach.taps(c, y, x) else { return 0 };
        let (state, weights, touched, mark) = (&mut self.state, &self.weights, &mut self.touched, &mut self.touched_mark);
        for r in rows {
            for k in cols {
                let (base, w) = ((r.state + k.state) as usize, wc + (r.weight + k.weight) as usize);
                for (v, &w) in state[base..base + o].iter_mut().zip(&weights[w..w + o]) {
                    *v += count * w;
                }
                if !mark[base / o] {
                    mark[base / o] = true;
                    touched.push(base as u32);
                }
            }
        }
        (rows.len() * cols.len() * o) as u64
    }

    /// The chip's response to one input event at `(c, y, x)`: every neuron under the kernel
    /// gets its weight added with int16 saturation and is clamped at `min_v_mem`; a neuron at or
    /// above threshold emits one spike and is reset. Spikes come in raster order (output row,
    /// column, channel). Calls `spike` with the pooled site of each spike (`None` when pooling
    /// cuts it off); returns (synaptic ops, spikes).
    #[inline]
    pub fn event(&mut self, c: usize, y: usize, x: usize, spike: impl FnMut(Option<Site>)) -> (u64, u64) {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.event_avx2(c, y, x, spike) };
        }
        // SAFETY: no AVX2 asked for.
        unsafe { self.event_with::<false>(c, y, x, spike) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn event_avx2(&mut self, c: usize, y: usize, x: usize, spike: impl FnMut(Option<Site>)) -> (u64, u64) {
        // SAFETY: this function only runs with AVX2.
        unsafe { self.event_with::<true>(c, y, x, spike) }
    }

    /// [`Self::event`] with AVX2 instructions or without. Inlined into a caller compiled for
    /// AVX2 (a whole batch of events, see `Cascade::run`), the vector code inlines too: checking
    /// the CPU and calling per event costs more than the event.
    ///
    /// # Safety
    /// `AVX2 = true` only on a CPU with AVX2.
    #[inline(always)]
    pub(crate) unsafe fn event_with<const AVX2: bool>(
        &mut self,
        c: usize,
        y: usize,
        x: usize,
        spike: impl FnMut(Option<Site>),
    ) -> (u64, u64) {
        let o = self.out_channels;
        let Some((rows, cols, wc)) = self.reach.taps(c, y, x) else { return (0, 0) };
        let scatter = Scatter { rows, cols, weights: &self.weights16[wc..], o, neuron: self.neuron, contiguous: self.reach.contiguous };
        let spikes = if AVX2 {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: the caller guarantees AVX2.
                scatter.run(&mut self.state16, &mut self.masks, spike, |v, w, n| unsafe { update_avx2(v, w, n) })
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("AVX2 exists on x86_64 only")
        } else {
            scatter.run(&mut self.state16, &mut self.masks, spike, |v, w, n| update_portable(v, w, n))
        };
        ((rows.len() * cols.len() * o) as u64, spikes)
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

    /// Adds the bias once to every neuron of the event mode (one slow-clock tick of the chip's
    /// leak), saturating at int16, then applies the chip's firing rule to each. Returns spikes.
    pub fn leak_tick(&mut self, mut spike: impl FnMut(Option<Site>)) -> u64 {
        let Some(bias) = &self.bias else { return 0 };
        let (o, n, geometry) = (self.out_channels, self.neuron, self.geometry());
        let mut spikes = 0;
        for (i, v) in self.state16.iter_mut().enumerate() {
            let sum = (i32::from(*v) + bias[i % o]).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            *v = if sum > n.below {
                spikes += 1;
                spike(geometry.site(i / o, i % o));
                n.after_spike(sum)
            } else {
                sum.max(n.min)
            };
        }
        spikes
    }

    /// Synaptic operations of an average input event (fewer at the borders).
    pub fn synops_per_input(&self) -> u64 {
        let inputs = (self.in_shape[1] * self.in_shape[2]).max(1);
        (self.reach.rows.taps.len() * self.reach.cols.taps.len() * self.out_channels / inputs) as u64
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

/// One kernel tap along one axis: an input row (or column) reaches output row `oy` through
/// kernel row `ky`; an input's taps go by ascending output. Precomputed per input coordinate,
/// so the hot path does no division.
#[derive(Clone, Copy, Debug)]
struct Tap {
    /// State offset of the output row (`oy * fw * o`; for columns `ox * o`).
    state: u32,
    /// Weight offset of the kernel row (`ky * kw * o`; for columns, whose weights are stored
    /// reversed, `(kw - 1 - kx) * o`).
    weight: u32,
    /// Output row after pooling, or [`CUT`] when pooling cuts it off.
    pooled: u16,
}

/// Which neurons and weights each input of a layer reaches.
#[derive(Clone, Debug)]
struct Reach {
    /// Where an input row reaches: output rows, kernel rows, pooled rows.
    rows: Fanout,
    /// Where an input column reaches.
    cols: Fanout,
    /// Input channels.
    channels: usize,
    /// Weights per input channel (`kh * kw * out_channels`).
    channel_stride: usize,
    /// Stride 1 along x: the columns an input reaches are consecutive, and so are their neurons
    /// and (kernel columns reversed) their weights.
    contiguous: bool,
}

impl Reach {
    /// The kernel taps input `(c, y, x)` reaches, rows and columns (empty when the input lies
    /// outside the layer's input), and the offset of channel `c`'s weights; `None` past the last
    /// channel. [`Simulator::new`](crate::Simulator::new) rules both out for connected layers.
    #[inline]
    fn taps(&self, c: usize, y: usize, x: usize) -> Option<(&[Tap], &[Tap], usize)> {
        (c < self.channels).then(|| (self.rows.of(y), self.cols.of(x), c * self.channel_stride))
    }
}

/// [`Tap::pooled`] of rows and columns past the pooled map.
const CUT: u16 = u16::MAX;

/// The taps of every input coordinate along one axis.
#[derive(Clone, Debug)]
struct Fanout {
    /// `taps[starts[i]..starts[i + 1]]` belong to input coordinate `i`.
    starts: Vec<u32>,
    taps: Vec<Tap>,
}

impl Fanout {
    /// Input coordinate `i` reaches output `n / stride` for every kernel index `k` with
    /// `n = i + padding - k >= 0` divisible by the stride and inside the output; the outputs
    /// ascend. `reversed`: the weights are stored with `k` reversed.
    #[allow(clippy::too_many_arguments)]
    fn new(
        input: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        out: usize,
        pool: usize,
        pooled: usize,
        step: [usize; 2],
        reversed: bool,
    ) -> Self {
        let mut starts = vec![0u32];
        let mut taps = Vec::new();
        for i in 0..input {
            for k in (0..kernel).rev() {
                let Some(n) = (i + padding).checked_sub(k) else { continue };
                if n % stride != 0 || n / stride >= out {
                    continue;
                }
                let o = n / stride;
                let p = o / pool.max(1);
                taps.push(Tap {
                    state: (o * step[0]) as u32,
                    weight: ((if reversed { kernel - 1 - k } else { k }) * step[1]) as u32,
                    pooled: if p < pooled { p as u16 } else { CUT },
                });
            }
            starts.push(taps.len() as u32);
        }
        Self { starts, taps }
    }

    /// The most taps of any input coordinate.
    fn widest(&self) -> usize {
        self.starts.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0)
    }

    /// The taps of input coordinate `i` (none past the input).
    #[inline]
    fn of(&self, i: usize) -> &[Tap] {
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.taps[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// The firing rule of one layer, in the chip's int16.
#[derive(Clone, Copy, Debug)]
struct Neuron {
    threshold: i32,
    /// `threshold - 1` as int16: a potential above it fires (never, for thresholds past int16).
    below: i16,
    min: i16,
    reset: Reset,
}

impl Neuron {
    /// The potential after a spike from `v` (at or above threshold): reset, then clamped.
    #[inline(always)]
    fn after_spike(self, v: i16) -> i16 {
        match self.reset {
            Reset::Subtract => (i32::from(v) - self.threshold).max(i32::from(self.min)) as i16,
            Reset::Zero => 0.max(self.min),
        }
    }
}

/// The threshold masks of one event's 16-neuron chunks, `[row tap][column tap][chunk]`: two
/// bits per neuron at threshold, as `movemask` gives them. Written for every chunk without a
/// branch; read only for kernel rows with a neuron at threshold.
type Masks = [u32];

/// One input event's scatter over the neurons under the kernel.
struct Scatter<'a> {
    rows: &'a [Tap],
    cols: &'a [Tap],
    /// The weights of the event's input channel, `[ky][kw - 1 - kx][o]`.
    weights: &'a [i16],
    o: usize,
    neuron: Neuron,
    /// See [`Reach::contiguous`].
    contiguous: bool,
}

impl Scatter<'_> {
    /// Two passes. The first adds the weights to every neuron under the kernel and notes, without
    /// branching, the chunks with neurons at threshold. The second resets those neurons and emits
    /// their spikes in raster order (row, column, channel). Each neuron is touched once per
    /// event, so firing after all updates is the same as firing after each. `update` returns the
    /// threshold mask of one 16-neuron chunk.
    #[inline(always)]
    fn run(
        &self,
        state: &mut [i16],
        masks: &mut Masks,
        spike: impl FnMut(Option<Site>),
        update: impl Fn(&mut [i16; 16], &[i16; 16], Neuron) -> u32,
    ) -> u64 {
        // The common channel counts get loops the compiler unrolls.
        let firing_rows = match self.o {
            16 => self.update_rows::<1>(state, masks, update),
            32 => self.update_rows::<2>(state, masks, update),
            64 => self.update_rows::<4>(state, masks, update),
            128 => self.update_rows::<8>(state, masks, update),
            _ => self.update_columns(state, masks, update),
        };
        if firing_rows == 0 { 0 } else { self.fire(state, masks, firing_rows, spike) }
    }

    /// 16-neuron chunks per column.
    fn chunks(&self) -> usize {
        self.o.div_ceil(16)
    }

    /// First pass for `N` chunks of 16 channels: with consecutive columns a kernel row is one
    /// run of neurons and weights; otherwise column by column. Returns a bit per kernel row with
    /// a neuron at threshold.
    #[inline(always)]
    fn update_rows<const N: usize>(
        &self,
        state: &mut [i16],
        masks: &mut Masks,
        update: impl Fn(&mut [i16; 16], &[i16; 16], Neuron) -> u32,
    ) -> u32 {
        if !self.contiguous {
            return self.update_columns(state, masks, update);
        }
        let (Some(first), n) = (self.cols.first(), self.neuron) else { return 0 };
        let span = self.cols.len() * N;
        let mut firing = 0;
        for ((ri, r), row_masks) in self.rows.iter().enumerate().zip(masks.chunks_exact_mut(span)) {
            let base = (r.state + first.state) as usize;
            let w = (r.weight + first.weight) as usize;
            let (v, _) = state[base..base + span * 16].as_chunks_mut::<16>();
            let (w, _) = self.weights[w..w + span * 16].as_chunks::<16>();
            let mut any = 0;
            for ((v, w), m) in v.iter_mut().zip(w).zip(row_masks.iter_mut()) {
                *m = update(v, w, n);
                any |= *m;
            }
            firing |= u32::from(any != 0) << ri;
        }
        firing
    }

    /// First pass, column by column, for any channel count and stride.
    #[inline(always)]
    fn update_columns(&self, state: &mut [i16], masks: &mut Masks, update: impl Fn(&mut [i16; 16], &[i16; 16], Neuron) -> u32) -> u32 {
        let (o, n, chunks) = (self.o, self.neuron, self.chunks());
        if self.cols.is_empty() {
            return 0;
        }
        let mut firing = 0;
        for ((ri, r), row_masks) in self.rows.iter().enumerate().zip(masks.chunks_exact_mut(self.cols.len() * chunks)) {
            let mut any = 0;
            for (k, col_masks) in self.cols.iter().zip(row_masks.chunks_exact_mut(chunks)) {
                let base = (r.state + k.state) as usize;
                let w = (r.weight + k.weight) as usize;
                let (v, v_rest) = state[base..base + o].as_chunks_mut::<16>();
                let (w, w_rest) = self.weights[w..w + o].as_chunks::<16>();
                for ((v, w), m) in v.iter_mut().zip(w).zip(col_masks.iter_mut()) {
                    *m = update(v, w, n);
                    any |= *m;
                }
                if let Some(m) = col_masks.get_mut(o / 16).filter(|_| !v_rest.is_empty()) {
                    *m = update_portable(v_rest, w_rest, n);
                    any |= *m;
                }
            }
            firing |= u32::from(any != 0) << ri;
        }
        firing
    }

    /// Second pass: resets the neurons at threshold of the `firing` kernel rows and emits their
    /// spikes in raster order.
    #[inline(always)]
    fn fire(&self, state: &mut [i16], masks: &Masks, mut firing: u32, mut spike: impl FnMut(Option<Site>)) -> u64 {
        let (n, chunks) = (self.neuron, self.chunks());
        let mut spikes = 0;
        while firing != 0 {
            let ri = firing.trailing_zeros() as usize;
            firing &= firing - 1;
            let r = self.rows[ri];
            let row_masks = &masks[ri * self.cols.len() * chunks..][..self.cols.len() * chunks];
            for (k, col_masks) in self.cols.iter().zip(row_masks.chunks_exact(chunks)) {
                let site = (r.pooled != CUT && k.pooled != CUT).then_some((r.pooled, k.pooled));
                for (chunk, &mask) in col_masks.iter().enumerate() {
                    let mut m = mask & 0x5555_5555;
                    while m != 0 {
                        let channel = chunk * 16 + (m.trailing_zeros() / 2) as usize;
                        m &= m - 1;
                        let v = &mut state[(r.state + k.state) as usize + channel];
                        *v = n.after_spike(*v);
                        spikes += 1;
                        spike(site.map(|(y, x)| Site { c: channel as u16, y, x }));
                    }
                }
            }
        }
        spikes
    }
}

/// Adds the weights of up to 16 neurons with int16 saturation and clamps at `min_v_mem`;
/// returns two bits per neuron at threshold.
#[inline(always)]
fn update_portable(v: &mut [i16], w: &[i16], n: Neuron) -> u32 {
    let mut mask = 0;
    for (i, (v, &w)) in v.iter_mut().zip(w).enumerate() {
        *v = v.saturating_add(w).max(n.min);
        mask |= u32::from(*v > n.below) * (3 << (2 * i));
    }
    mask
}

/// [`update_portable`] for 16 neurons in AVX2 intrinsics.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn update_avx2(v: &mut [i16; 16], w: &[i16; 16], n: Neuron) -> u32 {
    use std::arch::x86_64::{
        __m256i, _mm256_adds_epi16, _mm256_cmpgt_epi16, _mm256_loadu_si256, _mm256_max_epi16, _mm256_movemask_epi8, _mm256_set1_epi16,
        _mm256_storeu_si256,
    };
    // SAFETY: both arrays are 16 i16 (32 bytes); the loads and stores are unaligned.
    unsafe {
        let p = v.as_mut_ptr().cast::<__m256i>();
        let x = _mm256_max_epi16(_mm256_adds_epi16(_mm256_loadu_si256(p), _mm256_loadu_si256(w.as_ptr().cast())), _mm256_set1_epi16(n.min));
        _mm256_storeu_si256(p, x);
        _mm256_movemask_epi8(_mm256_cmpgt_epi16(x, _mm256_set1_epi16(n.below))) as u32
    }
}
